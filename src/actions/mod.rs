//! Steps that change the world: one file per kind, one trait they all implement, one
//! registry ([`build`]). A kind knows its target's API and nothing of stages; the engine
//! decides when to call [`Action::execute`] and with which [`Op`].

mod command;
mod context;
mod envfile;
mod file;
mod github_secret;
mod github_variable;
mod github_workflow;
pub(crate) mod http;
mod jwks_file;
mod postgres;
mod vercel_env;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::Value;

pub use command::{CommandOutput, CommandSpec, DEFAULT_COMMAND_TIMEOUT, run_command};
pub use context::{EnvValues, StepContext, View};
pub use envfile::{parse_env_value, read_env_file};
pub use github_secret::scopes;
pub use github_workflow::{dispatch_runs, run_after};
pub use jwks_file::read_jwks;

use crate::config::ActionSpec;
use crate::config::template::RenderError;
use crate::github::{GitHub, GithubError};
use crate::http::HttpError;

/// What the engine asks of a step.
pub enum Op<'a> {
    /// Make the view's `new` material trusted next to the old (publish role).
    Publish(&'a View<'a>),
    /// Stop trusting the view's `new` material: the old at retire, the new on rollback.
    Unpublish(&'a View<'a>),
    /// Write the values rendered from the view (promote; rollback renders the old).
    Write(&'a View<'a>),
    /// Put back what [`Action::capture`] recorded, when no old material exists.
    Restore(&'a Value),
    /// Run a hook or retire step.
    Run(&'a View<'a>),
}

#[async_trait]
pub trait Action: Send + Sync {
    /// A one-line description without secrets, for logs, plans and pull requests.
    fn describe(&self) -> String;

    /// Promote steps that write values are put back on rollback; the others are hooks,
    /// re-run after values are put back.
    fn writes_values(&self) -> bool {
        false
    }

    /// Only touches files on this machine, so it needs none of the slots that bound how
    /// many commands and requests a run has going at once.
    fn local(&self) -> bool {
        false
    }

    /// What [`Op::Restore`] needs to undo a first `Write`, read before it and journaled
    /// with the step's start, so a run killed mid-write still knows what was there.
    async fn capture(
        &self,
        _view: &View<'_>,
        _cx: &StepContext<'_>,
    ) -> Result<Option<Value>, ActionError> {
        Ok(None)
    }

    /// Output goes into the journal (inside the encrypted state).
    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, ActionError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Github(#[from] GithubError),
    #[error("{0}")]
    Failed(String),
}

/// Clients for the providers that need one, made once per run. The engine passes them
/// on without looking inside.
#[derive(Clone, Default)]
pub struct Providers {
    pub github: Option<GitHub>,
    pub vercel: Option<crate::vercel::Vercel>,
}

impl Providers {
    pub fn github(&self, kind: &str) -> Result<GitHub, ActionError> {
        self.github.clone().ok_or_else(|| {
            ActionError::Failed(format!(
                "{kind} needs GitHub credentials: set ROTAGATE_GITHUB_APP_ID and ROTAGATE_GITHUB_APP_KEY (a GitHub App), or ROTAGATE_GITHUB_TOKEN"
            ))
        })
    }

    pub fn vercel(&self) -> Result<crate::vercel::Vercel, ActionError> {
        self.vercel.clone().ok_or_else(|| {
            ActionError::Failed(
                "vercel-env needs a Vercel token: set ROTAGATE_VERCEL_TOKEN (an access token with access to the project's team)".into(),
            )
        })
    }
}

/// The registry: the one place an action kind is chosen by name. `manual` steps are not
/// executed but carried by gates, so they build to `None`.
pub fn build(
    spec: &ActionSpec,
    providers: &Providers,
) -> Result<Option<Box<dyn Action>>, ActionError> {
    Ok(match spec {
        ActionSpec::Manual(_) => None,
        ActionSpec::File(f) => Some(Box::new(file::FileTarget::new(f.clone()))),
        ActionSpec::JwksFile(j) => Some(Box::new(jwks_file::JwksFile::new(j.clone(), providers)?)),
        ActionSpec::Command(c) => Some(Box::new(command::CommandStep::new(c.clone()))),
        ActionSpec::Http(h) => Some(Box::new(http::HttpStep::new(h.clone()))),
        ActionSpec::GithubSecret(a) => Some(Box::new(github_secret::GithubSecret::new(
            a.clone(),
            providers.github("github-secret")?,
        ))),
        ActionSpec::GithubVariable(a) => Some(Box::new(github_variable::GithubVariable::new(
            a.clone(),
            providers.github("github-variable")?,
        ))),
        ActionSpec::GithubWorkflow(w) => Some(Box::new(github_workflow::Dispatch::new(
            w.clone(),
            providers.github("github-workflow")?,
        ))),
        ActionSpec::Postgres(a) => Some(Box::new(postgres::Postgres::new(a.clone()))),
        ActionSpec::VercelEnv(a) => Some(Box::new(vercel_env::VercelEnv::new(
            a.clone(),
            providers.vercel()?,
        ))),
    })
}

/// Resolves a config-relative path.
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Replaces a file's content atomically (temp file, fsync, rename), keeping its
/// permissions or giving a new file `mode`.
pub(crate) fn write_atomically(path: &Path, content: &[u8], mode: u32) -> Result<(), ActionError> {
    use std::io::Write;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ActionError::Failed(format!("{what} {}: {e}", path.display()))
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the directory of", &e))?;
    let permissions = match std::fs::metadata(path) {
        Ok(m) => m.permissions(),
        Err(_) => permissions_from_mode(mode),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".rotagate-")
        .permissions(permissions)
        .tempfile_in(dir)
        .map_err(|e| fail("cannot create a temporary file next to", &e))?;
    tmp.write_all(content)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| fail("cannot write", &e))?;
    tmp.persist(path)
        .map_err(|e| fail("cannot replace", &e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn permissions_from_mode(mode: u32) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(mode)
}

#[cfg(not(unix))]
fn permissions_from_mode(_mode: u32) -> std::fs::Permissions {
    std::fs::metadata(".")
        .map(|m| m.permissions())
        .expect("current directory is readable")
}
