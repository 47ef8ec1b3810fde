//! Vercel's REST API for project environment variables: list, read, upsert, delete,
//! with the team chosen by `teamId` and a bearer token.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::http::{HttpClient, HttpError, Request};
use crate::secret::Secret;

pub const DEFAULT_API: &str = "https://api.vercel.com";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A Vercel API client: a token, an API base and the shared HTTP client.
#[derive(Clone)]
pub struct Vercel {
    http: HttpClient,
    api: Url,
    token: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum VercelError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{what}: Vercel answered {status} {code}: {message}{hint}")]
    Api { what: String, status: u16, code: String, message: String, hint: String },
    #[error("{0}")]
    Invalid(String),
}

/// One environment variable as Vercel lists it. `value` is absent for `sensitive`
/// variables and encrypted in lists; [`Vercel::decrypted`] reads an `encrypted` one.
#[derive(Debug, Clone, Deserialize)]
pub struct EnvVar {
    pub id: String,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub target: Vec<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// The project (and team) an env var lives in.
pub struct Project<'a> {
    pub project: &'a str,
    pub team: Option<&'a str>,
}

impl Project<'_> {
    fn show(&self) -> String {
        match self.team {
            Some(team) => format!("Vercel project {} (team {team})", self.project),
            None => format!("Vercel project {}", self.project),
        }
    }
}

impl Vercel {
    pub fn new(http: HttpClient, api: &str, token: Secret) -> Result<Vercel, VercelError> {
        let api = Url::parse(api).map_err(|e| {
            VercelError::Invalid(format!("the Vercel API URL `{api}` is not a URL ({e})"))
        })?;
        Ok(Vercel { http, api, token })
    }

    fn url(&self, path: &str, project: &Project, extra: &[(&str, &str)]) -> Url {
        let mut url = self.api.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        {
            let mut q = url.query_pairs_mut();
            if let Some(team) = project.team {
                q.append_pair("teamId", team);
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        shown: String,
        body: Option<Secret>,
    ) -> Result<Value, VercelError> {
        let request = Request {
            method,
            url,
            shown: shown.clone(),
            headers: vec![(AUTHORIZATION, Secret::new(format!("Bearer {}", self.token.expose())))],
            content_type: body.as_ref().map(|_| "application/json"),
            body,
            timeout: TIMEOUT,
            trusted_hosts: Vec::new(),
        };
        let response = self.http.send(&request).await?;
        let doc = response.json().unwrap_or(Value::Null);
        if response.status.is_success() {
            return Ok(doc);
        }
        let status = response.status.as_u16();
        let error = &doc["error"];
        let code = error["code"].as_str().unwrap_or("error").to_string();
        let hint = match status {
            401 | 403 => ": the token in ROTAGATE_VERCEL_TOKEN is invalid or has no access to this project; create one scoped to the project's team and set `team` to its id".to_string(),
            404 => ": check the project name or id and `team` (a team project is not found without its teamId)".to_string(),
            _ => String::new(),
        };
        Err(VercelError::Api {
            what: shown,
            status,
            code,
            message: error["message"].as_str().unwrap_or("no message").to_string(),
            hint,
        })
    }

    /// Every environment variable of the project.
    pub async fn list(&self, project: &Project<'_>) -> Result<Vec<EnvVar>, VercelError> {
        let path = format!("/v10/projects/{}/env", encode(project.project));
        let doc = self
            .call(
                Method::GET,
                self.url(&path, project, &[]),
                format!("list env vars of {}", project.show()),
                None,
            )
            .await?;
        serde_json::from_value(doc["envs"].clone()).map_err(|e| {
            VercelError::Invalid(format!(
                "Vercel's list of env vars of {} is not as documented: {e}",
                project.show()
            ))
        })
    }

    /// The decrypted value of an `encrypted` variable.
    pub async fn decrypted(
        &self,
        project: &Project<'_>,
        var: &EnvVar,
    ) -> Result<Option<Secret>, VercelError> {
        let path = format!("/v1/projects/{}/env/{}", encode(project.project), encode(&var.id));
        let doc = self
            .call(
                Method::GET,
                self.url(&path, project, &[]),
                format!("read env var {} of {}", var.key, project.show()),
                None,
            )
            .await?;
        Ok(doc["value"].as_str().map(Secret::new))
    }

    /// Creates or updates `vars` in one request; any variable Vercel reports as failed
    /// fails the whole call.
    pub async fn upsert(&self, project: &Project<'_>, vars: &[Value]) -> Result<(), VercelError> {
        let path = format!("/v10/projects/{}/env", encode(project.project));
        let keys: Vec<&str> = vars.iter().filter_map(|v| v["key"].as_str()).collect();
        let shown = format!("upsert {} in {}", keys.join(", "), project.show());
        let body = Secret::new(Value::Array(vars.to_vec()).to_string());
        let doc = self
            .call(
                Method::POST,
                self.url(&path, project, &[("upsert", "true")]),
                shown.clone(),
                Some(body),
            )
            .await?;
        let failed: Vec<String> = doc["failed"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let e = &f["error"];
                format!(
                    "{}: {} ({})",
                    e["envVarKey"].as_str().or(e["key"].as_str()).unwrap_or("?"),
                    e["message"].as_str().unwrap_or("failed"),
                    e["code"].as_str().unwrap_or("error")
                )
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(VercelError::Invalid(format!(
                "{shown}: Vercel did not write {}",
                failed.join("; ")
            )))
        }
    }

    pub async fn delete(&self, project: &Project<'_>, var: &EnvVar) -> Result<(), VercelError> {
        let path = format!("/v9/projects/{}/env/{}", encode(project.project), encode(&var.id));
        self.call(
            Method::DELETE,
            self.url(&path, project, &[]),
            format!("delete env var {} of {}", var.key, project.show()),
            None,
        )
        .await
        .map(|_| ())
    }
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
