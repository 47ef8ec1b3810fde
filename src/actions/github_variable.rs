//! `github-variable`: Actions variables (plain text) of repositories, environments or an
//! organisation. Whether a variable exists is read from the scope's list (GitHub
//! documents no 404 for a missing one); values before the first write are captured, so
//! a first issuance can be put back.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::github_secret::{GithubValuesAction, Scope, github_values_kind, org_fields, scopes};
use super::{Action, Captured, Op};
use crate::github::{Call, GitHub, GithubError};
use crate::step::{StepContext, StepError, View};

pub struct GithubVariable {
    spec: GithubValuesAction,
    gh: GitHub,
}

/// List, update, create and delete routes of a scope's variables.
fn endpoints(scope: &Scope) -> [&'static str; 4] {
    match scope {
        Scope::Repo(_) => [
            "GET /repos/{owner}/{repo}/actions/variables",
            "PATCH /repos/{owner}/{repo}/actions/variables/{name}",
            "POST /repos/{owner}/{repo}/actions/variables",
            "DELETE /repos/{owner}/{repo}/actions/variables/{name}",
        ],
        Scope::Environment(..) => [
            "GET /repos/{owner}/{repo}/environments/{environment_name}/variables",
            "PATCH /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}",
            "POST /repos/{owner}/{repo}/environments/{environment_name}/variables",
            "DELETE /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}",
        ],
        Scope::Org(_) => [
            "GET /orgs/{org}/actions/variables",
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

    /// Every variable of the scope, by name.
    async fn existing(&self, scope: &Scope) -> Result<BTreeMap<String, String>, GithubError> {
        let listed =
            self.gh.list(endpoints(scope)[0], &scope.base("variables"), Some("variables")).await?;
        Ok(listed
            .iter()
            .filter_map(|var| {
                let value = match &var["value"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                var["name"].as_str().map(|n| (n.to_string(), value))
            })
            .collect())
    }

    async fn send(
        &self,
        endpoint: &'static str,
        path: String,
        body: Option<&Value>,
    ) -> Result<(), GithubError> {
        self.gh.expect(&Call::write(endpoint, path, body), &[]).await.map(|_| ())
    }

    /// Applies, per scope, `name → Some(value) | None (delete)`.
    async fn apply(
        &self,
        plan: Vec<(Scope, BTreeMap<String, Option<String>>)>,
    ) -> Result<Value, StepError> {
        let org = match self.spec.org {
            Some(_) => org_fields(&self.gh, &self.spec).await?,
            None => Value::Null,
        };
        let mut jobs = Vec::new();
        for (scope, changes) in plan {
            let existing = self.existing(&scope).await?;
            for (name, value) in &changes {
                let present = existing.contains_key(name);
                if value.is_none() && !present {
                    continue;
                }
                jobs.push((scope.clone(), name.clone(), value.clone(), present));
            }
        }
        let count = jobs.len();
        let results = self
            .gh
            .concurrently(
                jobs,
                |(scope, name, value, present): (Scope, String, Option<String>, bool)| {
                    let org = &org;
                    async move {
                        let [_, patch, post, delete] = endpoints(&scope);
                        let item = format!("{}/{name}", scope.base("variables"));
                        let result = match value {
                            None => self.send(delete, item, None).await,
                            Some(value) => {
                                let mut body = json!({ "name": name, "value": value });
                                if let (Scope::Org(_), Value::Object(extra)) = (&scope, org) {
                                    for (k, v) in extra {
                                        body[k] = v.clone();
                                    }
                                }
                                if present {
                                    self.send(patch, item, Some(&body)).await
                                } else {
                                    self.send(post, scope.base("variables"), Some(&body)).await
                                }
                            }
                        };
                        result.map_err(|e| format!("{} {name}: {e}", scope.show()))
                    }
                },
            )
            .await;
        let mut failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if !failures.is_empty() {
            failures.sort();
            return Err(StepError::Failed(format!(
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

    async fn capture(&self, _view: &View<'_>, _cx: &StepContext<'_>) -> Captured {
        let mut before: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
        for scope in scopes(&self.spec) {
            let existing = self.existing(&scope).await?;
            let values = self
                .spec
                .set
                .keys()
                .map(|name| (name.clone(), existing.get(name).cloned()))
                .collect();
            before.insert(format!("{scope:?}"), values);
        }
        Ok(Some(json!({ "variables": before })))
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, StepError> {
        match op {
            Op::Write(view) => {
                let mut changes = BTreeMap::new();
                for (name, t) in &self.spec.set {
                    changes.insert(name.clone(), Some(t.render(view)?.expose().to_string()));
                }
                let plan = scopes(&self.spec).into_iter().map(|s| (s, changes.clone())).collect();
                self.apply(plan).await
            }
            Op::Restore(before) => {
                let recorded = before
                    .get("variables")
                    .and_then(Value::as_object)
                    .ok_or_else(|| StepError::Failed("nothing was recorded to restore".into()))?;
                let plan = scopes(&self.spec)
                    .into_iter()
                    .map(|scope| {
                        let values = recorded.get(&format!("{scope:?}")).and_then(Value::as_object);
                        let changes = self
                            .spec
                            .set
                            .keys()
                            .map(|name| {
                                let previous = values
                                    .and_then(|v| v.get(name))
                                    .and_then(Value::as_str)
                                    .map(str::to_string);
                                (name.clone(), previous)
                            })
                            .collect();
                        (scope, changes)
                    })
                    .collect();
                self.apply(plan).await
            }
            other => Err(other.refused("github-variable")),
        }
    }
}

github_values_kind!(GithubVariable, "github-variable", secret: false);
