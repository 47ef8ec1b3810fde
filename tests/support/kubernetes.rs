//! A fake Kubernetes API server for what rotagate uses, following the API's routes and
//! `Status` objects: Secrets (`GET`/`PATCH /api/v1/namespaces/{ns}/secrets/{name}`, `POST
//! .../secrets`; strategic-merge patches whose `metadata.resourceVersion` is a
//! precondition answered with 409 Conflict when stale, `null` removing a key, data that
//! must be base64), Deployments (`PATCH /apis/apps/v1/.../deployments/{name}`, a new
//! pod template annotation starting a rollout), `SelfSubjectAccessReview`, bearer
//! tokens (401 Unauthorized) and RBAC (403 Forbidden naming the user, verb, resource,
//! API group and namespace). Faults can be injected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "k8s-admin-Token-Zq81x";

#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// 429 with Retry-After, as API priority and fairness answers.
    TooManyRequests(u64),
    Slow(Duration),
    /// Another client patches these keys just before the next request lands.
    ConcurrentWrite(BTreeMap<String, String>),
}

/// One RBAC rule: namespace, API group, resource, verbs, and names ([] = all).
#[derive(Clone)]
struct Rule {
    namespace: String,
    group: String,
    resource: String,
    verbs: Vec<String>,
    names: Vec<String>,
}

#[derive(Clone, Default)]
pub struct SecretObject {
    /// key → decoded value
    pub data: BTreeMap<String, String>,
    pub resource_version: u64,
}

#[derive(Default)]
struct World {
    /// token → (user, rules)
    users: BTreeMap<String, (String, Vec<Rule>)>,
    secrets: BTreeMap<(String, String), SecretObject>,
    /// (ns, name) → restartedAt stamps, in order
    deployments: BTreeMap<(String, String), Vec<String>>,
    next_version: u64,
    /// "create ns/name" or "patch ns/name" for every accepted Secret write
    writes: Vec<String>,
    faults: crate::support::server::Faults<Fault>,
    requests: Vec<String>,
}

#[derive(Clone)]
pub struct FakeKube {
    addr: SocketAddr,
    scheme: &'static str,
    world: Arc<Mutex<World>>,
}

fn status(code: u16, reason: &str, message: &str, details: Value) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": message, "reason": reason,
                       "details": details, "code": code });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn object(code: u16, body: Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn secret_json(ns: &str, name: &str, s: &SecretObject) -> Value {
    let data: serde_json::Map<String, Value> =
        s.data.iter().map(|(k, v)| (k.clone(), json!(STANDARD.encode(v)))).collect();
    json!({ "kind": "Secret", "apiVersion": "v1",
            "metadata": { "name": name, "namespace": ns,
                          "resourceVersion": s.resource_version.to_string(),
                          "uid": "6f1c9e0a-8a52-4f55-9d3e-1c7f2b3a4d5e" },
            "data": data, "type": "Opaque" })
}

fn allowed(rules: &[Rule], ns: &str, group: &str, resource: &str, verb: &str, name: &str) -> bool {
    rules.iter().any(|r| {
        (r.namespace == ns || r.namespace == "*")
            && r.group == group
            && r.resource == resource
            && r.verbs.iter().any(|v| v == verb || v == "*")
            && (r.names.is_empty() || r.names.iter().any(|n| n == name))
    })
}

impl FakeKube {
    /// The API server over plain HTTP (a `kubectl proxy`, or the tests' usual case).
    pub async fn start() -> FakeKube {
        Self::start_with(None).await
    }

    /// The API server over TLS with `pki`'s server certificate, requiring a client
    /// certificate, as a real cluster serves it.
    pub async fn start_tls(pki: &crate::support::tls::Pki) -> FakeKube {
        Self::start_with(Some(pki)).await
    }

    async fn start_with(pki: Option<&crate::support::tls::Pki>) -> FakeKube {
        let world = Arc::new(Mutex::new(World::default()));
        let w = world.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let w = w.clone();
                async move { handle(w, method, uri, headers, body).await }
            },
        );
        let (addr, scheme) = match pki {
            Some(pki) => (crate::support::tls::serve_tls(app, pki).await, "https"),
            None => (crate::support::server::serve(app).await, "http"),
        };
        let fake = FakeKube { addr, scheme, world };
        fake.add_user(
            ADMIN_TOKEN,
            "kubernetes-admin",
            &[("*", "", "secrets", &["*"], &[]), ("*", "apps", "deployments", &["*"], &[])],
        );
        fake
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// A user with a bearer token and rules (namespace, group, resource, verbs, names).
    #[allow(clippy::type_complexity)]
    pub fn add_user(
        &self,
        token: &str,
        user: &str,
        rules: &[(&str, &str, &str, &[&str], &[&str])],
    ) {
        let rules = rules
            .iter()
            .map(|(ns, g, r, verbs, names)| Rule {
                namespace: ns.to_string(),
                group: g.to_string(),
                resource: r.to_string(),
                verbs: verbs.iter().map(|v| v.to_string()).collect(),
                names: names.iter().map(|n| n.to_string()).collect(),
            })
            .collect();
        self.world.lock().unwrap().users.insert(token.into(), (user.into(), rules));
    }

    pub fn add_deployment(&self, ns: &str, name: &str) {
        self.world.lock().unwrap().deployments.insert((ns.into(), name.into()), Vec::new());
    }

    /// Creates or replaces a Secret as another client would.
    pub fn put_secret(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        let mut w = self.world.lock().unwrap();
        w.next_version += 1;
        let version = w.next_version;
        w.secrets.insert(
            (ns.into(), name.into()),
            SecretObject {
                data: data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                resource_version: version,
            },
        );
    }

    pub fn secret(&self, ns: &str, name: &str) -> Option<SecretObject> {
        self.world.lock().unwrap().secrets.get(&(ns.into(), name.into())).cloned()
    }

    /// The restartedAt stamps a Deployment's pod template received, in order.
    pub fn restarts(&self, ns: &str, name: &str) -> Vec<String> {
        self.world
            .lock()
            .unwrap()
            .deployments
            .get(&(ns.into(), name.into()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every accepted Secret write ("create ns/name", "patch ns/name"), in order.
    pub fn writes(&self) -> Vec<String> {
        self.world.lock().unwrap().writes.clone()
    }

    pub fn inject(&self, prefix: &str, fault: Fault, times: usize) {
        self.world.lock().unwrap().faults.push(prefix, fault, times);
    }

    pub fn pending_faults(&self) -> usize {
        self.world.lock().unwrap().faults.pending()
    }

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
    let path = uri.path().to_string();
    let line = format!("{method} {path}");
    let fault = {
        let mut w = world.lock().unwrap();
        w.requests.push(line.clone());
        w.faults.take(&line)
    };
    match &fault {
        Some(Fault::Status(code)) => {
            return status(
                *code,
                "InternalError",
                "Internal error occurred: etcdserver: request timed out",
                json!({}),
            );
        }
        Some(Fault::TooManyRequests(after)) => {
            let mut r = status(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                json!({ "retryAfterSeconds": after }),
            );
            r.headers_mut().insert("retry-after", after.to_string().parse().unwrap());
            return r;
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    let mut w = world.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some((user, rules)) = w.users.get(bearer).cloned() else {
        return status(401, "Unauthorized", "Unauthorized", json!({}));
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content_type =
        headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let forbidden = |verb: &str, group: &str, resource: &str, ns: &str, name: &str| {
        let (shown, kind) = if group.is_empty() {
            (resource.to_string(), resource.to_string())
        } else {
            (format!("{resource}.{group}"), resource.to_string())
        };
        let subject = if name.is_empty() {
            format!("{shown} is forbidden")
        } else {
            format!("{shown} {name:?} is forbidden")
        };
        status(
            403,
            "Forbidden",
            &format!(
                "{subject}: User {user:?} cannot {verb} resource {kind:?} in API group {group:?} in the namespace {ns:?}"
            ),
            json!({ "name": name, "kind": resource }),
        )
    };

    match (method.clone(), segments.as_slice()) {
        (Method::POST, ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]) => {
            let a = &body["spec"]["resourceAttributes"];
            let s = |k: &str| a[k].as_str().unwrap_or("").to_string();
            let ok = allowed(
                &rules,
                &s("namespace"),
                &s("group"),
                &s("resource"),
                &s("verb"),
                &s("name"),
            );
            let mut review = body.clone();
            review["status"] = if ok {
                json!({ "allowed": true, "reason": "RBAC: allowed by RoleBinding \"rotagate\"" })
            } else {
                json!({ "allowed": false })
            };
            object(201, review)
        }
        (Method::GET, ["api", "v1", "namespaces", ns, "secrets", name]) => {
            if !allowed(&rules, ns, "", "secrets", "get", name) {
                return forbidden("get", "", "secrets", ns, name);
            }
            match w.secrets.get(&(ns.to_string(), name.to_string())) {
                Some(s) => object(200, secret_json(ns, name, s)),
                None => status(
                    404,
                    "NotFound",
                    &format!("secrets {name:?} not found"),
                    json!({ "name": name, "kind": "secrets" }),
                ),
            }
        }
        (Method::POST, ["api", "v1", "namespaces", ns, "secrets"]) => {
            let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
            if !allowed(&rules, ns, "", "secrets", "create", "") {
                return forbidden("create", "", "secrets", ns, "");
            }
            let key = (ns.to_string(), name.clone());
            if w.secrets.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("secrets {name:?} already exists"),
                    json!({ "name": name, "kind": "secrets" }),
                );
            }
            let mut data = BTreeMap::new();
            for (k, v) in body["data"].as_object().into_iter().flatten() {
                let Some(bytes) = v.as_str().and_then(|v| STANDARD.decode(v).ok()) else {
                    return status(
                        400,
                        "BadRequest",
                        &format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0 (key {k})"
                        ),
                        json!({}),
                    );
                };
                data.insert(k.clone(), String::from_utf8(bytes).unwrap());
            }
            w.next_version += 1;
            let s = SecretObject { data, resource_version: w.next_version };
            let answer = secret_json(ns, &name, &s);
            w.secrets.insert(key, s);
            w.writes.push(format!("create {ns}/{name}"));
            object(201, answer)
        }
        (Method::PATCH, ["api", "v1", "namespaces", ns, "secrets", name]) => {
            if !content_type.starts_with("application/strategic-merge-patch+json")
                && !content_type.starts_with("application/merge-patch+json")
            {
                return status(
                    415,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
                    ),
                    json!({}),
                );
            }
            if !allowed(&rules, ns, "", "secrets", "patch", name) {
                return forbidden("patch", "", "secrets", ns, name);
            }
            let key = (ns.to_string(), name.to_string());
            if let Some(Fault::ConcurrentWrite(data)) = &fault
                && let Some(s) = w.secrets.get(&key).cloned()
            {
                let mut s = s;
                s.data.extend(data.clone());
                w.next_version += 1;
                s.resource_version = w.next_version;
                w.secrets.insert(key.clone(), s);
            }
            let next = w.next_version + 1;
            let Some(s) = w.secrets.get_mut(&key) else {
                return status(
                    404,
                    "NotFound",
                    &format!("secrets {name:?} not found"),
                    json!({ "name": name, "kind": "secrets" }),
                );
            };
            if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
                && rv != s.resource_version.to_string()
            {
                return status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on secrets {name:?}: the object has been modified; please apply your changes to the latest version and try again"
                    ),
                    json!({ "name": name, "kind": "secrets" }),
                );
            }
            for (k, v) in body["data"].as_object().into_iter().flatten() {
                if v.is_null() {
                    s.data.remove(k);
                    continue;
                }
                let Some(bytes) = v.as_str().and_then(|v| STANDARD.decode(v).ok()) else {
                    return status(
                        400,
                        "BadRequest",
                        &format!("illegal base64 data for key {k}"),
                        json!({}),
                    );
                };
                s.data.insert(k.clone(), String::from_utf8(bytes).unwrap());
            }
            s.resource_version = next;
            let answer = secret_json(ns, name, s);
            w.next_version = next;
            w.writes.push(format!("patch {ns}/{name}"));
            object(200, answer)
        }
        (Method::PATCH, ["apis", "apps", "v1", "namespaces", ns, "deployments", name]) => {
            if !allowed(&rules, ns, "apps", "deployments", "patch", name) {
                return forbidden("patch", "apps", "deployments", ns, name);
            }
            let stamp = body["spec"]["template"]["metadata"]["annotations"]
                ["kubectl.kubernetes.io/restartedAt"]
                .as_str()
                .map(str::to_string);
            match w.deployments.get_mut(&(ns.to_string(), name.to_string())) {
                None => status(
                    404,
                    "NotFound",
                    &format!("deployments.apps {name:?} not found"),
                    json!({ "name": name, "group": "apps", "kind": "deployments" }),
                ),
                Some(stamps) => {
                    stamps.extend(stamp);
                    object(
                        200,
                        json!({ "kind": "Deployment", "apiVersion": "apps/v1",
                                        "metadata": { "name": name, "namespace": ns } }),
                    )
                }
            }
        }
        _ => status(404, "NotFound", "the server could not find the requested resource", json!({})),
    }
}
