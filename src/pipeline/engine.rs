//! The engine: advances one rotation as far as its gates and waits allow, saving the
//! state before and after every step. It knows stages and the action, probe and gate
//! traits; never a provider.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::{info, warn};

use super::outcome::Outcome;
use super::rotation::{At, Failure, GateRecord, RollbackStage, Rotation, Stage};
use super::{EngineError, EnvSource};
use crate::actions::{self, Action, EnvValues, Op, Providers, StepContext, View};
use crate::clock::{Clock, show};
use crate::config::{ActionSpec, Credential, GateSpec, KeySpec, Strategy, Template};
use crate::gate::{GateRequest, GateStatus};
use crate::http::HttpClient;
use crate::material::{self, KidContext, Material};
use crate::probes::{self, Probe};
use crate::state::{CredentialState, Vault};

/// How often a waiting run prints where it stands.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// The run's tools, shared by every credential.
pub struct Runtime {
    pub clock: Arc<dyn Clock>,
    pub http: HttpClient,
    pub env: Arc<dyn EnvSource>,
    pub gates: Arc<dyn GateFactory>,
    /// Provider clients (GitHub, ...), handed to actions and probes unopened.
    pub providers: Providers,
    pub progress: Arc<dyn Progress>,
}

/// Told when a run starts and stops working on a credential (CI log groups).
pub trait Progress: Send + Sync {
    fn begin(&self, credential: &str);
    fn end(&self, credential: &str);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _credential: &str) {}
    fn end(&self, _credential: &str) {}
}

/// Builds the gate a credential's config names.
pub trait GateFactory: Send + Sync {
    fn gate(&self, spec: &GateSpec) -> Result<Box<dyn crate::gate::Gate>, crate::gate::GateError>;
}

/// The gates this build offers, with what they need to reach GitHub.
pub struct StandardGates {
    pub providers: Providers,
    /// The repository approval pull requests go to.
    pub repo: Option<String>,
}

impl GateFactory for StandardGates {
    fn gate(&self, spec: &GateSpec) -> Result<Box<dyn crate::gate::Gate>, crate::gate::GateError> {
        crate::gate::build(spec, &self.providers, self.repo.as_deref())
    }
}

/// A stage's actions with their index in the config list.
type Steps = Vec<(usize, Box<dyn Action>)>;

pub(crate) enum Flow {
    Continue,
    Stop(Outcome),
}

enum ProbeFlow {
    Passed,
    Waiting(Outcome),
    Exhausted(String),
}

/// Which operation a step performs; the view decides which material it sees.
enum OpKind {
    Publish,
    Unpublish,
    Write,
    Restore(Value),
    Run,
}

pub(crate) struct Driver<'a> {
    rt: &'a Runtime,
    vault: &'a mut Vault,
    base_dir: &'a Path,
    id: String,
    cred: Credential,
    env: EnvValues,
    deadline: OffsetDateTime,
    pub notes: Vec<String>,
    /// A promote failed in this run (its compensation then ends the run); a
    /// compensation resumed from an earlier run carries on once done.
    promote_failed_here: bool,
    /// A step failed in this run.
    failed_here: bool,
    /// This run is an operator's `rollback`: finishing it is a success, whatever
    /// failure led to it in an earlier run.
    pub(crate) operator_rollback: bool,
}

impl<'a> Driver<'a> {
    pub(crate) fn new(
        rt: &'a Runtime,
        vault: &'a mut Vault,
        base_dir: &'a Path,
        id: &str,
        cred: Credential,
        deadline: OffsetDateTime,
    ) -> Self {
        let env = EnvValues::new(
            cred.env
                .iter()
                .filter_map(|name| rt.env.var(name).map(|v| (name.clone(), v)))
                .collect(),
        );
        Driver {
            rt,
            vault,
            base_dir,
            id: id.to_string(),
            cred,
            env,
            deadline,
            notes: Vec::new(),
            promote_failed_here: false,
            failed_here: false,
            operator_rollback: false,
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.rt.clock.now()
    }

    fn entry(&mut self) -> &mut CredentialState {
        self.vault
            .doc
            .credentials
            .entry(self.id.clone())
            .or_default()
    }

    fn entry_ref(&self) -> &CredentialState {
        &self.vault.doc.credentials[&self.id]
    }

    fn rot(&mut self) -> &mut Rotation {
        self.entry()
            .rotation
            .as_mut()
            .expect("the driver runs on a rotation in flight")
    }

    fn rot_ref(&self) -> &Rotation {
        self.entry_ref()
            .rotation
            .as_ref()
            .expect("the driver runs on a rotation in flight")
    }

    /// (new, old): the pending material and what consumers had before.
    fn materials(&self) -> (Option<Material>, Option<Material>) {
        (self.rot_ref().new.clone(), self.entry_ref().current.clone())
    }

    async fn save(&mut self) -> Result<(), EngineError> {
        let now = self.now();
        self.vault.save(now).await?;
        Ok(())
    }

    fn audit(&mut self, event: &str, detail: impl Into<String>) {
        let now = self.now();
        let rotation = self.entry_ref().rotation.as_ref().map(|r| r.id.clone());
        self.entry().audit(now, rotation.as_deref(), event, detail);
    }

    fn outcome_failed(&self, step: &str, message: &str) -> Outcome {
        Outcome::Failed {
            rotation: self.rot_ref().id.clone(),
            step: step.to_string(),
            message: message.to_string(),
        }
    }

    /// Advances the rotation until it completes, waits, meets a gate or fails.
    pub(crate) async fn drive(&mut self) -> Result<Outcome, EngineError> {
        // An operator's rollback is the documented way out once they have reconciled.
        if let Some(e) = self
            .rot_ref()
            .journal
            .interrupted_once()
            .filter(|_| !self.operator_rollback)
        {
            let message = format!(
                "step {} was started at {} and must not be repeated, but its result was never recorded (the run was killed): reconcile by hand (see README, \"Interrupted steps\"), then run `rotagate rollback {}` to abandon this rotation",
                e.step,
                show(e.started_at.0),
                self.id
            );
            let step = e.step.clone();
            return Ok(self.outcome_failed(&step, &message));
        }
        loop {
            let (stage, rolling_back, compensating) = {
                let r = self.rot_ref();
                (r.stage, r.rollback.is_some(), r.compensating.clone())
            };
            tracing::debug!(
                "{}: at {stage}{}{}",
                self.id,
                if rolling_back { ", rolling back" } else { "" },
                if compensating.is_some() {
                    ", putting back a failed promote"
                } else {
                    ""
                }
            );
            let flow = if let Some(failure) = compensating {
                self.compensate(failure).await?
            } else if rolling_back {
                self.rollback_step().await?
            } else {
                match stage {
                    Stage::Due => self.generate().await?,
                    Stage::Generated => self.publish().await?,
                    Stage::Published => self.propagate().await?,
                    Stage::Propagated => self.promote().await?,
                    Stage::Promoted => self.verify().await?,
                    Stage::Verified => self.drain().await?,
                    Stage::Drained => self.retire().await?,
                    Stage::Retired => self.complete().await?,
                    Stage::Completed | Stage::RolledBack => {
                        unreachable!("finished rotations are removed from the state")
                    }
                }
            };
            if let Flow::Stop(outcome) = flow {
                return Ok(outcome);
            }
        }
    }

    /// Records reaching `stage` (with what the audit log should say about it) and saves.
    async fn reach(&mut self, stage: Stage, detail: &str) -> Result<(), EngineError> {
        let now = self.now();
        let r = self.rot();
        r.stage = stage;
        r.times.insert(stage, At(now));
        r.error = None;
        self.audit(stage.name(), detail);
        self.save().await?;
        info!("{}: {stage}", self.id);
        Ok(())
    }

    fn step_context<'s>(&'s self, step: &'s str, produced: &'s [Value]) -> StepContext<'s> {
        StepContext {
            credential: &self.id,
            step,
            base_dir: self.base_dir,
            http: &self.rt.http,
            env: &self.env,
            produced,
        }
    }

    /// Outputs of this rotation's finished steps, oldest first.
    fn produced(&self) -> Vec<Value> {
        self.rot_ref()
            .journal
            .outputs("")
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Builds a stage's actions; a kind that cannot be built (missing credentials)
    /// fails the stage.
    fn steps(&self, list: &[ActionSpec]) -> Result<Steps, String> {
        let mut steps = Vec::new();
        for (i, spec) in list.iter().enumerate() {
            if let Some(action) =
                actions::build(spec, &self.rt.providers).map_err(|e| e.to_string())?
            {
                steps.push((i, action));
            }
        }
        Ok(steps)
    }

    fn probe_for(&self, spec: &crate::config::ProbeSpec) -> Result<Box<dyn Probe>, String> {
        probes::build(spec, &self.rt.providers).map_err(|e| e.to_string())
    }

    /// Records that a stage could not even begin, and stops.
    async fn cannot_start(&mut self, step: &str, message: String) -> Result<Flow, EngineError> {
        let message = self.record_failure_unjournaled(step, &message).await?;
        Ok(Flow::Stop(self.outcome_failed(step, &message)))
    }

    async fn record_failure_unjournaled(
        &mut self,
        step: &str,
        message: &str,
    ) -> Result<String, EngineError> {
        let now = self.now();
        self.failed_here = true;
        self.rot().error = Some(Failure {
            step: step.to_string(),
            message: message.to_string(),
            at: At(now),
        });
        self.audit("step-failed", format!("{step}: {message}"));
        self.save().await?;
        warn!("{}: {step} failed: {message}", self.id);
        Ok(message.to_string())
    }

    /// Runs one journaled action step: `started` is saved before it runs, `done` (with
    /// its output) or `failed` after.
    async fn execute(
        &mut self,
        step: &str,
        action: &dyn Action,
        op: OpKind,
        new: Option<&Material>,
        old: Option<&Material>,
    ) -> Result<Result<Value, String>, EngineError> {
        let before = if matches!(op, OpKind::Write)
            && action.writes_values()
            && !self.rot_ref().journal.touched(step)
        {
            let view = View {
                new,
                old,
                env: &self.env,
            };
            let produced = self.produced();
            match action
                .capture(&view, &self.step_context(step, &produced))
                .await
            {
                Ok(before) => before,
                Err(e) => return self.record_failure(step, &e.to_string()).await.map(Err),
            }
        } else {
            None
        };
        let now = self.now();
        tracing::trace!(
            "{}: journal: {step} started (captured before: {})",
            self.id,
            before.is_some()
        );
        let attempt = self.rot().journal.begin(step, false, before, now);
        self.save().await?;
        info!(
            "{}: {step}: {} (attempt {attempt})",
            self.id,
            action.describe()
        );
        let produced = self.produced();
        let result = {
            let view = View {
                new,
                old,
                env: &self.env,
            };
            let cx = self.step_context(step, &produced);
            let op = match &op {
                OpKind::Publish => Op::Publish(&view),
                OpKind::Unpublish => Op::Unpublish(&view),
                OpKind::Write => Op::Write(&view),
                OpKind::Restore(before) => Op::Restore(before),
                OpKind::Run => Op::Run(&view),
            };
            action.execute(op, &cx).await
        };
        match result {
            Ok(output) => {
                let now = self.now();
                self.rot().journal.finish(step, output.clone(), now);
                self.save().await?;
                Ok(Ok(output))
            }
            Err(e) => self.record_failure(step, &e.to_string()).await.map(Err),
        }
    }

    async fn record_failure(&mut self, step: &str, message: &str) -> Result<String, EngineError> {
        let now = self.now();
        self.rot().journal.fail(step, message, now);
        self.record_failure_unjournaled(step, message).await
    }

    /// Waits for `until` in-process when it falls within this run's `--max-wait`;
    /// otherwise stops and leaves it to a later run.
    async fn wait_until(&mut self, until: OffsetDateTime, what: &str) -> Flow {
        loop {
            let now = self.now();
            if now >= until {
                return Flow::Continue;
            }
            if until > self.deadline {
                let r = self.rot_ref();
                return Flow::Stop(Outcome::Waiting {
                    rotation: r.id.clone(),
                    stage: r.stage,
                    until,
                    what: what.to_string(),
                });
            }
            let left = Duration::try_from(until - now).unwrap_or_default();
            info!(
                "{}: waiting for {what}: {} left (until {})",
                self.id,
                humantime::format_duration(Duration::from_secs(left.as_secs().max(1))),
                show(until)
            );
            self.rt.clock.sleep(left.min(PROGRESS_EVERY)).await;
        }
    }

    /// Runs a probe with its retries; a retry beyond `--max-wait` is left to a later run.
    async fn probe(
        &mut self,
        step: &str,
        probe: &dyn Probe,
        new: Option<&Material>,
        old: Option<&Material>,
    ) -> Result<ProbeFlow, EngineError> {
        loop {
            let (failures, last) = {
                let j = &self.rot_ref().journal;
                (j.failures(step), j.latest(step).cloned())
            };
            if failures > 0 {
                let last = last.expect("a failure is journaled");
                let reason = last.error.clone().unwrap_or_default();
                if failures > probe.retries() {
                    return Ok(ProbeFlow::Exhausted(reason));
                }
                let next = last.finished_at.map_or(self.now(), |t| t.0)
                    + time::Duration::try_from(probe.interval()).unwrap_or_default();
                let what = format!("attempt {} of {}", failures + 1, probe.describe());
                if let Flow::Stop(o) = self.wait_until(next, &what).await {
                    return Ok(ProbeFlow::Waiting(o));
                }
            }
            let now = self.now();
            self.rot().journal.begin(step, false, None, now);
            self.save().await?;
            let produced = self.produced();
            let result = {
                let view = View {
                    new,
                    old,
                    env: &self.env,
                };
                probe
                    .check(&view, &self.step_context(step, &produced))
                    .await
            };
            let now = self.now();
            match result {
                Ok(evidence) => {
                    info!("{}: {step}: {evidence}", self.id);
                    self.rot()
                        .journal
                        .finish(step, json!({ "evidence": evidence }), now);
                    self.save().await?;
                    return Ok(ProbeFlow::Passed);
                }
                Err(e) => {
                    let message = e.to_string();
                    warn!(
                        "{}: {step}: {message} (attempt {} of {})",
                        self.id,
                        failures + 1,
                        probe.retries() + 1
                    );
                    self.rot().journal.fail(step, &message, now);
                    self.save().await?;
                }
            }
        }
    }

    fn gate_spec(&self) -> GateSpec {
        if self.rot_ref().emergency() {
            self.cred.emergency_gate()
        } else {
            self.cred.gate()
        }
    }

    /// Holds the rotation until the named gate opens.
    async fn gate(&mut self, name: &str, manual: &[Template]) -> Result<Flow, EngineError> {
        let step = format!("gate/{name}");
        if self.rot_ref().journal.is_done(&step) {
            return Ok(Flow::Continue);
        }
        let (new, old) = self.materials();
        let checklist: Result<Vec<String>, _> = {
            let view = View {
                new: new.as_ref(),
                old: old.as_ref(),
                env: &self.env,
            };
            manual
                .iter()
                .map(|t| t.render(&view).map(|s| s.expose().to_string()))
                .collect()
        };
        let checklist = match checklist {
            Ok(c) => c,
            Err(e) => {
                let message = self.record_failure(&step, &e.to_string()).await?;
                return Ok(Flow::Stop(self.outcome_failed(&step, &message)));
            }
        };
        let spec = self.gate_spec();
        let gate = match self.rt.gates.gate(&spec) {
            Ok(g) => g,
            Err(e) => {
                let message = self.record_failure(&step, &e.to_string()).await?;
                return Ok(Flow::Stop(self.outcome_failed(&step, &message)));
            }
        };
        let evidence = self.evidence();
        let (rotation_id, mut record, since) = {
            let r = self.rot_ref();
            let g = r.gates.get(name);
            (
                r.id.clone(),
                g.map(|g| g.data.clone()).unwrap_or(Value::Null),
                g.filter(|g| g.status == "waiting").map(|g| g.since),
            )
        };
        let request = GateRequest {
            credential: &self.id,
            owner: self.cred.owner.as_deref(),
            rotation: &rotation_id,
            gate: name,
            old: old.as_ref(),
            new: new.as_ref(),
            checklist: &checklist,
            evidence: &evidence,
        };
        let status = gate.check(&request, &mut record).await;
        let now = self.now();
        let (status_name, detail, link) = match &status {
            Ok(GateStatus::Open(d)) => ("open", d.clone(), None),
            Ok(GateStatus::Waiting { detail, link }) => ("waiting", detail.clone(), link.clone()),
            Ok(GateStatus::Rejected(d)) => ("rejected", d.clone(), None),
            Err(e) => ("waiting", e.to_string(), None),
        };
        let previous_link = self.rot_ref().gates.get(name).and_then(|g| g.link.clone());
        self.rot().gates.insert(
            name.to_string(),
            GateRecord {
                status: status_name.into(),
                detail: detail.clone(),
                link: link.clone().or(previous_link),
                since: since.unwrap_or(At(now)),
                data: record,
            },
        );
        match status {
            Ok(GateStatus::Open(detail)) => {
                self.rot().journal.begin(&step, false, None, now);
                self.rot()
                    .journal
                    .finish(&step, json!({ "detail": detail }), now);
                if spec == GateSpec::None && !checklist.is_empty() {
                    for line in &checklist {
                        self.notes.push(format!("do by hand now: {line}"));
                    }
                }
                self.audit("gate-open", format!("{name}: {detail}"));
                self.save().await?;
                info!("{}: gate {name} open: {detail}", self.id);
                Ok(Flow::Continue)
            }
            Ok(GateStatus::Waiting { detail, link }) => {
                self.save().await?;
                info!("{}: waiting on gate {name}: {detail}", self.id);
                Ok(Flow::Stop(Outcome::AwaitingGate {
                    rotation: rotation_id,
                    gate: name.to_string(),
                    detail,
                    link,
                }))
            }
            Ok(GateStatus::Rejected(detail)) => {
                self.rot().error = Some(Failure {
                    step: step.clone(),
                    message: detail.clone(),
                    at: At(now),
                });
                self.audit("gate-rejected", format!("{name}: {detail}"));
                self.save().await?;
                Ok(Flow::Stop(Outcome::GateRejected {
                    rotation: rotation_id,
                    gate: name.to_string(),
                    detail,
                }))
            }
            Err(e) => {
                let message = self.record_failure(&step, &e.to_string()).await?;
                Ok(Flow::Stop(self.outcome_failed(&step, &message)))
            }
        }
    }

    /// Stage times and probe results, for a gate's reviewers.
    fn evidence(&self) -> Vec<String> {
        let r = self.rot_ref();
        let mut lines: Vec<String> = r
            .times
            .iter()
            .map(|(stage, at)| format!("{stage}: {}", show(at.0)))
            .collect();
        for (step, output) in r
            .journal
            .outputs("verify/")
            .into_iter()
            .chain(r.journal.outputs("origin"))
        {
            if let Some(e) = output.get("evidence").and_then(Value::as_str) {
                lines.push(format!("{step}: {e}"));
            }
        }
        lines
    }

    fn manual(list: &[ActionSpec]) -> Vec<Template> {
        list.iter()
            .filter_map(|a| match a {
                ActionSpec::Manual(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    async fn generate(&mut self) -> Result<Flow, EngineError> {
        let now = self.now();
        let (kid, role) = {
            let entry = self.entry_ref();
            let used = entry.kids.keys().cloned().collect();
            let kid = material::next_kid(
                self.cred.key.kid(),
                &KidContext {
                    credential: &self.id,
                    today: now.date(),
                    seq: entry.rotations,
                    used: &used,
                },
            );
            let role = self.cred.roles().map(|[a, b]| {
                match entry.current.as_ref().and_then(|c| c.role.as_deref()) {
                    Some(r) if r == a => b,
                    _ => a,
                }
            });
            (kid, role)
        };
        let spec = self.cred.key.clone();
        // A mint is the one generate that must never run twice: journaled as such.
        let minted = matches!(spec, KeySpec::Minted { .. });
        self.rot().journal.begin("generate", minted, None, now);
        self.save().await?;
        let generated = if let KeySpec::Minted {
            http,
            extract,
            kid_from,
            ..
        } = &spec
        {
            let current = self.entry_ref().current.clone();
            let view = View {
                new: None,
                old: current.as_ref(),
                env: &self.env,
            };
            material::mint(
                http,
                extract,
                kid_from.as_deref(),
                kid,
                role,
                now,
                &self.rt.http,
                &view,
            )
            .await
        } else {
            tokio::task::spawn_blocking(move || material::generate(&spec, kid, role, now))
                .await
                .map_err(|e| EngineError::Internal(format!("key generation task failed: {e}")))?
        };
        let material = match generated {
            Ok(m) => m,
            // Left started, so the next run stops and asks for a reconcile instead of
            // minting again.
            Err(e @ material::MaterialError::Uncertain(_)) => {
                let message = self
                    .record_failure_unjournaled("generate", &e.to_string())
                    .await?;
                return Ok(Flow::Stop(self.outcome_failed("generate", &message)));
            }
            Err(e) => {
                let message = self.record_failure("generate", &e.to_string()).await?;
                return Ok(Flow::Stop(self.outcome_failed("generate", &message)));
            }
        };
        let summary = material.summary();
        let (kid, fingerprint) = (material.kid.clone(), material.fingerprint.clone());
        let now = self.now();
        self.entry().kids.insert(kid.clone(), fingerprint.clone());
        let r = self.rot();
        r.new = Some(material);
        r.journal.finish(
            "generate",
            json!({ "kid": kid, "fingerprint": fingerprint }),
            now,
        );
        info!("{}: generated {} {summary}", self.id, self.cred.key.kind());
        // The new material is saved, encrypted, before anything is sent anywhere.
        self.reach(Stage::Generated, &summary).await?;
        Ok(Flow::Continue)
    }

    async fn publish(&mut self) -> Result<Flow, EngineError> {
        let (new, old) = self.materials();
        let steps = match self.steps(&self.cred.publish) {
            Ok(s) => s,
            Err(m) => return self.cannot_start("publish", m).await,
        };
        for (i, action) in steps {
            let step = format!("publish/{i}");
            if self.rot_ref().journal.is_done(&step) {
                continue;
            }
            if let Err(message) = self
                .execute(
                    &step,
                    action.as_ref(),
                    OpKind::Publish,
                    new.as_ref(),
                    old.as_ref(),
                )
                .await?
            {
                return Ok(Flow::Stop(self.outcome_failed(&step, &message)));
            }
        }
        let manual = Self::manual(&self.cred.publish);
        if !manual.is_empty()
            && let Flow::Stop(o) = self.gate("publish", &manual).await?
        {
            return Ok(Flow::Stop(o));
        }
        self.reach(
            Stage::Published,
            "the new public half is trusted next to the old",
        )
        .await?;
        Ok(Flow::Continue)
    }

    async fn propagate(&mut self) -> Result<Flow, EngineError> {
        let skip = self.rot_ref().emergency() || self.cred.strategy == Strategy::Immediate;
        if !skip {
            let origin = self
                .cred
                .propagate
                .as_ref()
                .and_then(|p| p.origin().cloned());
            if let Some(origin) = origin
                && self.rot_ref().origin_seen_at.is_none()
            {
                let probe = match self.probe_for(&origin) {
                    Ok(p) => p,
                    Err(m) => return self.cannot_start("origin", m).await,
                };
                let (new, old) = self.materials();
                match self
                    .probe("origin", probe.as_ref(), new.as_ref(), old.as_ref())
                    .await?
                {
                    ProbeFlow::Passed => {
                        let now = self.now();
                        self.rot().origin_seen_at = Some(At(now));
                        self.audit("origin-serving", "the origin serves the new public half");
                        self.save().await?;
                    }
                    ProbeFlow::Waiting(o) => return Ok(Flow::Stop(o)),
                    ProbeFlow::Exhausted(reason) => {
                        self.rot().journal.undo("origin");
                        let message = self.record_failure("origin", &reason).await?;
                        return Ok(Flow::Stop(self.outcome_failed("origin", &message)));
                    }
                }
            }
            let wait = self.cred.propagate_wait();
            let base = {
                let r = self.rot_ref();
                r.origin_seen_at
                    .map(|a| a.0)
                    .or_else(|| r.reached(Stage::Published))
                    .unwrap_or_else(|| self.now())
            };
            if let Flow::Stop(o) = self
                .wait_until(base + wait.signed(), "propagation to verifiers' caches")
                .await
            {
                return Ok(Flow::Stop(o));
            }
        }
        self.reach(Stage::Propagated, "verifiers hold the new public half")
            .await?;
        Ok(Flow::Continue)
    }

    fn bootstrap(&self) -> bool {
        self.entry_ref().current.is_none()
    }

    async fn promote(&mut self) -> Result<Flow, EngineError> {
        let manual = Self::manual(&self.cred.promote);
        // `immediate` has no overlap: its approval is a maintenance window before promote.
        let window = self.cred.strategy == Strategy::Immediate && !self.bootstrap();
        if (window || !manual.is_empty())
            && let Flow::Stop(o) = self.gate("promote", &manual).await?
        {
            return Ok(Flow::Stop(o));
        }
        let (new, old) = self.materials();
        let steps = match self.steps(&self.cred.promote) {
            Ok(s) => s,
            Err(m) => return self.cannot_start("promote", m).await,
        };
        for (i, action) in steps {
            let step = format!("promote/{i}");
            if self.rot_ref().journal.is_done(&step) {
                continue;
            }
            let op = if action.writes_values() {
                OpKind::Write
            } else {
                OpKind::Run
            };
            if let Err(message) = self
                .execute(&step, action.as_ref(), op, new.as_ref(), old.as_ref())
                .await?
            {
                let now = self.now();
                self.rot().compensating = Some(Failure {
                    step,
                    message,
                    at: At(now),
                });
                self.promote_failed_here = true;
                self.save().await?;
                return Ok(Flow::Continue);
            }
        }
        self.reach(Stage::Promoted, "consumers use the new material")
            .await?;
        Ok(Flow::Continue)
    }

    /// Puts back what a partly failed promote wrote, re-runs the hooks, and stops.
    async fn compensate(&mut self, failure: Failure) -> Result<Flow, EngineError> {
        warn!(
            "{}: {} failed; putting back what promote wrote: {}",
            self.id, failure.step, failure.message
        );
        if let Err(message) = self.restore_values("compensate").await? {
            let message = format!(
                "{} failed ({}) and putting the old values back failed too ({message}); consumers may hold a mix of old and new values: the next run tries again",
                failure.step, failure.message
            );
            return Ok(Flow::Stop(self.outcome_failed(&failure.step, &message)));
        }
        let r = self.rot();
        r.journal.undo("promote/");
        r.journal.undo("compensate/");
        r.compensating = None;
        r.error = Some(failure.clone());
        self.audit(
            "promote-compensated",
            format!("{}: old values put back", failure.step),
        );
        self.save().await?;
        if !self.promote_failed_here {
            // That failure was reported by the run that met it: try promote again.
            info!("{}: the old values are back; promoting again", self.id);
            return Ok(Flow::Continue);
        }
        Ok(Flow::Stop(self.outcome_failed(
            &failure.step,
            &format!("{} (the values promote had written were put back and the hooks re-run; the next run tries promote again)", failure.message),
        )))
    }

    /// Writes the old values back to every promote target, then re-runs the hooks.
    /// Used by compensation and rollback; each write is its own journaled step.
    async fn restore_values(&mut self, prefix: &str) -> Result<Result<(), String>, EngineError> {
        let (new, old) = self.materials();
        let steps = match self.steps(&self.cred.promote) {
            Ok(s) => s,
            Err(m) => return Ok(Err(m)),
        };
        let mut restored_any = false;
        for (i, action) in steps.iter().filter(|(_, a)| a.writes_values()) {
            let promote_step = format!("promote/{i}");
            if !self.rot_ref().journal.touched(&promote_step) {
                continue;
            }
            let step = format!("{prefix}/restore/{i}");
            restored_any = true;
            if self.rot_ref().journal.is_done(&step) {
                continue;
            }
            let op = match (&old, self.rot_ref().journal.before(&promote_step)) {
                (Some(_), _) => OpKind::Write,
                (None, Some(before)) => OpKind::Restore(before.clone()),
                (None, None) => {
                    return Ok(Err(format!(
                        "{} cannot be put back: there is no old material and nothing was recorded before the write",
                        action.describe()
                    )));
                }
            };
            // The old material is what consumers should see again.
            if let Err(e) = self
                .execute(&step, action.as_ref(), op, old.as_ref(), new.as_ref())
                .await?
            {
                return Ok(Err(e));
            }
        }
        if restored_any {
            for (i, action) in steps.iter().filter(|(_, a)| !a.writes_values()) {
                let step = format!("{prefix}/hook/{i}");
                if self.rot_ref().journal.is_done(&step) {
                    continue;
                }
                if let Err(e) = self
                    .execute(
                        &step,
                        action.as_ref(),
                        OpKind::Run,
                        old.as_ref(),
                        new.as_ref(),
                    )
                    .await?
                {
                    return Ok(Err(e));
                }
            }
        }
        Ok(Ok(()))
    }

    async fn verify(&mut self) -> Result<Flow, EngineError> {
        let (new, old) = self.materials();
        for (i, spec) in self.cred.verify.clone().iter().enumerate() {
            let step = format!("verify/{i}");
            if self.rot_ref().journal.is_done(&step) {
                continue;
            }
            let probe = match self.probe_for(spec) {
                Ok(p) => p,
                Err(m) => return self.cannot_start(&step, m).await,
            };
            match self
                .probe(&step, probe.as_ref(), new.as_ref(), old.as_ref())
                .await?
            {
                ProbeFlow::Passed => {}
                ProbeFlow::Waiting(o) => return Ok(Flow::Stop(o)),
                ProbeFlow::Exhausted(reason) => return self.verify_failed(&step, &reason).await,
            }
        }
        self.reach(Stage::Verified, "every probe passed").await?;
        Ok(Flow::Continue)
    }

    async fn verify_failed(&mut self, step: &str, reason: &str) -> Result<Flow, EngineError> {
        let now = self.now();
        let failure = Failure {
            step: step.to_string(),
            message: reason.to_string(),
            at: At(now),
        };
        match self.cred.on_verify_failure() {
            crate::config::OnVerifyFailure::Rollback => {
                let r = self.rot();
                r.error = Some(failure);
                r.rollback = Some(super::rotation::RollbackState {
                    reason: format!("{step} failed: {reason}"),
                    stage: RollbackStage::Requested,
                    times: [(RollbackStage::Requested, At(now))].into(),
                    undo_promote: true,
                });
                self.audit("verify-failed", format!("{step}: {reason}; rolling back"));
                self.save().await?;
                warn!("{}: {step} failed: {reason}; rolling back", self.id);
                self.notes.push(format!("{step} failed: {reason}"));
                Ok(Flow::Continue)
            }
            crate::config::OnVerifyFailure::Hold => {
                let r = self.rot();
                r.journal.undo("verify/");
                r.error = Some(failure);
                self.audit(
                    "verify-failed",
                    format!("{step}: {reason}; holding (on_verify_failure: hold)"),
                );
                self.save().await?;
                Ok(Flow::Stop(self.outcome_failed(
                    step,
                    &format!("{reason} (held: the new material stays in place; the next run verifies again, or run `rotagate rollback {}`)", self.id),
                )))
            }
        }
    }

    async fn drain(&mut self) -> Result<Flow, EngineError> {
        let skip = self.rot_ref().emergency()
            || self.cred.strategy == Strategy::Immediate
            || self.bootstrap();
        if !skip {
            let verified = self
                .rot_ref()
                .reached(Stage::Verified)
                .unwrap_or_else(|| self.now());
            let until = verified + self.cred.drain().signed();
            if let Flow::Stop(o) = self
                .wait_until(until, "drain (tokens signed with the old material expire)")
                .await
            {
                return Ok(Flow::Stop(o));
            }
        }
        self.reach(
            Stage::Drained,
            "tokens signed with the old material have expired",
        )
        .await?;
        Ok(Flow::Continue)
    }

    async fn retire(&mut self) -> Result<Flow, EngineError> {
        let (new, old) = self.materials();
        let manual = if old.is_some() {
            Self::manual(&self.cred.retire)
        } else {
            Vec::new()
        };
        let approval = old.is_some() && self.cred.strategy != Strategy::Immediate;
        if (approval || !manual.is_empty())
            && let Flow::Stop(o) = self.gate("retire", &manual).await?
        {
            return Ok(Flow::Stop(o));
        }
        let publishers = match self.steps(&self.cred.publish) {
            Ok(s) => s,
            Err(m) => return self.cannot_start("retire", m).await,
        };
        if let Some(old) = &old {
            for (i, action) in &publishers {
                let step = format!("retire/unpublish/{i}");
                if self.rot_ref().journal.is_done(&step) {
                    continue;
                }
                if let Err(m) = self
                    .execute(&step, action.as_ref(), OpKind::Unpublish, Some(old), None)
                    .await?
                {
                    return Ok(Flow::Stop(self.outcome_failed(&step, &m)));
                }
            }
        }
        let abandoned = self.rot_ref().abandoned.clone();
        for (j, material) in abandoned.iter().enumerate() {
            for (i, action) in &publishers {
                let step = format!("retire/abandoned/{j}/{i}");
                if self.rot_ref().journal.is_done(&step) {
                    continue;
                }
                if let Err(m) = self
                    .execute(
                        &step,
                        action.as_ref(),
                        OpKind::Unpublish,
                        Some(material),
                        None,
                    )
                    .await?
                {
                    return Ok(Flow::Stop(self.outcome_failed(&step, &m)));
                }
            }
        }
        if old.is_some() {
            let retire_steps = match self.steps(&self.cred.retire) {
                Ok(s) => s,
                Err(m) => return self.cannot_start("retire", m).await,
            };
            for (i, action) in retire_steps {
                let step = format!("retire/{i}");
                if self.rot_ref().journal.is_done(&step) {
                    continue;
                }
                if let Err(m) = self
                    .execute(
                        &step,
                        action.as_ref(),
                        OpKind::Run,
                        new.as_ref(),
                        old.as_ref(),
                    )
                    .await?
                {
                    return Ok(Flow::Stop(self.outcome_failed(&step, &m)));
                }
            }
        }
        // Irreversible from here: the old private half leaves the state, unless the key
        // type keeps it for a while (an age identity old backups need).
        let retain_until = self
            .cred
            .key
            .retain()
            .and_then(|d| time::Duration::try_from(d.0).ok())
            .map(|d| self.now() + d);
        let detail = match self.entry().current.as_mut() {
            Some(current) => match retain_until {
                Some(until) => {
                    current.retain_until = Some(until);
                    format!(
                        "{} replaced; its private half is kept until {} (retain)",
                        current.summary(),
                        show(until)
                    )
                }
                None => {
                    current.drop_private();
                    format!("{} removed; its private half dropped", current.summary())
                }
            },
            None => "nothing to remove (first issuance)".to_string(),
        };
        self.reach(Stage::Retired, &detail).await?;
        Ok(Flow::Continue)
    }

    async fn complete(&mut self) -> Result<Flow, EngineError> {
        let now = self.now();
        let entry = self.entry();
        let rotation = entry.rotation.take().expect("a rotation in flight");
        let new = rotation
            .new
            .clone()
            .expect("a retired rotation has new material");
        let old = entry.current.take();
        if let Some(kept) = old.as_ref().filter(|o| o.retain_until.is_some()) {
            entry.retained.push(kept.clone());
        }
        entry.previous = old.map(|mut o| {
            o.drop_private();
            o
        });
        entry.current = Some(new.clone());
        entry.last = Some(crate::state::Finished {
            rotation: rotation.id.clone(),
            outcome: "completed".into(),
            at: now,
        });
        entry.audit(
            now,
            Some(&rotation.id),
            "completed",
            format!("{} is current", new.summary()),
        );
        self.save().await?;
        info!("{}: completed; {} is current", self.id, new.summary());
        Ok(Flow::Stop(Outcome::Completed {
            rotation: rotation.id,
            kid: new.kid,
        }))
    }

    async fn rollback_step(&mut self) -> Result<Flow, EngineError> {
        let rb = self.rot_ref().rollback.clone().expect("rolling back");
        let (new, old) = self.materials();
        let next = match rb.stage {
            RollbackStage::Requested => {
                if rb.undo_promote {
                    if let Err(m) = self.restore_values("rollback").await? {
                        return Ok(Flow::Stop(self.outcome_failed("rollback/restore", &m)));
                    }
                    RollbackStage::Restored
                } else {
                    RollbackStage::Drained
                }
            }
            RollbackStage::Restored => {
                if old.is_some() {
                    for (i, spec) in self.cred.verify.clone().iter().enumerate() {
                        let step = format!("rollback/verify/{i}");
                        if self.rot_ref().journal.is_done(&step) {
                            continue;
                        }
                        let probe = match self.probe_for(spec) {
                            Ok(p) => p,
                            Err(m) => return self.cannot_start(&step, m).await,
                        };
                        // Verify the old material as if it were the new one.
                        match self
                            .probe(&step, probe.as_ref(), old.as_ref(), new.as_ref())
                            .await?
                        {
                            ProbeFlow::Passed => {}
                            ProbeFlow::Waiting(o) => return Ok(Flow::Stop(o)),
                            ProbeFlow::Exhausted(reason) => {
                                // The next attempt re-runs the hooks (a redeploy, say) before
                                // verifying again: probing the same failed run would never pass.
                                let rot = self.rot();
                                rot.journal.undo("rollback/verify/");
                                rot.journal.undo("rollback/hook/");
                                if let Some(rb) = rot.rollback.as_mut() {
                                    rb.stage = RollbackStage::Requested;
                                }
                                let message = self
                                    .record_failure(&step, &format!("the old material does not verify after rollback: {reason}"))
                                    .await?;
                                return Ok(Flow::Stop(self.outcome_failed(&step, &message)));
                            }
                        }
                    }
                }
                RollbackStage::VerifiedOld
            }
            RollbackStage::VerifiedOld => {
                let skip = self.rot_ref().emergency()
                    || self.cred.strategy == Strategy::Immediate
                    || old.is_none();
                if !skip {
                    let since = rb
                        .times
                        .get(&RollbackStage::VerifiedOld)
                        .map_or_else(|| self.now(), |a| a.0);
                    let until = since + self.cred.drain().signed();
                    if let Flow::Stop(o) = self
                        .wait_until(
                            until,
                            "rollback drain (tokens signed with the new material expire)",
                        )
                        .await
                    {
                        return Ok(Flow::Stop(o));
                    }
                }
                RollbackStage::Drained
            }
            RollbackStage::Drained => {
                if let Some(new) = &new {
                    let publishers = match self.steps(&self.cred.publish) {
                        Ok(s) => s,
                        Err(m) => return self.cannot_start("rollback/unpublish", m).await,
                    };
                    for (i, action) in publishers {
                        if !self.rot_ref().journal.touched(&format!("publish/{i}")) {
                            continue;
                        }
                        let step = format!("rollback/unpublish/{i}");
                        if self.rot_ref().journal.is_done(&step) {
                            continue;
                        }
                        if let Err(m) = self
                            .execute(&step, action.as_ref(), OpKind::Unpublish, Some(new), None)
                            .await?
                        {
                            return Ok(Flow::Stop(self.outcome_failed(&step, &m)));
                        }
                    }
                }
                RollbackStage::Unpublished
            }
            RollbackStage::Unpublished => return self.finish_rollback().await,
        };
        let now = self.now();
        if let Some(rb) = self.rot().rollback.as_mut() {
            rb.stage = next;
            rb.times.insert(next, At(now));
        }
        self.audit("rollback", format!("rollback: {}", next.name()));
        self.save().await?;
        info!("{}: rollback: {}", self.id, next.name());
        Ok(Flow::Continue)
    }

    async fn finish_rollback(&mut self) -> Result<Flow, EngineError> {
        let now = self.now();
        let entry = self.entry();
        let rotation = entry.rotation.take().expect("a rotation in flight");
        let reason = rotation
            .rollback
            .as_ref()
            .map(|r| r.reason.clone())
            .unwrap_or_default();
        let dropped = rotation
            .new
            .as_ref()
            .map(Material::summary)
            .unwrap_or_else(|| "no material".into());
        entry.last = Some(crate::state::Finished {
            rotation: rotation.id.clone(),
            outcome: "rolled-back".into(),
            at: now,
        });
        entry.audit(
            now,
            Some(&rotation.id),
            "rolled-back",
            format!("{reason}; new material dropped ({dropped})"),
        );
        self.save().await?;
        info!(
            "{}: rolled back; the new material was dropped ({dropped})",
            self.id
        );
        Ok(Flow::Stop(Outcome::RolledBack {
            rotation: rotation.id,
            failed: self.failed_here || (rotation.error.is_some() && !self.operator_rollback),
            reason,
        }))
    }
}
