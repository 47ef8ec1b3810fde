//! Gates: what must happen before a gated stage runs. One trait; the pull-request gate
//! (GitHub) and `none` implement it, chosen in [`build`].

pub mod pull_request;

use async_trait::async_trait;
use serde_json::Value;

use crate::config::GateSpec;
use crate::material::Material;
use crate::step::Providers;

/// What a gate is asked to approve. Holds only public facts.
pub struct GateRequest<'a> {
    pub credential: &'a str,
    pub owner: Option<&'a str>,
    pub rotation: &'a str,
    /// `publish`, `promote` or `retire`.
    pub gate: &'a str,
    pub old: Option<&'a Material>,
    pub new: Option<&'a Material>,
    /// Manual steps, rendered: a human does them before approving.
    pub checklist: &'a [String],
    /// Stage times and probe results, for the reviewer.
    pub evidence: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateStatus {
    Open(String),
    Waiting { detail: String, link: Option<String> },
    Rejected(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GateError(pub String);

/// What a gate's check finds.
pub type Checked = Result<GateStatus, GateError>;

#[async_trait]
pub trait Gate: Send + Sync {
    /// Checks (and, the first time, sets up) the gate. `record` is the gate's own
    /// journaled data (a pull-request number), saved by the engine after the call.
    async fn check(&self, request: &GateRequest<'_>, record: &mut Value) -> Checked;
}

/// `gate: none`: always open.
pub struct NoGate;

#[async_trait]
impl Gate for NoGate {
    async fn check(&self, _: &GateRequest<'_>, _: &mut Value) -> Checked {
        Ok(GateStatus::Open("no gate configured".into()))
    }
}

/// The registry: the gate a spec names, with what it needs.
pub fn build(
    spec: &GateSpec,
    providers: &Providers,
    repo: Option<&str>,
) -> Result<Box<dyn Gate>, GateError> {
    match spec {
        GateSpec::None => Ok(Box::new(NoGate)),
        GateSpec::PullRequest(pr) => {
            let gh =
                providers.github("the pull_request gate").map_err(|e| GateError(e.to_string()))?;
            let repo = repo.ok_or_else(|| {
                GateError("the pull_request gate needs a repository for its pull requests: set github.repo, or run in GitHub Actions (GITHUB_REPOSITORY)".into())
            })?;
            Ok(Box::new(pull_request::PullRequestGate::new(pr.clone(), gh, repo.to_string())))
        }
    }
}
