//! `vault-kv`: keys of a secret in HashiCorp Vault's KV version 2 engine. Every value of
//! one entry goes into one new version, written with check-and-set on the version
//! rotagate read, so a concurrent writer is detected rather than overwritten; the
//! secret's other keys are kept. Rollback writes the old values back as a new version:
//! history is never deleted.

use crate::config::shape;
use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Captured, Op};
use crate::config::Template;
use crate::config::validate::steps::{set_map, valid_env_key};
use crate::config::validate::{Role, Scope, Validator};
use crate::hashicorp::{KvPath, VaultClient};
use crate::secret::Secret;
use crate::step::{Providers, StepContext, StepError, View};

shape! {
    pub struct VaultKvAction {
        /// The mount of a KV version 2 secrets engine (default `secret`).
        #[serde(default = "default_mount")]
        pub mount: String,
        /// The secret's path inside the mount, e.g. `app/signing`.
        pub path: String,
        /// A Vault Enterprise namespace (default: ROTAGATE_VAULT_NAMESPACE).
        pub namespace: Option<String>,
        /// KEY: value, written together as one new version; the secret's other keys stay.
        pub set: BTreeMap<String, Template>,
    }
}

fn default_mount() -> String {
    "secret".into()
}

pub struct VaultKv {
    spec: VaultKvAction,
    vault: VaultClient,
}

impl VaultKv {
    fn at(&self) -> KvPath<'_> {
        KvPath {
            mount: &self.spec.mount,
            path: &self.spec.path,
            namespace: self.spec.namespace.as_deref(),
        }
    }

    /// Writes `fields` as a new version on top of `read`, unless they are what is there
    /// already (a rerun after a write whose answer was lost).
    async fn put(
        &self,
        current: &BTreeMap<String, Value>,
        read: u64,
        fields: BTreeMap<String, Value>,
    ) -> Result<Value, StepError> {
        if &fields == current {
            return Ok(json!({ "version": read, "unchanged": true }));
        }
        let data = Secret::new(serde_json::to_string(&fields).expect("a map serialises"));
        let version = self.vault.write(&self.at(), &data, read).await?;
        Ok(json!({ "version": version }))
    }
}

#[async_trait]
impl Action for VaultKv {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.spec.set.keys().map(String::as_str).collect();
        format!("vault-kv {} ({})", self.at().show(), names.join(", "))
    }

    fn writes_values(&self) -> bool {
        true
    }

    /// Asks Vault (`sys/capabilities-self`) whether the token may read and write the
    /// secret, before a rotation generates anything.
    async fn preflight(&self, _cx: &StepContext<'_>) -> Result<(), StepError> {
        let at = self.at();
        let caps = self.vault.capabilities(&at).await?;
        let has = |c: &str| caps.iter().any(|x| x == c || x == "root");
        let mut missing: Vec<&str> = ["read", "update"].into_iter().filter(|c| !has(c)).collect();
        if !has("create") && !has("update") {
            missing.push("create");
        }
        if missing.is_empty() {
            return Ok(());
        }
        let path = at.data_path();
        Err(StepError::Failed(format!(
            "the Vault token cannot {} `{path}` (it holds: {}): add to its policy path \"{path}\" {{ capabilities = [\"create\", \"read\", \"update\"] }}",
            missing.join(", "),
            if caps.is_empty() { "nothing".to_string() } else { caps.join(", ") }
        )))
    }

    /// The version read and, for each key this step sets, its value then (or that it
    /// was absent), journaled inside the encrypted state for a rollback to put back.
    async fn capture(&self, _view: &View<'_>, _cx: &StepContext<'_>) -> Captured {
        let current = self.vault.read(&self.at()).await?;
        let fields = current.fields()?;
        let keys: BTreeMap<&String, Value> = self
            .spec
            .set
            .keys()
            .map(|k| {
                let recorded = match fields.get(k) {
                    Some(v) => json!({ "value": v }),
                    None => json!({ "absent": true }),
                };
                (k, recorded)
            })
            .collect();
        Ok(Some(json!({ "vault-kv": { "version": current.version, "keys": keys } })))
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, StepError> {
        let current = self.vault.read(&self.at()).await?;
        let before = current.fields()?;
        let mut fields = before.clone();
        match op {
            Op::Write(view) => {
                for (key, t) in &self.spec.set {
                    fields.insert(key.clone(), Value::String(t.render(view)?.expose().into()));
                }
                self.put(&before, current.version, fields).await
            }
            Op::Restore(recorded) => {
                let recorded = &recorded["vault-kv"];
                let keys = recorded["keys"]
                    .as_object()
                    .ok_or_else(|| StepError::Failed("nothing was recorded to restore".into()))?;
                for (key, r) in keys {
                    match r.get("value") {
                        Some(v) => fields.insert(key.clone(), v.clone()),
                        None => fields.remove(key),
                    };
                }
                // The secret did not exist before rotagate wrote it: its latest version
                // is deleted (softly: `undelete` brings it back), as it was.
                if fields.is_empty() && recorded["version"].as_u64() == Some(0) {
                    if current.data.is_some() {
                        self.vault.delete_latest(&self.at()).await?;
                    }
                    return Ok(json!({ "deleted": current.version }));
                }
                self.put(&before, current.version, fields).await
            }
            other => Err(other.refused("vault-kv")),
        }
    }
}

impl ActionKind<VaultKvAction> for VaultKv {
    const ROLES: &'static [Role] = &[Role::Promote];

    fn check(a: &VaultKvAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        let path = format!("{path}.vault-kv");
        for (field, value) in [("mount", &a.mount), ("path", &a.path)] {
            let segments_ok = value.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
            if value.contains("{{") {
                v.err(
                    &format!("{path}.{field}"),
                    format!("the {field} cannot be a template"),
                    None,
                );
            } else if !segments_ok {
                v.err(
                    &format!("{path}.{field}"),
                    format!("`{value}` is not a Vault {field}"),
                    Some("write it without leading or trailing `/`, e.g. app/signing".into()),
                );
            }
        }
        if a.path.starts_with("data/") || a.path.starts_with("metadata/") {
            v.err(
                &format!("{path}.path"),
                format!("`{}` includes the API's `data/` prefix", a.path),
                Some("give the path inside the mount; rotagate adds data/".into()),
            );
        }
        set_map(
            v,
            scope,
            &path,
            &a.set,
            valid_env_key,
            "a key name (letters, digits, `_`, `.`, `-`)",
        );
    }

    fn build(a: &VaultKvAction, providers: &Providers) -> Built {
        Ok(Some(Box::new(VaultKv { spec: a.clone(), vault: providers.vault()? })))
    }
}
