//! Actions secrets and variables at repository, environment and organisation level,
//! and the bulk secret writer the bench shares.

use super::*;

/// The routes of this resource; `None` for a request that is not one of them.
pub(super) fn route(w: &mut World, request: &Request) -> Option<Answer> {
    let Request { method, segs, query, body, endpoint, .. } = *request;
    Some(match (method.as_str(), segs) {
        (_, ["repos", _, _, "actions", "secrets", ..])
        | (_, ["repos", _, _, "environments", _, "secrets", ..])
        | (_, ["orgs", _, "actions", "secrets", ..]) => secrets(w, method, segs, body, endpoint),
        (_, ["repos", _, _, "actions", "variables", ..])
        | (_, ["repos", _, _, "environments", _, "variables", ..])
        | (_, ["orgs", _, "actions", "variables", ..]) => {
            variables(w, method, segs, body, query, endpoint)
        }
        _ => return None,
    })
}

pub(super) fn scope_of(segs: &[&str]) -> Scope {
    match segs {
        ["orgs", o, ..] => Scope::Org(o.to_string()),
        ["repos", o, r, "environments", e, ..] => Scope::Env(format!("{o}/{r}"), e.to_string()),
        ["repos", o, r, ..] => Scope::Repo(format!("{o}/{r}")),
        _ => unreachable!(),
    }
}

pub(super) fn secrets(
    w: &mut World,
    method: &Method,
    segs: &[&str],
    body: &Value,
    endpoint: &str,
) -> Answer {
    let scope = scope_of(segs);
    if let Scope::Env(r, e) = &scope
        && !w.repos[r].environments.contains_key(e)
    {
        return error(404, "Not Found");
    }
    if let Scope::Org(o) = &scope
        && !w.orgs.contains_key(o)
    {
        return error(404, "Not Found");
    }
    let last = *segs.last().unwrap();
    let ex_key = endpoint.to_string();
    let values = w.values_mut(&scope).unwrap();
    match (method.as_str(), last) {
        ("GET", "public-key") => {
            let mut a = example(&ex_key);
            a["key_id"] = values.keys.id.clone().into();
            a["key"] = values.keys.public_b64().into();
            answer(200, a)
        }
        ("PUT", name) => {
            let (Some(sealed), Some(key_id)) =
                (body["encrypted_value"].as_str(), body["key_id"].as_str())
            else {
                return validation(
                    "Invalid request.\n\n\"encrypted_value\" and \"key_id\" are required.",
                    "missing_field",
                );
            };
            if key_id != values.keys.id {
                return validation(
                    "Invalid request.\n\nkey_id does not match the public key",
                    "invalid",
                );
            }
            if STANDARD.decode(sealed).map(|b| b.len() < 48).unwrap_or(true) {
                return validation(
                    "Invalid request.\n\nencrypted_value is not a sealed box",
                    "invalid",
                );
            }
            if matches!(scope, Scope::Org(_)) && body["visibility"].as_str().is_none() {
                return validation(
                    "Invalid request.\n\n\"visibility\" wasn't supplied.",
                    "missing_field",
                );
            }
            let existed =
                values.secrets.insert(name.to_string(), (sealed.to_string(), now())).is_some();
            if matches!(scope, Scope::Org(_)) {
                values.org_settings.insert(
                    name.to_string(),
                    json!({ "visibility": body["visibility"], "selected_repository_ids": body["selected_repository_ids"] }),
                );
            }
            if existed { empty(204) } else { answer(201, json!({})) }
        }
        _ => error(404, "Not Found"),
    }
}

pub(super) fn variables(
    w: &mut World,
    method: &Method,
    segs: &[&str],
    body: &Value,
    query: &BTreeMap<String, String>,
    endpoint: &str,
) -> Answer {
    let scope = scope_of(segs);
    if let Scope::Env(r, e) = &scope
        && !w.repos[r].environments.contains_key(e)
    {
        return error(404, "Not Found");
    }
    let Some(values) = w.values_mut(&scope) else {
        return error(404, "Not Found");
    };
    let last = *segs.last().unwrap();
    match (method.as_str(), last) {
        ("GET", "variables") => {
            let mut a = example(endpoint);
            let template = a["variables"][0].clone();
            a["total_count"] = values.variables.len().into();
            let all: Vec<Value> = values
                .variables
                .iter()
                .map(|(name, value)| {
                    let mut v = template.clone();
                    v["name"] = name.clone().into();
                    v["value"] = value.clone().into();
                    v
                })
                .collect();
            // Documented: per_page at most 30; pages count from 1.
            let (list, headers) = page_of(all, query, 30);
            a["variables"] = list.into();
            (StatusCode::OK, headers, Some(a))
        }
        ("PATCH", name) => match values.variables.get_mut(name) {
            Some(v) => {
                *v = body["value"].as_str().unwrap_or_default().to_string();
                empty(204)
            }
            None => error(404, "Not Found"),
        },
        ("DELETE", name) => match values.variables.remove(name) {
            Some(_) => empty(204),
            None => error(404, "Not Found"),
        },
        ("POST", _) => {
            let (Some(name), Some(value)) = (body["name"].as_str(), body["value"].as_str()) else {
                return validation(
                    "Invalid request.\n\n\"name\" and \"value\" are required.",
                    "missing_field",
                );
            };
            if values.variables.contains_key(name) {
                return error(409, "Already exists - Variable already exists");
            }
            values.variables.insert(name.into(), value.into());
            answer(201, json!({}))
        }
        _ => error(404, "Not Found"),
    }
}

/// Writes a new secret value as S_0..S_{names-1} into every repository, as one
/// github-secret promote step runs it; returns how long the step took.
pub async fn write_secrets(
    gh: rotagate::github::GitHub,
    repos: &[impl AsRef<str>],
    names: usize,
) -> Duration {
    let set: String = (0..names).map(|i| format!("S_{i}: \"{{{{ new.value }}}}\", ")).collect();
    let repos: Vec<&str> = repos.iter().map(AsRef::as_ref).collect();
    let yaml = format!(
        "github-secret: {{ repos: [{}], set: {{ {} }} }}",
        repos.join(", "),
        set.trim_end_matches(", ")
    );
    let spec: rotagate::config::ActionSpec =
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            &yaml,
        ))
        .unwrap();
    let providers = rotagate::step::Providers { github: Some(gh), ..Default::default() };
    let action = rotagate::actions::build(&spec, &providers).unwrap().unwrap();
    let material = rotagate::material::generate(
        &rotagate::config::KeySpec::Secret {
            length: 40,
            alphabet: Default::default(),
            prefix: "sk_live_".into(),
            kid: Default::default(),
        },
        "k".into(),
        None,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let env = rotagate::step::EnvValues::default();
    let http = rotagate::http::HttpClient::new(Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cx = rotagate::step::StepContext {
        credential: "c",
        step: "promote/0",
        base_dir: dir.path(),
        http: &http,
        env: &env,
        produced: &[],
    };
    let view = rotagate::step::View { new: Some(&material), old: None, env: &env };
    let started = std::time::Instant::now();
    action.execute(rotagate::actions::Op::Write(&view), &cx).await.unwrap();
    started.elapsed()
}
