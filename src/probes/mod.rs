//! Checks that pass or fail: one file per kind, one trait, one registry ([`build`]).

mod command;
mod github_workflow;
mod http;
mod jwks;
mod jwt;
mod postgres;

use async_trait::async_trait;

use crate::config::ProbeSpec;
use crate::step::{Providers, StepContext, StepError, View};

#[async_trait]
pub trait Probe: Send + Sync {
    /// A one-line description without secrets.
    fn describe(&self) -> String;

    /// Evidence on success (for gate pull requests and the audit log), a reason on
    /// failure. Neither may hold a secret.
    async fn check(&self, view: &View<'_>, cx: &StepContext<'_>) -> Result<String, ProbeError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Step(#[from] StepError),
}

impl From<crate::http::HttpError> for ProbeError {
    fn from(e: crate::http::HttpError) -> Self {
        ProbeError::Step(StepError::Http(e))
    }
}

impl From<crate::config::template::RenderError> for ProbeError {
    fn from(e: crate::config::template::RenderError) -> Self {
        ProbeError::Step(StepError::Render(e))
    }
}

/// The registry: the one place a probe kind is chosen by name.
pub fn build(spec: &ProbeSpec, providers: &Providers) -> Result<Box<dyn Probe>, StepError> {
    Ok(match spec {
        ProbeSpec::Http(p) => Box::new(http::HttpProbe::new(p.clone())),
        ProbeSpec::Jwks(p) => Box::new(jwks::JwksProbe::new(p.clone())),
        ProbeSpec::Jwt(p) => Box::new(jwt::JwtProbe::new(p.clone())),
        ProbeSpec::Postgres(p) => Box::new(p.clone()),
        ProbeSpec::Command(p) => Box::new(command::CommandProbe::new(p.clone())),
        ProbeSpec::GithubWorkflow(p) => Box::new(github_workflow::GithubWorkflowProbe::new(
            p.clone(),
            providers.github("the github-workflow probe")?,
        )),
    })
}

/// Shortens a value from a response for an error message, after redaction.
pub(crate) fn shown_value(view: &View, value: &str) -> String {
    let redacted = view.redact(value);
    let short: String = redacted.chars().take(80).collect();
    if short.len() < redacted.len() { format!("{short}…") } else { short }
}
