//! The shape of `rotagate.yaml`. Strict: unknown fields are errors, variants are tagged.
//!
//! Doc comments here become descriptions in `rotagate schema`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::duration::Dur;
use super::template::Template;

pub const CONFIG_VERSION: u32 = 1;

/// rotagate.yaml: what to rotate, where the state lives, and how each credential moves.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Config format version. Only 1 exists.
    pub version: u32,
    pub state: StateConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubConfig>,
    #[serde(default)]
    pub defaults: Defaults,
    pub credentials: Vec<Credential>,
}

/// How rotagate works with GitHub.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// The repository rotagate works in (`owner/name`): approval pull requests,
    /// notification issues, the state branch. Default: GITHUB_REPOSITORY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Pace requests to github.com's secondary rate limits (default: on for
    /// api.github.com, off for GitHub Enterprise Server, where they are off by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_limits: Option<bool>,
    /// Requests in flight at once when writing many secrets (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

/// Where the age-encrypted state lives and who can read it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `file:PATH` (relative to this file) or `github-branch:BRANCH` (in github.repo).
    pub store: String,
    /// age recipients (age1...) the state is encrypted to. The identity that writes the
    /// state comes from ROTAGATE_AGE_IDENTITY or --identity-file, and its recipient
    /// must be listed here.
    pub recipients: Vec<String>,
    /// How long a run's lease on a credential lasts without being renewed (default 30m;
    /// a run renews it at every save, so this bounds how long a crashed run blocks others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Dur>,
}

/// Values every credential inherits unless it sets its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate: Option<Propagate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_verify_failure: Option<OnVerifyFailure>,
}

/// One thing that gets rotated.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Stable identifier: lower-case letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// Who is told when this credential needs a human: a user or team (`@org/team`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What breaks if this credential leaks or stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<String>,
    /// Issue the first material when the state has none (instead of adopting the live one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bootstrap: bool,
    pub key: KeySpec,
    #[serde(default)]
    pub strategy: Strategy,
    /// The two roles or slots of the `alternating` strategy (default `[a, b]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Environment variables this credential's templates and commands may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Make the new public half or second slot trusted next to the old one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<ActionSpec>,
    /// How long verifiers' caches need to pick up the new public half before anyone
    /// signs with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate: Option<Propagate>,
    /// Switch consumers to the new material: each entry's values are written as one step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promote: Vec<ActionSpec>,
    /// Probes that must all pass after promote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<ProbeSpec>,
    /// Max token lifetime plus a buffer, counted from `verified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Dur>,
    /// What must happen before the old material is removed (or, for `immediate`,
    /// before promote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
    /// Extra steps after the gate; publish targets remove the old half on their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retire: Vec<ActionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_verify_failure: Option<OnVerifyFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<EmergencySpec>,
}

/// What a generator makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeySpec {
    /// An RSA signing keypair: PKCS#8 private PEM, SPKI public PEM, JWKs (RS256, sig).
    Rsa {
        #[serde(default = "default_rsa_bits")]
        bits: u32,
        #[serde(default)]
        kid: KidSpec,
    },
    /// A random secret: `prefix` followed by `length` characters from `alphabet`.
    Secret {
        #[serde(default = "default_secret_length")]
        length: usize,
        #[serde(default)]
        alphabet: Alphabet,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        prefix: String,
        #[serde(default)]
        kid: KidSpec,
    },
    /// A PostgreSQL password: `length` random letters and digits (default 32).
    PostgresPassword {
        #[serde(default = "default_pg_length")]
        length: usize,
        #[serde(default)]
        kid: KidSpec,
    },
    /// An age X25519 identity (backup encryption): `{{ new.recipient }}` is its public
    /// recipient, `{{ new.value }}` the identity. A replaced identity stays in the state
    /// for `retain`, so backups made before the rotation stay readable.
    Age {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retain: Option<Dur>,
        #[serde(default)]
        kid: KidSpec,
    },
    /// A value the provider creates (a `sk_live_` project key, a `whsec_` endpoint
    /// secret): one HTTP call, never repeated, its response journaled before anything
    /// else.
    Minted {
        /// The request that creates it; may use {{ env.X }} and {{ old.* }}.
        http: Box<HttpAction>,
        /// JSON pointer to the secret in the response, e.g. `/secret`.
        extract: String,
        /// JSON pointer to the provider's id of it (used as kid, so a retire step can
        /// revoke `{{ old.kid }}`); without it the kid follows `kid`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kid_from: Option<String>,
        #[serde(default)]
        kid: KidSpec,
    },
}

fn default_pg_length() -> usize {
    32
}

fn default_rsa_bits() -> u32 {
    2048
}

fn default_secret_length() -> usize {
    40
}

/// How a new kid is named. A kid is never reused for other material.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KidSpec {
    /// A random UUID v4.
    #[default]
    Uuid,
    /// `<prefix>YYYY-MM-DD`, suffixed `-2`, `-3`... on further rotations the same day.
    Date(String),
    /// Text with {{ date }}, {{ uuid }}, {{ seq }} (rotation number) and {{ credential }}.
    Template(String),
}

/// Characters a random secret is drawn from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Alphabet {
    /// A-Z a-z 0-9
    #[default]
    Alphanumeric,
    /// 0-9 a-f
    Hex,
    /// A-Z a-z 0-9 - _
    Base64url,
    /// Exactly these characters (no duplicates).
    Chars(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Old and new both valid between publish and retire.
    #[default]
    Overlap,
    /// No overlap possible: the gate comes before promote, as a maintenance window.
    Immediate,
    /// Two roles or slots; the idle one gets the new material ({{ new.role }}).
    Alternating,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnVerifyFailure {
    /// Put the old material back, in the same run.
    #[default]
    Rollback,
    /// Leave the new material in place and stop, for a human to decide.
    Hold,
}

/// When a credential is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Rotate this long after the current material was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Dur>,
    /// Start warning (and, before `expires`, rotating) this long ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<Dur>,
    /// Hard expiry (YYYY-MM-DD) of the material that is live when it was adopted or
    /// bootstrapped, e.g. a certificate's notAfter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub expires: Option<String>,
}

/// `0s` / `10m` (counted from publish), or a wait counted from the moment a probe first
/// sees the origin serving the new key.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Propagate {
    After(Dur),
    Origin(Box<PropagateOrigin>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropagateOrigin {
    /// Verifier cache TTL.
    pub wait: Dur,
    /// A probe that passes once the origin serves the new public half.
    pub origin: ProbeSpec,
}

impl Propagate {
    pub fn wait(&self) -> Dur {
        match self {
            Propagate::After(d) => *d,
            Propagate::Origin(o) => o.wait,
        }
    }

    pub fn origin(&self) -> Option<&ProbeSpec> {
        match self {
            Propagate::After(_) => None,
            Propagate::Origin(o) => Some(&o.origin),
        }
    }
}

// Hand-written so each form keeps serde_yaml's line and column in its errors, which an
// untagged enum would replace with "did not match any variant".
impl<'de> Deserialize<'de> for Propagate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Propagate;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration (10m) or { wait: 10m, origin: <probe> }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Propagate, E> {
                v.parse().map(Propagate::After).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Propagate, E> {
                Ok(Propagate::After(Dur::from_secs(v)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Propagate, A::Error> {
                PropagateOrigin::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|o| Propagate::Origin(Box::new(o)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The approval between "old and new both valid" and "old removed".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateSpec {
    /// No approval: the rotation moves on by itself.
    None,
    /// A pull request adding `.rotagate/approvals/<credential>/<gate>.yaml`, approved
    /// and merged into the default branch (the default gate).
    PullRequest(PullRequestGate),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequestGate {
    /// Approving reviews needed, from accounts with write access (default 1).
    #[serde(default = "one")]
    pub approvals: u32,
    /// Only these users (`alice`) or teams (`@org/team`) count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewers: Vec<String>,
    /// At least one approver must not be the account that merged (default true).
    #[serde(default = "yes")]
    pub distinct_merger: bool,
    /// A gate waiting longer than this makes `check` fail (default 14d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

impl Default for PullRequestGate {
    fn default() -> Self {
        PullRequestGate {
            approvals: 1,
            reviewers: Vec::new(),
            distinct_merger: true,
            timeout: None,
        }
    }
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencySpec {
    /// The gate before the compromised material is removed (default: the credential's
    /// gate; `none` removes it as soon as the new material verifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
}

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

impl KeySpec {
    pub fn kind(&self) -> &'static str {
        match self {
            KeySpec::Rsa { .. } => "rsa",
            KeySpec::Secret { .. } => "secret",
            KeySpec::Minted { .. } => "minted",
            KeySpec::PostgresPassword { .. } => "postgres-password",
            KeySpec::Age { .. } => "age",
        }
    }

    /// How long a replaced key keeps its private half after retire.
    pub fn retain(&self) -> Option<Dur> {
        match self {
            KeySpec::Age { retain, .. } => *retain,
            _ => None,
        }
    }

    pub fn kid(&self) -> &KidSpec {
        match self {
            KeySpec::Rsa { kid, .. }
            | KeySpec::Secret { kid, .. }
            | KeySpec::Minted { kid, .. }
            | KeySpec::PostgresPassword { kid, .. }
            | KeySpec::Age { kid, .. } => kid,
        }
    }
}
