//! `http`: a templated request (a deploy hook, a revoke call).

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Op};
use crate::config::HttpAction;
use crate::config::validate::steps::http_action;
use crate::config::validate::{Role, Scope, Validator};
use crate::step::{Providers, RequestSpec, StepContext, StepError, method_name, render_request};

#[async_trait]
impl Action for HttpAction {
    fn describe(&self) -> String {
        format!("http {} {}", method_name(self.method), self.url.raw())
    }

    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, StepError> {
        let view = match op {
            Op::Run(view) | Op::Write(view) => view,
            other => return Err(other.refused("http")),
        };
        let spec = RequestSpec::from(self);
        let request = render_request(&spec, view)?;
        let response = cx.http.send(&request).await?;
        let status = response.status.as_u16();
        let ok = if self.expect_status.is_empty() {
            response.status.is_success()
        } else {
            self.expect_status.contains(&status)
        };
        if !ok {
            let body = String::from_utf8_lossy(&response.body);
            let snippet: String = view.redact(&body).chars().take(300).collect();
            return Err(StepError::Failed(format!(
                "{} answered {status}: {snippet}",
                request.shown
            )));
        }
        Ok(json!({ "status": status }))
    }
}

impl ActionKind<HttpAction> for HttpAction {
    const ROLES: &'static [Role] = &[Role::Promote, Role::Retire];

    fn check(h: &HttpAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        http_action(v, scope, &format!("{path}.http"), h);
    }

    fn build(h: &HttpAction, _: &Providers) -> Built {
        Ok(Some(Box::new(h.clone())))
    }
}
