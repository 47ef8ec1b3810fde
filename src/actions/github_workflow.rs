//! `github-workflow`: dispatches a workflow (a redeploy); the probe of the same name
//! waits for the run it started to succeed.

use async_trait::async_trait;
use http::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

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
        let git_ref = match &self.spec.git_ref {
            Some(r) => r.clone(),
            None => self.gh.default_branch(&self.spec.repo).await?,
        };
        let mut inputs = serde_json::Map::new();
        for (k, t) in &self.spec.inputs {
            inputs.insert(k.clone(), t.render(view)?.expose().into());
        }
        let body = json!({ "ref": git_ref, "inputs": inputs });
        self.gh
            .expect(
                &Call {
                    method: Method::POST,
                    path: format!("/repos/{}/actions/workflows/{}/dispatches", self.spec.repo, encode(&self.spec.workflow)),
                    endpoint: "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
                    body: Some(&body),
                    cost: Cost::Create,
                },
                &[],
            )
            .await?;
        Ok(json!({ "dispatched": self.spec.workflow, "ref": git_ref }))
    }
}

/// The newest `workflow_dispatch` run of `workflow` created at or after `since`.
pub async fn latest_run_since(
    gh: &GitHub,
    repo: &str,
    workflow: &str,
    since: OffsetDateTime,
) -> Result<Option<Value>, GithubError> {
    let runs: Value = gh
        .get(
            "GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
            format!(
                "/repos/{repo}/actions/workflows/{}/runs?event=workflow_dispatch&per_page=20",
                encode(workflow)
            ),
        )
        .await?;
    let mut candidates: Vec<&Value> = runs["workflow_runs"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    candidates.retain(|r| {
        r["created_at"]
            .as_str()
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .is_some_and(|t| t >= since)
    });
    candidates.sort_by_key(|r| r["created_at"].as_str().map(str::to_string));
    Ok(candidates.last().map(|r| (*r).clone()))
}
