//! Stages, the journal, the engine that advances one rotation, and `plan`.

mod engine;
mod journal;
mod outcome;
mod plan;
mod rotation;
mod runner;
pub mod schedule;

use std::collections::BTreeMap;

pub use engine::{GateFactory, Progress, Quiet, Runtime, StandardGates};
pub use journal::{Entry, Journal, Status};
pub use outcome::{CredentialReport, Outcome, RunReport};
pub use plan::{PlanItem, plan};
pub use rotation::{
    At, Failure, GateRecord, RollbackStage, RollbackState, Rotation, Stage, Trigger,
};
pub use runner::{
    DEFAULT_CONCURRENCY, RunOptions, adopt, all_ids, config_hash, reopen_gate, rollback, rotate,
    run,
};

use crate::config::template::is_reserved_env;
use crate::secret::Secret;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("credential `{0}` is not in the config (it has: {1})")]
    UnknownCredential(String, String),
    #[error("{credential}: {message}")]
    Refused { credential: String, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where declared environment variables come from.
pub trait EnvSource: Send + Sync {
    fn var(&self, name: &str) -> Option<Secret>;
}

/// The process environment; rotagate's and the runner's own variables are never read.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<Secret> {
        if is_reserved_env(name) {
            return None;
        }
        std::env::var(name).ok().map(Secret::new)
    }
}

/// A fixed set of variables (the demo, tests).
pub struct FixedEnv(pub BTreeMap<String, String>);

impl EnvSource for FixedEnv {
    fn var(&self, name: &str) -> Option<Secret> {
        if is_reserved_env(name) {
            return None;
        }
        self.0.get(name).map(Secret::new)
    }
}
