//! `aws-secret`: an AWS Secrets Manager secret, staged with Secrets Manager's own labels
//! so a consumer that reads by label sees rotagate's stages: publish puts the new value
//! in as `AWSPENDING`, promote moves `AWSCURRENT` to it (the old version becomes
//! `AWSPREVIOUS`), rollback moves the label back. Each version's id is derived from
//! the material (ClientRequestToken), so a killed run never makes two.

use crate::config::shape;
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Captured, Op};
use crate::aws::{AwsError, version_id};
use crate::config::Template;
use crate::config::validate::steps::{set_map, template};
use crate::config::validate::{Role, Scope, Slot, Validator};
use crate::secret::Secret;
use crate::step::{Providers, StepContext, StepError, View};

const CURRENT: &str = "AWSCURRENT";
const PENDING: &str = "AWSPENDING";
const PREVIOUS: &str = "AWSPREVIOUS";

shape! {
    /// Where a value goes in AWS and what it is: one string, or a JSON object of keys
    /// written together.
    pub struct AwsSecretAction {
        /// The secret's name or ARN (created, as the first version, if it does not exist).
        pub secret: String,
        /// The region (default: the SDK's, from AWS_REGION or the profile).
        pub region: Option<String>,
        /// The KMS key (id, alias or ARN) a secret rotagate creates is encrypted with.
        pub kms_key_id: Option<String>,
        /// KEY: value: the secret string is this JSON object (a kid and its key in one
        /// version).
        pub set: Option<BTreeMap<String, Template>>,
        /// The whole secret string, instead of `set`.
        pub value: Option<Template>,
    }
}

impl AwsSecretAction {
    /// The secret string for `view`'s new material.
    pub(crate) fn render(&self, view: &View) -> Result<Secret, StepError> {
        if let Some(value) = &self.value {
            return Ok(value.render(view)?);
        }
        let mut object = serde_json::Map::new();
        for (key, t) in self.set.iter().flatten() {
            object.insert(key.clone(), Value::String(t.render(view)?.expose().into()));
        }
        Ok(Secret::new(Value::Object(object).to_string()))
    }

    /// What is written, without values: the keys of `set`, or "value".
    pub(crate) fn shown(&self) -> String {
        match &self.set {
            Some(set) => set.keys().cloned().collect::<Vec<_>>().join(", "),
            None => "value".into(),
        }
    }

    /// `set` xor `value`, and what goes in them.
    pub(crate) fn check_values(&self, v: &mut Validator, scope: &Scope, path: &str) {
        match (&self.set, &self.value) {
            (Some(set), None) => set_map(v, scope, path, set, |k| !k.is_empty(), "a JSON key"),
            (None, Some(value)) => {
                template(v, scope, &format!("{path}.value"), value, Slot::SetValue)
            }
            _ => v.err(
                path,
                "give exactly one of `set` (a JSON object of keys) or `value` (one string)",
                None,
            ),
        }
    }
}

pub struct AwsSecret {
    spec: AwsSecretAction,
    aws: crate::aws::Aws,
}

/// The secret's versions and their labels; None when it does not exist.
type Versions = Option<BTreeMap<String, Vec<String>>>;

impl AwsSecret {
    async fn client(&self) -> Client {
        self.aws.secrets_manager(self.spec.region.as_deref()).await
    }

    fn failed<E, R>(&self, action: &str, e: &SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        AwsError::from_sdk(&format!("secretsmanager:{action}"), &self.spec.secret, e)
    }

    async fn versions(&self, client: &Client) -> Result<Versions, StepError> {
        match client.describe_secret().secret_id(&self.spec.secret).send().await {
            Ok(d) => Ok(Some(
                d.version_ids_to_stages()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                Ok(None)
            }
            Err(e) => Err(self.failed("DescribeSecret", &e).into()),
        }
    }

    fn holder(versions: &BTreeMap<String, Vec<String>>, label: &str) -> Option<String> {
        versions
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(id, _)| id.clone())
    }

    /// Makes version `id` hold `value` and carry `label` (moving it from whichever
    /// version held it); creates the secret if there is none.
    async fn stage(&self, id: &str, value: &Secret, label: &str) -> Result<Value, StepError> {
        let client = self.client().await;
        let Some(versions) = self.versions(&client).await? else {
            let mut create = client
                .create_secret()
                .name(&self.spec.secret)
                .secret_string(value.expose())
                .client_request_token(id);
            if let Some(kms) = &self.spec.kms_key_id {
                create = create.kms_key_id(kms);
            }
            create.send().await.map_err(|e| self.failed("CreateSecret", &e))?;
            return Ok(json!({ "created": id, "label": CURRENT }));
        };
        let holder = Self::holder(&versions, label);
        if holder.as_deref() == Some(id) {
            return Ok(json!({ "version": id, "label": label, "unchanged": true }));
        }
        if !versions.contains_key(id) {
            client
                .put_secret_value()
                .secret_id(&self.spec.secret)
                .secret_string(value.expose())
                .client_request_token(id)
                .version_stages(label)
                .send()
                .await
                .map_err(|e| self.failed("PutSecretValue", &e))?;
        } else {
            self.move_label(&client, label, id, holder.as_deref()).await?;
        }
        Ok(json!({ "version": id, "label": label }))
    }

    /// Moves `label` to version `to`, from `from` (the version holding it, if any).
    async fn move_label(
        &self,
        client: &Client,
        label: &str,
        to: &str,
        from: Option<&str>,
    ) -> Result<(), StepError> {
        client
            .update_secret_version_stage()
            .secret_id(&self.spec.secret)
            .version_stage(label)
            .move_to_version_id(to)
            .set_remove_from_version_id(from.map(str::to_string))
            .send()
            .await
            .map_err(|e| self.failed("UpdateSecretVersionStage", &e))?;
        Ok(())
    }

    /// Takes `label` off version `id` if it carries it.
    async fn unlabel(&self, client: &Client, id: &str, label: &str) -> Result<bool, StepError> {
        let versions = self.versions(client).await?.unwrap_or_default();
        if !versions.get(id).is_some_and(|l| l.iter().any(|x| x == label)) {
            return Ok(false);
        }
        client
            .update_secret_version_stage()
            .secret_id(&self.spec.secret)
            .version_stage(label)
            .remove_from_version_id(id)
            .send()
            .await
            .map_err(|e| self.failed("UpdateSecretVersionStage", &e))?;
        Ok(true)
    }
}

fn material_id(view: &View, cx: &StepContext) -> Result<String, StepError> {
    let new = view.new.ok_or_else(|| StepError::Failed("there is no material to write".into()))?;
    Ok(version_id(cx.credential, &new.fingerprint))
}

#[async_trait]
impl Action for AwsSecret {
    fn describe(&self) -> String {
        format!("aws-secret {} ({})", self.spec.secret, self.spec.shown())
    }

    fn writes_values(&self) -> bool {
        true
    }

    /// Which version was AWSCURRENT before a first promote, for a rollback with no old
    /// material to move the label back to.
    async fn capture(&self, _view: &View<'_>, _cx: &StepContext<'_>) -> Captured {
        let client = self.client().await;
        let current = self.versions(&client).await?.and_then(|v| Self::holder(&v, CURRENT));
        Ok(Some(json!({ "aws-secret": { "current": current } })))
    }

    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, StepError> {
        match op {
            Op::Publish(view) => {
                let id = material_id(view, cx)?;
                self.stage(&id, &self.spec.render(view)?, PENDING).await
            }
            Op::Write(view) => {
                let id = material_id(view, cx)?;
                let out = self.stage(&id, &self.spec.render(view)?, CURRENT).await?;
                // Published first: the version no longer waits.
                self.unlabel(&self.client().await, &id, PENDING).await?;
                Ok(out)
            }
            Op::Unpublish(view) => {
                // Retire (the old version) or rollback (the new one): it stops being
                // offered under AWSPENDING or AWSPREVIOUS; AWSCURRENT is never taken.
                let id = material_id(view, cx)?;
                let client = self.client().await;
                let pending = self.unlabel(&client, &id, PENDING).await?;
                let previous = self.unlabel(&client, &id, PREVIOUS).await?;
                Ok(json!({ "version": id, "unlabelled": pending || previous }))
            }
            Op::Restore(recorded) => {
                let Some(before) = recorded["aws-secret"]["current"].as_str() else {
                    return Err(StepError::Failed(format!(
                        "{} did not exist before rotagate's first write, so there is no version to move AWSCURRENT back to; delete the secret by hand if the service should not have it",
                        self.spec.secret
                    )));
                };
                let client = self.client().await;
                let versions = self.versions(&client).await?.unwrap_or_default();
                let holder = Self::holder(&versions, CURRENT);
                if holder.as_deref() == Some(before) {
                    return Ok(json!({ "version": before, "unchanged": true }));
                }
                self.move_label(&client, CURRENT, before, holder.as_deref()).await?;
                Ok(json!({ "version": before, "label": CURRENT }))
            }
            other => Err(other.refused("aws-secret")),
        }
    }
}

impl ActionKind<AwsSecretAction> for AwsSecret {
    const ROLES: &'static [Role] = &[Role::Publish, Role::Promote];

    fn check(a: &AwsSecretAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        a.check_in(v, scope, &format!("{path}.aws-secret"), &SECRET_NAME);
    }

    fn build(a: &AwsSecretAction, providers: &Providers) -> Built {
        Ok(Some(Box::new(AwsSecret { spec: a.clone(), aws: providers.aws.clone() })))
    }
}

/// What the name of a value written in AWS may be: at most 2048 letters, digits and
/// `also`.
pub(super) struct NameRule {
    pub field: &'static str,
    pub also: &'static str,
    pub what: &'static str,
    pub hint: &'static str,
}

const SECRET_NAME: NameRule = NameRule {
    field: "secret",
    also: "/_+=.@-:",
    what: "a Secrets Manager name or ARN",
    hint: "letters, digits and /_+=.@- (or an arn:aws:secretsmanager:... ARN)",
};

impl AwsSecretAction {
    /// The checks of a value written in AWS (a secret, or a parameter in this shape): its
    /// name under `rule`, its region and its values.
    pub(super) fn check_in(&self, v: &mut Validator, scope: &Scope, path: &str, rule: &NameRule) {
        let name = &self.secret;
        let ok = !name.is_empty()
            && name.len() <= 2048
            && name.chars().all(|c| c.is_ascii_alphanumeric() || rule.also.contains(c));
        if !ok {
            let at = format!("{path}.{}", rule.field);
            v.err(&at, format!("`{name}` is not {}", rule.what), Some(rule.hint.into()));
        }
        check_region(v, path, self.region.as_deref());
        self.check_values(v, scope, path);
    }
}

/// A region looks like `eu-west-1`.
fn check_region(v: &mut Validator, path: &str, region: Option<&str>) {
    if let Some(r) = region
        && (r.is_empty()
            || !r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        v.err(
            &format!("{path}.region"),
            format!("`{r}` is not an AWS region"),
            Some("e.g. eu-west-1".into()),
        );
    }
}
