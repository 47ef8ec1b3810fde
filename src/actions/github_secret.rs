//! `github-secret`: Actions secrets of repositories, environments or an organisation.
//! Each scope's public key is fetched once per run; every value is sealed (libsodium
//! sealed box) and written, many at once. All values of one entry are one step.

use crate::config::shape;
use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, Op};
use crate::github::{Call, GitHub, GithubError, encode, seal};
use crate::secret::Secret;
use crate::step::{StepContext, StepError, View};
use std::collections::BTreeMap;

use crate::config::Template;
use crate::config::validate::steps::{repo, template};
use crate::config::validate::{Scope as Names, Slot, Validator};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

shape! {
    /// Where GitHub secrets or variables go, and what they are set to.
    pub struct GithubValuesAction {
        /// One repository, `owner/name`.
        pub repo: Option<String>,
        /// Several repositories, written concurrently.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub repos: Vec<String>,
        /// An environment of the repository (or repositories).
        pub environment: Option<String>,
        /// An organisation (organisation-level values).
        pub org: Option<String>,
        /// Which of the organisation's repositories can use them (default `private`).
        pub visibility: Option<Visibility>,
        /// For `visibility: selected`: repository names in the organisation.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub repositories: Vec<String>,
        /// NAME: value.
        pub set: BTreeMap<String, Template>,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    All,
    Private,
    Selected,
}

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
                let v: Value =
                    self.gh.get(endpoint, format!("{}/public-key", scope.base("secrets"))).await?;
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
                &Call::write(endpoint, format!("{}/{name}", scope.base("secrets")), Some(&body)),
                &[],
            )
            .await?;
        Ok(reply.status)
    }

    async fn write(&self, view: &View<'_>) -> Result<Value, StepError> {
        let values: Vec<(String, Secret)> = self
            .spec
            .set
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.render(view)?)))
            .collect::<Result<_, StepError>>()?;
        let scopes = scopes(&self.spec);
        let org = match self.spec.org {
            Some(_) => org_fields(&self.gh, &self.spec).await?,
            None => Value::Null,
        };
        // One public-key request per scope, then every write.
        for result in
            self.gh.concurrently(scopes.clone(), |s| async move { self.public_key(&s).await }).await
        {
            result?;
        }
        let jobs: Vec<(Scope, String, Secret)> = scopes
            .iter()
            .flat_map(|s| values.iter().map(move |(k, v)| (s.clone(), k.clone(), v.clone())))
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
            return Err(StepError::Failed(format!(
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

    async fn execute(&self, op: Op<'_>, _cx: &StepContext<'_>) -> Result<Value, StepError> {
        match op {
            Op::Write(view) => self.write(view).await,
            Op::Restore(_) => Err(StepError::Failed(
                "GitHub secrets cannot be read back, so without old material there is nothing to restore them to".into(),
            )),
            other => Err(other.refused("github-secret")),
        }
    }
}

/// `github-secret` and `github-variable` share their config shape, their checks (a
/// variable is plain text, so only public values) and what they ask of GitHub.
macro_rules! github_values_kind {
    ($kind:ident, $name:literal, secret: $secret:literal) => {
        impl $crate::actions::ActionKind<$crate::actions::github_secret::GithubValuesAction>
            for $kind
        {
            const ROLES: &'static [$crate::config::validate::Role] =
                &[$crate::config::validate::Role::Promote];

            fn check(
                a: &$crate::actions::github_secret::GithubValuesAction,
                v: &mut $crate::config::validate::Validator,
                scope: &$crate::config::validate::Scope,
                path: &str,
                _: $crate::config::validate::Role,
            ) {
                $crate::actions::github_secret::check_values(
                    v,
                    scope,
                    &format!("{path}.{}", $name),
                    a,
                    $secret,
                );
            }

            fn build(
                a: &$crate::actions::github_secret::GithubValuesAction,
                providers: &$crate::step::Providers,
            ) -> $crate::actions::Built {
                Ok(Some(Box::new($kind::new(a.clone(), providers.github($name)?))))
            }

            fn github_need(
                a: &$crate::actions::github_secret::GithubValuesAction,
            ) -> Option<(&'static str, Option<String>)> {
                Some(($name, a.first_repo()))
            }
        }
    };
}
pub(super) use github_values_kind;

github_values_kind!(GithubSecret, "github-secret", secret: true);

impl GithubValuesAction {
    /// The repository named first (none for organisation values).
    pub(crate) fn first_repo(&self) -> Option<String> {
        self.repo.clone().or(self.repos.first().cloned())
    }
}

pub(super) fn check_values(
    v: &mut Validator,
    scope: &Names,
    path: &str,
    a: &GithubValuesAction,
    secret: bool,
) {
    let scopes = usize::from(a.repo.is_some())
        + usize::from(!a.repos.is_empty())
        + usize::from(a.org.is_some());
    if scopes != 1 {
        v.err(path, "name exactly one of `repo`, `repos` or `org`", None);
    }
    for (i, r) in a.repo.iter().chain(a.repos.iter()).enumerate() {
        let p =
            if a.repo.is_some() { format!("{path}.repo") } else { format!("{path}.repos[{i}]") };
        repo(v, &p, r);
    }
    if let Some(org) = &a.org {
        if org.is_empty() || org.contains('/') {
            v.err(&format!("{path}.org"), format!("`{org}` is not an organisation"), None);
        }
        if a.environment.is_some() {
            v.err(
                &format!("{path}.environment"),
                "environments belong to repositories, not organisations",
                None,
            );
        }
        match (a.visibility, a.repositories.is_empty()) {
            (Some(Visibility::Selected), true) => v.err(
                &format!("{path}.repositories"),
                "`visibility: selected` needs the repositories that may use it",
                None,
            ),
            (Some(Visibility::All | Visibility::Private) | None, false) => v.err(
                &format!("{path}.repositories"),
                "repositories are only for `visibility: selected`",
                None,
            ),
            _ => {}
        }
    } else if a.visibility.is_some() || !a.repositories.is_empty() {
        v.err(path, "`visibility` and `repositories` are for organisation values", None);
    }
    if a.set.is_empty() {
        v.err(&format!("{path}.set"), "`set` names nothing", None);
    }
    for (name, value) in &a.set {
        let p = format!("{path}.set.{name}");
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || name.to_ascii_uppercase().starts_with("GITHUB_") {
            v.err_key(
                &p,
                format!("`{name}` is not a name GitHub accepts"),
                Some("letters, digits and `_`, not starting with a digit or GITHUB_".into()),
            );
        }
        template(v, scope, &p, value, if secret { Slot::SetValue } else { Slot::Public });
    }
}
