//! Entry points: `run`, `rotate`, `rollback`, `adopt`. Each takes a lease on the
//! credential before any side effect and releases it when done.

use std::collections::BTreeSet;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::EngineError;
use super::engine::{Driver, Runtime};
use super::outcome::{CredentialReport, Outcome, RunReport};
use super::rotation::{At, RollbackStage, RollbackState, Rotation, Stage, Trigger};
use super::schedule::{self, Next};
use crate::clock::show;
use crate::config::{Credential, LoadedConfig, credential_from_snapshot, snapshot_value};
use crate::material::{self, Material};
use crate::secret::Secret;
use crate::state::{CredentialState, SharedVault, StateDoc, StateError, Vault};

/// Steps that reach beyond this machine (commands, HTTP, provider APIs) running at once
/// unless `--concurrency` says otherwise: as many as GitHub's default of requests in
/// flight. Provider clients keep their own pacing across all of them.
pub const DEFAULT_CONCURRENCY: usize = 16;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Only these credentials (all when empty).
    pub only: Vec<String>,
    /// Allow first issuance for credentials without material.
    pub bootstrap: bool,
    /// Waits that end within this are waited out in-process.
    pub max_wait: Duration,
    /// How long to wait for another run's lease on a credential.
    pub lease_wait: Duration,
    /// How many steps that reach beyond this machine run at once, across credentials.
    pub concurrency: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            only: Vec::new(),
            bootstrap: false,
            max_wait: Duration::from_secs(600),
            lease_wait: Duration::from_secs(60),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// SHA-256 of a credential's resolved config, as snapshotted.
pub fn config_hash(credential: &Credential) -> String {
    let json = serde_json::to_vec(&snapshot_value(credential)).expect("config serialises");
    crate::state::hex_digest(&Sha256::digest(json))
}

/// A credential of the config, or one the state still holds (removed from the config
/// while a rotation was in flight).
fn ensure_known(config: &LoadedConfig, vault: &Vault, id: &str) -> Result<(), EngineError> {
    if config.credential(id).is_none() && !vault.knows(id) {
        return Err(unknown(config, id));
    }
    Ok(())
}

fn unknown(config: &LoadedConfig, id: &str) -> EngineError {
    let known: Vec<&str> = config.config.credentials.iter().map(|c| c.id.as_str()).collect();
    EngineError::UnknownCredential(id.to_string(), known.join(", "))
}

fn live(config: &LoadedConfig, id: &str) -> Option<Credential> {
    config.credential(id).map(|c| c.resolved(&config.config.defaults))
}

/// Advances every due or in-flight rotation as far as its gates allow, all side by
/// side; their saves are group commits.
pub async fn run(
    config: &LoadedConfig,
    vault: &mut Vault,
    rt: &Runtime,
    opts: &RunOptions,
) -> Result<RunReport, EngineError> {
    for id in &opts.only {
        ensure_known(config, vault, id)?;
    }
    let mut ids = in_play(config, &vault.doc);
    ids.retain(|id| opts.only.is_empty() || opts.only.contains(id));
    let session = Session::new(config, rt, opts, vault);
    // Every credential advances at once; only steps that reach beyond this machine wait
    // for a slot. A failure stops nothing already under way: each step finishes and
    // records its result.
    let results = futures::future::join_all(ids.into_iter().map(|id| advance(&session, id))).await;
    let mut report = RunReport::default();
    for result in results {
        report.credentials.push(result?);
    }
    Ok(report)
}

/// What the credentials one command works on share: the config, the tools, the open
/// state, and the slots of steps that reach beyond this machine.
struct Session<'a, 'v> {
    config: &'a LoadedConfig,
    rt: &'a Runtime,
    opts: &'a RunOptions,
    state: SharedVault<'v>,
    slots: Semaphore,
    deadline: OffsetDateTime,
}

impl<'a, 'v> Session<'a, 'v> {
    fn new(
        config: &'a LoadedConfig,
        rt: &'a Runtime,
        opts: &'a RunOptions,
        vault: &'v mut Vault,
    ) -> Self {
        Session {
            config,
            rt,
            opts,
            state: SharedVault::new(vault, rt.clock.clone()),
            slots: Semaphore::new(opts.concurrency.max(1)),
            deadline: rt.clock.now() + opts.max_wait,
        }
    }

    /// Takes the lease on `id`, or says who holds it.
    async fn lease(&self, id: &str) -> Result<Option<Outcome>, EngineError> {
        let deadline = self.rt.clock.now() + self.opts.lease_wait;
        match self.state.lease(id, deadline).await {
            Ok(()) => Ok(None),
            Err(e @ StateError::LeaseHeld { .. }) => {
                Ok(Some(Outcome::Busy { detail: e.to_string() }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Drives the rotation in flight in `entry` as far as it goes in this run.
    async fn drive(
        &self,
        id: &str,
        entry: CredentialState,
        operator_rollback: bool,
    ) -> Result<(Outcome, Vec<String>), EngineError> {
        let snapshot =
            entry.rotation.as_ref().map(|r| r.snapshot.clone()).expect("a rotation in flight");
        let cred = credential_from_snapshot(&snapshot).map_err(|e| EngineError::Refused {
            credential: id.to_string(),
            message: format!("the config snapshot of the rotation in flight does not load ({e}); this state was written by another rotagate version"),
        })?;
        let mut driver = Driver::new(
            self.rt,
            &self.state,
            &self.slots,
            entry,
            &self.config.dir,
            id,
            cred,
            self.deadline,
        );
        driver.operator_rollback = operator_rollback;
        let outcome = driver.drive().await?;
        Ok((outcome, std::mem::take(&mut driver.notes)))
    }
}

/// One credential's part of a run: retained halves past their time, then its rotation.
async fn advance(s: &Session<'_, '_>, id: String) -> Result<CredentialReport, EngineError> {
    let cred = live(s.config, &id);
    let owner = cred.as_ref().and_then(|c| c.owner.clone());
    let report =
        |outcome, notes| CredentialReport { id: id.clone(), owner: owner.clone(), outcome, notes };
    if let Some(busy) = drop_expired_retained(s, &id).await? {
        return Ok(report(busy, Vec::new()));
    }
    let now = s.rt.clock.now();
    if let Decision::Idle(outcome) =
        decide(cred.as_ref(), Some(&s.state.entry(&id).await?), now, s.opts.bootstrap)
    {
        tracing::debug!("{id}: {}", outcome.describe());
        return Ok(report(outcome, Vec::new()));
    }
    s.rt.progress.begin(&id);
    let worked = work_on(s, &id, cred.as_ref()).await;
    s.rt.progress.end(&id);
    let (outcome, notes) = worked?;
    Ok(report(outcome, notes))
}

/// Leases `id`, decides again, and drives its rotation.
async fn work_on(
    s: &Session<'_, '_>,
    id: &str,
    cred: Option<&Credential>,
) -> Result<(Outcome, Vec<String>), EngineError> {
    if let Some(busy) = s.lease(id).await? {
        return Ok((busy, Vec::new()));
    }
    // Decide again on the state as it is now that this run holds the lease.
    let now = s.rt.clock.now();
    let mut entry = s.state.entry(id).await?;
    let start = match decide(cred, Some(&entry), now, s.opts.bootstrap) {
        Decision::Idle(outcome) => {
            s.state.release(id).await?;
            return Ok((outcome, Vec::new()));
        }
        Decision::Work(start) => start,
    };
    if let (Some((trigger, reason)), Some(cred)) = (start, cred) {
        start_rotation(&mut entry, cred, trigger, &reason, Vec::new(), now);
        s.state.put(id, entry.clone()).await?;
    }
    let driven = s.drive(id, entry, false).await;
    let released = s.state.release(id).await;
    let driven = driven?;
    released?;
    Ok(driven)
}

/// Drops the private halves whose `retain` has passed (old age identities), under the
/// credential's lease. `Some` when another run holds it.
async fn drop_expired_retained(
    s: &Session<'_, '_>,
    id: &str,
) -> Result<Option<Outcome>, EngineError> {
    let expired = |entry: &CredentialState, now| {
        entry.retained.iter().any(|m| m.retain_until.is_some_and(|u| u <= now))
    };
    if !expired(&s.state.entry(id).await?, s.rt.clock.now()) {
        return Ok(None);
    }
    if let Some(busy) = s.lease(id).await? {
        return Ok(Some(busy));
    }
    let now = s.rt.clock.now();
    let mut entry = s.state.entry(id).await?;
    let (gone, kept): (Vec<Material>, Vec<Material>) = std::mem::take(&mut entry.retained)
        .into_iter()
        .partition(|m| m.retain_until.is_some_and(|u| u <= now));
    entry.retained = kept;
    for mut m in gone {
        m.drop_private();
        tracing::info!("{id}: {} retired: its retain period has passed", m.summary());
        entry.audit(
            now,
            None,
            "retained-dropped",
            format!("{} private half dropped: retain passed", m.summary()),
        );
    }
    s.state.put(id, entry).await?;
    s.state.release(id).await?;
    Ok(None)
}

enum Decision {
    Idle(Outcome),
    /// Work to do; `Some` starts a rotation first.
    Work(Option<(Trigger, String)>),
}

fn decide(
    cred: Option<&Credential>,
    entry: Option<&CredentialState>,
    now: OffsetDateTime,
    bootstrap: bool,
) -> Decision {
    if entry.is_some_and(|e| e.rotation.is_some()) {
        return Decision::Work(None);
    }
    let Some(cred) = cred else {
        return Decision::Idle(Outcome::Idle { next_due: None });
    };
    match schedule::next(cred, entry, now, bootstrap) {
        Next::NoKey { bootstrap: true } => {
            Decision::Work(Some((Trigger::Bootstrap, "first issuance".into())))
        }
        Next::NoKey { bootstrap: false } => Decision::Idle(Outcome::NoKey),
        Next::Due { since } => {
            Decision::Work(Some((Trigger::Schedule, format!("due since {}", show(since)))))
        }
        Next::Idle { next_due } => Decision::Idle(Outcome::Idle { next_due }),
    }
}

fn start_rotation(
    entry: &mut CredentialState,
    cred: &Credential,
    trigger: Trigger,
    reason: &str,
    abandoned: Vec<Material>,
    now: OffsetDateTime,
) -> String {
    entry.rotations += 1;
    let stamp = now
        .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
        .unwrap_or_default();
    let id = format!("{stamp}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    entry.rotation = Some(Rotation {
        id: id.clone(),
        trigger,
        reason: reason.to_string(),
        stage: Stage::Due,
        times: [(Stage::Due, At(now))].into(),
        config_hash: config_hash(cred),
        snapshot: snapshot_value(cred),
        new: None,
        abandoned,
        journal: Default::default(),
        gates: Default::default(),
        origin_seen_at: None,
        rollback: None,
        error: None,
        compensating: None,
    });
    entry.audit(now, Some(&id), "started", format!("{}: {reason}", trigger_name(trigger)));
    id
}

fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Bootstrap => "bootstrap",
        Trigger::Schedule => "schedule",
        Trigger::Dispatch => "dispatch",
        Trigger::Emergency => "emergency",
    }
}

fn refused(id: &str, message: impl Into<String>) -> EngineError {
    EngineError::Refused { credential: id.to_string(), message: message.into() }
}

/// Runs `f` on `id`'s entry with the lease on `id` held, releasing it afterwards
/// whatever happens.
async fn leased<T>(
    config: &LoadedConfig,
    vault: &mut Vault,
    rt: &Runtime,
    opts: &RunOptions,
    id: &str,
    f: impl AsyncFnOnce(&Session<'_, '_>, CredentialState) -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    let session = Session::new(config, rt, opts, vault);
    if let Some(Outcome::Busy { detail }) = session.lease(id).await? {
        return Err(refused(id, detail));
    }
    rt.progress.begin(id);
    let result = f(&session, session.state.entry(id).await?).await;
    rt.progress.end(id);
    let released = session.state.release(id).await;
    let value = result?;
    released?;
    Ok(value)
}

/// An operator's command on `id`: `edit` changes its entry (saying whether it did, so an
/// unchanged entry is not saved again), then the rotation is driven as far as its gates
/// allow (`rolling_back`: towards the old material).
async fn edit_and_drive(
    config: &LoadedConfig,
    vault: &mut Vault,
    rt: &Runtime,
    opts: &RunOptions,
    id: &str,
    rolling_back: bool,
    edit: impl FnOnce(&mut CredentialState, OffsetDateTime) -> Result<bool, EngineError>,
) -> Result<RunReport, EngineError> {
    let (outcome, notes) = leased(config, vault, rt, opts, id, async |s, mut entry| {
        if edit(&mut entry, rt.clock.now())? {
            s.state.put(id, entry.clone()).await?;
        }
        s.drive(id, entry, rolling_back).await
    })
    .await?;
    Ok(RunReport::one(id, live(config, id).and_then(|c| c.owner), outcome, notes))
}

/// `rotate ID`: starts a rotation now; `emergency` replaces one in flight and revokes the
/// old material.
pub async fn rotate(
    config: &LoadedConfig,
    vault: &mut Vault,
    rt: &Runtime,
    opts: &RunOptions,
    id: &str,
    reason: &str,
    emergency: bool,
) -> Result<RunReport, EngineError> {
    let cred = live(config, id).ok_or_else(|| unknown(config, id))?;
    edit_and_drive(config, vault, rt, opts, id, false, |entry, now| {
        if let Some(r) = &entry.rotation
            && !emergency
        {
            return Err(refused(
                id,
                format!(
                    "rotation {} is in flight at {}; let it finish, `rotagate rollback {id}`, or `rotagate rotate {id} --emergency` if the key is compromised",
                    r.id, r.stage
                ),
            ));
        }
        if entry.current.is_none() && entry.rotation.is_none() && !(cred.bootstrap || opts.bootstrap) {
            return Err(refused(id, Outcome::NoKey.describe()));
        }
        let (trigger, abandoned) = if emergency {
            (Trigger::Emergency, revoke_for_emergency(entry, reason, now))
        } else {
            (Trigger::Dispatch, Vec::new())
        };
        start_rotation(entry, &cred, trigger, reason, abandoned, now);
        Ok(true)
    })
    .await
}

/// Marks the current material (and any material of a rotation in flight) revoked, drops
/// their private halves, and returns what was published and must be removed at retire.
fn revoke_for_emergency(
    entry: &mut CredentialState,
    reason: &str,
    now: OffsetDateTime,
) -> Vec<Material> {
    let mut abandoned = Vec::new();
    if let Some(rotation) = entry.rotation.take() {
        abandoned.extend(rotation.abandoned);
        if let Some(mut pending) = rotation.new {
            entry.revoked.insert(pending.fingerprint.clone());
            pending.drop_private();
            entry.audit(
                now,
                Some(&rotation.id),
                "superseded",
                format!(
                    "replaced by an emergency rotation ({reason}); {} revoked",
                    pending.summary()
                ),
            );
            abandoned.push(pending);
        }
    }
    if let Some(current) = entry.current.as_mut() {
        entry.revoked.insert(current.fingerprint.clone());
        current.drop_private();
        let summary = current.summary();
        entry.audit(
            now,
            None,
            "revoked",
            format!("{summary}: compromised ({reason}); never restorable"),
        );
    }
    abandoned
}

/// `rollback ID`: reverts a rotation that has not retired yet.
pub async fn rollback(
    config: &LoadedConfig,
    vault: &mut Vault,
    rt: &Runtime,
    opts: &RunOptions,
    id: &str,
) -> Result<RunReport, EngineError> {
    ensure_known(config, vault, id)?;
    edit_and_drive(config, vault, rt, opts, id, true, |entry, now| {
        let current_revoked = entry
            .current
            .as_ref()
            .is_some_and(|c| entry.revoked.contains(&c.fingerprint));
        let Some(rotation) = entry.rotation.as_mut() else {
            return Err(refused(id, "no rotation is in flight, so there is nothing to roll back"));
        };
        if rotation.stage >= Stage::Retired {
            return Err(refused(
                id,
                format!("rotation {} has retired the old material, which is irreversible; rotate again instead", rotation.id),
            ));
        }
        if rotation.rollback.is_none() {
            if current_revoked || rotation.emergency() {
                return Err(refused(
                    id,
                    "the old material is revoked (compromised) and is never restored; let the emergency rotation finish",
                ));
            }
            let promote_count = credential_from_snapshot(&rotation.snapshot).map(|c| c.promote.len()).unwrap_or(0);
            let undo_promote = rotation.stage >= Stage::Promoted
                || rotation.compensating.is_some()
                || (0..promote_count).any(|i| rotation.journal.touched(&format!("promote/{i}")));
            rotation.rollback = Some(RollbackState {
                reason: "requested by an operator".into(),
                stage: RollbackStage::Requested,
                times: [(RollbackStage::Requested, At(now))].into(),
                undo_promote,
            });
            let rotation_id = rotation.id.clone();
            entry.audit(now, Some(&rotation_id), "rollback-requested", "requested by an operator");
            return Ok(true);
        }
        // Requested before: this run carries it on.
        Ok(false)
    })
    .await
}

/// `adopt ID`: records live material as current, so the first rotation can roll back to
/// it and `{{ old.* }}` is known.
#[allow(clippy::too_many_arguments)]
pub async fn adopt(
    config: &LoadedConfig,
    vault: &mut Vault,
    rt: &Runtime,
    opts: &RunOptions,
    id: &str,
    input: &Secret,
    kid: Option<String>,
    role: Option<String>,
    replace: bool,
) -> Result<String, EngineError> {
    let cred = live(config, id).ok_or_else(|| unknown(config, id))?;
    let now = rt.clock.now();
    let mut material =
        material::adopt(&cred.key, input, kid, now).map_err(|e| refused(id, e.to_string()))?;
    material.expires = cred.expires();
    if let Some(roles) = cred.roles() {
        let role = role.unwrap_or_else(|| roles[0].clone());
        if !roles.contains(&role) {
            return Err(refused(id, format!("role `{role}` is not one of {}", roles.join(", "))));
        }
        material.role = Some(role);
    } else if role.is_some() {
        return Err(refused(id, "--role is only for `strategy: alternating` credentials"));
    }
    leased(config, vault, rt, opts, id, async |s, mut entry| {
        if let Some(r) = &entry.rotation {
            return Err(refused(id, format!("rotation {} is in flight; adopt only between rotations", r.id)));
        }
        if entry.revoked.contains(&material.fingerprint) {
            return Err(refused(id, "this material was revoked as compromised; it can never be adopted again"));
        }
        if entry.kid_used(&material.kid)
            && entry.kids.get(&material.kid) != Some(&material.fingerprint)
        {
            return Err(refused(
                id,
                format!("kid {} already named other material; pass another --kid", material.kid),
            ));
        }
        if let Some(current) = &entry.current {
            if current.fingerprint == material.fingerprint {
                return Ok(format!("{id}: {} is already current; nothing changed", current.summary()));
            }
            if !replace {
                return Err(refused(
                    id,
                    format!(
                        "{} is already recorded as current; pass --replace to record different live material",
                        current.summary()
                    ),
                ));
            }
        }
        let summary = material.summary();
        entry.record_kid(&material.kid, &material.fingerprint);
        entry.current = Some(material);
        entry.audit(now, None, "adopted", format!("{summary} recorded as current"));
        s.state.put(id, entry.clone()).await?;
        Ok(format!("{id}: adopted {summary}"))
    })
    .await
}

/// `gate reopen ID`: a rejected gate gets a fresh pull request on the next check.
pub async fn reopen_gate(
    config: &LoadedConfig,
    vault: &mut Vault,
    rt: &Runtime,
    opts: &RunOptions,
    id: &str,
) -> Result<RunReport, EngineError> {
    ensure_known(config, vault, id)?;
    edit_and_drive(config, vault, rt, opts, id, false, |entry, now| {
        let Some(rotation) = entry.rotation.as_mut() else {
            return Err(refused(id, "no rotation is in flight"));
        };
        let Some((name, record)) = rotation.gates.iter_mut().find(|(_, g)| g.status == "rejected")
        else {
            return Err(refused(
                id,
                format!("rotation {} has no rejected gate to reopen", rotation.id),
            ));
        };
        let name = name.clone();
        let attempt =
            record.data.get("attempt").and_then(serde_json::Value::as_u64).unwrap_or(1) + 1;
        record.status = "waiting".into();
        record.detail = "reopened".into();
        record.link = None;
        record.since = At(now);
        record.data = serde_json::json!({ "attempt": attempt });
        rotation.journal.undo(&format!("gate/{name}"));
        rotation.error = None;
        let rotation_id = rotation.id.clone();
        entry.audit(now, Some(&rotation_id), "gate-reopened", format!("{name}: attempt {attempt}"));
        Ok(true)
    })
    .await
}

/// The credentials a run advances, in config order: the config's, then those since
/// removed from it whose rotation is in flight (they still finish, from their snapshot).
pub(super) fn in_play(config: &LoadedConfig, doc: &StateDoc) -> Vec<String> {
    let mut ids: Vec<String> = config.config.credentials.iter().map(|c| c.id.clone()).collect();
    for (id, entry) in &doc.credentials {
        if entry.rotation.is_some() && !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

/// Every credential the config and state know, for commands that take leases on all.
pub fn all_ids(config: &LoadedConfig, vault: &Vault) -> Vec<String> {
    let mut ids: BTreeSet<String> =
        config.config.credentials.iter().map(|c| c.id.clone()).collect();
    ids.extend(vault.doc.credentials.keys().cloned());
    ids.into_iter().collect()
}
