//! Building a request from an HTTP step's, probe's or mint's templates.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderName;
use serde_json::Value;

use super::{StepError, View};
use crate::config::template::Lookup;
use crate::config::{Dur, HttpAction, HttpMethod, HttpProbe, Template};
use crate::http::Request;
use crate::secret::Secret;

const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The parts of an HTTP step or probe that become a request.
pub struct RequestSpec<'a> {
    pub method: HttpMethod,
    pub url: &'a Template,
    pub headers: &'a BTreeMap<String, Template>,
    pub body: Option<&'a Template>,
    pub json: Option<&'a Value>,
    pub follow_redirects_to: &'a [String],
    /// Default 30s.
    pub timeout: Option<Dur>,
}

/// An HTTP step and an HTTP probe (and a mint, which is an HTTP step's request) name the
/// parts of their request alike.
macro_rules! request_of {
    ($($spec:ty),*) => {$(
        impl<'a> From<&'a $spec> for RequestSpec<'a> {
            fn from(spec: &'a $spec) -> Self {
                RequestSpec {
                    method: spec.method,
                    url: &spec.url,
                    headers: &spec.headers,
                    body: spec.body.as_ref(),
                    json: spec.json.as_ref(),
                    follow_redirects_to: &spec.follow_redirects_to,
                    timeout: spec.timeout,
                }
            }
        }
    )*};
}

request_of!(HttpAction, HttpProbe);

pub fn render_request(spec: &RequestSpec, view: &View) -> Result<Request, StepError> {
    let url_text = spec.url.render(view)?;
    let url = url::Url::parse(url_text.expose()).map_err(|_| {
        StepError::Failed(format!("{} does not render to a valid URL", spec.url.raw()))
    })?;
    let mut headers = Vec::new();
    for (name, value) in spec.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| StepError::Failed(format!("`{name}` is not a header name")))?;
        headers.push((name, value.render(view)?));
    }
    let (body, content_type) = match (spec.body, spec.json) {
        (Some(b), _) => (Some(b.render(view)?), None),
        (None, Some(j)) => {
            (Some(Secret::new(render_json(j, view)?.to_string())), Some("application/json"))
        }
        (None, None) => (None, None),
    };
    Ok(Request {
        method: method(spec.method),
        url,
        shown: format!("{} {}", method_name(spec.method), spec.url.raw()),
        headers,
        body,
        content_type,
        timeout: spec.timeout.map_or(DEFAULT_HTTP_TIMEOUT, |d| d.0),
        trusted_hosts: spec.follow_redirects_to.to_vec(),
    })
}

/// Renders every string in a JSON template; serialisation then escapes values properly
/// (a PEM's newlines inside a JSON string).
fn render_json(value: &Value, view: &dyn Lookup) -> Result<Value, StepError> {
    Ok(match value {
        Value::String(s) => {
            Value::String(Template::new(s.clone()).render(view)?.expose().to_string())
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| render_json(i, view)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, view)?)))
                .collect::<Result<_, StepError>>()?,
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
