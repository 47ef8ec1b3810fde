//! The shape of `rotagate.yaml`. Strict: unknown fields are errors, variants are tagged.
//!
//! Doc comments here become descriptions in `rotagate schema`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::duration::Dur;

mod steps;
pub use steps::*;

pub const CONFIG_VERSION: u32 = 1;

shape! {
    /// rotagate.yaml: what to rotate, where the state lives, and how each credential moves.
    pub struct Config {
        /// Config format version. Only 1 exists.
        pub version: u32,
        pub state: StateConfig,
        pub github: Option<GithubConfig>,
        #[serde(default)]
        pub defaults: Defaults,
        pub credentials: Vec<Credential>,
    }
}

shape! {
    /// How rotagate works with GitHub.
    #[derive(Default)]
    pub struct GithubConfig {
        /// The repository rotagate works in (`owner/name`): approval pull requests,
        /// notification issues, the state branch. Default: GITHUB_REPOSITORY.
        pub repo: Option<String>,
        /// Pace requests to github.com's secondary rate limits (default: on for
        /// api.github.com, off for GitHub Enterprise Server, where they are off by default).
        pub secondary_limits: Option<bool>,
        /// Requests in flight at once when writing many secrets (default 16).
        pub concurrency: Option<usize>,
    }
}

shape! {
    /// Where the age-encrypted state lives and who can read it.
    pub struct StateConfig {
        /// `file:PATH` (relative to this file) or `github-branch:BRANCH` (in github.repo).
        pub store: String,
        /// age recipients (age1...) the state is encrypted to. The identity that writes the
        /// state comes from ROTAGATE_AGE_IDENTITY or --identity-file, and its recipient
        /// must be listed here.
        pub recipients: Vec<String>,
        /// How long a run's lease on a credential lasts without being renewed (default 30m;
        /// a run renews it at every save, so this bounds how long a crashed run blocks others).
        pub lease: Option<Dur>,
    }
}

shape! {
    /// Values every credential inherits unless it sets its own.
    #[derive(Default)]
    pub struct Defaults {
        pub owner: Option<String>,
        pub schedule: Option<Schedule>,
        pub propagate: Option<Propagate>,
        pub drain: Option<Dur>,
        pub gate: Option<GateSpec>,
        pub on_verify_failure: Option<OnVerifyFailure>,
    }
}

shape! {
    /// One thing that gets rotated.
    pub struct Credential {
        /// Stable identifier: lower-case letters, digits, `-`, `_`, `.`.
        pub id: String,
        /// Who is told when this credential needs a human: a user or team (`@org/team`).
        pub owner: Option<String>,
        pub description: Option<String>,
        /// What breaks if this credential leaks or stops working.
        pub blast_radius: Option<String>,
        /// Issue the first material when the state has none (instead of adopting the live one).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub bootstrap: bool,
        pub key: KeySpec,
        #[serde(default)]
        pub strategy: Strategy,
        /// The two roles or slots of the `alternating` strategy (default `[a, b]`).
        pub roles: Option<Vec<String>>,
        pub schedule: Option<Schedule>,
        /// Environment variables this credential's templates and commands may read.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub env: Vec<String>,
        /// Make the new public half or second slot trusted next to the old one.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub publish: Vec<ActionSpec>,
        /// How long verifiers' caches need to pick up the new public half before anyone
        /// signs with it.
        pub propagate: Option<Propagate>,
        /// Switch consumers to the new material: each entry's values are written as one step.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub promote: Vec<ActionSpec>,
        /// Probes that must all pass after promote.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub verify: Vec<ProbeSpec>,
        /// Max token lifetime plus a buffer, counted from `verified`.
        pub drain: Option<Dur>,
        /// What must happen before the old material is removed (or, for `immediate`,
        /// before promote).
        pub gate: Option<GateSpec>,
        /// Extra steps after the gate; publish targets remove the old half on their own.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub retire: Vec<ActionSpec>,
        pub on_verify_failure: Option<OnVerifyFailure>,
        pub emergency: Option<EmergencySpec>,
    }
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
        /// JSON pointer to when the provider expires it (RFC 3339 time, YYYY-MM-DD, or
        /// Unix seconds): its hard expiry, which `check` warns about ahead of.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_from: Option<String>,
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

shape! {
    /// When a credential is due.
    pub struct Schedule {
        /// Rotate this long after the current material was issued.
        pub every: Option<Dur>,
        /// Start warning (and, before `expires`, rotating) this long ahead.
        pub warn: Option<Dur>,
        /// Hard expiry (YYYY-MM-DD) of the material that is live when it was adopted or
        /// bootstrapped, e.g. a certificate's notAfter. It does not carry over to material
        /// rotagate issues; `check` says when it has become stale.
        #[schemars(with = "Option<String>", regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
        pub expires: Option<String>,
        /// How long material rotagate issues stays valid, where consumers enforce it (a
        /// token or certificate lifetime): a hard expiry of its own, counted from issue.
        pub lifetime: Option<Dur>,
    }
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

shape! {
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
        pub timeout: Option<Dur>,
    }
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

shape! {
    pub struct EmergencySpec {
        /// The gate before the compromised material is removed (default: the credential's
        /// gate; `none` removes it as soon as the new material verifies).
        pub gate: Option<GateSpec>,
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
