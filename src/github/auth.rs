//! How rotagate authenticates to GitHub, and the client's options.

use super::{GithubError, Limits};
use crate::http::RetryPolicy;
use crate::secret::Secret;

pub use super::{DEFAULT_API, DEFAULT_CONCURRENCY};

/// How rotagate authenticates to GitHub.
pub enum Credentials {
    /// ROTAGATE_GITHUB_APP_ID and ROTAGATE_GITHUB_APP_KEY.
    App { id: u64, key: Secret },
    /// ROTAGATE_GITHUB_TOKEN: a personal or fine-grained token.
    Token(Secret),
    /// GITHUB_TOKEN: the workflow's own token, with its limits.
    WorkflowToken(Secret),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    App,
    Token,
    WorkflowToken,
}

impl Credentials {
    /// The first of: a GitHub App, ROTAGATE_GITHUB_TOKEN, GITHUB_TOKEN.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, GithubError> {
        let get = |n: &str| var(n).filter(|v| !v.trim().is_empty());
        match (get("ROTAGATE_GITHUB_APP_ID"), get("ROTAGATE_GITHUB_APP_KEY")) {
            (Some(id), Some(key)) => {
                let id = id.trim().parse().map_err(|_| {
                    GithubError::Auth("ROTAGATE_GITHUB_APP_ID is not a number (the App ID from the App's settings page)".into())
                })?;
                return Ok(Some(Credentials::App { id, key: Secret::new(key) }));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(GithubError::Auth(
                    "set both ROTAGATE_GITHUB_APP_ID and ROTAGATE_GITHUB_APP_KEY (the App's private key PEM)".into(),
                ));
            }
            (None, None) => {}
        }
        if let Some(t) = get("ROTAGATE_GITHUB_TOKEN") {
            return Ok(Some(Credentials::Token(Secret::new(t.trim()))));
        }
        Ok(get("GITHUB_TOKEN").map(|t| Credentials::WorkflowToken(Secret::new(t.trim()))))
    }
}

pub struct Options {
    /// The REST API root: `https://api.github.com`, or `https://HOST/api/v3`.
    pub api: String,
    /// `None`: do not pace (GitHub Enterprise Server, where limits are off by default).
    pub limits: Option<Limits>,
    /// Requests in flight at once for bulk writes.
    pub concurrency: usize,
    pub retry: RetryPolicy,
}

impl Options {
    pub fn for_api(
        api: &str,
        secondary_limits: Option<bool>,
        concurrency: Option<usize>,
    ) -> Options {
        let api = api.trim_end_matches('/').to_string();
        let paced = secondary_limits.unwrap_or(api == DEFAULT_API);
        Options {
            limits: paced.then_some(Limits::GITHUB_COM),
            concurrency: concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            retry: RetryPolicy::default(),
            api,
        }
    }
}
