//! The Kubernetes API for what rotagate writes: a Secret's data keys (read with its
//! `resourceVersion`, created, or strategic-merge patched with that `resourceVersion`
//! as a precondition), a Deployment's pod template annotation (a rolling restart, as
//! `kubectl rollout restart` does), and `SelfSubjectAccessReview` to ask whether a verb
//! is allowed before anything is written. Connects with a kubeconfig (`KUBECONFIG` or
//! `~/.kube/config`: token, token file, client certificate or an exec plugin) or, in a
//! pod, the service account.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use url::Url;

use crate::http::{HttpClient, HttpError, Request, RetryPolicy, Tls};
use crate::secret::Secret;

const TIMEOUT: Duration = Duration::from_secs(30);
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{what}: Kubernetes answered {code} {reason}: {message}{hint}")]
    Api { what: String, code: u16, reason: String, message: String, hint: String },
    #[error(
        "{what}: the Secret changed after rotagate read it (resourceVersion {read}); another writer is at work: find out who, then run again to write on top of the new version"
    )]
    Conflict { what: String, read: String },
    #[error("{0}")]
    Config(String),
}

/// A cluster: its API server, the credentials to call it with, and the HTTP client
/// that trusts its CA.
#[derive(Clone)]
pub struct Kube {
    http: HttpClient,
    server: Url,
    token: Option<Secret>,
    /// Where the connection came from, for messages.
    source: String,
}

/// A Secret as read: its `resourceVersion` (None when it does not exist) and its data,
/// decoded.
pub struct SecretData {
    pub resource_version: Option<String>,
    pub data: BTreeMap<String, Secret>,
}

fn yaml_str<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// Resolves a path in a kubeconfig against the file's directory, as kubectl does.
fn beside(config: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

impl Kube {
    /// The cluster `KUBECONFIG` (its first file) or `~/.kube/config` names (context
    /// `ROTAGATE_KUBE_CONTEXT`, else the current one), else the pod's service account;
    /// `None` when there is none of these.
    pub fn from_env(retry: RetryPolicy) -> Result<Option<Kube>, KubeError> {
        let path = std::env::var_os("KUBECONFIG")
            .and_then(|v| std::env::split_paths(&v).next())
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")));
        if let Some(path) = path.filter(|p| p.is_file()) {
            let context = std::env::var("ROTAGATE_KUBE_CONTEXT").ok();
            return Self::from_kubeconfig(&path, context.as_deref(), retry).map(Some);
        }
        if let (Ok(host), Ok(port)) =
            (std::env::var("KUBERNETES_SERVICE_HOST"), std::env::var("KUBERNETES_SERVICE_PORT"))
        {
            let read = |name: &str| {
                std::fs::read(Path::new(SERVICE_ACCOUNT).join(name)).map_err(|e| {
                    KubeError::Config(format!(
                        "in-cluster: cannot read the service account's {name}: {e}"
                    ))
                })
            };
            let token = String::from_utf8_lossy(&read("token")?).trim().to_string();
            let tls = Tls { ca_pem: Some(read("ca.crt")?), identity_pem: None };
            let host = if host.contains(':') { format!("[{host}]") } else { host };
            return Self::connect(
                &format!("https://{host}:{port}"),
                Some(Secret::new(token)),
                &tls,
                retry,
                "the pod's service account".into(),
            )
            .map(Some);
        }
        Ok(None)
    }

    fn connect(
        server: &str,
        token: Option<Secret>,
        tls: &Tls,
        retry: RetryPolicy,
        source: String,
    ) -> Result<Kube, KubeError> {
        let server = Url::parse(server).map_err(|e| {
            KubeError::Config(format!("{source}: the server `{server}` is not a URL ({e})"))
        })?;
        let http = HttpClient::with_tls(retry, tls)
            .map_err(|e| KubeError::Config(format!("{source}: {e}")))?;
        Ok(Kube { http, server, token, source })
    }

    pub fn from_kubeconfig(
        path: &Path,
        context: Option<&str>,
        retry: RetryPolicy,
    ) -> Result<Kube, KubeError> {
        let shown = path.display().to_string();
        let fail = |m: String| KubeError::Config(format!("kubeconfig {shown}: {m}"));
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let doc = crate::config::parse_yaml_value(&text).map_err(fail)?;
        let named = |list: &str, name: &str, field: &str| -> Result<Value, KubeError> {
            doc.get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| yaml_str(e, "name") == Some(name))
                .and_then(|e| e.get(field).cloned())
                .ok_or_else(|| fail(format!("no {field} named `{name}` in `{list}`")))
        };
        let context_name = match context {
            Some(c) => c.to_string(),
            None => yaml_str(&doc, "current-context")
                .filter(|c| !c.is_empty())
                .ok_or_else(|| fail("no current-context; set ROTAGATE_KUBE_CONTEXT".into()))?
                .to_string(),
        };
        let ctx = named("contexts", &context_name, "context")?;
        let cluster_name = yaml_str(&ctx, "cluster")
            .ok_or_else(|| fail(format!("context `{context_name}` names no cluster")))?;
        let cluster = named("clusters", cluster_name, "cluster")?;
        let user = match yaml_str(&ctx, "user") {
            Some(u) => named("users", u, "user")?,
            None => Value::Null,
        };
        let server = yaml_str(&cluster, "server")
            .ok_or_else(|| fail(format!("cluster `{cluster_name}` has no server")))?;
        let decode = |field: &str, v: &str| {
            STANDARD.decode(v.trim()).map_err(|_| fail(format!("{field} is not base64")))
        };
        let file = |field: &str, v: &str| {
            std::fs::read(beside(path, v)).map_err(|e| fail(format!("{field} {v}: {e}")))
        };
        let mut tls = Tls::default();
        if let Some(ca) = yaml_str(&cluster, "certificate-authority-data") {
            tls.ca_pem = Some(decode("certificate-authority-data", ca)?);
        } else if let Some(ca) = yaml_str(&cluster, "certificate-authority") {
            tls.ca_pem = Some(file("certificate-authority", ca)?);
        }
        let cert = match (
            yaml_str(&user, "client-certificate-data"),
            yaml_str(&user, "client-certificate"),
        ) {
            (Some(d), _) => Some(decode("client-certificate-data", d)?),
            (None, Some(f)) => Some(file("client-certificate", f)?),
            _ => None,
        };
        let key = match (yaml_str(&user, "client-key-data"), yaml_str(&user, "client-key")) {
            (Some(d), _) => Some(decode("client-key-data", d)?),
            (None, Some(f)) => Some(file("client-key", f)?),
            _ => None,
        };
        if let (Some(cert), Some(key)) = (cert, key) {
            let pem =
                format!("{}\n{}", String::from_utf8_lossy(&cert), String::from_utf8_lossy(&key));
            tls.identity_pem = Some(Secret::new(pem));
        }
        let token = if let Some(t) = yaml_str(&user, "token") {
            Some(Secret::new(t))
        } else if let Some(f) = yaml_str(&user, "tokenFile") {
            let t = file("tokenFile", f)?;
            Some(Secret::new(String::from_utf8_lossy(&t).trim()))
        } else if let Some(exec) = user.get("exec") {
            Some(exec_token(exec).map_err(|m| fail(format!("user exec plugin: {m}")))?)
        } else {
            None
        };
        Self::connect(
            server,
            token,
            &tls,
            retry,
            format!("kubeconfig {shown} (context {context_name})"),
        )
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&'static str>,
        body: Option<Secret>,
        what: &str,
    ) -> Result<(u16, Value), KubeError> {
        let mut url = self.server.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        let headers = self
            .token
            .iter()
            .map(|t| (AUTHORIZATION, Secret::new(format!("Bearer {}", t.expose()))))
            .collect();
        let request = Request {
            method,
            url,
            shown: what.to_string(),
            headers,
            content_type: body.as_ref().and(content_type),
            body,
            timeout: TIMEOUT,
            trusted_hosts: Vec::new(),
        };
        let response = self.http.send(&request).await?;
        Ok((response.status.as_u16(), response.json().unwrap_or(Value::Null)))
    }

    /// A `Status` answer as an error; a 403 names the RBAC rule to add.
    fn refused(&self, what: &str, code: u16, doc: &Value, rule: &Rule) -> KubeError {
        let hint = match code {
            401 => format!(": the credentials from {} were not accepted", self.source),
            403 => format!(
                ": grant it in a Role in namespace {}: rules: [{{ apiGroups: [\"{}\"], resources: [\"{}\"], verbs: [\"{}\"] }}]",
                rule.namespace, rule.group, rule.resource, rule.verb
            ),
            _ => String::new(),
        };
        KubeError::Api {
            what: what.to_string(),
            code,
            reason: yaml_str(doc, "reason").unwrap_or("Failure").to_string(),
            message: crate::secret::redact(yaml_str(doc, "message").unwrap_or("no message")),
            hint,
        }
    }

    /// The Secret's data, decoded, and its resourceVersion; none when it is absent.
    pub async fn read_secret(&self, namespace: &str, name: &str) -> Result<SecretData, KubeError> {
        let what = format!("read Secret {namespace}/{name}");
        let (code, doc) =
            self.call(Method::GET, &secret_path(namespace, name), None, None, &what).await?;
        match code {
            200 => {
                let mut data = BTreeMap::new();
                for (k, v) in doc["data"].as_object().into_iter().flatten() {
                    let bytes = STANDARD
                        .decode(v.as_str().unwrap_or(""))
                        .map_err(|_| KubeError::Config(format!("{what}: key {k} is not base64")))?;
                    data.insert(k.clone(), Secret::new(String::from_utf8_lossy(&bytes)));
                }
                Ok(SecretData {
                    resource_version: doc["metadata"]["resourceVersion"]
                        .as_str()
                        .map(str::to_string),
                    data,
                })
            }
            404 => Ok(SecretData { resource_version: None, data: BTreeMap::new() }),
            _ => Err(self.refused(&what, code, &doc, &Rule::secrets(namespace, "get"))),
        }
    }

    /// Sets `set` and removes `remove` in the Secret, only if it is still at
    /// `read` (its resourceVersion; None: create it, failing if it now exists).
    /// Returns the new resourceVersion.
    pub async fn write_secret(
        &self,
        namespace: &str,
        name: &str,
        read: Option<&str>,
        set: &BTreeMap<String, Secret>,
        remove: &[String],
    ) -> Result<String, KubeError> {
        let what = format!("write Secret {namespace}/{name}");
        let mut data = serde_json::Map::new();
        for (k, v) in set {
            data.insert(k.clone(), json!(STANDARD.encode(v.expose())));
        }
        for k in remove {
            data.insert(k.clone(), Value::Null);
        }
        let (method, path, content_type, body, verb) = match read {
            Some(rv) => (
                Method::PATCH,
                secret_path(namespace, name),
                "application/strategic-merge-patch+json",
                json!({ "metadata": { "resourceVersion": rv }, "data": data }),
                "patch",
            ),
            None => (
                Method::POST,
                format!("/api/v1/namespaces/{}/secrets", encode(namespace)),
                "application/json",
                json!({ "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": { "name": name, "namespace": namespace,
                                      "labels": { "app.kubernetes.io/managed-by": "rotagate" } },
                        "data": data }),
                "create",
            ),
        };
        let body = Secret::new(body.to_string());
        let (code, doc) = self.call(method, &path, Some(content_type), Some(body), &what).await?;
        match code {
            200 | 201 => {
                doc["metadata"]["resourceVersion"].as_str().map(str::to_string).ok_or_else(|| {
                    KubeError::Config(format!("{what}: no resourceVersion in the answer"))
                })
            }
            409 => Err(KubeError::Conflict {
                what,
                read: read.unwrap_or("none: it did not exist").to_string(),
            }),
            _ => Err(self.refused(&what, code, &doc, &Rule::secrets(namespace, verb))),
        }
    }

    /// Restarts a Deployment's pods by stamping its pod template, as `kubectl rollout
    /// restart` does.
    pub async fn restart_deployment(
        &self,
        namespace: &str,
        name: &str,
        at: &str,
    ) -> Result<(), KubeError> {
        let what = format!("restart Deployment {namespace}/{name}");
        let body = json!({ "spec": { "template": { "metadata": { "annotations": {
            "kubectl.kubernetes.io/restartedAt": at } } } } });
        let (code, doc) = self
            .call(
                Method::PATCH,
                &format!(
                    "/apis/apps/v1/namespaces/{}/deployments/{}",
                    encode(namespace),
                    encode(name)
                ),
                Some("application/strategic-merge-patch+json"),
                Some(Secret::public(body.to_string())),
                &what,
            )
            .await?;
        if code == 200 {
            Ok(())
        } else {
            let rule = Rule::new(namespace, "apps", "deployments", "patch");
            Err(self.refused(&what, code, &doc, &rule))
        }
    }

    /// Whether the caller may `verb` the resource (a SelfSubjectAccessReview).
    pub async fn allowed(
        &self,
        namespace: &str,
        group: &str,
        resource: &str,
        verb: &str,
        name: Option<&str>,
    ) -> Result<bool, KubeError> {
        let what = format!("ask whether rotagate may {verb} {resource} in {namespace}");
        let mut attributes = json!({ "namespace": namespace, "group": group,
                                     "resource": resource, "verb": verb });
        if let Some(name) = name {
            attributes["name"] = json!(name);
        }
        let review = json!({ "apiVersion": "authorization.k8s.io/v1",
                             "kind": "SelfSubjectAccessReview",
                             "spec": { "resourceAttributes": attributes } });
        let (code, doc) = self
            .call(
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Some("application/json"),
                Some(Secret::public(review.to_string())),
                &what,
            )
            .await?;
        if code == 200 || code == 201 {
            Ok(doc["status"]["allowed"].as_bool().unwrap_or(false))
        } else {
            let rule =
                Rule::new(namespace, "authorization.k8s.io", "selfsubjectaccessreviews", "create");
            Err(self.refused(&what, code, &doc, &rule))
        }
    }
}

/// The RBAC rule a refusal asks for.
struct Rule {
    namespace: String,
    group: &'static str,
    resource: &'static str,
    verb: &'static str,
}

impl Rule {
    fn new(
        namespace: &str,
        group: &'static str,
        resource: &'static str,
        verb: &'static str,
    ) -> Rule {
        Rule { namespace: namespace.to_string(), group, resource, verb }
    }

    fn secrets(namespace: &str, verb: &'static str) -> Rule {
        Rule::new(namespace, "", "secrets", verb)
    }
}

fn secret_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{}/secrets/{}", encode(namespace), encode(name))
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// Runs a kubeconfig `exec` credential plugin (`aws eks get-token`,
/// `gke-gcloud-auth-plugin`) and returns the token of its ExecCredential.
fn exec_token(exec: &Value) -> Result<Secret, String> {
    let command = yaml_str(exec, "command").ok_or("no command")?;
    let mut cmd = std::process::Command::new(command);
    for arg in exec.get("args").and_then(Value::as_array).into_iter().flatten() {
        cmd.arg(arg.as_str().unwrap_or_default());
    }
    for var in exec.get("env").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(n), Some(v)) = (yaml_str(var, "name"), yaml_str(var, "value")) {
            cmd.env(n, v);
        }
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {command}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{command} failed: {}", crate::secret::redact(stderr.trim())));
    }
    let credential: Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| format!("{command} did not print an ExecCredential"))?;
    credential["status"]["token"]
        .as_str()
        .map(Secret::new)
        .ok_or_else(|| format!("{command}'s ExecCredential holds no status.token"))
}
