//! `kubernetes-secret`: keys of a Secret in a namespace, written together in one
//! strategic-merge patch with the `resourceVersion` rotagate read as a precondition (a
//! concurrent writer is detected, not overwritten); the Secret's other keys stay.
//! Optionally restarts Deployments afterwards, as `kubectl rollout restart` does, so
//! pods pick the new values up.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Captured, Op};
use crate::config::Template;
use crate::config::validate::steps::{set_map, valid_env_key};
use crate::config::validate::{Role, Scope, Validator};
use crate::kubernetes::Kube;
use crate::secret::Secret;
use crate::step::{Providers, StepContext, StepError, View};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSecretAction {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name (created, type Opaque, if it does not exist).
    pub name: String,
    /// KEY: value, written together in one patch; the Secret's other keys stay.
    pub set: BTreeMap<String, Template>,
    /// Deployments of the namespace restarted after each write (their pod template's
    /// `kubectl.kubernetes.io/restartedAt` annotation is stamped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart: Vec<String>,
}

pub struct KubernetesSecret {
    spec: KubernetesSecretAction,
    kube: Kube,
}

impl KubernetesSecret {
    /// Writes the Secret so that its keys are `want` (None: removed), unless they are
    /// so already (a rerun after a write whose answer was lost); then restarts.
    async fn converge(&self, want: BTreeMap<String, Option<Secret>>) -> Result<Value, StepError> {
        let (ns, name) = (&self.spec.namespace, &self.spec.name);
        let current = self.kube.read_secret(ns, name).await?;
        let mut set = BTreeMap::new();
        let mut remove = Vec::new();
        for (key, value) in want {
            match value {
                Some(v) if current.data.get(&key) != Some(&v) => {
                    set.insert(key, v);
                }
                None if current.data.contains_key(&key) => remove.push(key),
                _ => {}
            }
        }
        let version = if set.is_empty() && remove.is_empty() {
            current.resource_version.clone().unwrap_or_default()
        } else {
            self.kube
                .write_secret(ns, name, current.resource_version.as_deref(), &set, &remove)
                .await?
        };
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a time formats");
        for deployment in &self.spec.restart {
            self.kube.restart_deployment(ns, deployment, &at).await?;
        }
        Ok(json!({ "resourceVersion": version, "written": set.len(), "removed": remove.len(),
                   "restarted": self.spec.restart }))
    }
}

#[async_trait]
impl Action for KubernetesSecret {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.spec.set.keys().map(String::as_str).collect();
        let restart = if self.spec.restart.is_empty() {
            String::new()
        } else {
            format!(", restarts {}", self.spec.restart.join(", "))
        };
        format!(
            "kubernetes-secret {}/{} ({}){restart}",
            self.spec.namespace,
            self.spec.name,
            names.join(", ")
        )
    }

    fn writes_values(&self) -> bool {
        true
    }

    /// Asks the API server (SelfSubjectAccessReview) whether rotagate may read and
    /// patch the Secret, create Secrets, and patch the Deployments it restarts.
    async fn preflight(&self, _cx: &StepContext<'_>) -> Result<(), StepError> {
        let ns = &self.spec.namespace;
        let name = Some(self.spec.name.as_str());
        let mut missing = Vec::new();
        for (verb, on) in [("get", name), ("patch", name), ("create", None)] {
            if !self.kube.allowed(ns, "", "secrets", verb, on).await? {
                missing.push(format!(
                    "{{ apiGroups: [\"\"], resources: [\"secrets\"], verbs: [\"{verb}\"] }}"
                ));
            }
        }
        for deployment in &self.spec.restart {
            if !self.kube.allowed(ns, "apps", "deployments", "patch", Some(deployment)).await? {
                missing.push(
                    "{ apiGroups: [\"apps\"], resources: [\"deployments\"], verbs: [\"patch\"] }"
                        .to_string(),
                );
            }
        }
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        Err(StepError::Failed(format!(
            "Kubernetes does not allow rotagate what kubernetes-secret {ns}/{} needs: add to a Role in namespace {ns} (bound to rotagate's user or service account) rules: [{}]",
            self.spec.name,
            missing.join(", ")
        )))
    }

    /// For each key this step sets, its value before (or that it was absent),
    /// journaled inside the encrypted state for a rollback to put back.
    async fn capture(&self, _view: &View<'_>, _cx: &StepContext<'_>) -> Captured {
        let current = self.kube.read_secret(&self.spec.namespace, &self.spec.name).await?;
        let keys: BTreeMap<&String, Value> = self
            .spec
            .set
            .keys()
            .map(|k| {
                let recorded = match current.data.get(k) {
                    Some(v) => json!({ "value": v.expose() }),
                    None => json!({ "absent": true }),
                };
                (k, recorded)
            })
            .collect();
        Ok(Some(json!({ "kubernetes-secret": { "keys": keys } })))
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, StepError> {
        match op {
            Op::Write(view) => {
                let mut want = BTreeMap::new();
                for (key, t) in &self.spec.set {
                    want.insert(key.clone(), Some(t.render(view)?));
                }
                self.converge(want).await
            }
            Op::Restore(recorded) => {
                let keys = recorded["kubernetes-secret"]["keys"]
                    .as_object()
                    .ok_or_else(|| StepError::Failed("nothing was recorded to restore".into()))?;
                let want = keys
                    .iter()
                    .map(|(k, r)| (k.clone(), r["value"].as_str().map(Secret::new)))
                    .collect();
                self.converge(want).await
            }
            other => Err(other.refused("kubernetes-secret")),
        }
    }
}

/// A DNS-1123 name: lower-case letters, digits, `-` and `.`, starting and ending with a
/// letter or digit, at most `max` long.
fn is_dns_name(name: &str, max: usize, dots: bool) -> bool {
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && edge(name.chars().next())
        && edge(name.chars().last())
}

impl ActionKind<KubernetesSecretAction> for KubernetesSecret {
    const ROLES: &'static [Role] = &[Role::Promote];

    fn check(a: &KubernetesSecretAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        let path = format!("{path}.kubernetes-secret");
        if !is_dns_name(&a.namespace, 63, false) {
            v.err(
                &format!("{path}.namespace"),
                format!("`{}` is not a namespace name", a.namespace),
                Some("lower-case letters, digits and `-`, at most 63".into()),
            );
        }
        let names = std::iter::once((format!("{path}.name"), &a.name))
            .chain(a.restart.iter().enumerate().map(|(i, d)| (format!("{path}.restart[{i}]"), d)));
        for (p, name) in names {
            if !is_dns_name(name, 253, true) {
                v.err(
                    &p,
                    format!("`{name}` is not a Kubernetes object name"),
                    Some("lower-case letters, digits, `-` and `.`, at most 253".into()),
                );
            }
        }
        set_map(
            v,
            scope,
            &path,
            &a.set,
            |k| valid_env_key(k) && k.len() <= 253,
            "a Secret key (letters, digits, `-`, `_` and `.`)",
        );
    }

    fn build(a: &KubernetesSecretAction, providers: &Providers) -> Built {
        Ok(Some(Box::new(KubernetesSecret { spec: a.clone(), kube: providers.kubernetes()? })))
    }
}
