//! The steps of `rotagate.yaml`: actions (publish, promote, retire) and probes (verify,
//! propagate's origin). Doc comments here become descriptions in `rotagate schema`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::super::duration::Dur;
use super::super::template::Template;

pub use crate::actions::ActionSpec;

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

shape! {
    pub struct HttpAction {
        #[serde(default = "default_post")]
        pub method: HttpMethod,
        /// May use {{ env.X }} and public values; never private ones.
        pub url: Template,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub headers: BTreeMap<String, Template>,
        /// A raw body.
        pub body: Option<Template>,
        /// A JSON body whose string values are templates (escaped properly when rendered).
        #[schemars(with = "Option<serde_json::Value>")]
        pub json: Option<serde_json::Value>,
        /// Hosts a redirect may go to with the configured headers and body.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub follow_redirects_to: Vec<String>,
        /// Status codes that count as success (default: any 2xx).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub expect_status: Vec<u16>,
        pub timeout: Option<Dur>,
    }
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

shape! {
    pub struct GithubWorkflowProbe {
        pub repo: String,
        pub workflow: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub retries: u32,
        pub interval: Option<Dur>,
    }
}

shape! {
    pub struct HttpProbe {
        #[serde(default)]
        pub method: HttpMethod,
        pub url: Template,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub headers: BTreeMap<String, Template>,
        pub body: Option<Template>,
        #[schemars(with = "Option<serde_json::Value>")]
        pub json: Option<serde_json::Value>,
        /// Hosts a redirect may go to with the configured headers (e.g. the apex → www 308).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub follow_redirects_to: Vec<String>,
        #[serde(default)]
        pub expect: Expect,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub retries: u32,
        pub interval: Option<Dur>,
        pub timeout: Option<Dur>,
    }
}

shape! {
    #[derive(Default)]
    pub struct Expect {
        /// Expected status (default 200).
        pub status: Option<u16>,
        /// JSON pointer → expected value, e.g. `/status: ready`, `/kid: "{{ new.kid }}"`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub json: BTreeMap<String, Template>,
        /// Text the body must contain.
        pub contains: Option<Template>,
    }
}

shape! {
    pub struct JwksProbe {
        pub url: Template,
        /// The kid that must be served (default {{ new.kid }}).
        pub kid: Option<Template>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub headers: BTreeMap<String, Template>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub follow_redirects_to: Vec<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub retries: u32,
        pub interval: Option<Dur>,
        pub timeout: Option<Dur>,
    }
}

shape! {
    pub struct PostgresProbe {
        /// Where to log in: a connection URL; its user and password are replaced by `role`
        /// and `password`.
        pub url: Template,
        /// Default {{ new.role }}.
        pub role: Option<Template>,
        /// Default {{ new.value }}.
        pub password: Option<Template>,
        /// Run after logging in (default `SELECT 1`).
        pub query: Option<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub retries: u32,
        pub interval: Option<Dur>,
    }
}

shape! {
    pub struct CommandProbe {
        pub run: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub args: Vec<Template>,
        pub stdin: Option<Template>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub env: Vec<String>,
        pub timeout: Option<Dur>,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub retries: u32,
        pub interval: Option<Dur>,
    }
}

/// What a command step or probe runs: the program, what it is given, and how long it
/// may take (default 5m).
pub struct CommandSpec<'a> {
    pub run: &'a str,
    pub args: &'a [Template],
    pub stdin: Option<&'a Template>,
    pub env: &'a [String],
    pub timeout: Option<Dur>,
}

/// A command step and a command probe name their program's parts alike.
macro_rules! command_of {
    ($($spec:ty),*) => {$(
        impl<'a> From<&'a $spec> for CommandSpec<'a> {
            fn from(spec: &'a $spec) -> Self {
                CommandSpec {
                    run: &spec.run,
                    args: &spec.args,
                    stdin: spec.stdin.as_ref(),
                    env: &spec.env,
                    timeout: spec.timeout,
                }
            }
        }
    )*};
}

command_of!(CommandProbe, crate::actions::command::CommandAction);

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The wait between a probe's attempts unless it sets `interval`.
const DEFAULT_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl ProbeSpec {
    /// Further attempts after a failure, and the wait between them.
    pub fn retries(&self) -> (u32, std::time::Duration) {
        let (retries, interval) = match self {
            ProbeSpec::Http(p) => (p.retries, p.interval),
            ProbeSpec::Jwks(p) | ProbeSpec::Jwt(p) => (p.retries, p.interval),
            ProbeSpec::Postgres(p) => (p.retries, p.interval),
            ProbeSpec::Command(p) => (p.retries, p.interval),
            ProbeSpec::GithubWorkflow(p) => (p.retries, p.interval),
        };
        (retries, interval.map_or(DEFAULT_PROBE_INTERVAL, |d| d.0))
    }

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
