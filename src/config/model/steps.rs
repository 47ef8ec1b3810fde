//! The steps of `rotagate.yaml`: actions (publish, promote, retire) and probes (verify,
//! propagate's origin). Doc comments here become descriptions in `rotagate schema`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::super::duration::Dur;
use super::super::template::Template;

/// A step that publishes, promotes or retires. Each kind plays only some roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActionSpec {
    /// A checklist line for a human, carried by the gate that guards its stage.
    Manual(Template),
    /// Keys in an env file (`set`), or a whole file such as a docker secret (`content`).
    File(FileAction),
    /// A JWKS document: the new public JWK is added on publish, removed on retire or
    /// rollback; other keys are left alone.
    JwksFile(JwksFileAction),
    /// A program run with a cleared environment; values reach it on stdin, never argv.
    Command(CommandAction),
    /// An HTTP request (a deploy hook, a revoke call).
    Http(HttpAction),
    /// GitHub Actions secrets of a repository, environment or organisation; the values
    /// of one entry are written as one step.
    GithubSecret(GithubValuesAction),
    /// GitHub Actions variables (plain text, so public values only).
    GithubVariable(GithubValuesAction),
    /// Dispatches a workflow (a redeploy) with inputs.
    GithubWorkflow(GithubWorkflowAction),
    /// Environment variables of a Vercel project, all of one entry upserted in one
    /// request (a kid and its private key flip together).
    VercelEnv(VercelEnvAction),
    /// A PostgreSQL role's password, sent as a SCRAM-SHA-256 verifier. As a publish
    /// target it fills the idle role (alternating) and clears the old one at retire; as
    /// a promote target it sets the one role's password.
    Postgres(PostgresAction),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresAction {
    /// An admin connection URL, e.g. "{{ env.PG_ADMIN_URL }}".
    pub url: Template,
    /// The role (default {{ new.role }}, for `strategy: alternating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Template>,
    /// The password (default {{ new.value }}).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Template>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VercelEnvAction {
    /// The project's name or id.
    pub project: String,
    /// The team id (`team_...`) the project belongs to, sent as `teamId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Environments the values apply to (default `[production]`).
    #[serde(default = "default_vercel_targets")]
    pub target: Vec<VercelTarget>,
    /// `sensitive` (default: never readable again, production and preview only) or
    /// `encrypted` (readable by the team, so a first write can be put back exactly).
    #[serde(default, rename = "type")]
    pub kind: VercelEnvType,
    /// NAME: value.
    pub set: BTreeMap<String, Template>,
}

fn default_vercel_targets() -> Vec<VercelTarget> {
    vec![VercelTarget::Production]
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum VercelTarget {
    Production,
    Preview,
    Development,
}

impl VercelTarget {
    pub fn name(self) -> &'static str {
        match self {
            VercelTarget::Production => "production",
            VercelTarget::Preview => "preview",
            VercelTarget::Development => "development",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VercelEnvType {
    #[default]
    Sensitive,
    Encrypted,
}

impl VercelEnvType {
    pub fn name(self) -> &'static str {
        match self {
            VercelEnvType::Sensitive => "sensitive",
            VercelEnvType::Encrypted => "encrypted",
        }
    }
}

/// Where GitHub secrets or variables go, and what they are set to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubValuesAction {
    /// One repository, `owner/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Several repositories, written concurrently.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<String>,
    /// An environment of the repository (or repositories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// An organisation (organisation-level values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Which of the organisation's repositories can use them (default `private`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// For `visibility: selected`: repository names in the organisation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// NAME: value.
    pub set: BTreeMap<String, Template>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    All,
    Private,
    Selected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubWorkflowAction {
    /// `owner/name`
    pub repo: String,
    /// The workflow file name (`deploy.yml`) or id.
    pub workflow: String,
    /// The branch or tag to run on (default: the repository's default branch).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// workflow_dispatch inputs (shown in the run page: public values only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Template>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileAction {
    /// Path relative to rotagate.yaml.
    pub path: String,
    /// KEY: value lines to upsert in a dotenv file; other lines stay as they are.
    /// Keys may use {{ new.role }} for alternating slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<BTreeMap<Template, Template>>,
    /// The whole file content (e.g. a PEM for a docker secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Template>,
    /// Unix permissions for the file (default 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwksFileAction {
    /// Path relative to rotagate.yaml, or within `repo`.
    pub path: String,
    /// A GitHub repository (`owner/name`) holding the file, committed through the
    /// contents API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// The branch to commit to (default: the repository's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandAction {
    /// The program, relative to rotagate.yaml or on PATH. No shell is involved.
    pub run: String,
    /// Arguments; templates here may not hold private values or env values (argv is
    /// visible to every process on the machine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Template>,
    /// Written to the program's stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Template>,
    /// Variables passed through from rotagate's environment (they must be listed in the
    /// credential's env). Nothing else is inherited except a minimal PATH.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Kill the program after this long (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    #[serde(default = "default_post")]
    pub method: HttpMethod,
    /// May use {{ env.X }} and public values; never private ones.
    pub url: Template,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Template>,
    /// A raw body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Template>,
    /// A JSON body whose string values are templates (escaped properly when rendered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub json: Option<serde_json::Value>,
    /// Hosts a redirect may go to with the configured headers and body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_redirects_to: Vec<String>,
    /// Status codes that count as success (default: any 2xx).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

fn default_post() -> HttpMethod {
    HttpMethod::Post
}

/// A check that passes or fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeSpec {
    /// An HTTP request with expectations on status and JSON-pointer values.
    Http(HttpProbe),
    /// A JWKS URL serves a key with the given kid (default {{ new.kid }}).
    Jwks(JwksProbe),
    /// A JWT signed with the new private key verifies against the JWKS a URL serves,
    /// selecting the key by kid as a real verifier does.
    Jwt(JwksProbe),
    /// Logs in to PostgreSQL as the role with the password and runs a query.
    Postgres(PostgresProbe),
    /// A program that exits 0; the value arrives on stdin.
    Command(CommandProbe),
    /// The newest run of a workflow dispatched since promote began concluded with
    /// success.
    GithubWorkflow(GithubWorkflowProbe),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubWorkflowProbe {
    pub repo: String,
    pub workflow: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    #[serde(default)]
    pub method: HttpMethod,
    pub url: Template,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub json: Option<serde_json::Value>,
    /// Hosts a redirect may go to with the configured headers (e.g. the apex → www 308).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_redirects_to: Vec<String>,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Expected status (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// JSON pointer → expected value, e.g. `/status: ready`, `/kid: "{{ new.kid }}"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub json: BTreeMap<String, Template>,
    /// Text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<Template>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwksProbe {
    pub url: Template,
    /// The kid that must be served (default {{ new.kid }}).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<Template>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Template>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_redirects_to: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresProbe {
    /// Where to log in: a connection URL; its user and password are replaced by `role`
    /// and `password`.
    pub url: Template,
    /// Default {{ new.role }}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Template>,
    /// Default {{ new.value }}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Template>,
    /// Run after logging in (default `SELECT 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandProbe {
    pub run: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Template>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ActionSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ActionSpec::Manual(_) => "manual",
            ActionSpec::File(_) => "file",
            ActionSpec::JwksFile(_) => "jwks-file",
            ActionSpec::Command(_) => "command",
            ActionSpec::Http(_) => "http",
            ActionSpec::GithubSecret(_) => "github-secret",
            ActionSpec::GithubVariable(_) => "github-variable",
            ActionSpec::GithubWorkflow(_) => "github-workflow",
            ActionSpec::VercelEnv(_) => "vercel-env",
            ActionSpec::Postgres(_) => "postgres",
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, ActionSpec::Manual(_))
    }
}

impl ProbeSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeSpec::Http(_) => "http",
            ProbeSpec::Jwks(_) => "jwks",
            ProbeSpec::Jwt(_) => "jwt",
            ProbeSpec::Postgres(_) => "postgres",
            ProbeSpec::Command(_) => "command",
            ProbeSpec::GithubWorkflow(_) => "github-workflow",
        }
    }
}
