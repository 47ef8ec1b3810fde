//! `plan`: what the next run would do, per credential. Reads; never writes.

use serde::Serialize;
use time::OffsetDateTime;

use super::rotation::{Rotation, Stage, Trigger};
use super::runner::{config_hash, in_play};
use super::schedule::{self, Next};
use crate::clock::show;
use crate::config::{Credential, LoadedConfig, Strategy, credential_from_snapshot};
use crate::state::StateDoc;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlanItem {
    pub credential: String,
    pub owner: Option<String>,
    /// `nothing`, `bootstrap`, `no-key`, `start`, `advance`, `wait`, `gate`, `retry`,
    /// `rollback`.
    pub action: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// The config changed since the rotation in flight started; the edit applies to the
    /// next rotation.
    pub config_changed: bool,
    /// For a rotation the run would start: its steps in order (`publish/0: ...`),
    /// without secrets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

pub fn plan(
    config: &LoadedConfig,
    doc: &StateDoc,
    now: OffsetDateTime,
    bootstrap: bool,
) -> Vec<PlanItem> {
    let mut items = Vec::new();
    for id in in_play(config, doc) {
        let live = config.credential(&id).map(|c| c.resolved(&config.config.defaults));
        let entry = doc.credentials.get(&id);
        let owner = live.as_ref().and_then(|c| c.owner.clone());
        let item = |action: &str, detail: String| PlanItem {
            credential: id.clone(),
            owner: owner.clone(),
            action: action.into(),
            detail,
            rotation: None,
            stage: None,
            config_changed: false,
            steps: Vec::new(),
        };
        if let Some(rotation) = entry.and_then(|e| e.rotation.as_ref()) {
            items.push(in_flight(&id, owner.clone(), live.as_ref(), rotation, now));
            continue;
        }
        let Some(cred) = live else { continue };
        items.push(match schedule::next(&cred, entry, now, bootstrap) {
            Next::NoKey { bootstrap: true } => item("bootstrap", "would issue the first material".into()),
            Next::NoKey { bootstrap: false } => item(
                "no-key",
                "no key yet: adopt the live one (`rotagate adopt`) or bootstrap (`run --bootstrap` or `bootstrap: true`)".into(),
            ),
            Next::Due { since } => item("start", format!("would start a rotation (due since {})", show(since))),
            Next::Idle { next_due: Some(at) } => item("nothing", format!("next due {}", show(at))),
            Next::Idle { next_due: None } => item("nothing", "no schedule".into()),
        });
    }
    items
}

fn in_flight(
    id: &str,
    owner: Option<String>,
    live: Option<&Credential>,
    r: &Rotation,
    now: OffsetDateTime,
) -> PlanItem {
    let snap = credential_from_snapshot(&r.snapshot).ok();
    let config_changed = match live {
        Some(live) => config_hash(live) != r.config_hash,
        None => true,
    };
    let (action, mut detail) = if let Some(c) = &r.compensating {
        ("retry", format!("finish putting back the values of a failed promote ({})", c.step))
    } else if let Some(rb) = &r.rollback {
        ("rollback", format!("continue the rollback (at: {}): {}", rb.stage.name(), rb.reason))
    } else if let Some(g) = r.gates.values().find(|g| g.status != "open") {
        let link = g.link.as_deref().map(|l| format!(" ({l})")).unwrap_or_default();
        ("gate", format!("gate {}: {}{link}", g.status, g.detail))
    } else if let Some(e) = &r.error {
        ("retry", format!("retry {} (last failure: {})", e.step, e.message))
    } else {
        next_step(r, snap.as_ref(), now)
    };
    if config_changed {
        detail.push_str(if live.is_some() {
            "; the config changed since this rotation started: the edit applies to the next rotation"
        } else {
            "; the credential was removed from the config: this rotation finishes from its snapshot"
        });
    }
    PlanItem {
        credential: id.to_string(),
        owner,
        action: action.into(),
        detail,
        rotation: Some(r.id.clone()),
        stage: Some(r.stage),
        config_changed,
        steps: Vec::new(),
    }
}

fn next_step(
    r: &Rotation,
    cred: Option<&Credential>,
    now: OffsetDateTime,
) -> (&'static str, String) {
    let immediate = cred.is_some_and(|c| c.strategy == Strategy::Immediate);
    let emergency = r.trigger == Trigger::Emergency;
    let wait = |until: OffsetDateTime, what: &str| {
        if until > now {
            ("wait", format!("{what} until {}", show(until)))
        } else {
            ("advance", format!("{what} is over: move on"))
        }
    };
    match r.stage {
        Stage::Due => ("advance", "generate the new material".into()),
        Stage::Generated => ("advance", "publish the new public half".into()),
        Stage::Published if immediate || emergency => ("advance", "promote".into()),
        Stage::Published => {
            let wait_for = cred.map(|c| c.propagate_wait()).unwrap_or_default();
            let origin = cred.and_then(|c| c.propagate.as_ref()).and_then(|p| p.origin());
            match (origin, r.origin_seen_at, r.reached(Stage::Published)) {
                (Some(_), None, _) => {
                    ("advance", "probe the origin for the new public half".into())
                }
                (_, Some(seen), _) => wait(seen.0 + wait_for.signed(), "propagation"),
                (None, None, Some(published)) => wait(published + wait_for.signed(), "propagation"),
                _ => ("advance", "propagate".into()),
            }
        }
        Stage::Propagated => ("advance", "promote the new material to consumers".into()),
        Stage::Promoted => ("advance", "verify".into()),
        Stage::Verified if immediate || emergency => ("advance", "retire the old material".into()),
        Stage::Verified => match (r.reached(Stage::Verified), cred) {
            (Some(v), Some(c)) => wait(v + c.drain().signed(), "drain"),
            _ => ("advance", "drain".into()),
        },
        Stage::Drained => ("advance", "retire the old material (after its gate)".into()),
        Stage::Retired => ("advance", "complete".into()),
        Stage::Completed | Stage::RolledBack => ("nothing", "finished".into()),
    }
}
