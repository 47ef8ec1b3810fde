//! `http` probe: status and JSON-pointer expectations, retried by the engine.

use async_trait::async_trait;
use serde_json::Value;

use super::{Probe, ProbeError, shown_value};
use crate::config;
use crate::step::{RequestSpec, StepContext, View, method_name, render_request};

pub struct HttpProbe {
    spec: config::HttpProbe,
}

impl HttpProbe {
    pub fn new(spec: config::HttpProbe) -> Self {
        HttpProbe { spec }
    }
}

#[async_trait]
impl Probe for HttpProbe {
    fn describe(&self) -> String {
        format!("http {} {}", method_name(self.spec.method), self.spec.url.raw())
    }

    async fn check(&self, view: &View<'_>, cx: &StepContext<'_>) -> Result<String, ProbeError> {
        let spec = RequestSpec::from(&self.spec);
        let request = render_request(&spec, view)?;
        // A probe makes exactly the attempts its config says: no transport retries inside.
        let response = cx.http.without_retries().send(&request).await?;
        let expected_status = self.spec.expect.status.unwrap_or(200);
        let status = response.status.as_u16();
        if status != expected_status {
            return Err(ProbeError::Failed(format!(
                "{} answered {status}, expected {expected_status}",
                request.shown
            )));
        }
        let mut evidence = vec![format!("{status}")];
        if !self.spec.expect.json.is_empty() {
            let body = response.json().ok_or_else(|| {
                ProbeError::Failed(format!("{} did not answer JSON", request.shown))
            })?;
            for (pointer, template) in &self.spec.expect.json {
                let expected = template.render(view)?;
                let actual = body.pointer(pointer);
                let matches = match actual {
                    Some(Value::String(s)) => s == expected.expose(),
                    // Numbers and booleans compare by their JSON text: `/code: 200`.
                    Some(other) => {
                        serde_json::to_string(other).is_ok_and(|text| text == expected.expose())
                    }
                    None => false,
                };
                if !matches {
                    let got = match actual {
                        None => "missing".to_string(),
                        Some(Value::String(s)) => format!("\"{}\"", shown_value(view, s)),
                        Some(other) => shown_value(view, &other.to_string()),
                    };
                    return Err(ProbeError::Failed(format!(
                        "{}: {pointer} is {got}, expected \"{}\"",
                        request.shown,
                        shown_value(view, expected.expose())
                    )));
                }
                evidence.push(format!("{pointer} = {}", shown_value(view, expected.expose())));
            }
        }
        if let Some(needle) = &self.spec.expect.contains {
            let needle = needle.render(view)?;
            if !String::from_utf8_lossy(&response.body).contains(needle.expose()) {
                return Err(ProbeError::Failed(format!(
                    "{}: the body does not contain \"{}\"",
                    request.shown,
                    shown_value(view, needle.expose())
                )));
            }
        }
        Ok(format!("{}: {}", request.shown, evidence.join(", ")))
    }
}
