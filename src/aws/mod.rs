//! AWS Secrets Manager and SSM Parameter Store through the official SDK. Credentials
//! come from the SDK's usual chain (environment, profile, web identity, so GitHub's
//! OIDC role federation needs no long-lived key); the region and endpoint from the
//! SDK's configuration (`AWS_REGION`, `AWS_ENDPOINT_URL`) unless a step names a region.
//! Errors name the IAM action to grant when access is denied.

use std::collections::HashMap;

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::error::SdkError;

/// The SDK configuration, loaded once per region for the run.
#[derive(Clone, Default)]
pub struct Aws {
    configs: std::sync::Arc<tokio::sync::Mutex<HashMap<Option<String>, aws_config::SdkConfig>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "{action} on {resource}: AWS denied it ({code}): grant `{action}` on {resource} to the role rotagate runs as{message}"
    )]
    Denied { action: String, resource: String, code: String, message: String },
    #[error(
        "{action} on {resource}: AWS kept throttling after the SDK's retries ({code}); the next run retries"
    )]
    Throttled { action: String, resource: String, code: String },
    #[error("{action} on {resource}: AWS answered {code}: {message}")]
    Api { action: String, resource: String, code: String, message: String },
    #[error("{action} on {resource}: {message}")]
    Transport { action: String, resource: String, message: String },
}

impl AwsError {
    /// The error AWS gave `action` (an IAM action name such as
    /// `secretsmanager:PutSecretValue`) on `resource`.
    pub fn from_sdk<E, R>(action: &str, resource: &str, e: &SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (action, resource) = (action.to_string(), resource.to_string());
        let Some(code) = e.code() else {
            let message = crate::secret::redact(
                &aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            );
            return AwsError::Transport { action, resource, message };
        };
        let code = code.to_string();
        let message = crate::secret::redact(e.message().unwrap_or("no message"));
        match code.as_str() {
            "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => {
                AwsError::Denied { action, resource, code, message: format!(" (AWS: {message})") }
            }
            "ThrottlingException" | "Throttling" | "TooManyRequestsException" => {
                AwsError::Throttled { action, resource, code }
            }
            _ => AwsError::Api { action, resource, code, message },
        }
    }
}

impl Aws {
    /// The SDK configuration for `region` (None: the SDK's own choice). Keys in
    /// rotagate's own environment secrets (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
    /// taken out of the environment at start) are handed to the SDK directly.
    pub async fn config(&self, region: Option<&str>) -> aws_config::SdkConfig {
        let mut configs = self.configs.lock().await;
        let key = region.map(str::to_string);
        if let Some(c) = configs.get(&key) {
            return c.clone();
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        if let (Ok(id), Some(secret)) = (
            std::env::var("AWS_ACCESS_KEY_ID"),
            crate::secret::process_secret("AWS_SECRET_ACCESS_KEY"),
        ) {
            let token = crate::secret::process_secret("AWS_SESSION_TOKEN");
            loader = loader.credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                id,
                secret.expose(),
                token.as_ref().map(|t| t.expose().to_string()),
                None,
                "rotagate-environment",
            ));
        }
        let config = loader.load().await;
        configs.insert(key, config.clone());
        config
    }

    pub async fn secrets_manager(&self, region: Option<&str>) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config(region).await)
    }

    pub async fn ssm(&self, region: Option<&str>) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.config(region).await)
    }
}

/// A version id derived from the credential and the material's fingerprint: the same
/// material always maps to the same id, so a retried write is recognised by AWS
/// (ClientRequestToken) and by rotagate, and a killed run never makes a second version.
pub fn version_id(credential: &str, fingerprint: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("rotagate\0{credential}\0{fingerprint}"));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_stable_uuid_shaped_and_distinct() {
        let a = version_id("payments", "fp1");
        assert_eq!(a, version_id("payments", "fp1"));
        assert_ne!(a, version_id("payments", "fp2"));
        assert_ne!(a, version_id("billing", "fp1"));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
