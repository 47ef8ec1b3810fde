//! `postgres`: a role's password, set as a SCRAM-SHA-256 verifier over an admin
//! connection. Publish fills a role (the idle one of an alternating pair), unpublish
//! clears it; as a promote target it writes the password of one role.

use crate::config::shape;
use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Op};
use crate::config::Template;
use crate::config::validate::steps as check;
use crate::config::validate::{Role, Scope, Validator};
use crate::postgres::{clear_password, config, connect, role_and_password, set_password};
use crate::step::{Providers, StepContext, StepError, View};

shape! {
    pub struct PostgresAction {
        /// An admin connection URL, e.g. "{{ env.PG_ADMIN_URL }}".
        pub url: Template,
        /// The role (default {{ new.role }}, for `strategy: alternating`).
        pub role: Option<Template>,
        /// The password (default {{ new.value }}).
        pub password: Option<Template>,
    }
}

impl PostgresAction {
    /// The role and the password, defaults filled in.
    fn login(&self) -> (Template, Template) {
        role_and_password(self.role.as_ref(), self.password.as_ref())
    }

    fn shown(&self) -> String {
        format!("postgres {}", self.url.raw())
    }

    async fn client(&self, view: &View<'_>) -> Result<tokio_postgres::Client, StepError> {
        let shown = self.shown();
        let url = self.url.render(view)?;
        Ok(connect(config(&url, &shown)?, &shown).await?)
    }

    async fn set(&self, view: &View<'_>) -> Result<Value, StepError> {
        let (role, password) = self.login();
        let (role, password) = (role.render(view)?, password.render(view)?);
        let client = self.client(view).await?;
        set_password(&client, role.expose(), &password, &self.shown()).await?;
        Ok(json!({ "role": role.expose(), "password": "set" }))
    }
}

#[async_trait]
impl Action for PostgresAction {
    fn describe(&self) -> String {
        format!("postgres role {} at {}", self.login().0.raw(), self.url.raw())
    }

    fn writes_values(&self) -> bool {
        true
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, StepError> {
        match op {
            Op::Publish(view) | Op::Write(view) => self.set(view).await,
            Op::Unpublish(view) => {
                let role = self.login().0.render(view)?;
                let client = self.client(view).await?;
                clear_password(&client, role.expose(), &self.shown()).await?;
                Ok(json!({ "role": role.expose(), "password": "cleared" }))
            }
            Op::Restore(_) => Err(StepError::Failed(
                "PostgreSQL never shows a password, so one set before rotagate cannot be put back: `rotagate adopt` the live password first".into(),
            )),
            other => Err(other.refused("postgres")),
        }
    }
}

impl ActionKind<PostgresAction> for PostgresAction {
    const ROLES: &'static [Role] = &[Role::Publish, Role::Promote];

    fn check(a: &PostgresAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        check::postgres(
            v,
            scope,
            &format!("{path}.postgres"),
            &a.url,
            a.role.as_ref(),
            a.password.as_ref(),
        );
    }

    fn build(a: &PostgresAction, _: &Providers) -> Built {
        Ok(Some(Box::new(a.clone())))
    }
}
