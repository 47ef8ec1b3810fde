//! `github-workflow`: dispatches a workflow (a redeploy) and journals which run it
//! started; the probe of the same name follows that run to its conclusion.

use std::time::Duration;

use async_trait::async_trait;
use http::Method;
use serde_json::{Value, json};

use super::{Action, ActionError, Op, StepContext};
use crate::config::GithubWorkflowAction;
use crate::github::{Call, Cost, GitHub, GithubError, encode};

pub struct Dispatch {
    spec: GithubWorkflowAction,
    gh: GitHub,
}

impl Dispatch {
    pub fn new(spec: GithubWorkflowAction, gh: GitHub) -> Self {
        Dispatch { spec, gh }
    }
}

/// The workflow's recent `workflow_dispatch` runs, newest first.
pub async fn dispatch_runs(
    gh: &GitHub,
    repo: &str,
    workflow: &str,
) -> Result<Vec<Value>, GithubError> {
    let runs: Value = gh
        .get(
            "GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
            format!(
                "/repos/{repo}/actions/workflows/{}/runs?event=workflow_dispatch&per_page=20",
                encode(workflow)
            ),
        )
        .await?;
    let mut runs: Vec<Value> = runs["workflow_runs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    runs.sort_by_key(|r| std::cmp::Reverse(r["id"].as_u64().unwrap_or(0)));
    Ok(runs)
}

/// Run ids only grow, so "the run this dispatch started" is the newest one above the
/// newest before it; no clock is compared.
pub fn run_after(runs: &[Value], after: u64) -> Option<&Value> {
    runs.iter()
        .find(|r| r["id"].as_u64().is_some_and(|id| id > after))
}

#[async_trait]
impl Action for Dispatch {
    fn describe(&self) -> String {
        format!("github-workflow {} {}", self.spec.repo, self.spec.workflow)
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, ActionError> {
        let view = match op {
            Op::Run(view) | Op::Write(view) => view,
            _ => {
                return Err(ActionError::Failed(
                    "a github-workflow step is a hook".into(),
                ));
            }
        };
        let (repo, workflow) = (&self.spec.repo, &self.spec.workflow);
        let git_ref = match &self.spec.git_ref {
            Some(r) => r.clone(),
            None => self.gh.default_branch(repo).await?,
        };
        let mut inputs = serde_json::Map::new();
        for (k, t) in &self.spec.inputs {
            inputs.insert(k.clone(), t.render(view)?.expose().into());
        }
        let before = dispatch_runs(&self.gh, repo, workflow)
            .await?
            .first()
            .and_then(|r| r["id"].as_u64())
            .unwrap_or(0);
        let body = json!({ "ref": git_ref, "inputs": inputs });
        self.gh
            .expect(
                &Call {
                    method: Method::POST,
                    path: format!("/repos/{repo}/actions/workflows/{}/dispatches", encode(workflow)),
                    endpoint: "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
                    body: Some(&body),
                    cost: Cost::Create,
                },
                &[],
            )
            .await?;
        // GitHub starts the run a moment after accepting the dispatch.
        let mut run_id = None;
        for wait in [0, 1, 2, 3, 5] {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            if let Some(run) = run_after(&dispatch_runs(&self.gh, repo, workflow).await?, before) {
                run_id = run["id"].as_u64();
                break;
            }
        }
        Ok(json!({
            "workflow_dispatch": { "repo": repo, "workflow": workflow, "ref": git_ref, "after_run": before, "run_id": run_id }
        }))
    }
}
