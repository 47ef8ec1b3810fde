//! How a run left each credential.

use serde::Serialize;
use time::OffsetDateTime;

use super::rotation::Stage;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing to do.
    Idle {
        #[serde(with = "time::serde::rfc3339::option")]
        next_due: Option<OffsetDateTime>,
    },
    /// No material in the state and no bootstrap allowed.
    NoKey,
    /// Another run holds the credential's lease.
    Busy {
        detail: String,
    },
    Completed {
        rotation: String,
        kid: String,
    },
    RolledBack {
        rotation: String,
        failed: bool,
        reason: String,
    },
    Waiting {
        rotation: String,
        stage: Stage,
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
        what: String,
    },
    AwaitingGate {
        rotation: String,
        gate: String,
        detail: String,
        link: Option<String>,
    },
    GateRejected {
        rotation: String,
        gate: String,
        detail: String,
    },
    Failed {
        rotation: String,
        step: String,
        message: String,
    },
}

impl Outcome {
    /// Whether this outcome makes the run exit 1.
    pub fn failed(&self) -> bool {
        match self {
            Outcome::NoKey
            | Outcome::Busy { .. }
            | Outcome::GateRejected { .. }
            | Outcome::Failed { .. } => true,
            Outcome::RolledBack { failed, .. } => *failed,
            _ => false,
        }
    }

    pub fn rotation(&self) -> Option<&str> {
        match self {
            Outcome::Completed { rotation, .. }
            | Outcome::RolledBack { rotation, .. }
            | Outcome::Waiting { rotation, .. }
            | Outcome::AwaitingGate { rotation, .. }
            | Outcome::GateRejected { rotation, .. }
            | Outcome::Failed { rotation, .. } => Some(rotation),
            Outcome::Idle { .. } | Outcome::NoKey | Outcome::Busy { .. } => None,
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        use crate::clock::show;
        match self {
            Outcome::Idle { next_due: Some(at) } => format!("nothing to do; next due {}", show(*at)),
            Outcome::Idle { next_due: None } => "nothing to do; no schedule".into(),
            Outcome::NoKey => "no key yet: adopt the live one (`rotagate adopt ID --from-file F`) or bootstrap (`rotagate run --bootstrap`, or `bootstrap: true`)".into(),
            Outcome::Busy { detail } => detail.clone(),
            Outcome::Completed { rotation, kid } => format!("rotation {rotation} completed; kid {kid} is current"),
            Outcome::RolledBack { rotation, reason, failed } => format!(
                "rotation {rotation} rolled back{}: {reason}",
                if *failed { "" } else { " cleanly; the old material is current again" }
            ),
            Outcome::Waiting { rotation, stage, until, what } => {
                format!("rotation {rotation} at {stage}: waiting for {what} until {}", show(*until))
            }
            Outcome::AwaitingGate { rotation, gate, detail, link } => match link {
                Some(link) => format!("rotation {rotation} awaits gate {gate}: {detail} ({link})"),
                None => format!("rotation {rotation} awaits gate {gate}: {detail}"),
            },
            Outcome::GateRejected { rotation, gate, detail } => format!(
                "rotation {rotation}: gate {gate} was rejected: {detail}; decide with `rotagate gate reopen` or `rotagate rollback`"
            ),
            Outcome::Failed { rotation, step, message } => format!("rotation {rotation}: {step} failed: {message}"),
        }
    }
}

/// One credential's result.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialReport {
    pub id: String,
    pub owner: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Things a person must know or do (a checklist of an emergency without a gate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub credentials: Vec<CredentialReport>,
}

impl RunReport {
    /// The report of a command that acted on one credential.
    pub fn one(id: &str, owner: Option<String>, outcome: Outcome, notes: Vec<String>) -> Self {
        RunReport {
            credentials: vec![CredentialReport { id: id.to_string(), owner, outcome, notes }],
        }
    }

    pub fn failed(&self) -> bool {
        self.credentials.iter().any(|c| c.outcome.failed())
    }
}
