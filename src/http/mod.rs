//! The one HTTP client every provider and probe uses: timeouts, bounded retries with
//! exponential backoff and jitter on 5xx, 429 and connection errors, `Retry-After` and
//! `x-ratelimit-reset` honoured, and redirects that carry credentials only to trusted
//! hosts.
//!
//! Rendered URLs may hold secrets (a deploy hook token), so errors name the request by
//! the caller's `shown` text (the template), never by its URL.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use time::OffsetDateTime;
use url::Url;

use crate::secret::Secret;

const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// A server asking to wait longer than this fails the request instead.
    pub max_server_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_server_wait: Duration::from_secs(120),
        }
    }
}

/// Extra TLS trust for a client: a CA bundle and a client identity (certificate and
/// private key, PEM, held as a secret).
#[derive(Default)]
pub struct Tls {
    pub ca_pem: Option<Vec<u8>>,
    pub identity_pem: Option<Secret>,
}

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    retry: RetryPolicy,
}

pub struct Request {
    pub method: Method,
    pub url: Url,
    /// How the request is named in errors and logs (a template, not the rendered URL).
    pub shown: String,
    pub headers: Vec<(HeaderName, Secret)>,
    pub body: Option<Secret>,
    pub content_type: Option<&'static str>,
    pub timeout: Duration,
    /// Where a redirect may take the headers and body besides the request's own
    /// origin: `host` (on the scheme's default port) or `host:port`. Others get neither.
    pub trusted_hosts: Vec<String>,
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{shown}: {message}")]
    Transport { shown: String, message: String },
    #[error("{shown}: {message}")]
    Redirect { shown: String, message: String },
    #[error(
        "{shown}: rate limited and asked to wait {wait}s, longer than rotagate waits within a step; the next run retries"
    )]
    RateLimited { shown: String, wait: u64 },
}

/// One try of a request: worth retrying (with what came back, and how long the server
/// asked to wait) or final.
pub(crate) enum Attempt<R, E> {
    Retry { answer: Option<R>, error: Option<E>, wait: Option<Duration> },
    Fatal(E),
}

/// How a request ended after its retries.
pub(crate) enum Retried<R, E> {
    Answer(R),
    Error(E),
    /// The server asked to wait longer than `max_server_wait`.
    WaitTooLong(Duration),
    /// Every attempt failed with nothing to show.
    Exhausted,
}

/// What a retried answer says in the debug log.
pub(crate) trait Answer {
    fn status(&self) -> u16;
}

impl Answer for Response {
    fn status(&self) -> u16 {
        self.status.as_u16()
    }
}

impl RetryPolicy {
    /// Tries `attempt` up to `attempts` times with jittered exponential delays; a
    /// server's own wait wins over the backoff, within `max_server_wait`.
    pub(crate) async fn run<R: Answer, E: std::fmt::Display, Fut>(
        &self,
        request: &str,
        attempt: impl FnMut() -> Fut,
    ) -> Retried<R, E>
    where
        Fut: Future<Output = Result<R, Attempt<R, E>>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter();
        let max_wait = self.max_server_wait;
        let outcome = attempt
            .retry(backoff)
            .when(|a| matches!(a, Attempt::Retry { .. }))
            .adjust(|a, delay| match a {
                Attempt::Retry { wait: Some(w), .. } if *w <= max_wait => delay.map(|d| d.max(*w)),
                Attempt::Retry { wait: Some(_), .. } => None,
                _ => delay,
            })
            .notify(|a, delay| {
                if let Attempt::Retry { answer, error, .. } = a {
                    let why = match (answer, error) {
                        (Some(r), _) => format!("status {}", r.status()),
                        (_, Some(e)) => e.to_string(),
                        _ => String::new(),
                    };
                    tracing::debug!(request, %why, ?delay, "retrying");
                }
            })
            .await;
        match outcome {
            Ok(answer) => Retried::Answer(answer),
            Err(Attempt::Fatal(e)) => Retried::Error(e),
            Err(Attempt::Retry { wait: Some(w), .. }) if w > max_wait => Retried::WaitTooLong(w),
            Err(Attempt::Retry { answer: Some(r), .. }) => Retried::Answer(r),
            Err(Attempt::Retry { error: Some(e), .. }) => Retried::Error(e),
            Err(Attempt::Retry { .. }) => Retried::Exhausted,
        }
    }
}

impl HttpClient {
    pub fn new(retry: RetryPolicy) -> Result<HttpClient, HttpError> {
        Self::with_tls(retry, &Tls::default())
    }

    /// A client that also trusts `tls.ca_pem` (a private cluster's CA) and presents
    /// `tls.identity_pem` (a client certificate and its key) where asked.
    pub fn with_tls(retry: RetryPolicy, tls: &Tls) -> Result<HttpClient, HttpError> {
        let fail = |what: &str, e: reqwest::Error| HttpError::Transport {
            shown: "http client".into(),
            message: format!("{what}: {e}"),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("rotagate/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by hand so credentials reach only trusted hosts.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10));
        if let Some(pem) = &tls.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| fail("the CA certificate is not PEM", e))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &tls.identity_pem {
            let identity = reqwest::Identity::from_pem(pem.expose().as_bytes())
                .map_err(|e| fail("the client certificate or key is not PEM", e))?;
            builder = builder.identity(identity);
        }
        let client = builder.build().map_err(|e| fail("cannot build", e))?;
        Ok(HttpClient { client, retry })
    }

    /// This client, sending each request once: for calls that must not be repeated
    /// (minting a secret), where a retry after a lost answer would make a second one.
    pub fn without_retries(&self) -> HttpClient {
        HttpClient {
            client: self.client.clone(),
            retry: RetryPolicy { attempts: 1, ..self.retry.clone() },
        }
    }

    /// Sends `req`, retrying transient failures. A final non-2xx status is returned as a
    /// response for the caller to judge.
    pub async fn send(&self, req: &Request) -> Result<Response, HttpError> {
        match self.retry.run(&req.shown, || self.attempt(req)).await {
            Retried::Answer(response) => Ok(response),
            Retried::Error(e) => Err(e),
            Retried::WaitTooLong(w) => {
                Err(HttpError::RateLimited { shown: req.shown.clone(), wait: w.as_secs() })
            }
            Retried::Exhausted => Err(HttpError::Transport {
                shown: req.shown.clone(),
                message: "failed after retries".into(),
            }),
        }
    }

    async fn attempt(&self, req: &Request) -> Result<Response, Attempt<Response, HttpError>> {
        let origin = Origin::of(&req.url);
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut with_credentials = true;
        let mut with_body = req.body.is_some();
        tracing::debug!(request = %req.shown, "sending");
        for _ in 0..=MAX_REDIRECTS {
            let mut builder = self.client.request(method.clone(), url.clone()).timeout(req.timeout);
            if with_credentials {
                for (name, value) in &req.headers {
                    let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                        Attempt::Fatal(HttpError::Transport {
                            shown: req.shown.clone(),
                            message: format!("header {name} has a value that cannot be sent"),
                        })
                    })?;
                    v.set_sensitive(true);
                    builder = builder.header(name.clone(), v);
                }
            }
            if with_body && let Some(body) = &req.body {
                if let Some(ct) = req.content_type {
                    builder = builder.header(reqwest::header::CONTENT_TYPE, ct);
                }
                builder = builder.body(body.expose().to_string());
            }
            let response = builder.send().await.map_err(|e| Attempt::Retry {
                answer: None,
                error: Some(transport_error(&req.shown, &e)),
                wait: None,
            })?;
            let status = response.status();
            tracing::trace!(request = %req.shown, status = status.as_u16(), "answered");
            if status.is_redirection()
                && let Some(location) = response.headers().get(LOCATION)
            {
                let next =
                    location.to_str().ok().and_then(|l| url.join(l).ok()).ok_or_else(|| {
                        redirect_error(req, "a redirect without a usable Location")
                    })?;
                let host = Origin::of(&next).shown();
                let trusted = Origin::of(&next) == origin
                    || req.trusted_hosts.iter().any(|h| trusts(h, &next));
                let downgrade = url.scheme() == "https" && next.scheme() != "https";
                if status == StatusCode::SEE_OTHER
                    || (method == Method::POST
                        && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
                {
                    method = Method::GET;
                    with_body = false;
                }
                if !trusted || downgrade {
                    if with_body {
                        return Err(redirect_error(
                            req,
                            &format!(
                                "redirected to {host}, which is not in follow_redirects_to, with a body to re-send; add it (host:port) if it is yours"
                            ),
                        ));
                    }
                    with_credentials = false;
                }
                tracing::debug!(request = %req.shown, to = host, with_credentials, "following a redirect");
                url = next;
                continue;
            }
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|e| Attempt::Retry {
                answer: None,
                error: Some(transport_error(&req.shown, &e)),
                wait: None,
            })?;
            let response = Response { status, headers, body: body.to_vec() };
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || is_rate_limited(&response)
            {
                let wait = server_wait(&response.headers, OffsetDateTime::now_utc());
                return Err(Attempt::Retry { answer: Some(response), error: None, wait });
            }
            return Ok(response);
        }
        Err(redirect_error(req, &format!("more than {MAX_REDIRECTS} redirects")))
    }
}

/// What a redirect must keep for credentials to follow it: scheme, host and port.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn of(url: &Url) -> Origin {
        Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            port: url.port_or_known_default(),
        }
    }

    /// `host:port`, as a `follow_redirects_to` entry would name it.
    fn shown(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Splits a `follow_redirects_to` entry into host and port (`None`: the default port).
/// `None` when the entry is not `host`, `host:port`, `[v6]` or `[v6]:port`.
pub fn parse_trusted_host(entry: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match entry.strip_prefix('[') {
        Some(rest) => {
            let (addr, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{addr}]"), port)
        }
        None => match entry.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (entry.to_string(), None),
        },
    };
    let valid_host = !host.is_empty()
        && !host.contains(['/', '{', '}', '@', '?', '#', ' '])
        && Url::parse(&format!("https://{host}/")).is_ok();
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
    };
    valid_host.then(|| (host.to_ascii_lowercase(), port))
}

/// A listed entry trusts `url` when host and port both match; an entry without a port
/// means the default port of the URL's scheme.
fn trusts(entry: &str, url: &Url) -> bool {
    let Some((host, port)) = parse_trusted_host(entry) else {
        return false;
    };
    let target = Origin::of(url);
    let default = match url.scheme() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    target.host == host && target.port == port.or(default)
}

fn redirect_error(req: &Request, message: &str) -> Attempt<Response, HttpError> {
    Attempt::Fatal(HttpError::Redirect { shown: req.shown.clone(), message: message.to_string() })
}

/// reqwest's messages include the URL, which may hold a secret; strip it.
fn transport_error(shown: &str, e: &reqwest::Error) -> HttpError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response body broke off"
    } else {
        "the request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    HttpError::Transport {
        shown: shown.to_string(),
        message: if detail.is_empty() { kind.to_string() } else { format!("{kind} ({detail})") },
    }
}

/// GitHub answers its secondary limits with 403 and a `retry-after` or an exhausted
/// `x-ratelimit-remaining`.
fn is_rate_limited(r: &Response) -> bool {
    r.status == StatusCode::FORBIDDEN
        && (r.headers.contains_key("retry-after")
            || r.headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()) == Some("0"))
}

/// How long the server asked to wait: `Retry-After` (seconds or an HTTP date), else
/// `x-ratelimit-reset` (epoch seconds) when the remaining budget is zero.
pub fn server_wait(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    if let Some(v) = headers.get("retry-after").and_then(|v| v.to_str().ok()) {
        if let Ok(secs) = v.trim().parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v.trim()) {
            let at = OffsetDateTime::from(at);
            return Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO));
        }
    }
    let remaining = headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok());
    let reset = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    match (remaining, reset) {
        (Some("0"), Some(reset)) => Some(Duration::from_secs(
            u64::try_from(reset - now.unix_timestamp()).unwrap_or(0).max(1),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_wait_reads_both_forms() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("Tue, 14 Nov 2023 22:13:40 GMT"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(20)));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1700000030"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(30)));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
        assert_eq!(server_wait(&h, now), None);
    }
}
