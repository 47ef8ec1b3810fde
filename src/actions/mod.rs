//! Steps that change the world: one file per kind, one trait they all implement
//! ([`Action`]), one registry ([`ActionSpec`], made by `registry!` below). A kind's file
//! holds everything about it: its config shape, its checks and roles ([`ActionKind`]),
//! how it is built and what it does. A kind knows its target's API and nothing of
//! stages; the engine decides when to call [`Action::execute`] and with which [`Op`].

pub mod aws_parameter;
pub mod aws_secret;
pub mod command;
mod envfile;
pub mod file;
pub mod github_secret;
pub mod github_variable;
pub mod github_workflow;
pub mod http;
pub mod jwks_file;
pub mod kubernetes_secret;
pub mod manual;
pub mod postgres;
pub mod vault_kv;
pub mod vercel_env;

use std::path::Path;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use envfile::{parse_env_value, read_env_file};
pub use github_secret::scopes;
pub use jwks_file::read_jwks;

use crate::config::validate::{Role, Scope, Validator};
use crate::step::{Providers, StepContext, StepError, View};

/// A kind's step, built with the client it needs; `None` for a step a person does.
pub type Built = Result<Option<Box<dyn Action>>, StepError>;

/// What a kind records before a first write so that it can be put back.
pub type Captured = Result<Option<Value>, StepError>;

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

impl Op<'_> {
    /// The error for an op a kind does not take. Validation keeps every kind to its
    /// roles, so the engine never asks; a kind answers anything else with this.
    pub fn refused(&self, kind: &str) -> StepError {
        let what = match self {
            Op::Publish(_) => "publish",
            Op::Unpublish(_) => "unpublish",
            Op::Write(_) => "write values",
            Op::Restore(_) => "restore captured values",
            Op::Run(_) => "run as a hook or retire step",
        };
        StepError::Failed(format!("{kind} steps cannot {what}"))
    }
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

    /// Checks, before a rotation generates anything, that the target will take its
    /// writes (a permission the API can be asked about), so a missing grant stops the
    /// rotation while no new key exists yet.
    async fn preflight(&self, _cx: &StepContext<'_>) -> Result<(), StepError> {
        Ok(())
    }

    /// What [`Op::Restore`] needs to undo a first `Write`, read before it and journaled
    /// with the step's start, so a run killed mid-write still knows what was there.
    async fn capture(&self, _view: &View<'_>, _cx: &StepContext<'_>) -> Captured {
        Ok(None)
    }

    /// Output goes into the journal (inside the encrypted state).
    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, StepError>;
}

/// What an action kind declares about itself, in its own file, for `Spec`: its config
/// shape (the value under the kind's name in a step).
pub(crate) trait ActionKind<Spec> {
    /// The stages it can be listed under.
    const ROLES: &'static [Role];
    /// What serde cannot know, reported at `path` (the step) with line and column.
    fn check(spec: &Spec, v: &mut Validator, scope: &Scope, path: &str, role: Role);
    /// The step, with the client it needs; `None` for a step a person does.
    fn build(spec: &Spec, providers: &Providers) -> Built;
    /// What it asks of GitHub (a label and the repository), checked before any step runs.
    fn github_need(_spec: &Spec) -> Option<(&'static str, Option<String>)> {
        None
    }
}

/// Lists the action kinds: `Variant(Spec) = Kind` makes the step `variant-in-kebab-case:
/// Spec`, handled by `Kind`'s [`ActionKind`]. The doc comment becomes the kind's
/// description in `rotagate schema`.
macro_rules! registry {
    ($($(#[doc = $doc:literal])* $variant:ident($spec:ty) = $kind:ty, $name:literal;)*) => {
        /// A step that publishes, promotes or retires. Each kind plays only some roles.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "kebab-case")]
        pub enum ActionSpec {
            $($(#[doc = $doc])* $variant($spec),)*
        }

        impl ActionSpec {
            /// The kind's name, as written in the config.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(ActionSpec::$variant(_) => $name,)*
                }
            }

            pub(crate) fn roles(&self) -> &'static [Role] {
                match self {
                    $(ActionSpec::$variant(_) => <$kind as ActionKind<$spec>>::ROLES,)*
                }
            }

            pub(crate) fn check(&self, v: &mut Validator, scope: &Scope, path: &str, role: Role) {
                match self {
                    $(ActionSpec::$variant(s) => <$kind as ActionKind<$spec>>::check(s, v, scope, path, role),)*
                }
            }

            fn build(&self, providers: &Providers) -> Built {
                match self {
                    $(ActionSpec::$variant(s) => <$kind as ActionKind<$spec>>::build(s, providers),)*
                }
            }

            pub(crate) fn github_need(&self) -> Option<(&'static str, Option<String>)> {
                match self {
                    $(ActionSpec::$variant(s) => <$kind as ActionKind<$spec>>::github_need(s),)*
                }
            }
        }
    };
}

registry! {
    /// A checklist line for a human, carried by the gate that guards its stage.
    Manual(crate::config::Template) = manual::Manual, "manual";
    /// Keys in an env file (`set`), or a whole file such as a docker secret (`content`).
    File(file::FileAction) = file::FileAction, "file";
    /// A JWKS document: the new public JWK is added on publish, removed on retire or
    /// rollback; other keys are left alone.
    JwksFile(jwks_file::JwksFileAction) = jwks_file::JwksFile, "jwks-file";
    /// A program run with a cleared environment; values reach it on stdin, never argv.
    Command(command::CommandAction) = command::CommandAction, "command";
    /// An HTTP request (a deploy hook, a revoke call).
    Http(crate::config::HttpAction) = crate::config::HttpAction, "http";
    /// GitHub Actions secrets of a repository, environment or organisation; the values
    /// of one entry are written as one step.
    GithubSecret(github_secret::GithubValuesAction) = github_secret::GithubSecret, "github-secret";
    /// GitHub Actions variables (plain text, so public values only).
    GithubVariable(github_secret::GithubValuesAction) = github_variable::GithubVariable, "github-variable";
    /// Dispatches a workflow (a redeploy) with inputs.
    GithubWorkflow(github_workflow::GithubWorkflowAction) = github_workflow::Dispatch, "github-workflow";
    /// Environment variables of a Vercel project, all of one entry upserted in one
    /// request (a kid and its private key flip together).
    VercelEnv(vercel_env::VercelEnvAction) = vercel_env::VercelEnv, "vercel-env";
    /// A PostgreSQL role's password, sent as a SCRAM-SHA-256 verifier. As a publish
    /// target it fills the idle role (alternating) and clears the old one at retire; as
    /// a promote target it sets the one role's password.
    Postgres(postgres::PostgresAction) = postgres::PostgresAction, "postgres";
    /// Keys of a secret in HashiCorp Vault's KV version 2 engine, written together as
    /// one new version with check-and-set; rollback writes the old values back as a
    /// new version.
    VaultKv(vault_kv::VaultKvAction) = vault_kv::VaultKv, "vault-kv";
    /// Keys of a Kubernetes Secret, patched together with a resourceVersion
    /// precondition; optionally restarts Deployments afterwards.
    KubernetesSecret(kubernetes_secret::KubernetesSecretAction) = kubernetes_secret::KubernetesSecret, "kubernetes-secret";
    /// An AWS Secrets Manager secret, staged with its own labels: the new value goes in
    /// as AWSPENDING at publish, AWSCURRENT moves to it at promote (the old version
    /// becomes AWSPREVIOUS), rollback moves the label back.
    AwsSecret(aws_secret::AwsSecretAction) = aws_secret::AwsSecret, "aws-secret";
    /// An SSM Parameter Store SecureString, written as a new version.
    AwsParameter(aws_parameter::AwsParameterAction) = aws_parameter::AwsParameter, "aws-parameter";
}

/// The step a spec asks for, built with the client it needs; `None` for a manual step.
pub fn build(spec: &ActionSpec, providers: &Providers) -> Built {
    spec.build(providers)
}

impl ActionSpec {
    pub fn is_manual(&self) -> bool {
        matches!(self, ActionSpec::Manual(_))
    }
}

/// Replaces a file's content atomically (temp file, fsync, rename), keeping its
/// permissions or giving a new file `mode`.
pub(crate) fn write_atomically(path: &Path, content: &[u8], mode: u32) -> Result<(), StepError> {
    use std::io::Write;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        StepError::Failed(format!("{what} {}: {e}", path.display()))
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
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
    tmp.persist(path).map_err(|e| fail("cannot replace", &e.error))?;
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
    std::fs::metadata(".").map(|m| m.permissions()).expect("current directory is readable")
}
