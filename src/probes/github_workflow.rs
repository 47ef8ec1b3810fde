//! `github-workflow` probe: the newest run of a workflow dispatched since the stage
//! began concluded with success.

use std::time::Duration;

use async_trait::async_trait;

use super::{DEFAULT_INTERVAL, Probe, ProbeError};
use crate::actions::{StepContext, View, latest_run_since};
use crate::config;
use crate::github::GitHub;

pub struct GithubWorkflowProbe {
    spec: config::GithubWorkflowProbe,
    gh: GitHub,
}

impl GithubWorkflowProbe {
    pub fn new(spec: config::GithubWorkflowProbe, gh: GitHub) -> Self {
        GithubWorkflowProbe { spec, gh }
    }
}

/// Runners' and GitHub's clocks disagree a little.
const CLOCK_SLACK: time::Duration = time::Duration::minutes(2);

#[async_trait]
impl Probe for GithubWorkflowProbe {
    fn describe(&self) -> String {
        format!("github-workflow {} {}", self.spec.repo, self.spec.workflow)
    }

    fn retries(&self) -> u32 {
        self.spec.retries
    }

    fn interval(&self) -> Duration {
        self.spec.interval.map_or(DEFAULT_INTERVAL, |d| d.0)
    }

    async fn check(&self, _view: &View<'_>, cx: &StepContext<'_>) -> Result<String, ProbeError> {
        let since = cx.since - CLOCK_SLACK;
        let run = latest_run_since(&self.gh, &self.spec.repo, &self.spec.workflow, since)
            .await
            .map_err(|e| ProbeError::Action(e.into()))?
            .ok_or_else(|| {
                ProbeError::Failed(format!(
                    "no run of {} in {} was dispatched since {} yet",
                    self.spec.workflow,
                    self.spec.repo,
                    crate::clock::show(cx.since)
                ))
            })?;
        let number = run["run_number"].as_u64().unwrap_or_default();
        let url = run["html_url"].as_str().unwrap_or_default();
        match (run["status"].as_str(), run["conclusion"].as_str()) {
            (Some("completed"), Some("success")) => Ok(format!(
                "{} run #{number} succeeded ({url})",
                self.spec.workflow
            )),
            (Some("completed"), conclusion) => Err(ProbeError::Failed(format!(
                "{} run #{number} concluded {} ({url})",
                self.spec.workflow,
                conclusion.unwrap_or("without a conclusion")
            ))),
            (status, _) => Err(ProbeError::Failed(format!(
                "{} run #{number} is still {} ({url})",
                self.spec.workflow,
                status.unwrap_or("pending")
            ))),
        }
    }
}
