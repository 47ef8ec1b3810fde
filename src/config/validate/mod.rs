//! The second pass: everything serde cannot know, every error reported at once.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use super::locate::LazyLocator;
use super::template::{Field, is_env_name, is_reserved_env};
use super::*;

pub(crate) mod steps;
use steps::{check_probe, mint_request};

/// Where a template is used decides which values it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Url,
    HeaderValue,
    Body,
    SetKey,
    SetValue,
    Content,
    Stdin,
    Arg,
    Manual,
    Expect,
    /// Values anyone who can read the repository sees: variables, workflow inputs.
    Public,
    /// A database connection string: it carries a password, so env values only.
    Connection,
}

impl Slot {
    fn allows_private(self) -> bool {
        matches!(
            self,
            Slot::Body | Slot::SetValue | Slot::Content | Slot::Stdin | Slot::HeaderValue
        )
    }

    fn allows_env(self) -> bool {
        !matches!(self, Slot::Arg | Slot::Manual | Slot::SetKey | Slot::Public)
    }

    fn name(self) -> &'static str {
        match self {
            Slot::Url => "a URL",
            Slot::HeaderValue => "a header value",
            Slot::Body => "a body",
            Slot::SetKey => "a key name",
            Slot::SetValue => "a value",
            Slot::Content => "file content",
            Slot::Stdin => "stdin",
            Slot::Arg => "a command argument",
            Slot::Manual => "a manual step (it is shown in pull requests and logs)",
            Slot::Expect => "an expectation",
            Slot::Connection => "a connection URL (give the admin URL as {{ env.X }})",
            Slot::Public => {
                "a value anyone who can read the repository sees (use github-secret for secrets)"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Publish,
    Promote,
    Retire,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Publish => "publish",
            Role::Promote => "promote",
            Role::Retire => "retire",
        }
    }
}

pub(crate) struct Validator<'a> {
    locator: &'a LazyLocator<'a>,
    file: &'a Path,
    out: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Validator<'_> {
    pub(crate) fn warn(&mut self, path: &str, message: String, hint: Option<String>) {
        self.push(path, false, message, hint);
        let d = self.out.pop().expect("just pushed");
        self.warnings.push(d);
    }

    pub(crate) fn err(
        &mut self,
        path: &str,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        self.push(path, false, message.into(), hint.into());
    }

    /// An error about a mapping key (placed on the key rather than its value).
    pub(crate) fn err_key(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        self.push(path, true, message.into(), hint);
    }

    fn push(&mut self, path: &str, on_key: bool, message: String, hint: Option<String>) {
        let pos =
            if on_key { self.locator.get().key(path) } else { self.locator.get().value(path) }
                .unwrap_or(Pos { line: 1, column: 1 });
        self.out.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            path: path.to_string(),
            message,
            hint,
        });
    }
}

/// What a credential's templates may refer to.
pub(crate) struct Scope<'a> {
    pub(crate) env: BTreeSet<&'a str>,
    pub(crate) fields: &'static [Field],
    pub(crate) key_kind: &'static str,
    pub(crate) alternating: bool,
}

/// Errors and warnings, each sorted by position.
pub(super) fn validate(
    config: &Config,
    locator: &LazyLocator,
    file: &Path,
) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut v = Validator { locator, file, out: Vec::new(), warnings: Vec::new() };
    if config.version != CONFIG_VERSION {
        v.err(
            "version",
            format!("config version {} is not supported", config.version),
            Some(format!(
                "this rotagate reads version {CONFIG_VERSION}; upgrade rotagate for newer configs"
            )),
        );
    }
    if let Err(e) = StoreSpec::parse(&config.state.store) {
        v.err("state.store", e, None);
    }
    if let Some(gh) = &config.github {
        if let Some(repo) = &gh.repo
            && !is_repo(repo)
        {
            v.err(
                "github.repo",
                format!("`{repo}` is not a repository"),
                Some("write it as owner/name".into()),
            );
        }
        if gh.concurrency.is_some_and(|c| c == 0 || c > 100) {
            v.err(
                "github.concurrency",
                "concurrency must be between 1 and 100 (GitHub allows 100 requests in flight)",
                None,
            );
        }
    }
    if let Some(gate) = &config.defaults.gate {
        check_gate(&mut v, "defaults.gate", gate);
    }
    if config.state.recipients.is_empty() {
        v.err(
            "state.recipients",
            "no recipients: nobody could read the state",
            Some(
                "add the age1... recipient of the state identity (`rotagate init` makes one)"
                    .into(),
            ),
        );
    }
    for (i, r) in config.state.recipients.iter().enumerate() {
        if age::x25519::Recipient::from_str(r).is_err() {
            v.err(
                &format!("state.recipients[{i}]"),
                format!("`{r}` is not an age X25519 recipient"),
                Some("recipients look like age1... (see `age-keygen -y`)".into()),
            );
        }
    }
    if let Some(lease) = config.state.lease
        && lease.0 < std::time::Duration::from_secs(60)
    {
        v.err("state.lease", "a lease shorter than 1m expires while a run still works", None);
    }
    if config.credentials.is_empty() {
        v.err("credentials", "no credentials to rotate", None);
    }
    let mut seen = BTreeSet::new();
    for (i, raw) in config.credentials.iter().enumerate() {
        let path = format!("credentials[{i}]");
        if !seen.insert(raw.id.as_str()) {
            v.err(
                &format!("{path}.id"),
                format!("duplicate credential id `{}`", raw.id),
                Some("each credential needs its own id: the state is keyed by it".into()),
            );
        }
        credential(&mut v, &path, &raw.resolved(&config.defaults));
    }
    if let Some(schedule) = &config.defaults.schedule {
        check_schedule(&mut v, "defaults.schedule", schedule);
    }
    v.out.sort_by_key(|d| (d.line, d.column));
    v.warnings.sort_by_key(|d| (d.line, d.column));
    (v.out, v.warnings)
}

fn credential(v: &mut Validator, path: &str, c: &Credential) {
    if !valid_id(&c.id) {
        v.err(
            &format!("{path}.id"),
            format!("`{}` is not a valid credential id", c.id),
            Some("use lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit (at most 64)".into()),
        );
    }
    let mut env = BTreeSet::new();
    for (i, name) in c.env.iter().enumerate() {
        let p = format!("{path}.env[{i}]");
        if !is_env_name(name) {
            v.err(&p, format!("`{name}` is not an environment variable name"), None);
        } else if is_reserved_env(name) {
            v.err(
                &p,
                format!("`{name}` cannot be read by a credential"),
                Some("ROTAGATE_*, GITHUB_*, ACTIONS_* and RUNNER_* hold rotagate's and the runner's own secrets; copy what you need into another variable in the workflow".into()),
            );
        } else if !env.insert(name.as_str()) {
            v.err(&p, format!("`{name}` is listed twice"), None);
        }
    }
    let alternating = c.strategy == Strategy::Alternating;
    let scope = Scope { env, fields: key_fields(&c.key), key_kind: c.key.kind(), alternating };
    key(v, &format!("{path}.key"), &c.key);
    if let KeySpec::Minted { http, .. } = &c.key {
        mint_request(v, &scope, &format!("{path}.key"), http);
    }
    match (&c.roles, alternating) {
        (Some(_), false) => {
            v.err(&format!("{path}.roles"), "roles are only used by `strategy: alternating`", None)
        }
        (Some(roles), true) => {
            let distinct: BTreeSet<&String> = roles.iter().collect();
            if roles.len() != 2 || distinct.len() != 2 {
                v.err(
                    &format!("{path}.roles"),
                    "alternating needs exactly two distinct roles",
                    Some("e.g. roles: [app_a, app_b]".into()),
                );
            }
            for (i, r) in roles.iter().enumerate() {
                if r.is_empty() || !r.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                    v.err(
                        &format!("{path}.roles[{i}]"),
                        format!("role `{r}` may hold only letters, digits and `_`"),
                        None,
                    );
                }
            }
        }
        _ => {}
    }
    if let Some(schedule) = &c.schedule {
        check_schedule(v, &format!("{path}.schedule"), schedule);
    }
    if let Some(gate) = &c.gate {
        check_gate(v, &format!("{path}.gate"), gate);
    }
    if let Some(gate) = c.emergency.as_ref().and_then(|e| e.gate.as_ref()) {
        check_gate(v, &format!("{path}.emergency.gate"), gate);
    }
    let gate_is_none = c.gate() == GateSpec::None;
    for (role, list, name) in [
        (Role::Publish, &c.publish, "publish"),
        (Role::Promote, &c.promote, "promote"),
        (Role::Retire, &c.retire, "retire"),
    ] {
        for (i, action) in list.iter().enumerate() {
            let p = format!("{path}.{name}[{i}]");
            if !action.roles().contains(&role) {
                let can: Vec<&str> = action.roles().iter().map(|r| r.name()).collect();
                v.err(
                    &p,
                    format!("`{}` cannot be a {} step", action.kind(), role.name()),
                    Some(format!("`{}` can be listed under: {}", action.kind(), can.join(", "))),
                );
                continue;
            }
            if action.is_manual() && gate_is_none {
                v.warn(
                    &p,
                    format!("with `gate: none` this manual {name} step is only listed in the run's output; nobody confirms it was done"),
                    Some("set a gate (pull_request) so a person confirms it, or automate the step".into()),
                );
            }
            action.check(v, &scope, &p, role);
        }
    }
    if let Some(propagate) = &c.propagate
        && let Some(origin) = propagate.origin()
    {
        check_probe(v, &scope, &format!("{path}.propagate.origin"), origin);
    }
    for (i, probe) in c.verify.iter().enumerate() {
        check_probe(v, &scope, &format!("{path}.verify[{i}]"), probe);
    }
    if c.strategy == Strategy::Immediate && c.propagate_wait() > Dur::ZERO {
        v.err(
            &format!("{path}.propagate"),
            "`immediate` has no overlap, so nothing propagates before promote",
            Some("remove propagate, or use strategy: overlap".into()),
        );
    }
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn key_fields(key: &KeySpec) -> &'static [Field] {
    match key {
        KeySpec::Rsa { .. } => &[
            Field::Kid,
            Field::PrivatePem,
            Field::PublicPem,
            Field::Jwk,
            Field::PrivateJwk,
            Field::Fingerprint,
            Field::Role,
        ],
        KeySpec::Secret { .. } | KeySpec::Minted { .. } | KeySpec::PostgresPassword { .. } => {
            &[Field::Kid, Field::Value, Field::Fingerprint, Field::Role]
        }
        KeySpec::Age { .. } => {
            &[Field::Kid, Field::Value, Field::Recipient, Field::Fingerprint, Field::Role]
        }
    }
}

fn key(v: &mut Validator, path: &str, key: &KeySpec) {
    match key {
        KeySpec::Rsa { bits, .. } => {
            if ![2048, 3072, 4096].contains(bits) {
                v.err(
                    &format!("{path}.bits"),
                    format!("{bits}-bit RSA is not offered"),
                    Some("use 2048, 3072 or 4096".into()),
                );
            }
        }
        KeySpec::Secret { length, alphabet, prefix, .. } => {
            let size = crate::material::alphabet_chars(alphabet).len();
            if let Alphabet::Chars(chars) = alphabet {
                let distinct: BTreeSet<char> = chars.chars().collect();
                if distinct.len() != chars.chars().count() || distinct.len() < 2 {
                    v.err(
                        &format!("{path}.alphabet"),
                        "an alphabet needs at least two characters, none repeated",
                        None,
                    );
                }
                if chars.chars().any(char::is_whitespace) {
                    v.err(
                        &format!("{path}.alphabet"),
                        "an alphabet cannot contain white space",
                        None,
                    );
                }
            }
            let bits = (*length as f64) * (size.max(1) as f64).log2();
            if *length > 4096 {
                v.err(
                    &format!("{path}.length"),
                    "a secret longer than 4096 characters is not offered",
                    None,
                );
            } else if bits < 128.0 {
                v.err(
                    &format!("{path}.length"),
                    format!("{length} characters from {size} give {bits:.0} bits of entropy, fewer than 128"),
                    Some(format!(
                        "use at least {} characters",
                        (128.0 / (size.max(2) as f64).log2()).ceil()
                    )),
                );
            }
            if prefix.chars().any(char::is_whitespace) {
                v.err(&format!("{path}.prefix"), "a prefix cannot contain white space", None);
            }
        }
        KeySpec::Age { .. } => {}
        KeySpec::PostgresPassword { length, .. } => {
            if !(22..=99).contains(length) {
                v.err(
                    &format!("{path}.length"),
                    format!("a {length}-character password is not offered"),
                    Some("use 22 to 99 letters and digits (22 give 128 bits; PostgreSQL accepts up to 99 in most clients)".into()),
                );
            }
        }
        KeySpec::Minted { extract, kid_from, expires_from, .. } => {
            for (name, pointer) in [
                ("extract", Some(extract)),
                ("kid_from", kid_from.as_ref()),
                ("expires_from", expires_from.as_ref()),
            ] {
                if let Some(p) = pointer
                    && !p.starts_with('/')
                {
                    v.err(
                        &format!("{path}.{name}"),
                        format!("`{p}` is not a JSON pointer"),
                        Some(format!("JSON pointers start with `/`, e.g. /{p}")),
                    );
                }
            }
        }
    }
    kid(v, &format!("{path}.kid"), key.kid());
}

fn kid(v: &mut Validator, path: &str, spec: &KidSpec) {
    match spec {
        KidSpec::Uuid => {}
        KidSpec::Date(prefix) => {
            if !crate::material::is_kid_text(prefix) {
                v.err(
                    path,
                    format!(
                        "kid prefix `{prefix}` may hold only letters, digits, `-`, `_`, `.`, `:`"
                    ),
                    None,
                );
            }
        }
        KidSpec::Template(t) => {
            if let Err(e) = crate::material::check_kid_template(t) {
                v.err(
                    path,
                    e,
                    Some(
                        "kid templates use {{ date }}, {{ uuid }}, {{ seq }} and {{ credential }}"
                            .into(),
                    ),
                );
            }
        }
    }
}

fn check_gate(v: &mut Validator, path: &str, gate: &GateSpec) {
    let GateSpec::PullRequest(pr) = gate else {
        return;
    };
    if pr.approvals == 0 {
        v.err(
            &format!("{path}.pull_request.approvals"),
            "a pull request gate needs at least one approval",
            Some("use `gate: none` for no approval".into()),
        );
    }
    for (i, r) in pr.reviewers.iter().enumerate() {
        let ok = match r.strip_prefix('@') {
            Some(team) => is_repo(team),
            None => !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        };
        if !ok {
            v.err(
                &format!("{path}.pull_request.reviewers[{i}]"),
                format!("`{r}` is neither a user nor a team"),
                Some("write users as `alice` and teams as `@org/team-slug`".into()),
            );
        }
    }
}

fn check_schedule(v: &mut Validator, path: &str, s: &Schedule) {
    if let Some(expires) = &s.expires
        && parse_date(expires).is_err()
    {
        v.err(
            &format!("{path}.expires"),
            format!("`{expires}` is not a date"),
            Some("write it as YYYY-MM-DD".into()),
        );
    }
    if let Some(every) = s.every
        && every.is_zero()
    {
        v.err(&format!("{path}.every"), "a credential cannot be due every 0s", None);
    }
    if let (Some(every), Some(warn)) = (s.every, s.warn)
        && warn >= every
    {
        v.err(
            &format!("{path}.warn"),
            format!("warn ({warn}) must be shorter than every ({every})"),
            None,
        );
    }
}
