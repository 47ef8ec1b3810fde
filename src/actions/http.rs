//! `http`: a templated request (a deploy hook, a revoke call); shared request building
//! for the HTTP probes.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::HeaderName;
use serde_json::{Value, json};

use super::{Action, ActionError, Op, StepContext, View};
use crate::config::template::Lookup;
use crate::config::{HttpAction, HttpMethod, Template};
use crate::http::Request;
use crate::secret::Secret;

pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The parts of an HTTP step or probe that become a request.
pub struct RequestSpec<'a> {
    pub method: HttpMethod,
    pub url: &'a Template,
    pub headers: &'a BTreeMap<String, Template>,
    pub body: Option<&'a Template>,
    pub json: Option<&'a Value>,
    pub follow_redirects_to: &'a [String],
    pub timeout: Duration,
}

pub fn render_request(spec: &RequestSpec, view: &View) -> Result<Request, ActionError> {
    let url_text = spec.url.render(view)?;
    let url = url::Url::parse(url_text.expose()).map_err(|_| {
        ActionError::Failed(format!("{} does not render to a valid URL", spec.url.raw()))
    })?;
    let mut headers = Vec::new();
    for (name, value) in spec.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ActionError::Failed(format!("`{name}` is not a header name")))?;
        headers.push((name, value.render(view)?));
    }
    let (body, content_type) = match (spec.body, spec.json) {
        (Some(b), _) => (Some(b.render(view)?), None),
        (None, Some(j)) => (
            Some(Secret::new(render_json(j, view)?.to_string())),
            Some("application/json"),
        ),
        (None, None) => (None, None),
    };
    Ok(Request {
        method: method(spec.method),
        url,
        shown: format!("{} {}", method_name(spec.method), spec.url.raw()),
        headers,
        body,
        content_type,
        timeout: spec.timeout,
        trusted_hosts: spec.follow_redirects_to.to_vec(),
    })
}

/// Renders every string in a JSON template; serialisation then escapes values properly
/// (a PEM's newlines inside a JSON string).
fn render_json(value: &Value, view: &dyn Lookup) -> Result<Value, ActionError> {
    Ok(match value {
        Value::String(s) => {
            Value::String(Template::new(s.clone()).render(view)?.expose().to_string())
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json(i, view))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, view)?)))
                .collect::<Result<_, ActionError>>()?,
        ),
        other => other.clone(),
    })
}

pub fn method_name(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Head => "HEAD",
    }
}

fn method(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Head => Method::HEAD,
    }
}

pub struct HttpStep {
    spec: HttpAction,
}

impl HttpStep {
    pub fn new(spec: HttpAction) -> Self {
        HttpStep { spec }
    }
}

#[async_trait]
impl Action for HttpStep {
    fn describe(&self) -> String {
        format!(
            "http {} {}",
            method_name(self.spec.method),
            self.spec.url.raw()
        )
    }

    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, ActionError> {
        let view = match op {
            Op::Run(view) | Op::Write(view) => view,
            Op::Publish(_) | Op::Unpublish(_) | Op::Restore(_) => {
                return Err(ActionError::Failed(
                    "an http step is a hook or a retire step".into(),
                ));
            }
        };
        let spec = RequestSpec {
            method: self.spec.method,
            url: &self.spec.url,
            headers: &self.spec.headers,
            body: self.spec.body.as_ref(),
            json: self.spec.json.as_ref(),
            follow_redirects_to: &self.spec.follow_redirects_to,
            timeout: self.spec.timeout.map_or(DEFAULT_HTTP_TIMEOUT, |d| d.0),
        };
        let request = render_request(&spec, view)?;
        let response = cx.http.send(&request).await?;
        let status = response.status.as_u16();
        let ok = if self.spec.expect_status.is_empty() {
            response.status.is_success()
        } else {
            self.spec.expect_status.contains(&status)
        };
        if !ok {
            let body = String::from_utf8_lossy(&response.body);
            let snippet: String = view.redact(&body).chars().take(300).collect();
            return Err(ActionError::Failed(format!(
                "{} answered {status}: {snippet}",
                request.shown
            )));
        }
        Ok(json!({ "status": status }))
    }
}
