//! `aws-parameter`: an SSM Parameter Store `SecureString`. Promote writes the value as a
//! new version (KMS key passed through); nothing is written when the parameter already
//! holds it (a rerun after a lost answer), so a killed run never makes two versions.
//! Rollback writes the old value back as a new version.

use crate::config::shape;
use async_trait::async_trait;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::ParameterType;
use serde_json::{Value, json};

use super::aws_secret::{AwsSecretAction, NameRule};
use super::{Action, ActionKind, Built, Captured, Op};
use crate::aws::AwsError;
use crate::config::Template;
use crate::config::validate::{Role, Scope, Validator};
use crate::secret::Secret;
use crate::step::{Providers, StepContext, StepError, View};

shape! {
    pub struct AwsParameterAction {
        /// The parameter's name, e.g. `/payments/signing-key`.
        pub name: String,
        /// The region (default: the SDK's, from AWS_REGION or the profile).
        pub region: Option<String>,
        /// The KMS key (id, alias or ARN) the SecureString is encrypted with (default
        /// `alias/aws/ssm`).
        pub kms_key_id: Option<String>,
        /// KEY: value: the parameter is this JSON object (a kid and its key together).
        pub set: Option<std::collections::BTreeMap<String, Template>>,
        /// The whole value, instead of `set`.
        pub value: Option<Template>,
    }
}

impl AwsParameterAction {
    /// The same value shape as `aws-secret`'s.
    fn values(&self) -> AwsSecretAction {
        AwsSecretAction {
            secret: self.name.clone(),
            region: self.region.clone(),
            kms_key_id: None,
            set: self.set.clone(),
            value: self.value.clone(),
        }
    }
}

pub struct AwsParameter {
    spec: AwsParameterAction,
    aws: crate::aws::Aws,
}

impl AwsParameter {
    fn failed<E, R>(&self, action: &str, e: &SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        AwsError::from_sdk(&format!("ssm:{action}"), &self.spec.name, e)
    }

    /// The parameter's value and version; None when it does not exist.
    async fn read(&self, client: &aws_sdk_ssm::Client) -> Result<Option<(Secret, i64)>, StepError> {
        match client.get_parameter().name(&self.spec.name).with_decryption(true).send().await {
            Ok(out) => Ok(out
                .parameter()
                .map(|p| (Secret::new(p.value().unwrap_or_default()), p.version()))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) => Ok(None),
            Err(e) => Err(self.failed("GetParameter", &e).into()),
        }
    }

    /// Writes `value` as a new version unless it is there already.
    async fn put(&self, value: &Secret) -> Result<Value, StepError> {
        let client = self.aws.ssm(self.spec.region.as_deref()).await;
        if let Some((current, version)) = self.read(&client).await?
            && current == *value
        {
            return Ok(json!({ "version": version, "unchanged": true }));
        }
        let mut put = client
            .put_parameter()
            .name(&self.spec.name)
            .value(value.expose())
            .r#type(ParameterType::SecureString)
            .overwrite(true);
        if let Some(kms) = &self.spec.kms_key_id {
            put = put.key_id(kms);
        }
        let out = put.send().await.map_err(|e| self.failed("PutParameter", &e))?;
        Ok(json!({ "version": out.version() }))
    }
}

#[async_trait]
impl Action for AwsParameter {
    fn describe(&self) -> String {
        format!("aws-parameter {} ({})", self.spec.name, self.spec.values().shown())
    }

    fn writes_values(&self) -> bool {
        true
    }

    /// The value before a first write, journaled inside the encrypted state.
    async fn capture(&self, _view: &View<'_>, _cx: &StepContext<'_>) -> Captured {
        let client = self.aws.ssm(self.spec.region.as_deref()).await;
        let before = self.read(&client).await?.map(|(v, _)| v.expose().to_string());
        Ok(Some(json!({ "aws-parameter": { "value": before } })))
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, StepError> {
        match op {
            Op::Write(view) => self.put(&self.spec.values().render(view)?).await,
            Op::Restore(recorded) => match recorded["aws-parameter"]["value"].as_str() {
                Some(before) => self.put(&Secret::new(before)).await,
                None => Err(StepError::Failed(format!(
                    "{} did not exist before rotagate's first write, so there is no value to put back; delete it by hand if the service should not have it",
                    self.spec.name
                ))),
            },
            other => Err(other.refused("aws-parameter")),
        }
    }
}

impl ActionKind<AwsParameterAction> for AwsParameter {
    const ROLES: &'static [Role] = &[Role::Promote];

    fn check(a: &AwsParameterAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        let rule = NameRule {
            field: "name",
            also: "/_.-",
            what: "a parameter name",
            hint: "letters, digits and /_.- e.g. /payments/signing-key",
        };
        a.values().check_in(v, scope, &format!("{path}.aws-parameter"), &rule);
    }

    fn build(a: &AwsParameterAction, providers: &Providers) -> Built {
        Ok(Some(Box::new(AwsParameter { spec: a.clone(), aws: providers.aws.clone() })))
    }
}
