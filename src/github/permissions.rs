//! What each route needs, and errors that name the permission or setting missing.

use http::Method;

use super::{AuthKind, GithubError, Reply};

/// A non-2xx answer, with what to change.
pub fn status_error(method: &Method, endpoint: &str, reply: &Reply, kind: AuthKind) -> GithubError {
    GithubError::Status {
        status: reply.status,
        method: method.to_string(),
        path: endpoint.split_once(' ').map_or(endpoint, |(_, p)| p).to_string(),
        message: reply.message(),
        hint: hint(endpoint, reply.status, kind),
    }
}

/// The permission or setting a 403/404 (or 422) most likely means.
pub fn hint(endpoint: &str, status: u16, kind: AuthKind) -> Option<String> {
    if !matches!(status, 401 | 403 | 404 | 422) {
        return None;
    }
    if status == 401 {
        return Some("the credential was refused: check ROTAGATE_GITHUB_APP_ID and ROTAGATE_GITHUB_APP_KEY, or the token".into());
    }
    let perm = |app: &str, fine: &str| -> String {
        match kind {
            AuthKind::App => format!(
                "the GitHub App needs {app} (App settings → Permissions; then accept the new permissions on the installation) and must be installed on this repository"
            ),
            AuthKind::Token => format!("the token needs {fine}"),
            AuthKind::WorkflowToken => String::new(),
        }
    };
    let text = if endpoint.contains("/actions/secrets") {
        match kind {
            AuthKind::WorkflowToken => "GITHUB_TOKEN cannot write Actions secrets at all: give rotagate a GitHub App (ROTAGATE_GITHUB_APP_ID, ROTAGATE_GITHUB_APP_KEY) or ROTAGATE_GITHUB_TOKEN".into(),
            _ if endpoint.starts_with("PUT /orgs") || endpoint.starts_with("GET /orgs") => perm("the organization permission \"Secrets: Read and write\"", "the admin:org scope (classic) or the organization permission \"Secrets: Read and write\""),
            _ => perm("the repository permission \"Secrets: Read and write\"", "the repo scope (classic) or the repository permission \"Secrets: Read and write\""),
        }
    } else if endpoint.contains("/actions/variables") {
        match kind {
            AuthKind::WorkflowToken => "GITHUB_TOKEN cannot write Actions variables: give rotagate a GitHub App or ROTAGATE_GITHUB_TOKEN".into(),
            _ => perm("the repository (or organization) permission \"Variables: Read and write\"", "the permission \"Variables: Read and write\""),
        }
    } else if endpoint.contains("/environments/") && status == 404 {
        "the environment does not exist: create it in the repository's Settings → Environments"
            .into()
    } else if endpoint.contains("/dispatches") {
        if status == 422 {
            "the workflow has no workflow_dispatch trigger, or the inputs do not match its inputs"
                .into()
        } else {
            perm(
                "the repository permission \"Actions: Read and write\"",
                "the permission \"Actions: Read and write\"",
            )
        }
    } else if endpoint.contains("/actions/") {
        perm("the repository permission \"Actions: Read\"", "the permission \"Actions: Read\"")
    } else if endpoint.contains("/contents/") || endpoint.contains("/git/") {
        if status == 409 || status == 422 {
            "the branch moved or is protected against this push".into()
        } else {
            match kind {
                AuthKind::WorkflowToken => "give the job `permissions: contents: write`".into(),
                _ => perm(
                    "the repository permission \"Contents: Read and write\"",
                    "the permission \"Contents: Read and write\"",
                ),
            }
        }
    } else if endpoint.contains("/pulls") {
        match kind {
            AuthKind::WorkflowToken if endpoint.starts_with("POST") => "allow GitHub Actions to create pull requests (Settings → Actions → General → Workflow permissions) and give the job `permissions: pull-requests: write`".into(),
            _ => perm("the repository permission \"Pull requests: Read and write\"", "the permission \"Pull requests: Read and write\""),
        }
    } else if endpoint.contains("/issues") || endpoint.contains("/labels") {
        match kind {
            AuthKind::WorkflowToken => "give the job `permissions: issues: write`".into(),
            _ => perm(
                "the repository permission \"Issues: Read and write\"",
                "the permission \"Issues: Read and write\"",
            ),
        }
    } else if endpoint.contains("/collaborators/") {
        perm("the repository permission \"Metadata: Read\"", "read access to the repository")
    } else if endpoint.contains("/teams/") {
        perm("the organization permission \"Members: Read\"", "the read:org scope")
    } else {
        String::new()
    };
    let text = if status == 404 && !text.is_empty() {
        format!("{text} (GitHub answers 404, not 403, when a credential may not see a resource)")
    } else {
        text
    };
    (!text.is_empty()).then_some(text)
}

/// What the config asks of GitHub, checked before any step runs so a credential that
/// cannot do it fails the run up front, with the reason.
/// `only`: the credentials the command touches (all when empty).
pub fn check_capabilities(
    config: &crate::config::Config,
    kind: Option<AuthKind>,
    home: Option<&str>,
    only: &[String],
) -> Result<(), String> {
    use crate::config::{GateSpec, ProbeSpec, StoreSpec};
    let mut needs: Vec<(String, &'static str, Option<String>)> = Vec::new();
    if matches!(StoreSpec::parse(&config.state.store), Ok(StoreSpec::GithubBranch(_))) {
        needs.push(("state".into(), "the github-branch state store", None));
    }
    for c in config.credentials.iter().filter(|c| only.is_empty() || only.contains(&c.id)) {
        let c = c.resolved(&config.defaults);
        for a in c.publish.iter().chain(&c.promote).chain(&c.retire) {
            if let Some((what, repo)) = a.github_need() {
                needs.push((c.id.clone(), what, repo));
            }
        }
        for p in &c.verify {
            if let ProbeSpec::GithubWorkflow(w) = p {
                needs.push((c.id.clone(), "the github-workflow probe", Some(w.repo.clone())));
            }
        }
        if matches!(c.gate(), GateSpec::PullRequest(_))
            || matches!(c.emergency_gate(), GateSpec::PullRequest(_))
        {
            needs.push((c.id.clone(), "the pull_request gate", home.map(str::to_string)));
        }
    }
    let Some((who, what, _)) = needs.first() else {
        return Ok(());
    };
    let Some(kind) = kind else {
        return Err(format!(
            "{who}: {what} needs GitHub credentials: set ROTAGATE_GITHUB_APP_ID and ROTAGATE_GITHUB_APP_KEY (a GitHub App), or ROTAGATE_GITHUB_TOKEN"
        ));
    };
    if kind != AuthKind::WorkflowToken {
        return Ok(());
    }
    if let Some((who, what, _)) =
        needs.iter().find(|(_, what, _)| matches!(*what, "github-secret" | "github-variable"))
    {
        return Err(format!(
            "{who}: {what} cannot work with GITHUB_TOKEN, which cannot write Actions secrets or variables; give rotagate a GitHub App (ROTAGATE_GITHUB_APP_ID, ROTAGATE_GITHUB_APP_KEY) or ROTAGATE_GITHUB_TOKEN"
        ));
    }
    for (who, what, repo) in &needs {
        if let (Some(repo), Some(home)) = (repo, home)
            && repo != home
        {
            return Err(format!(
                "{who}: {what} targets {repo}, but GITHUB_TOKEN only reaches {home}; give rotagate a GitHub App or ROTAGATE_GITHUB_TOKEN"
            ));
        }
    }
    Ok(())
}
