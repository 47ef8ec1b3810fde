//! HashiCorp Vault's HTTP API for the KV secrets engine, version 2: read a secret's
//! current version, write a new version with check-and-set, soft-delete the latest
//! version, and ask which capabilities the token holds on a path. Logs in with a token,
//! AppRole or a JWT (GitHub's OIDC token), once per run; namespaces travel in
//! `X-Vault-Namespace`.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderName;
use serde_json::{Value, json};
use url::Url;

use crate::http::{HttpClient, HttpError, Request};
use crate::secret::Secret;

const TIMEOUT: Duration = Duration::from_secs(30);
const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-vault-token");
const NAMESPACE_HEADER: HeaderName = HeaderName::from_static("x-vault-namespace");

/// How rotagate logs in to Vault.
#[derive(Clone)]
pub enum VaultAuth {
    /// A token (ROTAGATE_VAULT_TOKEN).
    Token(Secret),
    /// AppRole: `POST /v1/auth/{mount}/login` with a role id and a secret id.
    AppRole { mount: String, role_id: String, secret_id: Secret },
    /// JWT: `POST /v1/auth/{mount}/login` with a role and the runner's OIDC token for
    /// `audience` (GitHub Actions' `id-token: write`), so no long-lived secret is stored.
    Jwt { mount: String, role: String, audience: String },
}

/// A Vault client: an address, a login method, the namespace logins happen in, and
/// the token a login gave, kept for the run.
#[derive(Clone)]
pub struct VaultClient {
    http: HttpClient,
    address: Url,
    auth: VaultAuth,
    namespace: Option<String>,
    token: std::sync::Arc<tokio::sync::OnceCell<Secret>>,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{what}: Vault answered {status}: {errors}{hint}")]
    Api { what: String, status: u16, errors: String, hint: String },
    /// Check-and-set failed: someone wrote the secret after rotagate read it.
    #[error(
        "{what}: Vault refused the write because the secret changed after rotagate read version {read} (check-and-set); another writer is at work: find out who, then run again to write on top of the new version"
    )]
    Conflict { what: String, read: u64 },
    #[error("{0}")]
    Invalid(String),
}

/// A KV v2 secret's current version: its number (0 when none exists or the latest is
/// deleted) and its data as a JSON object, held as a secret.
pub struct KvVersion {
    pub version: u64,
    pub data: Option<Secret>,
}

impl KvVersion {
    /// The data's keys and values (an empty map when there is none).
    pub fn fields(&self) -> Result<BTreeMap<String, Value>, VaultError> {
        match &self.data {
            None => Ok(BTreeMap::new()),
            Some(d) => serde_json::from_str(d.expose())
                .map_err(|_| VaultError::Invalid("the secret's data is not a JSON object".into())),
        }
    }
}

/// Where one secret lives: the KV v2 mount, the path inside it, and a namespace that
/// overrides the client's.
pub struct KvPath<'a> {
    pub mount: &'a str,
    pub path: &'a str,
    pub namespace: Option<&'a str>,
}

impl KvPath<'_> {
    pub fn show(&self) -> String {
        match self.namespace {
            Some(ns) => format!("{}/{} (namespace {ns})", self.mount, self.path),
            None => format!("{}/{}", self.mount, self.path),
        }
    }

    /// The API path the policy must allow, e.g. `secret/data/app/signing`.
    pub fn data_path(&self) -> String {
        format!("{}/data/{}", self.mount, self.path)
    }
}

impl VaultClient {
    pub fn new(
        http: HttpClient,
        address: &str,
        auth: VaultAuth,
        namespace: Option<String>,
    ) -> Result<VaultClient, VaultError> {
        let address = Url::parse(address).map_err(|e| {
            VaultError::Invalid(format!("the Vault address `{address}` is not a URL ({e})"))
        })?;
        Ok(VaultClient { http, address, auth, namespace, token: Default::default() })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.address.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/v1/{path}"));
        url
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        namespace: Option<&str>,
        token: Option<&Secret>,
        shown: String,
        body: Option<Secret>,
    ) -> Result<(u16, Value), VaultError> {
        let mut headers = Vec::new();
        if let Some(token) = token {
            headers.push((TOKEN_HEADER, token.clone()));
        }
        if let Some(ns) = namespace.or(self.namespace.as_deref()) {
            headers.push((NAMESPACE_HEADER, Secret::public(ns)));
        }
        let request = Request {
            method,
            url: self.url(path),
            shown: shown.clone(),
            headers,
            content_type: body.as_ref().map(|_| "application/json"),
            body,
            timeout: TIMEOUT,
            trusted_hosts: Vec::new(),
        };
        let response = self.http.send(&request).await?;
        let status = response.status.as_u16();
        let doc = response.json().unwrap_or(Value::Null);
        Ok((status, doc))
    }

    fn refused(what: String, status: u16, doc: &Value, policy_path: Option<&str>) -> VaultError {
        let errors: Vec<&str> =
            doc["errors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let errors = if errors.is_empty() {
            "no message".to_string()
        } else {
            crate::secret::redact(&errors.join("; "))
        };
        let hint = match (status, policy_path) {
            (403, Some(path)) => format!(
                ": the token's policy must allow `create`, `read` and `update` on `{path}` (path \"{path}\" {{ capabilities = [\"create\", \"read\", \"update\"] }})"
            ),
            (403, None) => {
                ": check the login (ROTAGATE_VAULT_TOKEN, the AppRole or JWT role) and its policies"
                    .to_string()
            }
            (404, _) => ": check the mount (a KV version 2 engine) and the address".to_string(),
            _ => String::new(),
        };
        VaultError::Api { what, status, errors, hint }
    }

    /// The token for this run: the configured one, or one a login returns (once).
    async fn token(&self) -> Result<&Secret, VaultError> {
        self.token
            .get_or_try_init(|| async {
                let (mount, body, how) = match &self.auth {
                    VaultAuth::Token(t) => return Ok(t.clone()),
                    VaultAuth::AppRole { mount, role_id, secret_id } => (
                        mount,
                        Secret::new(
                            json!({ "role_id": role_id, "secret_id": secret_id.expose() })
                                .to_string(),
                        ),
                        "AppRole",
                    ),
                    VaultAuth::Jwt { mount, role, audience } => {
                        let jwt = self.oidc_token(audience).await?;
                        (
                            mount,
                            Secret::new(json!({ "role": role, "jwt": jwt.expose() }).to_string()),
                            "JWT",
                        )
                    }
                };
                let what = format!("log in to Vault with {how} at auth/{mount}");
                let (status, doc) = self
                    .call(
                        Method::POST,
                        &format!("auth/{mount}/login"),
                        None,
                        None,
                        what.clone(),
                        Some(body),
                    )
                    .await?;
                if !(200..300).contains(&status) {
                    return Err(Self::refused(what, status, &doc, None));
                }
                let token = doc["auth"]["client_token"].as_str().ok_or_else(|| {
                    VaultError::Invalid(format!("{what}: the answer holds no auth.client_token"))
                })?;
                Ok(Secret::new(token))
            })
            .await
    }

    /// GitHub Actions' OIDC token for `audience`, from the runner's token service.
    async fn oidc_token(&self, audience: &str) -> Result<Secret, VaultError> {
        let missing = || {
            VaultError::Invalid(
                "the JWT login needs GitHub's OIDC token: give the workflow `permissions: id-token: write` (ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set)".into(),
            )
        };
        let url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").map_err(|_| missing())?;
        let bearer =
            crate::secret::process_secret("ACTIONS_ID_TOKEN_REQUEST_TOKEN").ok_or_else(missing)?;
        let mut url = Url::parse(&url)
            .map_err(|_| VaultError::Invalid("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL".into()))?;
        url.query_pairs_mut().append_pair("audience", audience);
        let shown = "request GitHub's OIDC token".to_string();
        let request = Request {
            method: Method::GET,
            url,
            shown: shown.clone(),
            headers: vec![(
                reqwest::header::AUTHORIZATION,
                Secret::new(format!("Bearer {}", bearer.expose())),
            )],
            body: None,
            content_type: None,
            timeout: TIMEOUT,
            trusted_hosts: Vec::new(),
        };
        let response = self.http.send(&request).await?;
        let doc = response.json().unwrap_or(Value::Null);
        match doc["value"].as_str() {
            Some(jwt) if response.status.is_success() => Ok(Secret::new(jwt)),
            _ => Err(VaultError::Invalid(format!(
                "{shown}: the runner answered {} without a token",
                response.status.as_u16()
            ))),
        }
    }

    /// A call on `at`'s data path with the run's token.
    async fn data_call(
        &self,
        method: Method,
        at: &KvPath<'_>,
        what: &str,
        body: Option<Secret>,
    ) -> Result<(u16, Value), VaultError> {
        let token = self.token().await?;
        self.call(method, &at.data_path(), at.namespace, Some(token), what.to_string(), body).await
    }

    /// The secret's current version; version 0 and no data when it does not exist or
    /// its latest version is deleted.
    pub async fn read(&self, at: &KvPath<'_>) -> Result<KvVersion, VaultError> {
        let what = format!("read {}", at.show());
        let (status, doc) = self.data_call(Method::GET, at, &what, None).await?;
        match status {
            200 => {
                let version = doc["data"]["metadata"]["version"].as_u64().unwrap_or(0);
                let data = &doc["data"]["data"];
                // Every value of the secret is one: the keys rotagate does not set too.
                for value in data.as_object().into_iter().flat_map(|m| m.values()) {
                    if let Value::String(s) = value {
                        crate::secret::register(s);
                    }
                }
                Ok(KvVersion {
                    version,
                    data: data.is_object().then(|| Secret::new(data.to_string())),
                })
            }
            // A deleted latest version answers 404 with its metadata: writes go on
            // from its number.
            404 => Ok(KvVersion {
                version: doc["data"]["metadata"]["version"].as_u64().unwrap_or(0),
                data: None,
            }),
            _ => Err(Self::refused(what, status, &doc, Some(&at.data_path()))),
        }
    }

    /// Writes `data` (a JSON object, secret) as a new version if the current one is
    /// still `read` (check-and-set; 0 = only if none exists). Returns the new version.
    pub async fn write(
        &self,
        at: &KvPath<'_>,
        data: &Secret,
        read: u64,
    ) -> Result<u64, VaultError> {
        let what = format!("write {}", at.show());
        let body =
            Secret::new(format!("{{\"options\":{{\"cas\":{read}}},\"data\":{}}}", data.expose()));
        let (status, doc) = self.data_call(Method::POST, at, &what, Some(body)).await?;
        if (200..300).contains(&status) {
            return doc["data"]["version"].as_u64().ok_or_else(|| {
                VaultError::Invalid(format!("{what}: the answer holds no data.version"))
            });
        }
        let cas_failed = doc["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|e| e.contains("check-and-set"));
        if status == 400 && cas_failed {
            return Err(VaultError::Conflict { what, read });
        }
        Err(Self::refused(what, status, &doc, Some(&at.data_path())))
    }

    /// Soft-deletes the latest version (`undelete` brings it back; history is kept).
    pub async fn delete_latest(&self, at: &KvPath<'_>) -> Result<(), VaultError> {
        let what = format!("delete the latest version of {}", at.show());
        let (status, doc) = self.data_call(Method::DELETE, at, &what, None).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(Self::refused(what, status, &doc, Some(&at.data_path())))
        }
    }

    /// The capabilities the token holds on `at`'s data path
    /// (`POST /v1/sys/capabilities-self`).
    pub async fn capabilities(&self, at: &KvPath<'_>) -> Result<Vec<String>, VaultError> {
        let token = self.token().await?;
        let path = at.data_path();
        let what = format!("ask Vault for the token's capabilities on {path}");
        let (status, doc) = self
            .call(
                Method::POST,
                "sys/capabilities-self",
                at.namespace,
                Some(token),
                what.clone(),
                Some(Secret::public(json!({ "paths": [path] }).to_string())),
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(Self::refused(what, status, &doc, None));
        }
        let caps = doc[&path]
            .as_array()
            .or_else(|| doc["capabilities"].as_array())
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        Ok(caps)
    }
}
