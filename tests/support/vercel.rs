//! A fake Vercel REST API for project environment variables and deploy hooks, following
//! Vercel's documented routes, bodies and error shape (`{"error":{"code","message"}}`):
//! list (`GET /v10/projects/{idOrName}/env`), read decrypted (`GET /v1/.../env/{id}`),
//! create or upsert one or many (`POST /v10/.../env?upsert=true`, answering 201 with
//! `created` and `failed`), delete (`DELETE /v9/.../env/{id}`), deploy hooks (`POST
//! /v1/integrations/deploy/{projectId}/{hookId}`). Sensitive values are never shown
//! again; a team project is found only with its `teamId`. Faults can be injected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

pub const TOKEN: &str = "vercel-test-token-7Hq2";

#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// 429 with `X-RateLimit-Reset` this many seconds ahead (and Retry-After).
    RateLimited {
        reset_in: u64,
    },
    Slow(Duration),
    /// The upsert reports this key under `failed`, writing the others.
    FailKey(String),
}

#[derive(Debug, Clone)]
pub struct EnvVar {
    pub id: String,
    pub key: String,
    pub value: String,
    pub kind: String,
    pub target: Vec<String>,
}

/// The env vars a deploy hook saw when it was called.
pub type Deployment = BTreeMap<String, String>;

#[derive(Default)]
struct World {
    /// project name → (id, team)
    projects: BTreeMap<String, (String, Option<String>)>,
    envs: BTreeMap<String, Vec<EnvVar>>,
    next_id: u64,
    faults: Vec<(String, Fault, usize)>,
    requests: Vec<String>,
    deployments: BTreeMap<String, Vec<Deployment>>,
}

#[derive(Clone)]
pub struct FakeVercel {
    addr: SocketAddr,
    world: Arc<Mutex<World>>,
}

fn error(status: u16, code: &str, message: &str) -> Response {
    json_response(status, json!({ "error": { "code": code, "message": message } }), &[])
}

fn json_response(status: u16, body: Value, headers: &[(&str, String)]) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// How Vercel lists a variable: encrypted values as ciphertext, sensitive ones without.
fn listed(e: &EnvVar) -> Value {
    let mut v = json!({
        "id": e.id, "key": e.key, "type": e.kind, "target": e.target,
        "createdAt": 1_763_000_000_000u64, "updatedAt": 1_763_000_000_000u64,
        "configurationId": null,
    });
    if e.kind != "sensitive" {
        use base64::Engine;
        v["value"] =
            json!(base64::engine::general_purpose::STANDARD.encode(format!("enc:{}", e.id)));
    }
    v
}

impl FakeVercel {
    pub async fn start() -> FakeVercel {
        let world = Arc::new(Mutex::new(World::default()));
        let w = world.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let w = w.clone();
                async move { handle(w, method, uri, headers, body).await }
            },
        );
        let addr = crate::support::server::serve(app).await;
        FakeVercel { addr, world }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_project(&self, name: &str, team: Option<&str>) -> String {
        let mut w = self.world.lock().unwrap();
        let id = format!("prj_{}", w.projects.len() + 1);
        w.projects.insert(name.to_string(), (id.clone(), team.map(str::to_string)));
        w.envs.entry(name.to_string()).or_default();
        id
    }

    pub fn set(&self, project: &str, key: &str, value: &str, kind: &str, target: &[&str]) {
        let mut w = self.world.lock().unwrap();
        w.next_id += 1;
        let id = format!("env_{}", w.next_id);
        w.envs.get_mut(project).unwrap().push(EnvVar {
            id,
            key: key.into(),
            value: value.into(),
            kind: kind.into(),
            target: target.iter().map(|t| t.to_string()).collect(),
        });
    }

    /// The value of `key` for the production target.
    pub fn value(&self, project: &str, key: &str) -> Option<String> {
        self.var(project, key).map(|e| e.value)
    }

    pub fn var(&self, project: &str, key: &str) -> Option<EnvVar> {
        let w = self.world.lock().unwrap();
        w.envs[project]
            .iter()
            .find(|e| e.key == key && e.target.iter().any(|t| t == "production"))
            .cloned()
    }

    pub fn inject(&self, route: &str, fault: Fault, times: usize) {
        self.world.lock().unwrap().faults.push((route.to_string(), fault, times));
    }

    /// Injected faults not yet served.
    pub fn pending_faults(&self) -> usize {
        self.world.lock().unwrap().faults.iter().map(|(_, _, n)| n).sum()
    }

    /// Every request as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.world.lock().unwrap().requests.clone()
    }

    pub fn deployments(&self, project: &str) -> Vec<Deployment> {
        self.world.lock().unwrap().deployments.get(project).cloned().unwrap_or_default()
    }

    /// The URL of a deploy hook of `project` (its secret is in the path, as Vercel's).
    pub fn deploy_hook(&self, project: &str) -> String {
        let w = self.world.lock().unwrap();
        format!("{}/v1/integrations/deploy/{}/hook_s3cr3tPath", self.url(), w.projects[project].0)
    }
}

async fn handle(
    world: Arc<Mutex<World>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let route = match (method.as_str(), segments.as_slice()) {
        ("GET", ["v10", "projects", _, "env"]) => "list",
        ("POST", ["v10", "projects", _, "env"]) => "create",
        ("GET", ["v1", "projects", _, "env", _]) => "get",
        ("DELETE", ["v9", "projects", _, "env", _]) => "delete",
        ("POST", ["v1", "integrations", "deploy", _, _]) => "deploy",
        _ => return error(404, "not_found", "The requested path was not found"),
    };
    let fault = {
        let mut w = world.lock().unwrap();
        w.requests.push(format!(
            "{method} {path}{}",
            uri.query().map(|q| format!("?{q}")).unwrap_or_default()
        ));
        w.faults.iter_mut().find(|(r, _, n)| r == route && *n > 0).map(|(_, f, n)| {
            *n -= 1;
            f.clone()
        })
    };
    let mut fail_key = None;
    match fault {
        Some(Fault::Status(s)) => {
            return error(s, "internal_server_error", "An unexpected internal error occurred");
        }
        Some(Fault::RateLimited { reset_in }) => {
            let reset = time::OffsetDateTime::now_utc().unix_timestamp() as u64 + reset_in;
            return json_response(
                429,
                json!({ "error": { "code": "rate_limited", "message": "Rate limit exceeded",
                    "limit": { "remaining": 0, "reset": reset, "total": 120 } } }),
                &[
                    ("x-ratelimit-limit", "120".into()),
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", reset.to_string()),
                    ("retry-after", reset_in.to_string()),
                ],
            );
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::FailKey(k)) => fail_key = Some(k),
        None => {}
    }
    if route == "deploy" {
        let mut w = world.lock().unwrap();
        let Some(name) =
            w.projects.iter().find(|(_, (id, _))| id == segments[3]).map(|(n, _)| n.clone())
        else {
            return error(404, "not_found", "Deploy hook not found");
        };
        let snapshot = w.envs[&name]
            .iter()
            .filter(|e| e.target.iter().any(|t| t == "production"))
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        w.deployments.entry(name).or_default().push(snapshot);
        return json_response(
            201,
            json!({ "job": { "id": "job_1", "state": "PENDING", "createdAt": 1_763_000_000_000u64 } }),
            &[],
        );
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth != format!("Bearer {TOKEN}") {
        return json_response(
            403,
            json!({ "error": { "code": "forbidden", "message": "Not authorized", "invalidToken": true } }),
            &[],
        );
    }
    let mut w = world.lock().unwrap();
    let project_ref = segments[2];
    let Some(name) = w
        .projects
        .iter()
        .find(|(n, (id, _))| *n == project_ref || id == project_ref)
        .map(|(n, _)| n.clone())
    else {
        return error(404, "not_found", "Project not found");
    };
    if w.projects[&name].1.as_deref() != query.get("teamId").map(String::as_str) {
        return error(404, "not_found", "Project not found");
    }
    match route {
        "list" => {
            let envs: Vec<Value> = w.envs[&name].iter().map(listed).collect();
            json_response(
                200,
                json!({ "envs": envs, "pagination": { "count": envs.len(), "next": null, "prev": null } }),
                &[],
            )
        }
        "get" => match w.envs[&name].iter().find(|e| e.id == segments[4]) {
            None => error(404, "not_found", "Environment Variable not found"),
            Some(e) => {
                let mut v = listed(e);
                if e.kind != "sensitive" {
                    v["value"] = json!(e.value);
                    v["decrypted"] = json!(true);
                }
                json_response(200, v, &[])
            }
        },
        "delete" => {
            let envs = w.envs.get_mut(&name).unwrap();
            match envs.iter().position(|e| e.id == segments[4]) {
                None => error(404, "not_found", "Environment Variable not found"),
                Some(i) => {
                    let e = envs.remove(i);
                    json_response(200, listed(&e), &[])
                }
            }
        }
        _ => create(&mut w, &name, &query, &body, fail_key),
    }
}

fn create(
    w: &mut World,
    project: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
    fail_key: Option<String>,
) -> Response {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return error(400, "bad_request", "Invalid JSON body");
    };
    let items = match doc {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        _ => {
            return error(400, "bad_request", "Invalid request: body must be an object or array");
        }
    };
    let upsert = query.get("upsert").is_some_and(|u| u == "true");
    let (mut created, mut failed) = (Vec::new(), Vec::new());
    for item in items {
        let key = item["key"].as_str().unwrap_or_default().to_string();
        let fail = |code: &str, message: String| json!({ "error": { "code": code, "message": message, "key": key, "envVarKey": key } });
        let (Some(value), Some(kind), Some(target)) =
            (item["value"].as_str(), item["type"].as_str(), item["target"].as_array())
        else {
            return error(
                400,
                "bad_request",
                "Invalid request: missing required property `value`, `type` or `target`",
            );
        };
        let target: Vec<String> =
            target.iter().filter_map(|t| t.as_str().map(str::to_string)).collect();
        if !["system", "secret", "encrypted", "plain", "sensitive"].contains(&kind) {
            return error(
                400,
                "bad_request",
                "Invalid request: `type` should be one of system, secret, encrypted, plain, sensitive",
            );
        }
        if kind == "sensitive" && target.iter().any(|t| t == "development") {
            failed.push(fail(
                "invalid_sensitive_target",
                "Sensitive environment variables cannot be created in the Development environment"
                    .into(),
            ));
            continue;
        }
        if fail_key.as_deref() == Some(key.as_str()) {
            failed.push(fail(
                "internal_server_error",
                "An unexpected internal error occurred".into(),
            ));
            continue;
        }
        let envs = w.envs.get_mut(project).unwrap();
        let existing =
            envs.iter_mut().find(|e| e.key == key && e.target.iter().any(|t| target.contains(t)));
        match existing {
            Some(_) if !upsert => failed.push(fail(
                "ENV_ALREADY_EXISTS",
                format!("A variable with the name `{key}` already exists for the target production on branch undefined"),
            )),
            Some(e) => {
                e.value = value.to_string();
                e.kind = kind.to_string();
                e.target = target;
                created.push(listed(e));
            }
            None => {
                w.next_id += 1;
                let e = EnvVar {
                    id: format!("env_{}", w.next_id),
                    key: key.clone(),
                    value: value.to_string(),
                    kind: kind.to_string(),
                    target,
                };
                created.push(listed(&e));
                w.envs.get_mut(project).unwrap().push(e);
            }
        }
    }
    let created = if created.len() == 1 { created.pop().unwrap() } else { Value::Array(created) };
    json_response(201, json!({ "created": created, "failed": failed }), &[])
}
