//! `github-workflow`: dispatches a workflow (a redeploy) and journals which run it
//! started; the probe of the same name follows that run to its conclusion.

use crate::config::shape;
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Op};
use crate::config::Template;
use crate::config::validate::steps::{repo, template};
use crate::config::validate::{Role, Scope, Slot, Validator};
use crate::github::runs::{dispatch_runs, run_after};
use crate::github::{Call, GitHub, encode};
use crate::step::{Providers, StepContext, StepError};

shape! {
    pub struct GithubWorkflowAction {
        /// `owner/name`
        pub repo: String,
        /// The workflow file name (`deploy.yml`) or id.
        pub workflow: String,
        /// The branch or tag to run on (default: the repository's default branch).
        #[serde(rename = "ref")]
        pub git_ref: Option<String>,
        /// workflow_dispatch inputs (shown in the run page: public values only).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub inputs: BTreeMap<String, Template>,
    }
}

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

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, StepError> {
        let view = match op {
            Op::Run(view) | Op::Write(view) => view,
            _ => {
                return Err(StepError::Failed("a github-workflow step is a hook".into()));
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
                &Call::create(
                    "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
                    format!("/repos/{repo}/actions/workflows/{}/dispatches", encode(workflow)),
                    &body,
                ),
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

impl ActionKind<GithubWorkflowAction> for Dispatch {
    const ROLES: &'static [Role] = &[Role::Promote, Role::Retire];

    fn check(w: &GithubWorkflowAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        let p = format!("{path}.github-workflow");
        repo(v, &format!("{p}.repo"), &w.repo);
        if w.workflow.trim().is_empty() {
            v.err(&format!("{p}.workflow"), "name the workflow file (deploy.yml) or its id", None);
        }
        for (k, t) in &w.inputs {
            template(v, scope, &format!("{p}.inputs.{k}"), t, Slot::Public);
        }
    }

    fn build(w: &GithubWorkflowAction, providers: &Providers) -> Built {
        let gh = providers.github("github-workflow")?;
        Ok(Some(Box::new(Dispatch::new(w.clone(), gh))))
    }

    fn github_need(w: &GithubWorkflowAction) -> Option<(&'static str, Option<String>)> {
        Some(("github-workflow", Some(w.repo.clone())))
    }
}
