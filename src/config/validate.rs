//! The second pass: everything serde cannot know, every error reported at once.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use super::locate::LazyLocator;
use super::template::{Field, Var, is_env_name, is_reserved_env};
use super::*;

/// Where a template is used decides which values it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
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
    fn name(self) -> &'static str {
        match self {
            Role::Publish => "publish",
            Role::Promote => "promote",
            Role::Retire => "retire",
        }
    }
}

/// Which roles each action kind can play.
pub(crate) fn roles_of(action: &ActionSpec) -> &'static [Role] {
    match action {
        ActionSpec::Manual(_) => &[Role::Publish, Role::Promote, Role::Retire],
        ActionSpec::File(_) => &[Role::Publish, Role::Promote],
        ActionSpec::JwksFile(_) => &[Role::Publish],
        ActionSpec::Command(_) => &[Role::Promote, Role::Retire],
        ActionSpec::Http(_) => &[Role::Promote, Role::Retire],
        ActionSpec::GithubSecret(_) | ActionSpec::GithubVariable(_) | ActionSpec::VercelEnv(_) => {
            &[Role::Promote]
        }
        ActionSpec::Postgres(_) => &[Role::Publish, Role::Promote],
        ActionSpec::GithubWorkflow(_) => &[Role::Promote, Role::Retire],
    }
}

struct Validator<'a> {
    locator: &'a LazyLocator<'a>,
    file: &'a Path,
    out: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn warn(&mut self, path: &str, message: String, hint: Option<String>) {
        self.push(path, false, message, hint);
        let d = self.out.pop().expect("just pushed");
        self.warnings.push(d);
    }

    fn err(&mut self, path: &str, message: impl Into<String>, hint: impl Into<Option<String>>) {
        self.push(path, false, message.into(), hint.into());
    }

    /// An error about a mapping key (placed on the key rather than its value).
    fn err_key(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        self.push(path, true, message.into(), hint);
    }

    fn push(&mut self, path: &str, on_key: bool, message: String, hint: Option<String>) {
        let pos = if on_key {
            self.locator.get().key(path)
        } else {
            self.locator.get().value(path)
        }
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
struct Scope<'a> {
    env: BTreeSet<&'a str>,
    fields: &'static [Field],
    key_kind: &'static str,
    alternating: bool,
}

/// Errors and warnings, each sorted by position.
pub(super) fn validate(
    config: &Config,
    locator: &LazyLocator,
    file: &Path,
) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut v = Validator {
        locator,
        file,
        out: Vec::new(),
        warnings: Vec::new(),
    };
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
        v.err(
            "state.lease",
            "a lease shorter than 1m expires while a run still works",
            None,
        );
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
            v.err(
                &p,
                format!("`{name}` is not an environment variable name"),
                None,
            );
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
    let scope = Scope {
        env,
        fields: key_fields(&c.key),
        key_kind: c.key.kind(),
        alternating,
    };
    key(v, &format!("{path}.key"), &c.key);
    if let KeySpec::Minted { http, .. } = &c.key {
        mint_request(v, &scope, &format!("{path}.key"), http);
    }
    match (&c.roles, alternating) {
        (Some(_), false) => v.err(
            &format!("{path}.roles"),
            "roles are only used by `strategy: alternating`",
            None,
        ),
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
            if !roles_of(action).contains(&role) {
                let can: Vec<&str> = roles_of(action).iter().map(|r| r.name()).collect();
                v.err(
                    &p,
                    format!("`{}` cannot be a {} step", action.kind(), role.name()),
                    Some(format!(
                        "`{}` can be listed under: {}",
                        action.kind(),
                        can.join(", ")
                    )),
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
            check_action(v, &scope, &p, action, role);
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
        KeySpec::Age { .. } => &[
            Field::Kid,
            Field::Value,
            Field::Recipient,
            Field::Fingerprint,
            Field::Role,
        ],
    }
}

fn key(v: &mut Validator, path: &str, key: &KeySpec) {
    match key {
        KeySpec::Rsa { bits, kid: k } => {
            if ![2048, 3072, 4096].contains(bits) {
                v.err(
                    &format!("{path}.bits"),
                    format!("{bits}-bit RSA is not offered"),
                    Some("use 2048, 3072 or 4096".into()),
                );
            }
            kid(v, &format!("{path}.kid"), k);
        }
        KeySpec::Secret {
            length,
            alphabet,
            prefix,
            kid: k,
        } => {
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
                v.err(
                    &format!("{path}.prefix"),
                    "a prefix cannot contain white space",
                    None,
                );
            }
            kid(v, &format!("{path}.kid"), k);
        }
        KeySpec::Age { kid: k, .. } => kid(v, &format!("{path}.kid"), k),
        KeySpec::PostgresPassword { length, kid: k } => {
            if !(22..=99).contains(length) {
                v.err(
                    &format!("{path}.length"),
                    format!("a {length}-character password is not offered"),
                    Some("use 22 to 99 letters and digits (22 give 128 bits; PostgreSQL accepts up to 99 in most clients)".into()),
                );
            }
            kid(v, &format!("{path}.kid"), k);
        }
        KeySpec::Minted {
            extract,
            kid_from,
            kid: k,
            ..
        } => {
            for (name, pointer) in [("extract", Some(extract)), ("kid_from", kid_from.as_ref())] {
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
            kid(v, &format!("{path}.kid"), k);
        }
    }
}

/// The mint request runs before there is new material, so it may not refer to it.
fn mint_request(v: &mut Validator, scope: &Scope, path: &str, h: &HttpAction) {
    let p = format!("{path}.http");
    http_action(v, scope, &p, h);
    let mut templates: Vec<&Template> = vec![&h.url];
    templates.extend(h.headers.values());
    templates.extend(h.body.iter());
    if templates.iter().any(|t| {
        t.vars()
            .is_ok_and(|vars| vars.iter().any(|x| matches!(x, Var::New(_))))
    }) || h
        .json
        .as_ref()
        .is_some_and(|j| j.to_string().contains("new."))
    {
        v.err(
            &p,
            "the mint request runs before the new value exists: it cannot use {{ new.* }}",
            None,
        );
    }
}

/// An `http` step (or a mint's request): the request, one body form, real status codes,
/// hosts a redirect may take it to.
fn http_action(v: &mut Validator, scope: &Scope, p: &str, h: &HttpAction) {
    http_request(
        v,
        scope,
        p,
        &h.url,
        &h.headers,
        h.body.as_ref(),
        h.json.as_ref(),
    );
    if h.body.is_some() && h.json.is_some() {
        v.err(p, "give either `body` or `json`, not both", None);
    }
    for (i, s) in h.expect_status.iter().enumerate() {
        if !(100..=599).contains(s) {
            v.err(
                &format!("{p}.expect_status[{i}]"),
                format!("{s} is not an HTTP status"),
                None,
            );
        }
    }
    hosts(
        v,
        &format!("{p}.follow_redirects_to"),
        &h.follow_redirects_to,
    );
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

fn repo(v: &mut Validator, path: &str, repo: &str) {
    if !is_repo(repo) {
        v.err(
            path,
            format!("`{repo}` is not a repository"),
            Some("write it as owner/name".into()),
        );
    }
}

fn github_values(
    v: &mut Validator,
    scope: &Scope,
    path: &str,
    a: &GithubValuesAction,
    secret: bool,
) {
    let scopes = usize::from(a.repo.is_some())
        + usize::from(!a.repos.is_empty())
        + usize::from(a.org.is_some());
    if scopes != 1 {
        v.err(path, "name exactly one of `repo`, `repos` or `org`", None);
    }
    for (i, r) in a.repo.iter().chain(a.repos.iter()).enumerate() {
        let p = if a.repo.is_some() {
            format!("{path}.repo")
        } else {
            format!("{path}.repos[{i}]")
        };
        repo(v, &p, r);
    }
    if let Some(org) = &a.org {
        if org.is_empty() || org.contains('/') {
            v.err(
                &format!("{path}.org"),
                format!("`{org}` is not an organisation"),
                None,
            );
        }
        if a.environment.is_some() {
            v.err(
                &format!("{path}.environment"),
                "environments belong to repositories, not organisations",
                None,
            );
        }
        match (a.visibility, a.repositories.is_empty()) {
            (Some(Visibility::Selected), true) => v.err(
                &format!("{path}.repositories"),
                "`visibility: selected` needs the repositories that may use it",
                None,
            ),
            (Some(Visibility::All | Visibility::Private) | None, false) => v.err(
                &format!("{path}.repositories"),
                "repositories are only for `visibility: selected`",
                None,
            ),
            _ => {}
        }
    } else if a.visibility.is_some() || !a.repositories.is_empty() {
        v.err(
            path,
            "`visibility` and `repositories` are for organisation values",
            None,
        );
    }
    if a.set.is_empty() {
        v.err(&format!("{path}.set"), "`set` names nothing", None);
    }
    for (name, value) in &a.set {
        let p = format!("{path}.set.{name}");
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || name.to_ascii_uppercase().starts_with("GITHUB_") {
            v.err_key(
                &p,
                format!("`{name}` is not a name GitHub accepts"),
                Some("letters, digits and `_`, not starting with a digit or GITHUB_".into()),
            );
        }
        template(
            v,
            scope,
            &p,
            value,
            if secret { Slot::SetValue } else { Slot::Public },
        );
    }
}

/// A connection URL holds the admin's password: it may come from env only. The role
/// defaults to the alternating one, the password to the new value.
fn postgres(
    v: &mut Validator,
    scope: &Scope,
    path: &str,
    url: &Template,
    role: Option<&Template>,
    password: Option<&Template>,
) {
    template(v, scope, &format!("{path}.url"), url, Slot::Connection);
    match role {
        None if !scope.alternating => v.err(
            path,
            "name the `role` whose password this sets (only `strategy: alternating` picks one: {{ new.role }})",
            None,
        ),
        Some(r) => {
            template(v, scope, &format!("{path}.role"), r, Slot::Expect);
            let raw = r.raw();
            let is_role_name =
                !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if r.vars().is_ok_and(|vars| vars.is_empty()) && !is_role_name {
                v.err(
                    &format!("{path}.role"),
                    format!("role `{raw}` may hold only letters, digits and `_`"),
                    None,
                );
            }
        }
        None => {}
    }
    if let Some(p) = password {
        template(v, scope, &format!("{path}.password"), p, Slot::SetValue);
    }
}

fn vercel_env(v: &mut Validator, scope: &Scope, path: &str, a: &VercelEnvAction) {
    if a.project.trim().is_empty() || a.project.contains('/') {
        v.err(
            &format!("{path}.project"),
            format!("`{}` is not a Vercel project name or id", a.project),
            None,
        );
    }
    if a.target.is_empty() {
        v.err(
            &format!("{path}.target"),
            "name at least one target (production, preview, development)",
            None,
        );
    }
    if a.kind == VercelEnvType::Sensitive && a.target.contains(&VercelTarget::Development) {
        v.err(
            &format!("{path}.target"),
            "Vercel keeps sensitive values for production and preview only",
            Some("drop development, or use `type: encrypted`".into()),
        );
    }
    if a.set.is_empty() {
        v.err(&format!("{path}.set"), "`set` names nothing", None);
    }
    for (name, value) in &a.set {
        let p = format!("{path}.set.{name}");
        if !valid_env_key(name) {
            v.err_key(
                &p,
                format!("`{name}` is not an environment variable name"),
                None,
            );
        }
        template(v, scope, &p, value, Slot::SetValue);
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
        v.err(
            &format!("{path}.every"),
            "a credential cannot be due every 0s",
            None,
        );
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

fn check_action(v: &mut Validator, scope: &Scope, path: &str, action: &ActionSpec, role: Role) {
    match action {
        ActionSpec::Manual(text) => template(v, scope, path, text, Slot::Manual),
        ActionSpec::File(f) => {
            let p = format!("{path}.file");
            relative_path(v, &format!("{p}.path"), &f.path);
            match (&f.set, &f.content) {
                (Some(_), Some(_)) | (None, None) => v.err(
                    &p,
                    "a file step needs exactly one of `set` (keys in an env file) or `content` (the whole file)",
                    None,
                ),
                (None, Some(_)) if role == Role::Publish => v.err(
                    &format!("{p}.content"),
                    "a publish step must be able to remove what it added; use `set`",
                    None,
                ),
                _ => {}
            }
            if let Some(set) = &f.set {
                if set.is_empty() {
                    v.err(&format!("{p}.set"), "`set` names no keys", None);
                }
                for (k, val) in set {
                    let kp = format!("{p}.set.{}", k.raw());
                    template(v, scope, &kp, k, Slot::SetKey);
                    template(v, scope, &kp, val, Slot::SetValue);
                    if k.vars().is_ok_and(|vars| vars.is_empty()) && !valid_env_key(k.raw()) {
                        v.err_key(
                            &kp,
                            format!("`{}` is not a valid env file key", k.raw()),
                            None,
                        );
                    }
                }
            }
            if let Some(content) = &f.content {
                template(v, scope, &format!("{p}.content"), content, Slot::Content);
            }
            if let Some(mode) = f.mode
                && mode > 0o777
            {
                v.err(
                    &format!("{p}.mode"),
                    "mode is a permission such as 0o600 (384)",
                    None,
                );
            }
        }
        ActionSpec::JwksFile(j) => {
            relative_path(v, &format!("{path}.jwks-file.path"), &j.path);
            if let Some(r) = &j.repo {
                repo(v, &format!("{path}.jwks-file.repo"), r);
            }
            if let Some(b) = &j.branch {
                if j.repo.is_none() {
                    v.err(
                        &format!("{path}.jwks-file.branch"),
                        "`branch` is for a file in a GitHub `repo`",
                        None,
                    );
                } else if !is_branch_name(b) {
                    v.err(
                        &format!("{path}.jwks-file.branch"),
                        format!("`{b}` is not a branch name"),
                        None,
                    );
                }
            }
        }
        ActionSpec::GithubSecret(a) => {
            github_values(v, scope, &format!("{path}.github-secret"), a, true)
        }
        ActionSpec::GithubVariable(a) => {
            github_values(v, scope, &format!("{path}.github-variable"), a, false)
        }
        ActionSpec::GithubWorkflow(w) => {
            let p = format!("{path}.github-workflow");
            repo(v, &format!("{p}.repo"), &w.repo);
            if w.workflow.trim().is_empty() {
                v.err(
                    &format!("{p}.workflow"),
                    "name the workflow file (deploy.yml) or its id",
                    None,
                );
            }
            for (k, t) in &w.inputs {
                template(v, scope, &format!("{p}.inputs.{k}"), t, Slot::Public);
            }
        }
        ActionSpec::VercelEnv(a) => vercel_env(v, scope, &format!("{path}.vercel-env"), a),
        ActionSpec::Postgres(a) => {
            postgres(
                v,
                scope,
                &format!("{path}.postgres"),
                &a.url,
                a.role.as_ref(),
                a.password.as_ref(),
            );
        }
        ActionSpec::Command(c) => command(
            v,
            scope,
            &format!("{path}.command"),
            &c.run,
            &c.args,
            c.stdin.as_ref(),
            &c.env,
        ),
        ActionSpec::Http(h) => http_action(v, scope, &format!("{path}.http"), h),
    }
}

fn check_probe(v: &mut Validator, scope: &Scope, path: &str, probe: &ProbeSpec) {
    match probe {
        ProbeSpec::Http(h) => {
            let p = format!("{path}.http");
            http_request(
                v,
                scope,
                &p,
                &h.url,
                &h.headers,
                h.body.as_ref(),
                h.json.as_ref(),
            );
            if h.body.is_some() && h.json.is_some() {
                v.err(&p, "give either `body` or `json`, not both", None);
            }
            for (pointer, expected) in &h.expect.json {
                let ep = format!("{p}.expect.json.{pointer}");
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    v.err_key(
                        &ep,
                        format!("`{pointer}` is not a JSON pointer"),
                        Some(format!("JSON pointers start with `/`, e.g. /{pointer}")),
                    );
                }
                template(v, scope, &ep, expected, Slot::Expect);
            }
            if let Some(c) = &h.expect.contains {
                template(v, scope, &format!("{p}.expect.contains"), c, Slot::Expect);
            }
            if let Some(s) = h.expect.status
                && !(100..=599).contains(&s)
            {
                v.err(
                    &format!("{p}.expect.status"),
                    format!("{s} is not an HTTP status"),
                    None,
                );
            }
            hosts(
                v,
                &format!("{p}.follow_redirects_to"),
                &h.follow_redirects_to,
            );
        }
        ProbeSpec::Jwks(j) | ProbeSpec::Jwt(j) => {
            let p = format!("{path}.{}", probe.kind());
            if matches!(probe, ProbeSpec::Jwt(_)) && scope.key_kind != "rsa" {
                v.err(
                    &p,
                    format!(
                        "a jwt probe signs with an RSA key; this credential's key is `{}`",
                        scope.key_kind
                    ),
                    Some("use an http or command probe for this key type".into()),
                );
            }
            http_request(v, scope, &p, &j.url, &j.headers, None, None);
            if let Some(kid) = &j.kid {
                template(v, scope, &format!("{p}.kid"), kid, Slot::Expect);
            }
            hosts(
                v,
                &format!("{p}.follow_redirects_to"),
                &j.follow_redirects_to,
            );
        }
        ProbeSpec::Postgres(p) => {
            postgres(
                v,
                scope,
                &format!("{path}.postgres"),
                &p.url,
                p.role.as_ref(),
                p.password.as_ref(),
            );
        }
        ProbeSpec::Command(c) => command(
            v,
            scope,
            &format!("{path}.command"),
            &c.run,
            &c.args,
            c.stdin.as_ref(),
            &c.env,
        ),
        ProbeSpec::GithubWorkflow(w) => repo(v, &format!("{path}.github-workflow.repo"), &w.repo),
    }
}

#[allow(clippy::too_many_arguments)]
fn command(
    v: &mut Validator,
    scope: &Scope,
    path: &str,
    run: &str,
    args: &[Template],
    stdin: Option<&Template>,
    env: &[String],
) {
    if run.trim().is_empty() {
        v.err(&format!("{path}.run"), "`run` names no program", None);
    } else if run.contains("{{") {
        v.err(
            &format!("{path}.run"),
            "the program path cannot be a template",
            None,
        );
    }
    for (i, a) in args.iter().enumerate() {
        template(v, scope, &format!("{path}.args[{i}]"), a, Slot::Arg);
    }
    if let Some(s) = stdin {
        template(v, scope, &format!("{path}.stdin"), s, Slot::Stdin);
    }
    for (i, name) in env.iter().enumerate() {
        let p = format!("{path}.env[{i}]");
        if name == "PATH" {
            continue;
        }
        if is_reserved_env(name) {
            v.err(&p, format!("`{name}` is never passed to a command"), None);
        } else if !scope.env.contains(name.as_str()) {
            v.err(
                &p,
                format!("`{name}` is not in this credential's env list"),
                Some(format!("add `{name}` to the credential's `env:`")),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn http_request(
    v: &mut Validator,
    scope: &Scope,
    path: &str,
    url: &Template,
    headers: &std::collections::BTreeMap<String, Template>,
    body: Option<&Template>,
    json: Option<&serde_json::Value>,
) {
    template(v, scope, &format!("{path}.url"), url, Slot::Url);
    let raw = url.raw().trim_start();
    if !(raw.starts_with("http://") || raw.starts_with("https://") || raw.starts_with("{{")) {
        v.err(
            &format!("{path}.url"),
            format!("`{}` is not an http(s) URL", url.raw()),
            None,
        );
    }
    for (name, value) in headers {
        let hp = format!("{path}.headers.{name}");
        if name.contains("{{") {
            v.err_key(
                &hp,
                "a header name cannot be a template",
                Some("templates belong in the header value".into()),
            );
        } else if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.err_key(&hp, format!("`{name}` is not a valid header name"), None);
        }
        template(v, scope, &hp, value, Slot::HeaderValue);
    }
    if let Some(b) = body {
        template(v, scope, &format!("{path}.body"), b, Slot::Body);
    }
    if let Some(j) = json {
        json_templates(v, scope, &format!("{path}.json"), j);
    }
}

fn json_templates(v: &mut Validator, scope: &Scope, path: &str, value: &serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            template(v, scope, path, &Template::new(s.clone()), Slot::Body)
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                json_templates(v, scope, &format!("{path}[{i}]"), item);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                if k.contains("{{") {
                    v.err_key(
                        &format!("{path}.{k}"),
                        "JSON keys cannot be templates",
                        None,
                    );
                }
                json_templates(v, scope, &format!("{path}.{k}"), item);
            }
        }
        _ => {}
    }
}

fn template(v: &mut Validator, scope: &Scope, path: &str, t: &Template, slot: Slot) {
    let on_key = slot == Slot::SetKey;
    let report = |v: &mut Validator, msg: String, hint: Option<String>| {
        if on_key {
            v.err_key(path, msg, hint);
        } else {
            v.err(path, msg, hint);
        }
    };
    let vars = match t.vars() {
        Ok(vars) => vars,
        Err(e) => {
            report(v, format!("template `{}`: {e}", t.raw()), None);
            return;
        }
    };
    for var in vars {
        match &var {
            Var::Env(name) => {
                if is_reserved_env(name) {
                    report(
                        v,
                        format!("{var} is never readable through templates"),
                        Some("ROTAGATE_*, GITHUB_*, ACTIONS_* and RUNNER_* hold rotagate's and the runner's own secrets".into()),
                    );
                } else if !scope.env.contains(name.as_str()) {
                    report(
                        v,
                        format!("{var} is not in this credential's env list"),
                        Some(format!("add `{name}` to the credential's `env:`")),
                    );
                } else if !slot.allows_env() {
                    report(
                        v,
                        format!(
                            "{var} cannot go in {}: environment values may be secrets",
                            slot.name()
                        ),
                        None,
                    );
                }
            }
            Var::New(field) | Var::Old(field) => {
                if !scope.fields.contains(field) {
                    report(
                        v,
                        format!("{var} does not exist for `{}` keys", scope.key_kind),
                        Some(format!(
                            "`{}` keys offer: {}",
                            scope.key_kind,
                            scope
                                .fields
                                .iter()
                                .map(|f| f.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                } else if *field == Field::Role && !scope.alternating {
                    report(
                        v,
                        format!("{var} is only set with `strategy: alternating`"),
                        None,
                    );
                } else if field.is_private() && !slot.allows_private() {
                    report(
                        v,
                        format!("{var} is a private value and cannot go in {}", slot.name()),
                        Some("private values may go into set: maps, request bodies, file content, stdin and header values".into()),
                    );
                }
            }
        }
    }
}

fn relative_path(v: &mut Validator, path: &str, p: &str) {
    if p.trim().is_empty() {
        v.err(path, "empty path", None);
    } else if p.contains("{{") {
        v.err(path, "a path cannot be a template", None);
    }
}

fn hosts(v: &mut Validator, path: &str, hosts: &[String]) {
    for (i, h) in hosts.iter().enumerate() {
        if h.is_empty() || h.contains('/') || h.contains(':') || h.contains("{{") {
            v.err(
                &format!("{path}[{i}]"),
                format!("`{h}` is not a host name"),
                Some("list bare host names, e.g. www.example.com".into()),
            );
        }
    }
}

fn valid_env_key(k: &str) -> bool {
    is_env_name(k)
        || k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !k.is_empty()
}
