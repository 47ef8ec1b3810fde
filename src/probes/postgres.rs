//! `postgres` probe: logs in as the role with the password (SCRAM, so the password
//! never crosses the wire) and runs a query.

use async_trait::async_trait;

use super::{Probe, ProbeError};
use crate::config::PostgresProbe as Spec;
use crate::postgres::{config, connect, describe, role_and_password};
use crate::step::{StepContext, View};

#[async_trait]
impl Probe for Spec {
    fn describe(&self) -> String {
        let (role, _) = role_and_password(self.role.as_ref(), self.password.as_ref());
        format!("postgres login as {} at {}", role.raw(), self.url.raw())
    }

    async fn check(&self, view: &View<'_>, _cx: &StepContext<'_>) -> Result<String, ProbeError> {
        let shown = format!("postgres {}", self.url.raw());
        let (role, password) = role_and_password(self.role.as_ref(), self.password.as_ref());
        let (role, password) = (role.render(view)?, password.render(view)?);
        let mut config = config(&self.url.render(view)?, &shown)
            .map_err(|e| ProbeError::Failed(e.to_string()))?;
        config.user(role.expose());
        config.password(password.expose());
        let client = connect(config, &shown)
            .await
            .map_err(|e| ProbeError::Failed(view.redact(&e.to_string())))?;
        let query = self.query.as_deref().unwrap_or("SELECT 1");
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
