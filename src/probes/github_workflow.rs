//! `github-workflow` probe: the run a `github-workflow` step of this rotation dispatched
//! concluded with success.

use async_trait::async_trait;

use super::{Probe, ProbeError};
use crate::config;
use crate::github::GitHub;
use crate::github::runs::{dispatch_runs, run_after};
use crate::step::{StepContext, View};

pub struct GithubWorkflowProbe {
    spec: config::GithubWorkflowProbe,
    gh: GitHub,
}

impl GithubWorkflowProbe {
    pub fn new(spec: config::GithubWorkflowProbe, gh: GitHub) -> Self {
        GithubWorkflowProbe { spec, gh }
    }
}

#[async_trait]
impl Probe for GithubWorkflowProbe {
    fn describe(&self) -> String {
        format!("github-workflow {} {}", self.spec.repo, self.spec.workflow)
    }

    async fn check(&self, _view: &View<'_>, cx: &StepContext<'_>) -> Result<String, ProbeError> {
        let wf = &self.spec.workflow;
        let dispatched = cx
            .produced
            .iter()
            .rev()
            .filter_map(|v| v.get("workflow_dispatch"))
            .find(|d| d["repo"] == self.spec.repo.as_str() && d["workflow"] == wf.as_str())
            .ok_or_else(|| {
                ProbeError::Failed(format!(
                    "no github-workflow step of this rotation dispatched {wf} in {}; list one under promote",
                    self.spec.repo
                ))
            })?;
        let runs = dispatch_runs(&self.gh, &self.spec.repo, wf)
            .await
            .map_err(|e| ProbeError::Step(e.into()))?;
        let run = match dispatched["run_id"].as_u64() {
            Some(id) => runs.iter().find(|r| r["id"].as_u64() == Some(id)),
            None => run_after(&runs, dispatched["after_run"].as_u64().unwrap_or(0)),
        }
        .ok_or_else(|| {
            ProbeError::Failed(format!(
                "the {wf} run dispatched by this rotation has not started yet"
            ))
        })?;
        let number = run["run_number"].as_u64().unwrap_or_default();
        let url = run["html_url"].as_str().unwrap_or_default();
        match (run["status"].as_str(), run["conclusion"].as_str()) {
            (Some("completed"), Some("success")) => {
                Ok(format!("{wf} run #{number} succeeded ({url})"))
            }
            (Some("completed"), conclusion) => Err(ProbeError::Failed(format!(
                "{wf} run #{number} concluded {} ({url})",
                conclusion.unwrap_or("without a conclusion")
            ))),
            (status, _) => Err(ProbeError::Failed(format!(
                "{wf} run #{number} is still {} ({url})",
                status.unwrap_or("pending")
            ))),
        }
    }
}
