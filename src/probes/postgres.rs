//! `postgres` probe: logs in as the role with the password (SCRAM, so the password
//! never crosses the wire) and runs a query.

use async_trait::async_trait;

use super::{Probe, ProbeError};
use crate::config::{PostgresProbe as Spec, Template};
use crate::postgres::{config, connect, describe, role_and_password};
use crate::step::{StepContext, View};

pub struct PostgresProbe {
    spec: Spec,
    role: Template,
    password: Template,
}

impl PostgresProbe {
    pub fn new(spec: Spec) -> Self {
        let (role, password) = role_and_password(spec.role.as_ref(), spec.password.as_ref());
        PostgresProbe { spec, role, password }
    }
}

#[async_trait]
impl Probe for PostgresProbe {
    fn describe(&self) -> String {
        format!("postgres login as {} at {}", self.role.raw(), self.spec.url.raw())
    }

    async fn check(&self, view: &View<'_>, _cx: &StepContext<'_>) -> Result<String, ProbeError> {
        let shown = format!("postgres {}", self.spec.url.raw());
        let role = self.role.render(view)?;
        let password = self.password.render(view)?;
        let mut config = config(&self.spec.url.render(view)?, &shown)
            .map_err(|e| ProbeError::Failed(e.to_string()))?;
        config.user(role.expose());
        config.password(password.expose());
        let client = connect(config, &shown)
            .await
            .map_err(|e| ProbeError::Failed(view.redact(&e.to_string())))?;
        let query = self.spec.query.as_deref().unwrap_or("SELECT 1");
        client.simple_query(query).await.map_err(|e| {
            ProbeError::Failed(view.redact(&format!(
                "{shown}: logged in as {}, but `{query}` failed: {}",
                role.expose(),
                describe(&e)
            )))
        })?;
        Ok(format!("logged in as {} and ran `{query}`", role.expose()))
    }
}
