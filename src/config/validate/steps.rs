//! The second pass over steps: each action and probe kind's fields, the templates in
//! them and where private values may go.

use super::super::template::{Field, Var, is_env_name, is_reserved_env};
use super::super::*;
use super::{Scope, Slot, Validator};

/// The mint request runs before there is new material, so it may not refer to it.
pub(crate) fn mint_request(v: &mut Validator, scope: &Scope, path: &str, h: &HttpAction) {
    let p = format!("{path}.http");
    http_action(v, scope, &p, h);
    let mut templates: Vec<&Template> = vec![&h.url];
    templates.extend(h.headers.values());
    templates.extend(h.body.iter());
    if templates
        .iter()
        .any(|t| t.vars().is_ok_and(|vars| vars.iter().any(|x| matches!(x, Var::New(_)))))
        || h.json.as_ref().is_some_and(|j| j.to_string().contains("new."))
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
pub(crate) fn http_action(v: &mut Validator, scope: &Scope, p: &str, h: &HttpAction) {
    http_request(v, scope, p, &h.url, &h.headers, h.body.as_ref(), h.json.as_ref());
    if h.body.is_some() && h.json.is_some() {
        v.err(p, "give either `body` or `json`, not both", None);
    }
    for (i, s) in h.expect_status.iter().enumerate() {
        if !(100..=599).contains(s) {
            v.err(&format!("{p}.expect_status[{i}]"), format!("{s} is not an HTTP status"), None);
        }
    }
    hosts(v, &format!("{p}.follow_redirects_to"), &h.follow_redirects_to);
}

pub(crate) fn repo(v: &mut Validator, path: &str, repo: &str) {
    if !is_repo(repo) {
        v.err(path, format!("`{repo}` is not a repository"), Some("write it as owner/name".into()));
    }
}

/// A connection URL holds the admin's password: it may come from env only. The role
/// defaults to the alternating one, the password to the new value.
pub(crate) fn postgres(
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

pub(crate) fn check_probe(v: &mut Validator, scope: &Scope, path: &str, probe: &ProbeSpec) {
    match probe {
        ProbeSpec::Http(h) => {
            let p = format!("{path}.http");
            http_request(v, scope, &p, &h.url, &h.headers, h.body.as_ref(), h.json.as_ref());
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
                v.err(&format!("{p}.expect.status"), format!("{s} is not an HTTP status"), None);
            }
            hosts(v, &format!("{p}.follow_redirects_to"), &h.follow_redirects_to);
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
            hosts(v, &format!("{p}.follow_redirects_to"), &j.follow_redirects_to);
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
        ProbeSpec::Command(c) => command(v, scope, &format!("{path}.command"), &c.into()),
        ProbeSpec::GithubWorkflow(w) => repo(v, &format!("{path}.github-workflow.repo"), &w.repo),
    }
}

pub(crate) fn command(v: &mut Validator, scope: &Scope, path: &str, spec: &CommandSpec) {
    let CommandSpec { run, args, stdin, env, .. } = *spec;
    if run.trim().is_empty() {
        v.err(&format!("{path}.run"), "`run` names no program", None);
    } else if run.contains("{{") {
        v.err(&format!("{path}.run"), "the program path cannot be a template", None);
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
pub(crate) fn http_request(
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
        v.err(&format!("{path}.url"), format!("`{}` is not an http(s) URL", url.raw()), None);
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

pub(crate) fn json_templates(
    v: &mut Validator,
    scope: &Scope,
    path: &str,
    value: &serde_json::Value,
) {
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
                    v.err_key(&format!("{path}.{k}"), "JSON keys cannot be templates", None);
                }
                json_templates(v, scope, &format!("{path}.{k}"), item);
            }
        }
        _ => {}
    }
}

pub(crate) fn template(v: &mut Validator, scope: &Scope, path: &str, t: &Template, slot: Slot) {
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
                            scope.fields.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
                        )),
                    );
                } else if *field == Field::Role && !scope.alternating {
                    report(v, format!("{var} is only set with `strategy: alternating`"), None);
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

pub(crate) fn relative_path(v: &mut Validator, path: &str, p: &str) {
    if p.trim().is_empty() {
        v.err(path, "empty path", None);
    } else if p.contains("{{") {
        v.err(path, "a path cannot be a template", None);
    }
}

pub(crate) fn hosts(v: &mut Validator, path: &str, hosts: &[String]) {
    for (i, h) in hosts.iter().enumerate() {
        if crate::http::parse_trusted_host(h).is_none() {
            v.err(
                &format!("{path}[{i}]"),
                format!("`{h}` is not a host name"),
                Some("list host names, with a port where it is not the scheme's default: www.example.com, localhost:8443".into()),
            );
        }
    }
}

pub(crate) fn valid_env_key(k: &str) -> bool {
    is_env_name(k)
        || k.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) && !k.is_empty()
}

/// A `set:` map of names to secret values: at least one, each name accepted by
/// `valid` (else "`NAME` is not `what`"), each value a template that may hold private
/// values.
pub(crate) fn set_map(
    v: &mut Validator,
    scope: &Scope,
    path: &str,
    set: &std::collections::BTreeMap<String, Template>,
    valid: fn(&str) -> bool,
    what: &str,
) {
    if set.is_empty() {
        v.err(&format!("{path}.set"), "`set` names nothing", None);
    }
    for (name, value) in set {
        let p = format!("{path}.set.{name}");
        if !valid(name) {
            v.err_key(&p, format!("`{name}` is not {what}"), None);
        }
        template(v, scope, &p, value, Slot::SetValue);
    }
}
