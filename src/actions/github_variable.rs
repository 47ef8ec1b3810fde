//! `github-variable`: Actions variables (plain text) of repositories, environments or an
//! organisation. Values before the first write are captured, so a first issuance can be
//! put back.

use std::collections::BTreeMap;

use async_trait::async_trait;
use http::Method;
use serde_json::{Value, json};

use super::github_secret::{Scope, org_fields, scopes};
use super::{Action, ActionError, Op, StepContext, View};
use crate::config::GithubValuesAction;
use crate::github::{Call, Cost, GitHub, GithubError};

pub struct GithubVariable {
    spec: GithubValuesAction,
    gh: GitHub,
}

fn endpoints(scope: &Scope) -> [&'static str; 4] {
    match scope {
        Scope::Repo(_) => [
            "GET /repos/{owner}/{repo}/actions/variables/{name}",
            "PATCH /repos/{owner}/{repo}/actions/variables/{name}",
            "POST /repos/{owner}/{repo}/actions/variables",
            "DELETE /repos/{owner}/{repo}/actions/variables/{name}",
        ],
        Scope::Environment(..) => [
            "GET /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}",
            "PATCH /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}",
            "POST /repos/{owner}/{repo}/environments/{environment_name}/variables",
            "DELETE /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}",
        ],
        Scope::Org(_) => [
            "GET /orgs/{org}/actions/variables/{name}",
            "PATCH /orgs/{org}/actions/variables/{name}",
            "POST /orgs/{org}/actions/variables",
            "DELETE /orgs/{org}/actions/variables/{name}",
        ],
    }
}

impl GithubVariable {
    pub fn new(spec: GithubValuesAction, gh: GitHub) -> Self {
        GithubVariable { spec, gh }
    }

    async fn read(&self, scope: &Scope, name: &str) -> Result<Option<String>, GithubError> {
        let reply = self
            .gh
            .expect(
                &Call {
                    method: Method::GET,
                    path: format!("{}/{name}", scope.base("variables")),
                    endpoint: endpoints(scope)[0],
                    body: None,
                    cost: Cost::Read,
                },
                &[404],
            )
            .await?;
        if reply.status == 404 {
            return Ok(None);
        }
        Ok(reply.json::<Value>()?["value"].as_str().map(str::to_string))
    }

    /// Updates `name`, creating it when it does not exist yet.
    async fn set(
        &self,
        scope: &Scope,
        name: &str,
        value: &str,
        org: &Value,
    ) -> Result<(), GithubError> {
        let [_, patch, post, _] = endpoints(scope);
        let mut body = json!({ "name": name, "value": value });
        if let (Scope::Org(_), Value::Object(extra)) = (scope, org) {
            for (k, v) in extra {
                body[k] = v.clone();
            }
        }
        let updated = self
            .gh
            .expect(
                &Call {
                    method: Method::PATCH,
                    path: format!("{}/{name}", scope.base("variables")),
                    endpoint: patch,
                    body: Some(&body),
                    cost: Cost::Write,
                },
                &[404],
            )
            .await?;
        if updated.status == 404 {
            self.gh
                .expect(
                    &Call {
                        method: Method::POST,
                        path: scope.base("variables"),
                        endpoint: post,
                        body: Some(&body),
                        cost: Cost::Write,
                    },
                    &[],
                )
                .await?;
        }
        Ok(())
    }

    async fn delete(&self, scope: &Scope, name: &str) -> Result<(), GithubError> {
        self.gh
            .expect(
                &Call {
                    method: Method::DELETE,
                    path: format!("{}/{name}", scope.base("variables")),
                    endpoint: endpoints(scope)[3],
                    body: None,
                    cost: Cost::Write,
                },
                &[404],
            )
            .await
            .map(|_| ())
    }

    /// Applies `(scope, name, Some(value) | None=delete)` for every scope and name.
    async fn apply(
        &self,
        changes: Vec<(Scope, String, Option<String>)>,
    ) -> Result<Value, ActionError> {
        let org = match self.spec.org {
            Some(_) => org_fields(&self.gh, &self.spec).await?,
            None => Value::Null,
        };
        let count = changes.len();
        let results = self
            .gh
            .concurrently(
                changes,
                |(scope, name, value): (Scope, String, Option<String>)| {
                    let org = &org;
                    async move {
                        let r = match &value {
                            Some(v) => self.set(&scope, &name, v, org).await,
                            None => self.delete(&scope, &name).await,
                        };
                        r.map_err(|e| format!("{} {name}: {e}", scope.show()))
                    }
                },
            )
            .await;
        let mut failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if !failures.is_empty() {
            failures.sort();
            return Err(ActionError::Failed(format!(
                "{} of {count} variables were not written: {}",
                failures.len(),
                failures.join("; ")
            )));
        }
        Ok(json!({ "written": count }))
    }
}

#[async_trait]
impl Action for GithubVariable {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.spec.set.keys().map(String::as_str).collect();
        let place = match scopes(&self.spec).as_slice() {
            [one] => one.show(),
            many => format!("{} repositories", many.len()),
        };
        format!("github-variable {place} ({})", names.join(", "))
    }

    fn writes_values(&self) -> bool {
        true
    }

    async fn capture(
        &self,
        _view: &View<'_>,
        _cx: &StepContext<'_>,
    ) -> Result<Option<Value>, ActionError> {
        let mut before: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
        for scope in scopes(&self.spec) {
            for name in self.spec.set.keys() {
                let value = self.read(&scope, name).await?;
                before
                    .entry(format!("{scope:?}"))
                    .or_default()
                    .insert(name.clone(), value);
            }
        }
        Ok(Some(json!({ "variables": before })))
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, ActionError> {
        match op {
            Op::Write(view) => {
                let mut changes = Vec::new();
                for scope in scopes(&self.spec) {
                    for (name, t) in &self.spec.set {
                        changes.push((
                            scope.clone(),
                            name.clone(),
                            Some(t.render(view)?.expose().to_string()),
                        ));
                    }
                }
                self.apply(changes).await
            }
            Op::Restore(before) => {
                let recorded = before
                    .get("variables")
                    .and_then(Value::as_object)
                    .ok_or_else(|| ActionError::Failed("nothing was recorded to restore".into()))?;
                let mut changes = Vec::new();
                for scope in scopes(&self.spec) {
                    let values = recorded
                        .get(&format!("{scope:?}"))
                        .and_then(Value::as_object);
                    for name in self.spec.set.keys() {
                        let previous = values
                            .and_then(|v| v.get(name))
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        changes.push((scope.clone(), name.clone(), previous));
                    }
                }
                self.apply(changes).await
            }
            Op::Publish(_) | Op::Unpublish(_) | Op::Run(_) => Err(ActionError::Failed(
                "a github-variable step only writes values".into(),
            )),
        }
    }
}
