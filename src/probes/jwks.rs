//! `jwks` probe: a JWKS URL serves a key with the expected kid.

use async_trait::async_trait;
use serde_json::Value;

use super::{Probe, ProbeError, shown_value};
use crate::config::{self, HttpMethod, Template};
use crate::step::{RequestSpec, StepContext, View, render_request};

pub struct JwksProbe {
    spec: config::JwksProbe,
    kid: Template,
}

impl JwksProbe {
    pub fn new(spec: config::JwksProbe) -> Self {
        let kid = spec.kid.clone().unwrap_or_else(|| Template::new("{{ new.kid }}"));
        JwksProbe { spec, kid }
    }
}

/// The kids a JWKS document serves.
pub fn served_kids(doc: &Value) -> Vec<String> {
    doc.get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k.get("kid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl Probe for JwksProbe {
    fn describe(&self) -> String {
        format!("jwks {} serves {}", self.spec.url.raw(), self.kid.raw())
    }

    async fn check(&self, view: &View<'_>, cx: &StepContext<'_>) -> Result<String, ProbeError> {
        let (doc, shown) = fetch_jwks(&self.spec, view, cx).await?;
        let kids = served_kids(&doc);
        let kid = self.kid.render(view)?;
        if kids.iter().any(|k| k == kid.expose()) {
            Ok(format!("{shown} serves kid {}", kid.expose()))
        } else {
            Err(ProbeError::Failed(format!(
                "{shown} does not serve kid {} (it serves: {})",
                shown_value(view, kid.expose()),
                if kids.is_empty() { "no keys".into() } else { kids.join(", ") }
            )))
        }
    }
}

/// GETs the JWKS a probe names; the document and how to name the request in messages.
pub async fn fetch_jwks(
    spec: &config::JwksProbe,
    view: &View<'_>,
    cx: &StepContext<'_>,
) -> Result<(Value, String), ProbeError> {
    let request = render_request(
        &RequestSpec {
            method: HttpMethod::Get,
            url: &spec.url,
            headers: &spec.headers,
            body: None,
            json: None,
            follow_redirects_to: &spec.follow_redirects_to,
            timeout: spec.timeout,
        },
        view,
    )?;
    // A probe makes exactly the attempts its config says: no transport retries inside.
    let response = cx.http.without_retries().send(&request).await?;
    if !response.status.is_success() {
        return Err(ProbeError::Failed(format!(
            "{} answered {}",
            request.shown,
            response.status.as_u16()
        )));
    }
    let doc = response
        .json()
        .ok_or_else(|| ProbeError::Failed(format!("{} did not answer JSON", request.shown)))?;
    Ok((doc, request.shown))
}
