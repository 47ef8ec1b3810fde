//! The GitHub Actions job rotagate runs in: the triggering event, the branch, and the
//! files the runner reads back (step outputs, the step summary).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where approval files live, per credential (`<dir>/<credential>/<gate>.yaml`).
pub const APPROVALS_DIR: &str = ".rotagate/approvals/";

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("cannot read the event payload {path}: {message}")]
    Event { path: PathBuf, message: String },
    #[error("cannot write {what} ({path}): {message}")]
    Write { what: &'static str, path: PathBuf, message: String },
}

/// What the triggering event asks of a `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `workflow_dispatch` naming a credential: an incident rotation.
    Incident { credential: String, reason: String, emergency: bool },
    /// A push to the default branch that merged approval files: those credentials.
    Approvals(Vec<String>),
    /// Anything else (a schedule, a dispatch without a credential): a normal run.
    Routine,
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub event_name: String,
    pub event: Value,
    /// `GITHUB_REF`, e.g. `refs/heads/main`.
    pub git_ref: String,
    pub repository: Option<String>,
    /// This run's page, where its artifacts (the encrypted state) are listed.
    pub run_url: Option<String>,
    output: Option<PathBuf>,
    summary: Option<PathBuf>,
    workspace: Option<PathBuf>,
}

impl Workflow {
    /// The job's context when running under GitHub Actions (`GITHUB_ACTIONS=true`).
    pub fn detect() -> Result<Option<Workflow>, WorkflowError> {
        Self::from_env(&|name| std::env::var(name).ok())
    }

    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Workflow>, WorkflowError> {
        if env("GITHUB_ACTIONS").as_deref() != Some("true") {
            return Ok(None);
        }
        let path = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let event = match path("GITHUB_EVENT_PATH") {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| WorkflowError::Event {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                serde_json::from_str(&text)
                    .map_err(|e| WorkflowError::Event { path: p.clone(), message: e.to_string() })?
            }
            None => Value::Null,
        };
        Ok(Some(Workflow {
            event_name: env("GITHUB_EVENT_NAME").unwrap_or_default(),
            event,
            git_ref: env("GITHUB_REF").unwrap_or_default(),
            repository: env("GITHUB_REPOSITORY").filter(|r| !r.is_empty()),
            run_url: match (
                env("GITHUB_SERVER_URL"),
                env("GITHUB_REPOSITORY"),
                env("GITHUB_RUN_ID"),
            ) {
                (Some(server), Some(repo), Some(run)) if !repo.is_empty() && !run.is_empty() => {
                    Some(format!("{server}/{repo}/actions/runs/{run}"))
                }
                _ => None,
            },
            output: path("GITHUB_OUTPUT"),
            summary: path("GITHUB_STEP_SUMMARY"),
            workspace: path("GITHUB_WORKSPACE"),
        }))
    }

    /// The repository's default branch, as the event payload states it.
    pub fn default_branch(&self) -> Option<String> {
        self.event["repository"]["default_branch"]
            .as_str()
            .filter(|b| !b.is_empty())
            .map(str::to_string)
    }

    /// The branch the job runs on, when `GITHUB_REF` is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// Why this job may not change anything, given the default branch: runs for pull
    /// requests (which may carry their author's config) and runs on other refs.
    pub fn refusal(&self, default_branch: &str) -> Option<String> {
        if self.event_name.starts_with("pull_request") {
            return Some(format!(
                "this job runs for a {} event, which can carry a pull request author's config; rotagate changes nothing from pull requests (approvals are read after the merge, on push)",
                self.event_name
            ));
        }
        match self.branch() {
            Some(b) if b == default_branch => None,
            _ => Some(format!(
                "this job runs on {}, not on the default branch {default_branch}; only the default branch's config may rotate (and only it can deploy to the `rotation` environment)",
                if self.git_ref.is_empty() { "an unknown ref" } else { &self.git_ref }
            )),
        }
    }

    /// What the event asks of a `run`.
    pub fn trigger(&self) -> Trigger {
        match self.event_name.as_str() {
            "workflow_dispatch" => {
                let inputs = &self.event["inputs"];
                let text =
                    |k: &str| inputs[k].as_str().map(str::trim).unwrap_or_default().to_string();
                let credential = text("credential");
                if credential.is_empty() {
                    return Trigger::Routine;
                }
                let emergency = match &inputs["emergency"] {
                    Value::Bool(b) => *b,
                    Value::String(s) => s.trim() == "true",
                    _ => false,
                };
                Trigger::Incident { credential, reason: text("reason"), emergency }
            }
            "push" => {
                let mut ids: Vec<String> = self.event["commits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(self.event.get("head_commit").filter(|c| !c.is_null()))
                    .flat_map(|c| ["added", "modified"].map(|k| c[k].clone()))
                    .filter_map(|files| files.as_array().cloned())
                    .flatten()
                    .filter_map(|f| f.as_str().and_then(approval_credential))
                    .collect();
                ids.sort();
                ids.dedup();
                if ids.is_empty() { Trigger::Routine } else { Trigger::Approvals(ids) }
            }
            _ => Trigger::Routine,
        }
    }

    /// A path as the runner's annotations want it: relative to the workspace.
    pub fn relative<'a>(&self, path: &'a Path) -> std::borrow::Cow<'a, Path> {
        match &self.workspace {
            Some(ws) => match path.strip_prefix(ws) {
                Ok(rel) => rel.to_path_buf().into(),
                Err(_) => path.into(),
            },
            None => path.into(),
        }
    }

    /// Appends step outputs to `$GITHUB_OUTPUT`, each in the delimiter form so values
    /// may span lines.
    pub fn set_outputs(&self, outputs: &[(&str, String)]) -> Result<(), WorkflowError> {
        let Some(path) = &self.output else {
            return Ok(());
        };
        let mut text = String::new();
        for (name, value) in outputs {
            let delimiter = delimiter_for(value);
            text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
        }
        append(path, &text).map_err(|e| WorkflowError::Write {
            what: "the step outputs",
            path: path.clone(),
            message: e.to_string(),
        })
    }

    /// Appends Markdown to the job's summary page.
    pub fn append_summary(&self, markdown: &str) -> Result<(), WorkflowError> {
        let Some(path) = &self.summary else {
            return Ok(());
        };
        append(path, markdown).map_err(|e| WorkflowError::Write {
            what: "the step summary",
            path: path.clone(),
            message: e.to_string(),
        })
    }
}

/// `.rotagate/approvals/<credential>/<gate>.yaml` → the credential.
fn approval_credential(path: &str) -> Option<String> {
    let rest = path.strip_prefix(APPROVALS_DIR)?;
    let (credential, file) = rest.split_once('/')?;
    (!credential.is_empty() && file.ends_with(".yaml") && !file.contains('/'))
        .then(|| credential.to_string())
}

/// A heredoc delimiter that does not occur in `value`.
fn delimiter_for(value: &str) -> String {
    loop {
        let delimiter = format!("ghadelimiter_{}", uuid::Uuid::new_v4().simple());
        if !value.contains(&delimiter) {
            return delimiter;
        }
    }
}

/// Appends to a runner file (summary, outputs) through the redactor: the runner shows
/// both to anyone who can read the run.
fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(crate::secret::redact(text).as_bytes())?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wf(event_name: &str, git_ref: &str, event: Value) -> Workflow {
        Workflow {
            event_name: event_name.into(),
            event,
            git_ref: git_ref.into(),
            repository: Some("acme/ops".into()),
            run_url: None,
            output: None,
            summary: None,
            workspace: Some("/w".into()),
        }
    }

    #[test]
    fn dispatch_inputs_name_an_incident() {
        let w = wf(
            "workflow_dispatch",
            "refs/heads/main",
            json!({ "inputs": { "credential": " api ", "reason": "leaked", "emergency": "true" } }),
        );
        assert_eq!(
            w.trigger(),
            Trigger::Incident {
                credential: "api".into(),
                reason: "leaked".into(),
                emergency: true
            }
        );
        let w = wf("workflow_dispatch", "refs/heads/main", json!({ "inputs": {} }));
        assert_eq!(w.trigger(), Trigger::Routine);
    }

    #[test]
    fn a_push_names_the_credentials_whose_approvals_it_merged() {
        let w = wf(
            "push",
            "refs/heads/main",
            json!({
                "commits": [
                    { "added": [".rotagate/approvals/api/retire.yaml", "README.md"], "modified": [] },
                    { "added": [], "modified": [".rotagate/approvals/db/promote.yaml", ".rotagate/approvals/x/y/z.yaml"] }
                ],
                "head_commit": { "added": [".rotagate/approvals/api/retire.yaml"], "modified": [] }
            }),
        );
        assert_eq!(w.trigger(), Trigger::Approvals(vec!["api".into(), "db".into()]));
    }

    #[test]
    fn only_the_default_branch_may_change_anything() {
        let main = wf("push", "refs/heads/main", json!({}));
        assert_eq!(main.refusal("main"), None);
        for (event, git_ref) in [
            ("push", "refs/heads/feature"),
            ("push", "refs/tags/v1"),
            ("pull_request_target", "refs/heads/main"),
            ("pull_request", "refs/pull/3/merge"),
        ] {
            let refused = wf(event, git_ref, json!({})).refusal("main");
            assert!(refused.is_some(), "{event} on {git_ref}");
        }
    }

    #[test]
    fn delimiters_never_occur_in_the_value() {
        let d = delimiter_for("a\nghadelimiter_\nb");
        assert!(d.starts_with("ghadelimiter_") && d.len() > 20);
    }

    #[test]
    fn annotation_paths_are_relative_to_the_workspace() {
        let w = wf("push", "refs/heads/main", json!({}));
        assert_eq!(w.relative(Path::new("/w/ops/rotagate.yaml")), Path::new("ops/rotagate.yaml"));
        assert_eq!(w.relative(Path::new("rotagate.yaml")), Path::new("rotagate.yaml"));
    }
}
