//! `jwks-file`: a JWKS document on disk. Publish appends the new public JWK, unpublish
//! removes a kid; keys rotagate does not own are left alone, order is kept and the
//! output is stable, pretty JSON.

use std::path::Path;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionError, Op, StepContext, resolve, write_atomically};
use crate::config::JwksFileAction;

pub struct JwksFile {
    spec: JwksFileAction,
}

impl JwksFile {
    pub fn new(spec: JwksFileAction) -> Self {
        JwksFile { spec }
    }
}

/// Reads a JWKS; a missing file is an empty set. Anything else that is not a JWKS is an
/// error and the file is left as it is.
pub fn read_jwks(path: &Path) -> Result<Value, ActionError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(json!({ "keys": [] })),
        Err(e) => {
            return Err(ActionError::Failed(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        ActionError::Failed(format!(
            "{} is not JSON ({e}); fix or remove it, rotagate left it untouched",
            path.display()
        ))
    })?;
    if !doc.get("keys").is_some_and(Value::is_array) {
        return Err(ActionError::Failed(format!(
            "{} is not a JWKS (no \"keys\" array); rotagate left it untouched",
            path.display()
        )));
    }
    Ok(doc)
}

fn write_jwks(path: &Path, doc: &Value) -> Result<(), ActionError> {
    let mut text =
        serde_json::to_string_pretty(doc).map_err(|e| ActionError::Failed(e.to_string()))?;
    text.push('\n');
    write_atomically(path, text.as_bytes(), 0o644)
}

#[async_trait]
impl Action for JwksFile {
    fn describe(&self) -> String {
        format!("jwks-file {}", self.spec.path)
    }

    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, ActionError> {
        let path = resolve(cx.base_dir, &self.spec.path);
        match op {
            Op::Publish(view) => {
                let material = view
                    .new
                    .ok_or_else(|| ActionError::Failed("no material to publish".into()))?;
                let jwk = material.jwk.as_ref().ok_or_else(|| {
                    ActionError::Failed("only keys with a public JWK go into a JWKS".into())
                })?;
                let mut doc = read_jwks(&path)?;
                let keys = doc["keys"].as_array_mut().expect("checked by read_jwks");
                if let Some(existing) = keys.iter().find(|k| k["kid"] == jwk["kid"]) {
                    if existing["n"] == jwk["n"] && existing["e"] == jwk["e"] {
                        return Ok(json!({ "added": false }));
                    }
                    return Err(ActionError::Failed(format!(
                        "{} already holds kid {} for a different key; a kid is never reused",
                        path.display(),
                        material.kid
                    )));
                }
                keys.push(jwk.clone());
                write_jwks(&path, &doc)?;
                Ok(json!({ "added": true }))
            }
            Op::Unpublish(view) => {
                let kid = view
                    .new
                    .map(|m| m.kid.clone())
                    .ok_or_else(|| ActionError::Failed("no material to remove".into()))?;
                let mut doc = read_jwks(&path)?;
                let keys = doc["keys"].as_array_mut().expect("checked by read_jwks");
                let before = keys.len();
                keys.retain(|k| k["kid"] != kid.as_str());
                let removed = before != keys.len();
                if removed {
                    write_jwks(&path, &doc)?;
                }
                Ok(json!({ "removed": removed }))
            }
            Op::Write(_) | Op::Restore(_) | Op::Run(_) => Err(ActionError::Failed(
                "a jwks-file step only publishes and removes keys".into(),
            )),
        }
    }
}
