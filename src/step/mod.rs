//! What actions, probes and generators share, below all three: the view templates
//! render from and the run's tools ([`StepContext`]), requests built from templates,
//! programs run with values on stdin, the provider clients, and their one error type.

mod context;
mod process;
mod request;

pub use context::{EnvValues, StepContext, View};
pub use process::{CommandOutput, run_command};
pub use request::{RequestSpec, method_name, render_request};

use std::path::{Path, PathBuf};

use crate::config::template::RenderError;
use crate::github::{GitHub, GithubError};
use crate::http::HttpError;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Github(#[from] GithubError),
    #[error(transparent)]
    Vercel(#[from] crate::vercel::VercelError),
    #[error(transparent)]
    Vault(#[from] crate::hashicorp::VaultError),
    #[error(transparent)]
    Kubernetes(#[from] crate::kubernetes::KubeError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Postgres(#[from] crate::postgres::PgError),
    #[error("{0}")]
    Failed(String),
}

/// Clients for the providers that need one, made once per run. The engine passes them
/// on without looking inside.
#[derive(Clone, Default)]
pub struct Providers {
    pub github: Option<GitHub>,
    pub vercel: Option<crate::vercel::Vercel>,
    pub vault: Option<crate::hashicorp::VaultClient>,
    /// The cluster of the kubeconfig or the pod, read when a step first needs it (a
    /// kubeconfig's exec plugin runs only then), or why it could not be read.
    pub kubernetes:
        std::sync::Arc<std::sync::OnceLock<Result<Option<crate::kubernetes::Kube>, String>>>,
    /// The AWS SDK's configuration, loaded when a step first needs it.
    pub aws: crate::aws::Aws,
}

impl Providers {
    pub fn github(&self, kind: &str) -> Result<GitHub, StepError> {
        self.github.clone().ok_or_else(|| {
            StepError::Failed(format!(
                "{kind} needs GitHub credentials: set ROTAGATE_GITHUB_APP_ID and ROTAGATE_GITHUB_APP_KEY (a GitHub App), or ROTAGATE_GITHUB_TOKEN"
            ))
        })
    }

    pub fn vault(&self) -> Result<crate::hashicorp::VaultClient, StepError> {
        self.vault.clone().ok_or_else(|| {
            StepError::Failed(
                "vault-kv needs a Vault address and a login: set ROTAGATE_VAULT_ADDR and ROTAGATE_VAULT_TOKEN, or ROTAGATE_VAULT_ROLE_ID and ROTAGATE_VAULT_SECRET_ID (AppRole), or ROTAGATE_VAULT_JWT_ROLE (GitHub's OIDC token)".into(),
            )
        })
    }

    pub fn kubernetes(&self) -> Result<crate::kubernetes::Kube, StepError> {
        let found = self.kubernetes.get_or_init(|| {
            crate::kubernetes::Kube::from_env(crate::http::RetryPolicy::default())
                .map_err(|e| e.to_string())
        });
        match found {
            Ok(Some(kube)) => Ok(kube.clone()),
            Err(e) => Err(StepError::Failed(e.clone())),
            Ok(None) => Err(StepError::Failed(
                "kubernetes-secret needs a cluster: set KUBECONFIG (or write ~/.kube/config), or run in a pod with a service account".into(),
            )),
        }
    }

    pub fn vercel(&self) -> Result<crate::vercel::Vercel, StepError> {
        self.vercel.clone().ok_or_else(|| {
            StepError::Failed(
                "vercel-env needs a Vercel token: set ROTAGATE_VERCEL_TOKEN (an access token with access to the project's team)".into(),
            )
        })
    }
}

/// Resolves a config-relative path.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}
