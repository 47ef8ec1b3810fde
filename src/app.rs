//! What every command shares: loading the config and the state, the run's tools,
//! reporting (owner notifications, the Actions summary), printing through the redactor,
//! and turning errors into exit codes. The commands themselves are in
//! [`crate::commands`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Cli, Waits};
use crate::clock::SystemClock;
use crate::config::{self, ConfigError, LoadedConfig, StoreSpec};
use crate::github::{self, Credentials, GitHub};
use crate::http::{HttpClient, RetryPolicy};
use crate::pipeline::{
    EngineError, ProcessEnv, Progress, Quiet, RunOptions, RunReport, Runtime, StandardGates,
};
use crate::secret::{Secret, process_secret};
use crate::state::{
    FileStore, GithubBranchStore, RunIdentity, StateError, StateIdentity, StateStore, Vault,
    parse_recipients,
};
use crate::step::Providers;
use crate::{ci, inventory, state};

/// Everything that ends a command early, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Github(#[from] github::GithubError),
    #[error(transparent)]
    Workflow(#[from] ci::WorkflowError),
    #[error("{0}")]
    Failed(String),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_)
            | AppError::Usage(_)
            | AppError::Engine(EngineError::UnknownCredential(..)) => 2,
            _ => 1,
        }
    }
}

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;

/// Loads the config and prints its warnings.
pub fn load(cli: &Cli) -> Result<LoadedConfig, AppError> {
    let config = config::load(&cli.config)?;
    // Values the credentials read from the environment may be secrets: masked before
    // anything from the config is printed.
    for c in &config.config.credentials {
        let names: Vec<&str> = c.env.iter().map(String::as_str).collect();
        crate::secret::register_env(&names);
    }
    for w in &config.warnings {
        warn(&w.to_string());
    }
    Ok(config)
}

/// The config, the run's tools and the open state, for commands that need all three.
/// `acting`: the command changes these credentials (all when empty), so what the config
/// asks of GitHub for them is checked before anything happens.
pub async fn prepare(
    cli: &Cli,
    acting: Option<&[String]>,
    max_wait: Duration,
) -> Result<(LoadedConfig, Runtime, Vault), AppError> {
    let config = load(cli)?;
    let rt = runtime(&config, acting)?;
    if acting.is_some() {
        ensure_default_branch(&rt).await?;
    }
    // A command acting on named credentials reads only their entries.
    let scope = acting.filter(|ids| !ids.is_empty()).map(|ids| ids.iter().cloned().collect());
    let mut vault = open_vault(&config, cli, &rt, max_wait, scope).await?;
    if let Some(path) = &cli.state_copy {
        vault.keep_copy(path.clone())?;
    }
    Ok((config, rt, vault))
}

/// `prepare` for commands that change the state without acting on a credential's
/// targets (adopt, rekey): the same branch rule, no GitHub capability check.
pub async fn prepare_changing(
    cli: &Cli,
    max_wait: Duration,
) -> Result<(LoadedConfig, Runtime, Vault), AppError> {
    let config = load(cli)?;
    let rt = runtime(&config, None)?;
    ensure_default_branch(&rt).await?;
    let mut vault = open_vault(&config, cli, &rt, max_wait, None).await?;
    if let Some(path) = &cli.state_copy {
        vault.keep_copy(path.clone())?;
    }
    Ok((config, rt, vault))
}

/// Under Actions, a command that changes anything runs only on the default branch and
/// never for a pull request, before the state identity or any secret is used.
pub async fn ensure_default_branch(rt: &Runtime) -> Result<(), AppError> {
    let Some(wf) = ci::Workflow::detect()? else {
        return Ok(());
    };
    let default = match wf.default_branch() {
        Some(b) => b,
        None => match (&rt.providers.github, &wf.repository) {
            (Some(gh), Some(repo)) => {
                let v: serde_json::Value =
                    gh.get("GET /repos/{owner}/{repo}", format!("/repos/{repo}")).await?;
                v["default_branch"].as_str().unwrap_or_default().to_string()
            }
            _ => String::new(),
        },
    };
    if default.is_empty() {
        return Err(AppError::Usage(
            "cannot tell this repository's default branch (no repository in the event payload, no GitHub credentials to ask): rotagate changes nothing without knowing it runs on it".into(),
        ));
    }
    match wf.refusal(&default) {
        Some(reason) => Err(AppError::Usage(reason)),
        None => Ok(()),
    }
}

/// `rotate`, `rollback` and `gate reopen`: the config, the run's tools and the state,
/// made ready to act on `id`; then `job`, and the report printed as `command`'s.
pub async fn on_one(
    cli: &Cli,
    opts: &RunOptions,
    id: &str,
    command: &str,
    json: bool,
    job: impl AsyncFnOnce(&LoadedConfig, &mut Vault, &Runtime) -> Result<RunReport, EngineError>,
) -> Result<u8, AppError> {
    let ids = [id.to_string()];
    let (config, rt, mut vault) = prepare(cli, Some(&ids), opts.max_wait).await?;
    let report = job(&config, &mut vault, &rt).await?;
    finish(&config, &vault, &rt, command, &report, json).await
}

pub fn options(waits: &Waits, only: Vec<String>, bootstrap: bool) -> RunOptions {
    RunOptions {
        only,
        bootstrap,
        max_wait: waits.max_wait.0,
        lease_wait: waits.lease_wait.0,
        ..RunOptions::default()
    }
}

/// The run's tools, with a GitHub client when credentials are given. `acting`: the
/// credentials whose GitHub needs are checked first (all when empty).
pub fn runtime(config: &LoadedConfig, acting: Option<&[String]>) -> Result<Runtime, AppError> {
    let (github, home) = github_for(config)?;
    if let Some(only) = acting {
        github::check_capabilities(
            &config.config,
            github.as_ref().map(GitHub::kind),
            home.as_deref(),
            only,
        )
        .map_err(AppError::Usage)?;
    }
    let providers = Providers {
        github,
        vercel: vercel_from_env()?,
        vault: vault_from_env()?,
        kubernetes: Default::default(),
        aws: Default::default(),
    };
    let progress: Arc<dyn Progress> =
        if ci::masking_enabled() { Arc::new(ci::LogGroups::default()) } else { Arc::new(Quiet) };
    Ok(Runtime {
        clock: Arc::new(SystemClock),
        http: HttpClient::new(RetryPolicy::default())
            .map_err(|e| AppError::Failed(e.to_string()))?,
        env: Arc::new(ProcessEnv),
        gates: Arc::new(StandardGates { providers: providers.clone(), repo: home }),
        providers,
        progress,
    })
}

/// A Vercel client when ROTAGATE_VERCEL_TOKEN is set; ROTAGATE_VERCEL_API_URL points it
/// elsewhere (a proxy, the tests' fake).
fn vercel_from_env() -> Result<Option<crate::vercel::Vercel>, AppError> {
    let Some(token) = process_secret("ROTAGATE_VERCEL_TOKEN") else {
        return Ok(None);
    };
    let api = std::env::var("ROTAGATE_VERCEL_API_URL")
        .unwrap_or_else(|_| crate::vercel::DEFAULT_API.to_string());
    let http =
        HttpClient::new(RetryPolicy::default()).map_err(|e| AppError::Failed(e.to_string()))?;
    crate::vercel::Vercel::new(http, &api, token)
        .map(Some)
        .map_err(|e| AppError::Usage(e.to_string()))
}

/// A Vault client when ROTAGATE_VAULT_ADDR is set, logging in with the first method
/// whose variables are set: a token, AppRole, or a JWT from GitHub's OIDC token.
fn vault_from_env() -> Result<Option<crate::hashicorp::VaultClient>, AppError> {
    use crate::hashicorp::{VaultAuth, VaultClient};
    let Ok(address) = std::env::var("ROTAGATE_VAULT_ADDR") else {
        return Ok(None);
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mount = |default: &str| var("ROTAGATE_VAULT_AUTH_MOUNT").unwrap_or(default.into());
    let auth = if let Some(token) = process_secret("ROTAGATE_VAULT_TOKEN") {
        VaultAuth::Token(token)
    } else if let (Some(role_id), Some(secret_id)) =
        (var("ROTAGATE_VAULT_ROLE_ID"), process_secret("ROTAGATE_VAULT_SECRET_ID"))
    {
        VaultAuth::AppRole { mount: mount("approle"), role_id, secret_id }
    } else if let Some(role) = var("ROTAGATE_VAULT_JWT_ROLE") {
        VaultAuth::Jwt {
            mount: mount("jwt"),
            role,
            audience: var("ROTAGATE_VAULT_JWT_AUDIENCE").unwrap_or("vault".into()),
        }
    } else {
        return Err(AppError::Usage(
            "ROTAGATE_VAULT_ADDR is set but no way to log in: set ROTAGATE_VAULT_TOKEN, or ROTAGATE_VAULT_ROLE_ID and ROTAGATE_VAULT_SECRET_ID (AppRole), or ROTAGATE_VAULT_JWT_ROLE (JWT with GitHub's OIDC token)".into(),
        ));
    };
    let http =
        HttpClient::new(RetryPolicy::default()).map_err(|e| AppError::Failed(e.to_string()))?;
    VaultClient::new(http, &address, auth, var("ROTAGATE_VAULT_NAMESPACE"))
        .map(Some)
        .map_err(|e| AppError::Usage(e.to_string()))
}

/// The repository rotagate works in: `github.repo`, else GITHUB_REPOSITORY.
pub fn github_home(config: &LoadedConfig) -> Option<String> {
    config
        .config
        .github
        .as_ref()
        .and_then(|g| g.repo.clone())
        .or_else(|| std::env::var("GITHUB_REPOSITORY").ok().filter(|r| config::is_repo(r)))
}

/// The GitHub client (when credentials are set) and the repository rotagate works in.
fn github_for(config: &LoadedConfig) -> Result<(Option<GitHub>, Option<String>), AppError> {
    let env = |n: &str| match process_secret(n) {
        Some(s) => Some(s.expose().to_string()),
        None => std::env::var(n).ok(),
    };
    let settings = config.config.github.clone().unwrap_or_default();
    let api = env("GITHUB_API_URL")
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| github::DEFAULT_API.into());
    let client = match Credentials::from_env(&env)? {
        Some(credentials) => Some(GitHub::new(
            credentials,
            github::Options::for_api(&api, settings.secondary_limits, settings.concurrency),
        )?),
        None => None,
    };
    Ok((client, github_home(config)))
}

/// Brings owner notification issues in line with what `check` finds. A failure to
/// notify is reported, not fatal.
pub async fn notify(config: &LoadedConfig, vault: &Vault, rt: &Runtime) {
    let (Some(gh), Some(repo)) = (rt.providers.github.clone(), github_home(config)) else {
        tracing::debug!("no GitHub credentials or repository: owner notifications are not sent");
        return;
    };
    let findings = inventory::check(config, &vault.doc, rt.clock.now());
    let credentials: Vec<(String, Option<String>)> =
        config.resolved().into_iter().map(|c| (c.id, c.owner)).collect();
    if let Err(e) = crate::notify::GithubIssues::new(gh, repo).sync(&credentials, &findings).await {
        warn(&format!("owner notifications were not updated: {e}"));
    }
}

/// The state identity from ROTAGATE_AGE_IDENTITY or --identity-file.
pub fn load_identity(identity_file: Option<&Path>) -> Result<StateIdentity, AppError> {
    if let Some(value) = process_secret("ROTAGATE_AGE_IDENTITY")
        && !value.expose().trim().is_empty()
    {
        return Ok(StateIdentity::parse(&value)?);
    }
    match identity_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| AppError::Usage(format!("cannot read identity file {}: {e}", path.display())))?;
            Ok(StateIdentity::parse(&Secret::new(text))?)
        }
        None => Err(AppError::Usage(
            "no state identity: set ROTAGATE_AGE_IDENTITY or pass --identity-file (`rotagate init` makes one)".into(),
        )),
    }
}

/// The store `state.store` names, refusing a runner's throwaway disk under Actions.
pub fn open_store(config: &LoadedConfig, rt: &Runtime) -> Result<Box<dyn StateStore>, AppError> {
    let spec = StoreSpec::parse(&config.config.state.store).map_err(AppError::Usage)?;
    match spec {
        StoreSpec::File(path) => {
            let on_actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
            let allowed = std::env::var("ROTAGATE_ALLOW_EPHEMERAL_STATE").is_ok_and(|v| v == "1");
            if on_actions && !allowed {
                return Err(AppError::Usage(
                    "state.store is a file, and a runner's disk does not outlast the job: use github-branch:BRANCH, or set ROTAGATE_ALLOW_EPHEMERAL_STATE=1 if the file is persisted some other way".into(),
                ));
            }
            let full = if path.is_absolute() { path.clone() } else { config.dir.join(&path) };
            Ok(Box::new(FileStore::new(full, config.config.state.store.clone())))
        }
        StoreSpec::GithubBranch(branch) => {
            let gh = rt.providers.github.clone().ok_or_else(|| {
                AppError::Usage(
                    "the github-branch state store needs GitHub credentials: ROTAGATE_GITHUB_APP_ID and ROTAGATE_GITHUB_APP_KEY, ROTAGATE_GITHUB_TOKEN, or GITHUB_TOKEN".into(),
                )
            })?;
            let repo = github_home(config).ok_or_else(|| {
                AppError::Usage("the github-branch state store needs a repository: set github.repo, or run in GitHub Actions (GITHUB_REPOSITORY)".into())
            })?;
            Ok(Box::new(GithubBranchStore::new(gh, repo, branch)))
        }
    }
}

async fn open_vault(
    config: &LoadedConfig,
    cli: &Cli,
    rt: &Runtime,
    max_wait: Duration,
    scope: Option<std::collections::BTreeSet<String>>,
) -> Result<Vault, AppError> {
    let identity = load_identity(cli.identity_file.as_deref())?;
    let recipients = parse_recipients(&config.config.state.recipients)?;
    let store = open_store(config, rt)?;
    let lease = config
        .config
        .state
        .lease
        .map_or(Duration::from_secs(1800), |d| d.0)
        .max(max_wait + Duration::from_secs(600));
    Ok(state::Vault::open_scoped(store, identity, recipients, RunIdentity::current(), lease, scope)
        .await?)
}

/// Per credential of `report`: its stage, when it is next due, and (waiting at a gate)
/// the manual steps of that gate's stage, rendered with the rotation's public values.
fn summary_context(
    config: &LoadedConfig,
    vault: &Vault,
    rt: &Runtime,
    report: &RunReport,
) -> BTreeMap<String, ci::SummaryContext> {
    use crate::pipeline::Outcome;
    let rows = crate::inventory::status(config, &vault.doc, rt.clock.now());
    let env = crate::step::EnvValues::default();
    report
        .credentials
        .iter()
        .map(|c| {
            let row = rows.iter().find(|r| r.credential == c.id);
            let entry = vault.doc.credentials.get(&c.id);
            let manual = match (&c.outcome, config.credential(&c.id)) {
                (Outcome::AwaitingGate { gate, .. }, Some(cred)) => {
                    let list = match gate.as_str() {
                        "publish" => &cred.publish,
                        "promote" => &cred.promote,
                        _ => &cred.retire,
                    };
                    let view = crate::step::View {
                        new: entry.and_then(|e| e.rotation.as_ref()).and_then(|r| r.new.as_ref()),
                        old: entry.and_then(|e| e.current.as_ref()),
                        env: &env,
                    };
                    list.iter()
                        .filter_map(|a| match a {
                            crate::config::ActionSpec::Manual(t) => Some(
                                t.render(&view)
                                    .map(|text| text.expose().to_string())
                                    .unwrap_or_else(|_| t.raw().to_string()),
                            ),
                            _ => None,
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            let context = ci::SummaryContext {
                stage: entry.and_then(|e| e.rotation.as_ref()).map(|r| r.stage),
                next_due: row.and_then(|r| r.next_due),
                manual,
            };
            (c.id.clone(), context)
        })
        .collect()
}

/// After a command that drove rotations: owner notifications, then under Actions the
/// step summary, outputs and annotations; the exit code.
pub async fn finish(
    config: &LoadedConfig,
    vault: &Vault,
    rt: &Runtime,
    command: &str,
    report: &RunReport,
    json: bool,
) -> Result<u8, AppError> {
    notify(config, vault, rt).await;
    if let Some(wf) = ci::Workflow::detect()? {
        let context = summary_context(config, vault, rt, report);
        let summary = ci::run_summary(command, report, &context, wf.run_url.as_deref());
        wf.append_summary(&summary)?;
        wf.set_outputs(&ci::run_outputs(report, &summary))?;
        for c in report.credentials.iter().filter(|c| c.outcome.failed()) {
            ci::error(&format!("rotagate: {}", c.id), &c.outcome.describe(), None);
        }
    }
    Ok(report_exit(report, json))
}

/// The result, one line per credential (and its notes), on stdout; with `--json` the
/// JSON report is the result and the lines go to stderr for the log.
fn report_exit(report: &RunReport, json: bool) -> u8 {
    let mut lines = String::new();
    for c in &report.credentials {
        lines.push_str(&format!("{}: {}\n", c.id, c.outcome.describe()));
        for note in &c.notes {
            lines.push_str(&format!("  {note}\n"));
        }
    }
    if json {
        print_json(report);
        print_stderr(&lines);
    } else {
        print_stdout(&lines);
    }
    if report.failed() { EXIT_FAILED } else { EXIT_OK }
}

/// A command's report on stdout: JSON with `--json`, else as `text` renders it.
pub fn print_report<T: serde::Serialize>(json: bool, report: &T, text: impl FnOnce(&T) -> String) {
    if json { print_json(report) } else { print_stdout(&text(report)) }
}

pub fn print_json<T: serde::Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("reports serialise");
    text.push('\n');
    print_stdout(&text);
}

/// The one place output meant for stdout is written, through the redactor.
pub fn print_stdout(text: &str) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // A closed pipe (`rotagate status | head`) is not an error worth reporting.
    let _ = out.write_all(crate::secret::redact(text).as_bytes());
    let _ = out.flush();
}

/// The one place messages for humans are written to stderr, through the redactor.
pub fn print_stderr(text: &str) {
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let _ = err.write_all(crate::secret::redact(text).as_bytes());
    let _ = err.flush();
}

/// Under Actions, each config error as an annotation on its file, line and column.
fn annotate_config_error(e: &ConfigError) {
    let Ok(Some(wf)) = ci::Workflow::detect() else {
        return;
    };
    match e {
        ConfigError::Invalid { diagnostics, .. } => {
            for d in diagnostics {
                let file = wf.relative(&d.file).display().to_string();
                let message = if d.path.is_empty() {
                    d.message.clone()
                } else {
                    format!("{}: {}", d.path, d.message)
                };
                let message = match &d.hint {
                    Some(hint) => format!("{message} ({hint})"),
                    None => message,
                };
                ci::error("rotagate.yaml", &message, Some((&file, d.line, d.column)));
            }
        }
        other => ci::error("rotagate.yaml", &other.to_string(), None),
    }
}

/// Registers the identity file's content as a secret (masked under Actions, redacted
/// everywhere) before anything else is printed; rotagate's secret environment variables
/// were registered by [`crate::secret::take_process_secrets`] already.
pub fn mask_startup(cli: &Cli) {
    if let Some(path) = &cli.identity_file
        && let Ok(text) = std::fs::read_to_string(path)
    {
        drop(Secret::new(text));
    }
}

/// Runs `execute` and turns the result into the process exit code, printing errors.
pub async fn main_with(cli: Cli) -> ExitCode {
    match crate::commands::execute(&cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let text = match &e {
                AppError::Config(c) => {
                    annotate_config_error(c);
                    config::render::render(c)
                }
                other => {
                    if ci::masking_enabled() {
                        ci::error("rotagate", &other.to_string(), None);
                    }
                    format!("error: {other}\n")
                }
            };
            print_stderr(&text);
            summarise_failure(&text);
            ExitCode::from(e.exit_code())
        }
    }
}

/// A warning for the operator: an annotation under Actions, a `warning:` line elsewhere.
pub fn warn(message: &str) {
    if ci::masking_enabled() {
        ci::warning("rotagate", message);
    } else {
        print_stderr(&format!("warning: {message}\n"));
    }
}

/// Under Actions, a command that ended early (a refusal, a config error) still leaves a
/// step summary saying why.
fn summarise_failure(text: &str) {
    if let Ok(Some(wf)) = ci::Workflow::detect() {
        let summary = format!(
            "### rotagate {}: stopped\n\n```\n{}\n```\n",
            env!("CARGO_PKG_VERSION"),
            text.trim_end()
        );
        // Reporting is best effort once the command has failed.
        let _ = wf.append_summary(&summary);
    }
}
