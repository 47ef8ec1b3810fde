//! `file`: keys in a dotenv file (`set`), or a whole file such as a docker secret
//! (`content`). Writes are atomic; lines rotagate does not own are left alone.

use crate::config::shape;
use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::envfile::read_env_file;
use super::{Action, ActionKind, Built, Captured, Op, write_atomically};
use crate::config::Template;
use crate::config::validate::steps::{relative_path, template, valid_env_key};
use crate::config::validate::{Role, Scope, Slot, Validator};
use crate::secret::Secret;
use crate::step::{Providers, StepContext, StepError, View, resolve};

shape! {
    pub struct FileAction {
        /// Path relative to rotagate.yaml.
        pub path: String,
        /// KEY: value lines to upsert in a dotenv file; other lines stay as they are.
        /// Keys may use {{ new.role }} for alternating slots.
        pub set: Option<BTreeMap<Template, Template>>,
        /// The whole file content (e.g. a PEM for a docker secret).
        pub content: Option<Template>,
        /// Unix permissions for the file (default 0600).
        pub mode: Option<u32>,
    }
}

impl FileAction {
    fn mode(&self) -> u32 {
        self.mode.unwrap_or(0o600)
    }

    /// The `set` map rendered for `view`: key names may depend on the material's role.
    fn rendered(&self, view: &View) -> Result<Vec<(String, Secret)>, StepError> {
        let Some(set) = &self.set else {
            return Ok(Vec::new());
        };
        set.iter()
            .map(|(k, v)| Ok((k.render(view)?.expose().to_string(), v.render(view)?)))
            .collect()
    }

    fn read(&self, cx: &StepContext) -> Result<super::envfile::EnvFile, StepError> {
        let path = resolve(cx.base_dir, &self.path);
        read_env_file(&path)
            .map_err(|e| StepError::Failed(format!("cannot read {}: {e}", path.display())))
    }

    fn write_env(&self, cx: &StepContext, file: &super::envfile::EnvFile) -> Result<(), StepError> {
        write_atomically(&resolve(cx.base_dir, &self.path), file.render().as_bytes(), self.mode())
    }
}

#[async_trait]
impl Action for FileAction {
    fn local(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        match &self.set {
            Some(set) => format!(
                "file {} ({})",
                self.path,
                set.keys().map(|k| k.raw()).collect::<Vec<_>>().join(", ")
            ),
            None => format!("file {}", self.path),
        }
    }

    fn writes_values(&self) -> bool {
        true
    }

    async fn capture(&self, view: &View<'_>, cx: &StepContext<'_>) -> Captured {
        if self.content.is_some() {
            let path = resolve(cx.base_dir, &self.path);
            let previous = std::fs::read_to_string(&path).ok();
            return Ok(Some(json!({ "content": previous })));
        }
        let file = self.read(cx)?;
        let previous: BTreeMap<String, Option<String>> = self
            .rendered(view)?
            .into_iter()
            .map(|(k, _)| {
                let v = file.get(&k).map(|v| v.to_string());
                (k, v)
            })
            .collect();
        Ok(Some(json!({ "keys": previous })))
    }

    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, StepError> {
        match op {
            Op::Publish(view) | Op::Write(view) => {
                if let Some(content) = &self.content {
                    let value = content.render(view)?;
                    write_atomically(
                        &resolve(cx.base_dir, &self.path),
                        value.expose().as_bytes(),
                        self.mode(),
                    )?;
                    return Ok(json!({ "written": "content" }));
                }
                let mut file = self.read(cx)?;
                let values = self.rendered(view)?;
                for (k, v) in &values {
                    file.set(k, v.expose());
                }
                self.write_env(cx, &file)?;
                Ok(json!({ "written": values.iter().map(|(k, _)| k).collect::<Vec<_>>() }))
            }
            Op::Unpublish(view) => {
                // Only a slot still holding this material is cleared; anything else has
                // been changed since and is not ours to remove.
                let mut file = self.read(cx)?;
                let mut removed = Vec::new();
                for (k, v) in self.rendered(view)? {
                    if file.get(&k).is_some_and(|current| current.as_str() == v.expose()) {
                        file.remove(&k);
                        removed.push(k);
                    }
                }
                if !removed.is_empty() {
                    self.write_env(cx, &file)?;
                }
                Ok(json!({ "removed": removed }))
            }
            Op::Restore(before) => {
                let path = resolve(cx.base_dir, &self.path);
                if let Some(content) = before.get("content") {
                    match content.as_str() {
                        Some(text) => write_atomically(&path, text.as_bytes(), self.mode())?,
                        None => match std::fs::remove_file(&path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => {
                                return Err(StepError::Failed(format!(
                                    "cannot remove {}: {e}",
                                    path.display()
                                )));
                            }
                        },
                    }
                    return Ok(json!({ "restored": "content" }));
                }
                let keys = before
                    .get("keys")
                    .and_then(Value::as_object)
                    .ok_or_else(|| StepError::Failed("nothing was recorded to restore".into()))?;
                let mut file = self.read(cx)?;
                for (k, v) in keys {
                    match v.as_str() {
                        Some(value) => file.set(k, value),
                        None => {
                            file.remove(k);
                        }
                    }
                }
                self.write_env(cx, &file)?;
                Ok(json!({ "restored": keys.keys().collect::<Vec<_>>() }))
            }
            other => Err(other.refused("file")),
        }
    }
}

impl ActionKind<FileAction> for FileAction {
    const ROLES: &'static [Role] = &[Role::Publish, Role::Promote];

    fn check(f: &FileAction, v: &mut Validator, scope: &Scope, path: &str, role: Role) {
        let p = format!("{path}.file");
        relative_path(v, &format!("{p}.path"), &f.path);
        match (&f.set, &f.content) {
            (Some(_), Some(_)) | (None, None) => v.err(
                &p,
                "a file step needs exactly one of `set` (keys in an env file) or `content` (the whole file)",
                None,
            ),
            (None, Some(_)) if role == Role::Publish => v.err(
                &format!("{p}.content"),
                "a publish step must be able to remove what it added; use `set`",
                None,
            ),
            _ => {}
        }
        if let Some(set) = &f.set {
            if set.is_empty() {
                v.err(&format!("{p}.set"), "`set` names no keys", None);
            }
            for (k, val) in set {
                let kp = format!("{p}.set.{}", k.raw());
                template(v, scope, &kp, k, Slot::SetKey);
                template(v, scope, &kp, val, Slot::SetValue);
                if k.vars().is_ok_and(|vars| vars.is_empty()) && !valid_env_key(k.raw()) {
                    v.err_key(&kp, format!("`{}` is not a valid env file key", k.raw()), None);
                }
            }
        }
        if let Some(content) = &f.content {
            template(v, scope, &format!("{p}.content"), content, Slot::Content);
        }
        if let Some(mode) = f.mode
            && mode > 0o777
        {
            v.err(&format!("{p}.mode"), "mode is a permission such as 0o600 (384)", None);
        }
    }

    fn build(f: &FileAction, _: &Providers) -> Built {
        Ok(Some(Box::new(f.clone())))
    }
}
