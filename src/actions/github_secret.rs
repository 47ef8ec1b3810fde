//! `github-secret`: Actions secrets of repositories, environments or an organisation.
//! Each scope's public key is fetched once per run; every value is sealed (libsodium
//! sealed box) and written, many at once. All values of one entry are one step.

use async_trait::async_trait;
use http::Method;
use serde_json::{Value, json};

use super::{Action, ActionError, Op, StepContext, View};
use crate::config::{GithubValuesAction, Visibility};
use crate::github::{Call, Cost, GitHub, GithubError, encode, seal};
use crate::secret::Secret;

/// Where values go: a repository, one of its environments, or an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Repo(String),
    Environment(String, String),
    Org(String),
}

impl Scope {
    /// The collection route of this scope's secrets or variables.
    pub fn base(&self, kind: &str) -> String {
        match self {
            Scope::Repo(r) => format!("/repos/{r}/actions/{kind}"),
            Scope::Environment(r, e) => format!("/repos/{r}/environments/{}/{kind}", encode(e)),
            Scope::Org(o) => format!("/orgs/{o}/actions/{kind}"),
        }
    }

    pub fn show(&self) -> String {
        match self {
            Scope::Repo(r) => r.clone(),
            Scope::Environment(r, e) => format!("{r} environment {e}"),
            Scope::Org(o) => format!("organisation {o}"),
        }
    }
}

/// The scopes an entry names.
pub fn scopes(spec: &GithubValuesAction) -> Vec<Scope> {
    if let Some(org) = &spec.org {
        return vec![Scope::Org(org.clone())];
    }
    spec.repo
        .iter()
        .chain(spec.repos.iter())
        .map(|r| match &spec.environment {
            Some(e) => Scope::Environment(r.clone(), e.clone()),
            None => Scope::Repo(r.clone()),
        })
        .collect()
}

/// Organisation-level settings: visibility and the ids of selected repositories.
pub async fn org_fields(gh: &GitHub, spec: &GithubValuesAction) -> Result<Value, GithubError> {
    let visibility = match spec.visibility.unwrap_or(Visibility::Private) {
        Visibility::All => "all",
        Visibility::Private => "private",
        Visibility::Selected => "selected",
    };
    let mut fields = json!({ "visibility": visibility });
    if !spec.repositories.is_empty() {
        let org = spec.org.as_deref().unwrap_or_default();
        let mut ids = Vec::new();
        for name in &spec.repositories {
            let repo = gh.repository(&format!("{org}/{name}")).await?;
            ids.push(repo["id"].clone());
        }
        fields["selected_repository_ids"] = ids.into();
    }
    Ok(fields)
}

pub struct GithubSecret {
    spec: GithubValuesAction,
    gh: GitHub,
}

impl GithubSecret {
    pub fn new(spec: GithubValuesAction, gh: GitHub) -> Self {
        GithubSecret { spec, gh }
    }

    /// The scope's public key (`key_id`, `key`), fetched once per run.
    async fn public_key(&self, scope: &Scope) -> Result<(String, String), GithubError> {
        let cache = format!("secrets-key:{scope:?}");
        let v = match self.gh.cached(&cache) {
            Some(v) => v,
            None => {
                let endpoint = match scope {
                    Scope::Repo(_) => "GET /repos/{owner}/{repo}/actions/secrets/public-key",
                    Scope::Environment(..) => {
                        "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key"
                    }
                    Scope::Org(_) => "GET /orgs/{org}/actions/secrets/public-key",
                };
                let v: Value = self
                    .gh
                    .get(endpoint, format!("{}/public-key", scope.base("secrets")))
                    .await?;
                self.gh.remember(&cache, v.clone());
                v
            }
        };
        match (v["key_id"].as_str(), v["key"].as_str()) {
            (Some(id), Some(key)) => Ok((id.to_string(), key.to_string())),
            _ => Err(GithubError::Decode(format!(
                "{}: the secrets public key answer has no key_id/key",
                scope.show()
            ))),
        }
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &str,
        value: &Secret,
        org: &Value,
    ) -> Result<u16, GithubError> {
        let (key_id, key) = self.public_key(scope).await?;
        let mut body = json!({ "encrypted_value": seal(&key, value)?, "key_id": key_id });
        if let Scope::Org(_) = scope
            && let Value::Object(extra) = org
        {
            for (k, v) in extra {
                body[k] = v.clone();
            }
        }
        let endpoint = match scope {
            Scope::Repo(_) => "PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}",
            Scope::Environment(..) => {
                "PUT /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}"
            }
            Scope::Org(_) => "PUT /orgs/{org}/actions/secrets/{secret_name}",
        };
        let reply = self
            .gh
            .expect(
                &Call {
                    method: Method::PUT,
                    path: format!("{}/{name}", scope.base("secrets")),
                    endpoint,
                    body: Some(&body),
                    cost: Cost::Write,
                },
                &[],
            )
            .await?;
        Ok(reply.status)
    }

    async fn write(&self, view: &View<'_>) -> Result<Value, ActionError> {
        let values: Vec<(String, Secret)> = self
            .spec
            .set
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.render(view)?)))
            .collect::<Result<_, ActionError>>()?;
        let scopes = scopes(&self.spec);
        let org = match self.spec.org {
            Some(_) => org_fields(&self.gh, &self.spec).await?,
            None => Value::Null,
        };
        // One public-key request per scope, then every write.
        for result in self
            .gh
            .concurrently(scopes.clone(), |s| async move { self.public_key(&s).await })
            .await
        {
            result?;
        }
        let jobs: Vec<(Scope, String, Secret)> = scopes
            .iter()
            .flat_map(|s| {
                values
                    .iter()
                    .map(move |(k, v)| (s.clone(), k.clone(), v.clone()))
            })
            .collect();
        let results = self
            .gh
            .concurrently(jobs, |(scope, name, value): (Scope, String, Secret)| {
                let org = &org;
                async move {
                    let result = self.put(&scope, &name, &value, org).await;
                    (scope.show(), name, result)
                }
            })
            .await;
        let mut created = 0;
        let mut updated = 0;
        let mut failures = Vec::new();
        for (scope, name, result) in results {
            match result {
                Ok(201) => created += 1,
                Ok(_) => updated += 1,
                Err(e) => failures.push(format!("{scope} {name}: {e}")),
            }
        }
        if !failures.is_empty() {
            failures.sort();
            return Err(ActionError::Failed(format!(
                "{} of {} secrets were not written: {}",
                failures.len(),
                created + updated + failures.len(),
                failures.join("; ")
            )));
        }
        Ok(json!({ "created": created, "updated": updated }))
    }
}

#[async_trait]
impl Action for GithubSecret {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.spec.set.keys().map(String::as_str).collect();
        let scopes = scopes(&self.spec);
        let place = match scopes.as_slice() {
            [one] => one.show(),
            many => format!("{} repositories", many.len()),
        };
        format!("github-secret {place} ({})", names.join(", "))
    }

    fn writes_values(&self) -> bool {
        true
    }

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, ActionError> {
        match op {
            Op::Write(view) => self.write(view).await,
            Op::Restore(_) => Err(ActionError::Failed(
                "GitHub secrets cannot be read back, so without old material there is nothing to restore them to".into(),
            )),
            Op::Publish(_) | Op::Unpublish(_) | Op::Run(_) => {
                Err(ActionError::Failed("a github-secret step only writes values".into()))
            }
        }
    }
}
