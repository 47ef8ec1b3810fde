//! A fake HashiCorp Vault following its HTTP API for what rotagate uses: the KV version
//! 2 engine (`GET`/`POST`/`DELETE /v1/{mount}/data/{path}` with `options.cas`, versions,
//! soft delete answering 404 with the deleted version's metadata), `POST
//! /v1/sys/capabilities-self`, AppRole and JWT logins (`POST /v1/auth/{mount}/login`),
//! tokens in `X-Vault-Token` and namespaces in `X-Vault-Namespace`, each token bound to
//! the namespace it was made in. Errors use Vault's shape, `{"errors": [...]}`: 403
//! "permission denied" for a token that is unknown or whose policy lacks the capability,
//! 400 for a failed check-and-set, 404 "no handler for route" for an unknown mount, 429
//! with Retry-After when a rate limit quota is hit. It also serves the GitHub Actions
//! OIDC token endpoint a JWT login starts from. Faults can be injected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const ROOT_TOKEN: &str = "hvs.root-Test-Token-9f3k";
pub const OIDC_REQUEST_TOKEN: &str = "oidc-request-Token-77ab";

#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// 429 with Retry-After, as a rate limit quota answers.
    RateLimited(u64),
    Slow(Duration),
    /// Someone else writes this data to the secret just before the next write lands.
    ConcurrentWrite(Value),
}

#[derive(Debug, Clone)]
pub struct Version {
    pub data: Value,
    pub deleted: bool,
}

/// Path (a trailing `*` matches more) → capabilities.
type Policy = Vec<(String, Vec<String>)>;

#[derive(Clone)]
struct Token {
    namespace: String,
    policy: Policy,
}

#[derive(Default)]
struct World {
    mounts: Vec<String>,
    /// (namespace, mount, path) → versions, oldest first (version n at n-1)
    secrets: BTreeMap<(String, String, String), Vec<Version>>,
    tokens: BTreeMap<String, Token>,
    /// role_id → (secret_id, policy)
    approles: BTreeMap<String, (String, Policy)>,
    /// jwt role → (bound audience, policy)
    jwt_roles: BTreeMap<String, (String, Policy)>,
    issued: u64,
    faults: crate::support::server::Faults<Fault>,
    requests: Vec<String>,
}

#[derive(Clone)]
pub struct FakeVault {
    addr: SocketAddr,
    world: Arc<Mutex<World>>,
}

fn respond(status: u16, body: Value, headers: &[(&str, String)]) -> Response {
    let mut b = Response::builder().status(status).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn errors(status: u16, messages: &[&str]) -> Response {
    respond(status, json!({ "errors": messages }), &[])
}

fn empty(status: u16) -> Response {
    Response::builder().status(status).body(Body::empty()).unwrap()
}

fn envelope(data: Value) -> Value {
    json!({ "request_id": "8c1f4e32-6b3c-4b5a-9d8e-0f0e1d2c3b4a", "lease_id": "",
            "renewable": false, "lease_duration": 0, "data": data,
            "wrap_info": null, "warnings": null, "auth": null })
}

fn metadata(version: u64, deleted: bool) -> Value {
    json!({ "created_time": "2026-11-23T10:00:00.000000Z", "custom_metadata": null,
            "deletion_time": if deleted { "2026-11-23T10:00:01.000000Z" } else { "" },
            "destroyed": false, "version": version })
}

fn allows(policy: &Policy, path: &str, capability: &str) -> bool {
    policy.iter().any(|(prefix, caps)| {
        let matches = match prefix.strip_suffix('*') {
            Some(p) => path.starts_with(p),
            None => path == prefix,
        };
        matches && caps.iter().any(|c| c == capability || c == "root")
    })
}

fn capabilities(policy: &Policy, path: &str) -> Vec<String> {
    let mut caps: Vec<String> = ["create", "read", "update", "delete", "list", "root"]
        .into_iter()
        .filter(|c| allows(policy, path, c))
        .map(str::to_string)
        .collect();
    if caps.iter().any(|c| c == "root") {
        caps = vec!["root".into()];
    }
    if caps.is_empty() {
        caps.push("deny".into());
    }
    caps
}

/// A JWT as GitHub's OIDC service issues one (header.claims.signature); the fake
/// Vault checks its audience and that it issued it.
fn oidc_jwt(audience: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({ "iss": "https://token.actions.githubusercontent.com", "aud": audience,
                "sub": "repo:acme/infra:ref:refs/heads/main" })
        .to_string(),
    );
    format!("{header}.{claims}.c2lnbmF0dXJlLW9mLXRoZS1mYWtl")
}

impl FakeVault {
    /// A Vault with a KV v2 engine at `secret/` and a root token.
    pub async fn start() -> FakeVault {
        let world =
            Arc::new(Mutex::new(World { mounts: vec!["secret".into()], ..World::default() }));
        world.lock().unwrap().tokens.insert(
            ROOT_TOKEN.into(),
            Token { namespace: String::new(), policy: vec![("*".into(), vec!["root".into()])] },
        );
        let w = world.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let w = w.clone();
                async move { handle(w, method, uri, headers, body).await }
            },
        );
        let addr = crate::support::server::serve(app).await;
        FakeVault { addr, world }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL the runner's ACTIONS_ID_TOKEN_REQUEST_URL points at.
    pub fn oidc_url(&self) -> String {
        format!("http://{}/_github/oidc/token?api-version=2.0", self.addr)
    }

    fn policy(rules: &[(&str, &[&str])]) -> Policy {
        rules
            .iter()
            .map(|(p, caps)| (p.to_string(), caps.iter().map(|c| c.to_string()).collect()))
            .collect()
    }

    /// A token in `namespace` ("" for the root) with a policy of (path, capabilities).
    pub fn add_token(&self, token: &str, namespace: &str, rules: &[(&str, &[&str])]) {
        self.world.lock().unwrap().tokens.insert(
            token.into(),
            Token { namespace: namespace.into(), policy: Self::policy(rules) },
        );
    }

    pub fn add_approle(&self, role_id: &str, secret_id: &str, rules: &[(&str, &[&str])]) {
        self.world
            .lock()
            .unwrap()
            .approles
            .insert(role_id.into(), (secret_id.into(), Self::policy(rules)));
    }

    pub fn add_jwt_role(&self, role: &str, audience: &str, rules: &[(&str, &[&str])]) {
        self.world
            .lock()
            .unwrap()
            .jwt_roles
            .insert(role.into(), (audience.into(), Self::policy(rules)));
    }

    /// Writes a version as another client would.
    pub fn put(&self, namespace: &str, mount: &str, path: &str, data: Value) {
        let mut w = self.world.lock().unwrap();
        w.secrets
            .entry((namespace.into(), mount.into(), path.into()))
            .or_default()
            .push(Version { data, deleted: false });
    }

    /// Every version of a secret, oldest first.
    pub fn versions(&self, namespace: &str, mount: &str, path: &str) -> Vec<Version> {
        let w = self.world.lock().unwrap();
        w.secrets.get(&(namespace.into(), mount.into(), path.into())).cloned().unwrap_or_default()
    }

    /// The current data (None when absent or deleted).
    pub fn current(&self, namespace: &str, mount: &str, path: &str) -> Option<Value> {
        self.versions(namespace, mount, path).pop().filter(|v| !v.deleted).map(|v| v.data)
    }

    /// Answers the next `times` requests whose "METHOD path" starts with `prefix`
    /// with `fault`.
    pub fn inject(&self, prefix: &str, fault: Fault, times: usize) {
        self.world.lock().unwrap().faults.push(prefix, fault, times);
    }

    pub fn pending_faults(&self) -> usize {
        self.world.lock().unwrap().faults.pending()
    }

    /// "METHOD /path [namespace]" of every request, in order, bodies never kept.
    pub fn requests(&self) -> Vec<String> {
        self.world.lock().unwrap().requests.clone()
    }
}

async fn handle(
    world: Arc<Mutex<World>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let namespace = header("x-vault-namespace").trim_matches('/').to_string();
    let path = uri.path().to_string();
    let line = format!("{method} {path}");
    let fault = {
        let mut w = world.lock().unwrap();
        w.requests.push(if namespace.is_empty() {
            line.clone()
        } else {
            format!("{line} [{namespace}]")
        });
        w.faults.take(&line)
    };
    match fault {
        Some(Fault::Status(s)) => return errors(s, &["internal error"]),
        Some(Fault::RateLimited(after)) => {
            return respond(
                429,
                json!({ "errors": [format!("request path {:?}: rate limit quota exceeded", path.trim_start_matches("/v1/"))] }),
                &[("retry-after", after.to_string())],
            );
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::ConcurrentWrite(_)) | None => {}
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);

    if path == "/_github/oidc/token" {
        if header("authorization") != format!("Bearer {OIDC_REQUEST_TOKEN}") {
            return respond(401, json!({ "message": "Bad credentials" }), &[]);
        }
        let audience = uri
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("audience="))
            .unwrap_or("")
            .to_string();
        return respond(200, json!({ "count": 1, "value": oidc_jwt(&audience) }), &[]);
    }
    let Some(api) = path.strip_prefix("/v1/") else {
        return errors(404, &[]);
    };
    let mut w = world.lock().unwrap();

    if let Some(rest) = api.strip_prefix("auth/")
        && let Some(mount) = rest.strip_suffix("/login")
        && method == Method::POST
    {
        let policy = match mount {
            "approle" => {
                let role_id = body["role_id"].as_str().unwrap_or("");
                match w.approles.get(role_id) {
                    Some((secret, policy))
                        if Some(secret.as_str()) == body["secret_id"].as_str() =>
                    {
                        policy.clone()
                    }
                    _ => return errors(400, &["invalid role or secret ID"]),
                }
            }
            "jwt" => {
                let role = body["role"].as_str().unwrap_or("");
                let jwt = body["jwt"].as_str().unwrap_or("");
                let Some((audience, policy)) = w.jwt_roles.get(role).cloned() else {
                    return errors(400, &[&format!("role {role:?} could not be found")]);
                };
                if jwt != oidc_jwt(&audience) {
                    return errors(
                        400,
                        &[
                            "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience",
                        ],
                    );
                }
                policy
            }
            _ => {
                return errors(
                    400,
                    &[&format!(
                        "no handler for route \"auth/{mount}/login\". route entry not found."
                    )],
                );
            }
        };
        w.issued += 1;
        let token = format!("hvs.login-{}-Issued-Token", w.issued);
        w.tokens.insert(token.clone(), Token { namespace: namespace.clone(), policy });
        return respond(
            200,
            json!({ "request_id": "1", "lease_id": "", "renewable": false,
                    "lease_duration": 0, "data": null, "wrap_info": null, "warnings": null,
                    "auth": { "client_token": token, "accessor": "acc", "policies": ["rotagate"],
                              "lease_duration": 2764800, "renewable": true } }),
            &[],
        );
    }

    // Everything else needs a token valid in this namespace.
    let token = match w.tokens.get(&header("x-vault-token")) {
        Some(t) if t.namespace == namespace => t.clone(),
        _ => return errors(403, &["permission denied"]),
    };

    if api == "sys/capabilities-self" && method == Method::POST {
        let paths: Vec<String> = body["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        let mut answer = serde_json::Map::new();
        for p in &paths {
            answer.insert(p.clone(), json!(capabilities(&token.policy, p)));
        }
        if let [p] = paths.as_slice() {
            answer.insert("capabilities".into(), json!(capabilities(&token.policy, p)));
        }
        return respond(200, Value::Object(answer), &[]);
    }

    let Some((mount, secret_path)) = w
        .mounts
        .iter()
        .find_map(|m| api.strip_prefix(&format!("{m}/data/")).map(|p| (m.clone(), p.to_string())))
    else {
        return errors(404, &[&format!("no handler for route {api:?}. route entry not found.")]);
    };
    let key = (namespace.clone(), mount.clone(), secret_path.clone());
    let need = match method {
        Method::GET => "read",
        Method::DELETE => "delete",
        _ => {
            if w.secrets.get(&key).is_some_and(|v| !v.is_empty()) {
                "update"
            } else {
                "create"
            }
        }
    };
    if !allows(&token.policy, api, need) {
        return errors(403, &["1 error occurred:\n\t* permission denied\n\n"]);
    }
    match method {
        Method::GET => match w.secrets.get(&key).and_then(|v| v.last().map(|l| (v.len(), l))) {
            None => errors(404, &[]),
            Some((n, latest)) if latest.deleted => respond(
                404,
                envelope(json!({ "data": null, "metadata": metadata(n as u64, true) })),
                &[],
            ),
            Some((n, latest)) => respond(
                200,
                envelope(json!({ "data": latest.data, "metadata": metadata(n as u64, false) })),
                &[],
            ),
        },
        Method::POST | Method::PUT => {
            if !body["data"].is_object() {
                return errors(400, &["no data provided"]);
            }
            if let Some(Fault::ConcurrentWrite(data)) = fault {
                w.secrets.entry(key.clone()).or_default().push(Version { data, deleted: false });
            }
            let versions = w.secrets.entry(key).or_default();
            if let Some(cas) = body["options"]["cas"].as_u64()
                && cas != versions.len() as u64
            {
                return errors(400, &["check-and-set parameter did not match the current version"]);
            }
            versions.push(Version { data: body["data"].clone(), deleted: false });
            let n = versions.len() as u64;
            respond(200, envelope(metadata(n, false)), &[])
        }
        Method::DELETE => {
            if let Some(latest) = w.secrets.get_mut(&key).and_then(|v| v.last_mut()) {
                latest.deleted = true;
            }
            empty(204)
        }
        _ => errors(405, &["unsupported operation"]),
    }
}
