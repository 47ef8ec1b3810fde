//! The GitHub client: a GitHub App (installation tokens per owner) or a token, every
//! request paced to the secondary limits and retried like every other provider's, and
//! errors that name the permission or setting that is missing.
//!
//! octocrab carries the requests and mints installation tokens; routes are called
//! raw, as GitHub's OpenAPI description spells them.

mod auth;
mod pacing;
mod pages;
mod permissions;
pub mod runs;
mod seal;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Method};
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use auth::{AuthKind, Credentials, Options};
pub use pacing::{Cost, Limits, Pacer};
pub use pages::{MAX_PAGES, PER_PAGE};
pub use permissions::{check_capabilities, hint, status_error};
pub use seal::seal;

use crate::http::{Retried, RetryPolicy};

pub const DEFAULT_API: &str = "https://api.github.com";
pub const DEFAULT_CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub credentials: {0}")]
    Auth(String),
    #[error("GitHub {endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("GitHub answered {status} to {method} {path}: {message}{}", hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default())]
    Status { status: u16, method: String, path: String, message: String, hint: Option<String> },
    #[error("GitHub {0}: rate limited beyond what a step waits; the next run retries")]
    RateLimited(String),
    #[error("GitHub: {0}")]
    Decode(String),
}

impl GithubError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GithubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One request.
pub struct Call<'a> {
    pub method: Method,
    /// The concrete path, `/repos/acme/api/actions/secrets/KEY`.
    pub path: String,
    /// The route template, `PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}`:
    /// pacing budgets and request counts are kept per template.
    pub endpoint: &'static str,
    pub body: Option<&'a Value>,
    pub cost: Cost,
}

impl<'a> Call<'a> {
    /// A read. `endpoint` is the route template as GitHub's docs write it, method first.
    pub fn read(endpoint: &'static str, path: String) -> Call<'a> {
        Call::new(endpoint, path, None, Cost::Read)
    }

    /// A request that changes a setting (a secret, a variable).
    pub fn write(endpoint: &'static str, path: String, body: Option<&'a Value>) -> Call<'a> {
        Call::new(endpoint, path, body, Cost::Write)
    }

    /// A request that creates content (a commit, an issue, a pull request, a comment).
    pub fn create(endpoint: &'static str, path: String, body: &'a Value) -> Call<'a> {
        Call::new(endpoint, path, Some(body), Cost::Create)
    }

    fn new(endpoint: &'static str, path: String, body: Option<&'a Value>, cost: Cost) -> Call<'a> {
        let method = endpoint
            .split_once(' ')
            .and_then(|(method, _)| Method::from_bytes(method.as_bytes()).ok())
            .expect("a route template starts with its method");
        Call { method, path, endpoint, body, cost }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, GithubError> {
        serde_json::from_str(&self.body)
            .map_err(|e| GithubError::Decode(format!("an unexpected answer ({e})")))
    }

    /// GitHub's own `message`.
    pub fn message(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| self.body.chars().take(200).collect())
    }
}

enum Auth {
    App {
        app: Arc<Octocrab>,
        // Shared, not cloned: an Octocrab clone does not share its token cache, and each
        // clone would mint a new installation token.
        installations: tokio::sync::Mutex<HashMap<String, Arc<Octocrab>>>,
    },
    Token(Arc<Octocrab>),
}

struct Inner {
    api: String,
    auth: Auth,
    kind: AuthKind,
    pacer: Pacer,
    retry: RetryPolicy,
    concurrency: usize,
    /// Per-run caches: secrets public keys per scope, repository ids, default branches.
    cache: Mutex<HashMap<String, Value>>,
    login: tokio::sync::OnceCell<String>,
    requests: Mutex<BTreeMap<String, usize>>,
}

#[derive(Clone)]
pub struct GitHub {
    inner: Arc<Inner>,
}

/// What one attempt came back with.
type Attempt = crate::http::Attempt<Reply, GithubError>;

impl crate::http::Answer for Reply {
    fn status(&self) -> u16 {
        self.status
    }
}

impl GitHub {
    pub fn new(credentials: Credentials, options: Options) -> Result<GitHub, GithubError> {
        let builder = || -> Result<octocrab::OctocrabBuilder<_, _, _, _>, GithubError> {
            Octocrab::builder()
                .base_uri(options.api.as_str())
                .map_err(|e| {
                    GithubError::Auth(format!(
                        "GITHUB_API_URL `{}` is not a URL ({e})",
                        options.api
                    ))
                })
                .map(|b| {
                    b.set_connect_timeout(Some(Duration::from_secs(10)))
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .set_write_timeout(Some(Duration::from_secs(30)))
                })
        };
        let build_err =
            |e: octocrab::Error| GithubError::Auth(format!("cannot set up the GitHub client: {e}"));
        let token = |t: &crate::secret::Secret| -> Result<Auth, GithubError> {
            let client = builder()?.personal_token(t.expose().to_string());
            Ok(Auth::Token(Arc::new(client.build().map_err(build_err)?)))
        };
        let (auth, kind) = match credentials {
            Credentials::App { id, key } => {
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(key.expose().as_bytes()).map_err(|_| {
                    GithubError::Auth(
                        "ROTAGATE_GITHUB_APP_KEY is not an RSA private key PEM (download one from the App's settings page)".into(),
                    )
                })?;
                let app =
                    builder()?.app(octocrab::models::AppId(id), key).build().map_err(build_err)?;
                (Auth::App { app: Arc::new(app), installations: Default::default() }, AuthKind::App)
            }
            Credentials::Token(t) => (token(&t)?, AuthKind::Token),
            Credentials::WorkflowToken(t) => (token(&t)?, AuthKind::WorkflowToken),
        };
        Ok(GitHub {
            inner: Arc::new(Inner {
                api: options.api,
                auth,
                kind,
                pacer: Pacer::new(options.limits),
                retry: options.retry,
                concurrency: options.concurrency.max(1),
                cache: Default::default(),
                login: Default::default(),
                requests: Default::default(),
            }),
        })
    }

    pub fn kind(&self) -> AuthKind {
        self.inner.kind
    }

    pub fn api(&self) -> &str {
        &self.inner.api
    }

    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Requests sent per route template (retries included).
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        self.inner.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn cached(&self, key: &str) -> Option<Value> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    pub fn remember(&self, key: &str, value: Value) {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), value);
    }

    /// The client acting for `owner`: with an App, that owner's installation.
    async fn client_for(&self, path: &str) -> Result<Arc<Octocrab>, GithubError> {
        match &self.inner.auth {
            Auth::Token(c) => Ok(c.clone()),
            Auth::App { app, .. } if path.starts_with("/app") => Ok(app.clone()),
            Auth::App { app, installations } => {
                let owner = owner_of(path)
                    .ok_or_else(|| GithubError::Auth(format!("no owner in {path}")))?;
                let mut cached = installations.lock().await;
                if let Some(c) = cached.get(&owner) {
                    return Ok(c.clone());
                }
                let mut id = None;
                for (endpoint, route) in [
                    ("GET /orgs/{org}/installation", format!("/orgs/{owner}/installation")),
                    ("GET /users/{username}/installation", format!("/users/{owner}/installation")),
                ] {
                    let reply = self.send(app, &Call::read(endpoint, route)).await?;
                    if reply.ok() {
                        id = reply.json::<Value>()?.get("id").and_then(Value::as_u64);
                        break;
                    }
                    if reply.status != 404 {
                        return Err(status_error(&Method::GET, endpoint, &reply, self.kind()));
                    }
                }
                let id = id.ok_or_else(|| {
                    GithubError::Auth(format!(
                        "the GitHub App is not installed on {owner}: install it there (the App's settings → Install App) with access to the repositories rotagate writes"
                    ))
                })?;
                tracing::debug!("GitHub App installation {id} for {owner}");
                let client = Arc::new(
                    app.installation(octocrab::models::InstallationId(id))
                        .map_err(|e| GithubError::Auth(format!("installation {id}: {e}")))?,
                );
                cached.insert(owner, client.clone());
                Ok(client)
            }
        }
    }

    /// Sends `call`, retrying transient failures; every status comes back as a reply.
    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, GithubError> {
        let client = self.client_for(&call.path).await?;
        self.send(&client, call).await
    }

    /// Like [`GitHub::call`], but a status outside 2xx (and `allow`) is an error that
    /// names the missing permission.
    pub async fn expect(&self, call: &Call<'_>, allow: &[u16]) -> Result<Reply, GithubError> {
        let reply = self.call(call).await?;
        if reply.ok() || allow.contains(&reply.status) {
            Ok(reply)
        } else {
            Err(status_error(&call.method, call.endpoint, &reply, self.kind())
                .with_path(&call.path))
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: String,
    ) -> Result<T, GithubError> {
        self.expect(&Call::read(endpoint, path), &[]).await?.json()
    }

    async fn send(&self, client: &Octocrab, call: &Call<'_>) -> Result<Reply, GithubError> {
        let retried = self.inner.retry.run(call.endpoint, || self.attempt(client, call));
        match retried.await {
            Retried::Answer(reply) => Ok(reply),
            Retried::Error(e) => Err(e),
            Retried::WaitTooLong(_) => Err(GithubError::RateLimited(call.endpoint.to_string())),
            Retried::Exhausted => Err(GithubError::Transport {
                endpoint: call.endpoint.into(),
                message: "failed after retries".into(),
            }),
        }
    }

    async fn attempt(&self, client: &Octocrab, call: &Call<'_>) -> Result<Reply, Attempt> {
        let _permit = self.inner.pacer.admit(call.endpoint, call.cost).await;
        *self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(call.endpoint.to_string())
            .or_default() += 1;
        tracing::trace!(endpoint = call.endpoint, path = %call.path, "GitHub request");
        let path = call.path.as_str();
        let body = call.body;
        let sent = match call.method {
            Method::GET => client._get(path).await,
            Method::POST => client._post(path, body).await,
            Method::PUT => client._put(path, body).await,
            Method::PATCH => client._patch(path, body).await,
            Method::DELETE => client._delete(path, body).await,
            ref other => {
                return Err(Attempt::Fatal(GithubError::Decode(format!(
                    "method {other} is not used"
                ))));
            }
        };
        let transport = |e: octocrab::Error| Attempt::Retry {
            answer: None,
            error: Some(GithubError::Transport {
                endpoint: call.endpoint.into(),
                message: transport_message(&e),
            }),
            wait: None,
        };
        let response = sent.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = client.body_to_string(response).await.map_err(transport)?;
        let reply = Reply { status, headers, body };
        let limited = (status == 403 || status == 429)
            && (reply.headers.contains_key("retry-after")
                || reply.headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok())
                    == Some("0"));
        if status >= 500 || status == 429 || limited {
            let wait = crate::http::server_wait(&reply.headers, time::OffsetDateTime::now_utc());
            return Err(Attempt::Retry { answer: Some(reply), error: None, wait });
        }
        Ok(reply)
    }

    /// The login rotagate acts as (an App acts as `slug[bot]`).
    pub async fn login(&self) -> Result<String, GithubError> {
        self.inner
            .login
            .get_or_try_init(|| async {
                match &self.inner.auth {
                    Auth::App { app, .. } => {
                        let reply = self.send(app, &Call::read("GET /app", "/app".into())).await?;
                        let v: Value = reply.json()?;
                        let slug = v
                            .get("slug")
                            .and_then(Value::as_str)
                            .ok_or_else(|| GithubError::Decode("GET /app has no slug".into()))?;
                        Ok(format!("{slug}[bot]"))
                    }
                    Auth::Token(_) if self.kind() == AuthKind::WorkflowToken => {
                        Ok("github-actions[bot]".to_string())
                    }
                    Auth::Token(_) => {
                        let v: Value = self.get("GET /user", "/user".into()).await?;
                        v.get("login")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| GithubError::Decode("GET /user has no login".into()))
                    }
                }
            })
            .await
            .cloned()
    }

    /// A repository's default branch (cached for the run).
    pub async fn default_branch(&self, repo: &str) -> Result<String, GithubError> {
        let v = self.repository(repo).await?;
        v.get("default_branch")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GithubError::Decode(format!("{repo} has no default branch")))
    }

    /// GET /repos/{owner}/{repo}, cached for the run.
    pub async fn repository(&self, repo: &str) -> Result<Value, GithubError> {
        let key = format!("repo:{repo}");
        if let Some(v) = self.cached(&key) {
            return Ok(v);
        }
        let v: Value = self.get("GET /repos/{owner}/{repo}", format!("/repos/{repo}")).await?;
        self.remember(&key, v.clone());
        Ok(v)
    }

    /// Runs `f` over `items` with the configured number in flight.
    pub async fn concurrently<T, F, Fut, R>(&self, items: Vec<T>, f: F) -> Vec<R>
    where
        F: Fn(T) -> Fut,
        Fut: std::future::Future<Output = R>,
    {
        use futures::StreamExt;
        futures::stream::iter(items.into_iter().map(f))
            .buffer_unordered(self.concurrency())
            .collect()
            .await
    }
}

impl GithubError {
    fn with_path(self, path: &str) -> GithubError {
        match self {
            GithubError::Status { status, method, message, hint, .. } => {
                GithubError::Status { status, method, path: path.to_string(), message, hint }
            }
            other => other,
        }
    }
}

/// `/repos/{owner}/...`, `/orgs/{org}/...`, `/users/{user}/...` → the owner.
fn owner_of(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    match parts.next()? {
        "repos" | "orgs" | "users" => parts.next().map(str::to_string),
        _ => None,
    }
}

fn transport_message(e: &octocrab::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    message
}

/// Percent-encodes a query or path value.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_prefer_the_app_then_a_token_then_github_token() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
        };
        let app = env(&[
            ("ROTAGATE_GITHUB_APP_ID", "42"),
            ("ROTAGATE_GITHUB_APP_KEY", "pem"),
            ("GITHUB_TOKEN", "t"),
        ]);
        assert!(matches!(
            Credentials::from_env(&app).unwrap(),
            Some(Credentials::App { id: 42, .. })
        ));
        let half = env(&[("ROTAGATE_GITHUB_APP_ID", "42")]);
        assert!(Credentials::from_env(&half).is_err());
        let token = env(&[("ROTAGATE_GITHUB_TOKEN", "pat"), ("GITHUB_TOKEN", "t")]);
        assert!(matches!(Credentials::from_env(&token).unwrap(), Some(Credentials::Token(_))));
        let workflow = env(&[("GITHUB_TOKEN", "t")]);
        assert!(matches!(
            Credentials::from_env(&workflow).unwrap(),
            Some(Credentials::WorkflowToken(_))
        ));
        assert!(Credentials::from_env(&env(&[])).unwrap().is_none());
    }

    #[test]
    fn hints_name_the_permission() {
        let put_secret = "PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}";
        let env_key =
            "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key";
        let cases = [
            (put_secret, 403, AuthKind::App, "\"Secrets: Read and write\""),
            (put_secret, 403, AuthKind::WorkflowToken, "GITHUB_TOKEN cannot write Actions secrets"),
            (
                "POST /repos/{owner}/{repo}/pulls",
                403,
                AuthKind::WorkflowToken,
                "Workflow permissions",
            ),
            (env_key, 404, AuthKind::App, "Settings → Environments"),
        ];
        for (endpoint, status, kind, says) in cases {
            let h = hint(endpoint, status, kind).unwrap();
            assert!(h.contains(says), "{endpoint} {status}: {h}");
        }
        assert_eq!(hint("GET /x", 500, AuthKind::App), None);
    }

    #[test]
    fn owners_come_from_the_path() {
        assert_eq!(owner_of("/repos/acme/api/actions/secrets"), Some("acme".into()));
        assert_eq!(owner_of("/orgs/acme/actions/secrets/X"), Some("acme".into()));
        assert_eq!(owner_of("/app/installations/1"), None);
    }
}
