//! Workflow runs: which run a dispatch started, for the action that dispatches and the
//! probe that follows it.

use serde_json::Value;

use super::{GitHub, GithubError, encode};

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
    let mut runs: Vec<Value> = runs["workflow_runs"].as_array().cloned().unwrap_or_default();
    runs.sort_by_key(|r| std::cmp::Reverse(r["id"].as_u64().unwrap_or(0)));
    Ok(runs)
}

/// Run ids only grow, so "the run this dispatch started" is the newest one above the
/// newest before it; no clock is compared.
pub fn run_after(runs: &[Value], after: u64) -> Option<&Value> {
    runs.iter().find(|r| r["id"].as_u64().is_some_and(|id| id > after))
}
