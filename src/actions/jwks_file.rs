//! `jwks-file`: a JWKS document, on disk or in a GitHub repository. Publish appends the
//! new public JWK, unpublish removes a kid; keys rotagate does not own are left alone,
//! order is kept and the output is stable, pretty JSON.

use crate::config::shape;
use std::path::Path;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Op, write_atomically};
use crate::config::is_branch_name;
use crate::config::validate::steps::{relative_path, repo};
use crate::config::validate::{Role, Scope, Validator};
use crate::github::{Call, GitHub};
use crate::material::Material;
use crate::step::{Providers, StepContext, StepError, resolve};

shape! {
    pub struct JwksFileAction {
        /// Path relative to rotagate.yaml, or within `repo`.
        pub path: String,
        /// A GitHub repository (`owner/name`) holding the file, committed through the
        /// contents API.
        pub repo: Option<String>,
        /// The branch to commit to (default: the repository's default branch).
        pub branch: Option<String>,
    }
}

pub struct JwksFile {
    spec: JwksFileAction,
    github: Option<GitHub>,
}

/// What publishing or unpublishing does to a JWKS document.
enum Edit<'a> {
    Add(&'a Material),
    Remove(&'a str),
}

impl JwksFile {
    pub fn new(spec: JwksFileAction, providers: &Providers) -> Result<Self, StepError> {
        let github = match &spec.repo {
            Some(_) => Some(providers.github("jwks-file in a repository")?),
            None => None,
        };
        Ok(JwksFile { spec, github })
    }

    fn where_(&self) -> String {
        match &self.spec.repo {
            Some(repo) => format!("{repo}:{}", self.spec.path),
            None => self.spec.path.clone(),
        }
    }
}

/// Reads a JWKS; a missing file is an empty set. Anything else that is not a JWKS is an
/// error and the file is left as it is.
pub fn read_jwks(path: &Path) -> Result<Value, StepError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({ "keys": [] })),
        Err(e) => Err(StepError::Failed(format!("cannot read {}: {e}", path.display()))),
    }
}

fn parse(text: &str, shown: &str) -> Result<Value, StepError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        StepError::Failed(format!(
            "{shown} is not JSON ({e}); fix or remove it, rotagate left it untouched"
        ))
    })?;
    if !doc.get("keys").is_some_and(Value::is_array) {
        return Err(StepError::Failed(format!(
            "{shown} is not a JWKS (no \"keys\" array); rotagate left it untouched"
        )));
    }
    Ok(doc)
}

fn render(doc: &Value) -> Result<String, StepError> {
    let mut text =
        serde_json::to_string_pretty(doc).map_err(|e| StepError::Failed(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// Applies `edit`; `Ok(false)` when the document already says so.
fn apply(doc: &mut Value, edit: &Edit, shown: &str) -> Result<bool, StepError> {
    let keys = doc["keys"].as_array_mut().expect("checked by parse");
    match edit {
        Edit::Add(material) => {
            let jwk = material.jwk.as_ref().ok_or_else(|| {
                StepError::Failed("only keys with a public JWK go into a JWKS".into())
            })?;
            if let Some(existing) = keys.iter().find(|k| k["kid"] == jwk["kid"]) {
                if existing["n"] == jwk["n"] && existing["e"] == jwk["e"] {
                    return Ok(false);
                }
                return Err(StepError::Failed(format!(
                    "{shown} already holds kid {} for a different key; a kid is never reused",
                    material.kid
                )));
            }
            keys.push(jwk.clone());
            Ok(true)
        }
        Edit::Remove(kid) => {
            let before = keys.len();
            keys.retain(|k| k["kid"] != *kid);
            Ok(before != keys.len())
        }
    }
}

impl JwksFile {
    async fn edit_local(&self, cx: &StepContext<'_>, edit: &Edit<'_>) -> Result<bool, StepError> {
        let path = resolve(cx.base_dir, &self.spec.path);
        let mut doc = read_jwks(&path)?;
        let changed = apply(&mut doc, edit, &path.display().to_string())?;
        if changed {
            write_atomically(&path, render(&doc)?.as_bytes(), 0o644)?;
        }
        Ok(changed)
    }

    /// Read, edit, and commit with the blob sha as precondition; a commit that lost the
    /// race (409) reads again.
    async fn edit_repo(
        &self,
        gh: &GitHub,
        repo: &str,
        edit: &Edit<'_>,
        message: &str,
    ) -> Result<bool, StepError> {
        let branch = match &self.spec.branch {
            Some(b) => b.clone(),
            None => gh.default_branch(repo).await?,
        };
        let path = self.spec.path.trim_start_matches('/');
        let shown = self.where_();
        for _ in 0..5 {
            let reply = gh
                .expect(
                    &Call::read(
                        "GET /repos/{owner}/{repo}/contents/{path}",
                        format!(
                            "/repos/{repo}/contents/{path}?ref={}",
                            crate::github::encode(&branch)
                        ),
                    ),
                    &[404],
                )
                .await?;
            let (mut doc, sha) = if reply.status == 404 {
                (json!({ "keys": [] }), None)
            } else {
                let v: Value = reply.json()?;
                let b64: String =
                    v["content"].as_str().unwrap_or_default().split_whitespace().collect();
                let bytes = STANDARD.decode(b64).map_err(|_| {
                    StepError::Failed(format!("{shown}: the contents API sent undecodable content"))
                })?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| StepError::Failed(format!("{shown} is not UTF-8")))?;
                (parse(&text, &shown)?, v["sha"].as_str().map(str::to_string))
            };
            if !apply(&mut doc, edit, &shown)? {
                return Ok(false);
            }
            let mut body = json!({
                "message": message,
                "content": STANDARD.encode(render(&doc)?),
                "branch": branch,
            });
            if let Some(sha) = sha {
                body["sha"] = sha.into();
            }
            let put = gh
                .expect(
                    &Call::create(
                        "PUT /repos/{owner}/{repo}/contents/{path}",
                        format!("/repos/{repo}/contents/{path}"),
                        &body,
                    ),
                    &[409],
                )
                .await?;
            if put.status != 409 {
                return Ok(true);
            }
            tracing::debug!("{shown} changed while rotagate edited it; reading it again");
        }
        Err(StepError::Failed(format!(
            "{shown} kept changing under rotagate; the next run tries again"
        )))
    }

    async fn edit(
        &self,
        cx: &StepContext<'_>,
        edit: Edit<'_>,
        message: String,
    ) -> Result<bool, StepError> {
        match (&self.github, &self.spec.repo) {
            (Some(gh), Some(repo)) => self.edit_repo(gh, repo, &edit, &message).await,
            _ => self.edit_local(cx, &edit).await,
        }
    }
}

#[async_trait]
impl Action for JwksFile {
    fn local(&self) -> bool {
        self.spec.repo.is_none()
    }

    fn describe(&self) -> String {
        format!("jwks-file {}", self.where_())
    }

    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, StepError> {
        match op {
            Op::Publish(view) => {
                let material =
                    view.new.ok_or_else(|| StepError::Failed("no material to publish".into()))?;
                let message =
                    format!("rotagate: publish kid {} of {}", material.kid, cx.credential);
                let added = self.edit(cx, Edit::Add(material), message).await?;
                Ok(json!({ "added": added }))
            }
            Op::Unpublish(view) => {
                let kid = view
                    .new
                    .map(|m| m.kid.clone())
                    .ok_or_else(|| StepError::Failed("no material to remove".into()))?;
                let message = format!("rotagate: remove kid {kid} of {}", cx.credential);
                let removed = self.edit(cx, Edit::Remove(&kid), message).await?;
                Ok(json!({ "removed": removed }))
            }
            other => Err(other.refused("jwks-file")),
        }
    }
}

impl ActionKind<JwksFileAction> for JwksFile {
    const ROLES: &'static [Role] = &[Role::Publish];

    fn check(j: &JwksFileAction, v: &mut Validator, _: &Scope, path: &str, _: Role) {
        relative_path(v, &format!("{path}.jwks-file.path"), &j.path);
        if let Some(r) = &j.repo {
            repo(v, &format!("{path}.jwks-file.repo"), r);
        }
        if let Some(b) = &j.branch {
            if j.repo.is_none() {
                v.err(
                    &format!("{path}.jwks-file.branch"),
                    "`branch` is for a file in a GitHub `repo`",
                    None,
                );
            } else if !is_branch_name(b) {
                v.err(
                    &format!("{path}.jwks-file.branch"),
                    format!("`{b}` is not a branch name"),
                    None,
                );
            }
        }
    }

    fn build(j: &JwksFileAction, providers: &Providers) -> Built {
        Ok(Some(Box::new(JwksFile::new(j.clone(), providers)?)))
    }

    fn github_need(j: &JwksFileAction) -> Option<(&'static str, Option<String>)> {
        j.repo.is_some().then(|| ("jwks-file in a repository", j.repo.clone()))
    }
}
