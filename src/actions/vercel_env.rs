//! `vercel-env`: environment variables of a Vercel project. Every value of one entry
//! goes in one upsert request, so a kid and its private key flip together.

use crate::config::shape;
use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Captured, Op};
use crate::config::Template;
use crate::config::validate::steps::{set_map, valid_env_key};
use crate::config::validate::{Role, Scope, Validator};
use crate::step::{Providers, StepContext, StepError, View};
use crate::vercel::{EnvVar, Project, Vercel};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

shape! {
    pub struct VercelEnvAction {
        /// The project's name or id.
        pub project: String,
        /// The team id (`team_...`) the project belongs to, sent as `teamId`.
        pub team: Option<String>,
        /// Environments the values apply to (default `[production]`).
        #[serde(default = "default_vercel_targets")]
        pub target: Vec<VercelTarget>,
        /// `sensitive` (default: never readable again, production and preview only) or
        /// `encrypted` (readable by the team, so a first write can be put back exactly).
        #[serde(default, rename = "type")]
        pub kind: VercelEnvType,
        /// NAME: value.
        pub set: BTreeMap<String, Template>,
    }
}

fn default_vercel_targets() -> Vec<VercelTarget> {
    vec![VercelTarget::Production]
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum VercelTarget {
    Production,
    Preview,
    Development,
}

impl VercelTarget {
    pub fn name(self) -> &'static str {
        match self {
            VercelTarget::Production => "production",
            VercelTarget::Preview => "preview",
            VercelTarget::Development => "development",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VercelEnvType {
    #[default]
    Sensitive,
    Encrypted,
}

impl VercelEnvType {
    pub fn name(self) -> &'static str {
        match self {
            VercelEnvType::Sensitive => "sensitive",
            VercelEnvType::Encrypted => "encrypted",
        }
    }
}

pub struct VercelEnv {
    spec: VercelEnvAction,
    vercel: Vercel,
}

impl VercelEnv {
    pub fn new(spec: VercelEnvAction, vercel: Vercel) -> Self {
        VercelEnv { spec, vercel }
    }

    fn project(&self) -> Project<'_> {
        Project { project: &self.spec.project, team: self.spec.team.as_deref() }
    }

    fn targets(&self) -> Vec<&'static str> {
        self.spec.target.iter().map(|t| VercelTarget::name(*t)).collect()
    }

    /// The variable Vercel's upsert would replace: same key, a target in common.
    fn matching<'v>(&self, vars: &'v [EnvVar], key: &str) -> Option<&'v EnvVar> {
        let ours = self.targets();
        vars.iter().find(|v| v.key == key && v.target.iter().any(|t| ours.contains(&t.as_str())))
    }

    fn item(&self, key: &str, value: &str) -> Value {
        json!({
            "key": key,
            "value": value,
            "type": self.spec.kind.name(),
            "target": self.targets(),
        })
    }
}

#[async_trait]
impl Action for VercelEnv {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.spec.set.keys().map(String::as_str).collect();
        format!(
            "vercel-env {} [{}] ({})",
            self.spec.project,
            self.targets().join(", "),
            names.join(", ")
        )
    }

    fn writes_values(&self) -> bool {
        true
    }

    /// What was there before a first write: the value of an `encrypted` variable, that
    /// a `sensitive` one existed (Vercel never shows its value again), or that none did.
    async fn capture(&self, _view: &View<'_>, _cx: &StepContext<'_>) -> Captured {
        let project = self.project();
        let vars = self.vercel.list(&project).await?;
        let mut before = BTreeMap::new();
        for key in self.spec.set.keys() {
            let recorded = match self.matching(&vars, key) {
                None => json!({ "absent": true }),
                Some(var) if var.kind == "sensitive" => json!({ "unreadable": true }),
                Some(var) => match self.vercel.decrypted(&project, var).await? {
                    Some(value) => json!({ "value": value.expose(), "type": var.kind }),
                    None => json!({ "unreadable": true }),
                },
            };
            before.insert(key.clone(), recorded);
        }
        Ok(Some(json!({ "vercel": before })))
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, StepError> {
        let project = self.project();
        match op {
            Op::Write(view) => {
                let mut items = Vec::new();
                for (key, t) in &self.spec.set {
                    items.push(self.item(key, t.render(view)?.expose()));
                }
                self.vercel.upsert(&project, &items).await?;
                Ok(json!({ "written": items.len() }))
            }
            Op::Restore(before) => {
                let recorded = before
                    .get("vercel")
                    .and_then(Value::as_object)
                    .ok_or_else(|| StepError::Failed("nothing was recorded to restore".into()))?;
                let unreadable: Vec<&str> = recorded
                    .iter()
                    .filter(|(_, r)| r.get("unreadable").is_some())
                    .map(|(k, _)| k.as_str())
                    .collect();
                if !unreadable.is_empty() {
                    return Err(StepError::Failed(format!(
                        "{} held sensitive values before rotagate's first write, and Vercel never shows those again: set them back by hand, and next time `rotagate adopt` the live material first",
                        unreadable.join(", ")
                    )));
                }
                let mut items = Vec::new();
                let mut removed = 0;
                let vars = self.vercel.list(&project).await?;
                for (key, r) in recorded {
                    if let Some(value) = r.get("value").and_then(Value::as_str) {
                        let mut item = self.item(key, value);
                        item["type"] = r["type"].clone();
                        items.push(item);
                    } else if let Some(var) = self.matching(&vars, key) {
                        self.vercel.delete(&project, var).await?;
                        removed += 1;
                    }
                }
                if !items.is_empty() {
                    self.vercel.upsert(&project, &items).await?;
                }
                Ok(json!({ "restored": items.len(), "removed": removed }))
            }
            other => Err(other.refused("vercel-env")),
        }
    }
}

impl ActionKind<VercelEnvAction> for VercelEnv {
    const ROLES: &'static [Role] = &[Role::Promote];

    fn check(a: &VercelEnvAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        let path = format!("{path}.vercel-env");
        if a.project.trim().is_empty() || a.project.contains('/') {
            v.err(
                &format!("{path}.project"),
                format!("`{}` is not a Vercel project name or id", a.project),
                None,
            );
        }
        if a.target.is_empty() {
            v.err(
                &format!("{path}.target"),
                "name at least one target (production, preview, development)",
                None,
            );
        }
        if a.kind == VercelEnvType::Sensitive && a.target.contains(&VercelTarget::Development) {
            v.err(
                &format!("{path}.target"),
                "Vercel keeps sensitive values for production and preview only",
                Some("drop development, or use `type: encrypted`".into()),
            );
        }
        set_map(v, scope, &path, &a.set, valid_env_key, "an environment variable name");
    }

    fn build(a: &VercelEnvAction, providers: &Providers) -> Built {
        Ok(Some(Box::new(VercelEnv::new(a.clone(), providers.vercel()?))))
    }
}
