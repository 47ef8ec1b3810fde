//! What each command does: load the config and state, call the library, print, and
//! say which exit code applies.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::actions::Providers;
use crate::cli::{Cli, Command, GateCommand, StateCommand, Waits};
use crate::clock::{SystemClock, show};
use crate::config::{self, ConfigError, Diagnostic, LoadedConfig, StoreSpec};
use crate::github::{self, Credentials, GitHub};
use crate::http::{HttpClient, RetryPolicy};
use crate::pipeline::{
    self, EngineError, ProcessEnv, Progress, Quiet, RunOptions, RunReport, Runtime, StandardGates,
};
use crate::secret::Secret;
use crate::state::{
    FileStore, GithubBranchStore, RunIdentity, StateError, StateIdentity, StateStore, Vault,
    parse_recipients,
};
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
fn load(cli: &Cli) -> Result<LoadedConfig, AppError> {
    let config = config::load(&cli.config)?;
    // Values the credentials read from the environment may be secrets: masked before
    // anything from the config is printed.
    for c in &config.config.credentials {
        let names: Vec<&str> = c.env.iter().map(String::as_str).collect();
        ci::mask_env(&names);
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(config)
}

/// The config, the run's tools and the open state, for commands that need all three.
/// `acting`: the command changes these credentials (all when empty), so what the config
/// asks of GitHub for them is checked before anything happens.
async fn prepare(
    cli: &Cli,
    acting: Option<&[String]>,
    max_wait: Duration,
) -> Result<(LoadedConfig, Runtime, Vault), AppError> {
    let config = load(cli)?;
    let rt = runtime(&config, acting)?;
    if acting.is_some() {
        ensure_default_branch(&rt).await?;
    }
    let mut vault = open_vault(&config, cli, &rt, max_wait).await?;
    if let Some(path) = &cli.state_copy {
        vault.keep_copy(path.clone())?;
    }
    Ok((config, rt, vault))
}

/// `prepare` for commands that change the state without acting on a credential's
/// targets (adopt, rekey): the same branch rule, no GitHub capability check.
async fn prepare_changing(
    cli: &Cli,
    max_wait: Duration,
) -> Result<(LoadedConfig, Runtime, Vault), AppError> {
    let config = load(cli)?;
    let rt = runtime(&config, None)?;
    ensure_default_branch(&rt).await?;
    let mut vault = open_vault(&config, cli, &rt, max_wait).await?;
    if let Some(path) = &cli.state_copy {
        vault.keep_copy(path.clone())?;
    }
    Ok((config, rt, vault))
}

/// Under Actions, a command that changes anything runs only on the default branch and
/// never for a pull request, before the state identity or any secret is used.
async fn ensure_default_branch(rt: &Runtime) -> Result<(), AppError> {
    let Some(wf) = ci::Workflow::detect()? else {
        return Ok(());
    };
    let default = match wf.default_branch() {
        Some(b) => b,
        None => match (&rt.providers.github, &wf.repository) {
            (Some(gh), Some(repo)) => {
                let v: serde_json::Value = gh
                    .get("GET /repos/{owner}/{repo}", format!("/repos/{repo}"))
                    .await?;
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

pub async fn execute(cli: Cli) -> Result<u8, AppError> {
    let now = time::OffsetDateTime::now_utc;
    match &cli.command {
        Command::Schema => {
            print_stdout(&config::schema::schema_json());
            Ok(EXIT_OK)
        }
        Command::Init(args) => crate::init::init(args).map(|()| EXIT_OK),
        Command::Demo(args) => crate::demo::run(args.dir.as_deref()).await,
        Command::Plan(args) => {
            let (config, _, vault) = prepare(&cli, None, Duration::ZERO).await?;
            let items = pipeline::plan(&config, &vault.doc, now(), args.bootstrap);
            if args.matrix {
                let matrix = ci::plan_matrix(&items);
                print_stdout(&format!("{matrix}\n"));
                if let Some(wf) = ci::Workflow::detect()? {
                    wf.set_outputs(&[("matrix", matrix)])?;
                }
            } else if args.output.json {
                print_json(&items);
            } else {
                let mut out = String::new();
                for i in &items {
                    out.push_str(&format!("{}: {}: {}\n", i.credential, i.action, i.detail));
                }
                print_stdout(&out);
            }
            Ok(EXIT_OK)
        }
        Command::Run(args) => {
            let mut opts = options(&args.waits, args.only.clone(), args.bootstrap);
            // Under Actions the event may narrow or redirect the run; flags win.
            let trigger = match ci::Workflow::detect()? {
                Some(wf) if args.only.is_empty() => wf.trigger(),
                _ => ci::Trigger::Routine,
            };
            match trigger {
                ci::Trigger::Incident {
                    credential,
                    reason,
                    emergency,
                } => {
                    if reason.is_empty() {
                        return Err(AppError::Usage(format!(
                            "the workflow_dispatch names credential {credential} but no reason: an incident rotation needs one (the `reason` input)"
                        )));
                    }
                    eprintln!(
                        "workflow_dispatch: rotating {credential}{}: {reason}",
                        if emergency { " (emergency)" } else { "" }
                    );
                    let (config, rt, mut vault) =
                        prepare(&cli, Some(std::slice::from_ref(&credential)), opts.max_wait)
                            .await?;
                    let report = pipeline::rotate(
                        &config,
                        &mut vault,
                        &rt,
                        &opts,
                        &credential,
                        &reason,
                        emergency,
                    )
                    .await?;
                    return finish(
                        &config,
                        &vault,
                        &rt,
                        "rotate",
                        &report,
                        args.waits.output.json,
                    )
                    .await;
                }
                ci::Trigger::Approvals(ids) => {
                    eprintln!("push merged approval files: running {}", ids.join(", "));
                    opts.only = ids;
                }
                ci::Trigger::Routine => {}
            }
            let (config, rt, mut vault) = prepare(&cli, Some(&opts.only), opts.max_wait).await?;
            opts.only.retain(|id| {
                let known = config.credential(id).is_some() || vault.doc.credentials.contains_key(id);
                if !known {
                    eprintln!("warning: an approval file names {id}, which is neither in the config nor in the state");
                }
                known || args.only.contains(id)
            });
            let report = pipeline::run(&config, &mut vault, &rt, &opts).await?;
            finish(&config, &vault, &rt, "run", &report, args.waits.output.json).await
        }
        Command::Rotate(args) => {
            let opts = options(&args.waits, Vec::new(), args.bootstrap);
            let (config, rt, mut vault) =
                prepare(&cli, Some(std::slice::from_ref(&args.id)), opts.max_wait).await?;
            let report = pipeline::rotate(
                &config,
                &mut vault,
                &rt,
                &opts,
                &args.id,
                &args.reason,
                args.emergency,
            )
            .await?;
            finish(
                &config,
                &vault,
                &rt,
                "rotate",
                &report,
                args.waits.output.json,
            )
            .await
        }
        Command::Rollback(args) => {
            let opts = options(&args.waits, Vec::new(), false);
            let (config, rt, mut vault) =
                prepare(&cli, Some(std::slice::from_ref(&args.id)), opts.max_wait).await?;
            let report = pipeline::rollback(&config, &mut vault, &rt, &opts, &args.id).await?;
            finish(
                &config,
                &vault,
                &rt,
                "rollback",
                &report,
                args.waits.output.json,
            )
            .await
        }
        Command::Gate(GateCommand::Reopen(args)) => {
            let opts = options(&args.waits, Vec::new(), false);
            let (config, rt, mut vault) =
                prepare(&cli, Some(std::slice::from_ref(&args.id)), opts.max_wait).await?;
            let report = pipeline::reopen_gate(&config, &mut vault, &rt, &opts, &args.id).await?;
            finish(
                &config,
                &vault,
                &rt,
                "gate reopen",
                &report,
                args.waits.output.json,
            )
            .await
        }
        Command::Adopt(args) => {
            let input =
                match (&args.from_file, &args.from_env) {
                    (Some(f), _) => Secret::new(std::fs::read_to_string(f).map_err(|e| {
                        AppError::Usage(format!("cannot read {}: {e}", f.display()))
                    })?),
                    (None, Some(var)) => {
                        if config::template::is_reserved_env(var) {
                            return Err(AppError::Usage(format!(
                                "{var} is rotagate's or the runner's own variable"
                            )));
                        }
                        Secret::new(std::env::var(var).map_err(|_| {
                            AppError::Usage(format!("environment variable {var} is not set"))
                        })?)
                    }
                    (None, None) => {
                        return Err(AppError::Usage("give --from-file or --from-env".into()));
                    }
                };
            let opts = RunOptions::default();
            let (config, rt, mut vault) = prepare_changing(&cli, opts.max_wait).await?;
            let message = pipeline::adopt(
                &config,
                &mut vault,
                &rt,
                &opts,
                &args.id,
                &input,
                args.kid.clone(),
                args.role.clone(),
                args.replace,
            )
            .await?;
            eprintln!("{message}");
            Ok(EXIT_OK)
        }
        Command::Status(args) => {
            let (config, _, vault) = prepare(&cli, None, Duration::ZERO).await?;
            let rows = inventory::status(&config, &vault.doc, now());
            if args.json {
                print_json(&rows);
            } else {
                print_stdout(&inventory::render_status(&rows));
            }
            Ok(EXIT_OK)
        }
        Command::Check(args) => {
            let (config, rt, vault) = prepare(&cli, None, Duration::ZERO).await?;
            let findings = inventory::check(&config, &vault.doc, now());
            if args.json {
                print_json(&findings);
            } else if findings.is_empty() {
                print_stdout("all credentials are owned, scheduled and in date\n");
            } else {
                let mut out = String::new();
                for f in &findings {
                    let owner = f
                        .owner
                        .as_deref()
                        .map(|o| format!(" (owner {o})"))
                        .unwrap_or_default();
                    out.push_str(&format!(
                        "{}: {}{owner}: {}: {}\n",
                        f.severity.name(),
                        f.credential,
                        f.code,
                        f.message
                    ));
                }
                print_stdout(&out);
            }
            notify(&config, &vault, &rt).await;
            if let Some(wf) = ci::Workflow::detect()? {
                let summary = ci::check_summary(&findings);
                wf.append_summary(&summary)?;
                let mut failed: Vec<&str> = findings
                    .iter()
                    .filter(|f| f.severity == inventory::Severity::Error)
                    .map(|f| f.credential.as_str())
                    .collect();
                failed.dedup();
                wf.set_outputs(&[("failed", failed.join(",")), ("summary", summary)])?;
            }
            let failing = findings
                .iter()
                .any(|f| f.severity == inventory::Severity::Error);
            Ok(if failing { EXIT_FAILED } else { EXIT_OK })
        }
        Command::Audit(args) => {
            let (_, _, vault) = prepare(&cli, None, Duration::ZERO).await?;
            let lines = inventory::audit(&vault.doc, args.id.as_deref());
            if args.output.json {
                print_json(&lines);
            } else {
                let mut out = String::new();
                for l in &lines {
                    out.push_str(&format!(
                        "{}  {}  {}  {}: {}\n",
                        show(l.at),
                        l.credential,
                        l.rotation.as_deref().unwrap_or("-"),
                        l.event,
                        l.detail
                    ));
                }
                print_stdout(&out);
            }
            Ok(EXIT_OK)
        }
        Command::State(StateCommand::Rekey(args)) => {
            let (config, _, mut vault) = prepare_changing(&cli, Duration::ZERO).await?;
            let text = std::fs::read_to_string(&args.new_identity_file).map_err(|e| {
                AppError::Usage(format!(
                    "cannot read {}: {e}",
                    args.new_identity_file.display()
                ))
            })?;
            let new_identity = StateIdentity::parse(&Secret::new(text))?;
            let recipients = parse_recipients(&config.config.state.recipients)?;
            let ids = pipeline::all_ids(&config, &vault);
            vault.acquire(&ids, now()).await?;
            let writer = new_identity.writer_id().to_string();
            vault.rekey(new_identity, recipients, now()).await?;
            vault.release(now()).await?;
            eprintln!(
                "state re-encrypted to {} recipient(s); new writer {writer}. Use the new identity from now on (ROTAGATE_AGE_IDENTITY).",
                config.config.state.recipients.len()
            );
            Ok(EXIT_OK)
        }
    }
}

fn options(waits: &Waits, only: Vec<String>, bootstrap: bool) -> RunOptions {
    RunOptions {
        only,
        bootstrap,
        max_wait: waits.max_wait.0,
        lease_wait: waits.lease_wait.0,
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
    };
    let progress: Arc<dyn Progress> = if ci::masking_enabled() {
        Arc::new(ci::LogGroups)
    } else {
        Arc::new(Quiet)
    };
    Ok(Runtime {
        clock: Arc::new(SystemClock),
        http: HttpClient::new(RetryPolicy::default())
            .map_err(|e| AppError::Failed(e.to_string()))?,
        env: Arc::new(ProcessEnv),
        gates: Arc::new(StandardGates {
            providers: providers.clone(),
            repo: home,
        }),
        providers,
        progress,
    })
}

/// A Vercel client when ROTAGATE_VERCEL_TOKEN is set; ROTAGATE_VERCEL_API_URL points it
/// elsewhere (a proxy, the tests' fake).
fn vercel_from_env() -> Result<Option<crate::vercel::Vercel>, AppError> {
    let Ok(token) = std::env::var("ROTAGATE_VERCEL_TOKEN") else {
        return Ok(None);
    };
    let api = std::env::var("ROTAGATE_VERCEL_API_URL")
        .unwrap_or_else(|_| crate::vercel::DEFAULT_API.to_string());
    let http =
        HttpClient::new(RetryPolicy::default()).map_err(|e| AppError::Failed(e.to_string()))?;
    crate::vercel::Vercel::new(http, &api, Secret::new(token))
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
        .or_else(|| {
            std::env::var("GITHUB_REPOSITORY")
                .ok()
                .filter(|r| config::is_repo(r))
        })
}

/// The GitHub client (when credentials are set) and the repository rotagate works in.
fn github_for(config: &LoadedConfig) -> Result<(Option<GitHub>, Option<String>), AppError> {
    let env = |n: &str| std::env::var(n).ok();
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
async fn notify(config: &LoadedConfig, vault: &Vault, rt: &Runtime) {
    let (Some(gh), Some(repo)) = (rt.providers.github.clone(), github_home(config)) else {
        tracing::debug!("no GitHub credentials or repository: owner notifications are not sent");
        return;
    };
    let findings = inventory::check(config, &vault.doc, rt.clock.now());
    let credentials: Vec<(String, Option<String>)> = config
        .resolved()
        .into_iter()
        .map(|c| (c.id, c.owner))
        .collect();
    if let Err(e) = crate::notify::GithubIssues::new(gh, repo)
        .sync(&credentials, &findings)
        .await
    {
        eprintln!("warning: owner notifications were not updated: {e}");
    }
}

/// The state identity from ROTAGATE_AGE_IDENTITY or --identity-file.
pub fn load_identity(identity_file: Option<&Path>) -> Result<StateIdentity, AppError> {
    if let Ok(value) = std::env::var("ROTAGATE_AGE_IDENTITY")
        && !value.trim().is_empty()
    {
        return Ok(StateIdentity::parse(&Secret::new(value))?);
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
            let full = if path.is_absolute() {
                path.clone()
            } else {
                config.dir.join(&path)
            };
            Ok(Box::new(FileStore::new(
                full,
                config.config.state.store.clone(),
            )))
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
    Ok(state::Vault::open(store, identity, recipients, RunIdentity::current(), lease).await?)
}

/// After a command that drove rotations: owner notifications, then under Actions the
/// step summary, outputs and annotations; the exit code.
async fn finish(
    config: &LoadedConfig,
    vault: &Vault,
    rt: &Runtime,
    command: &str,
    report: &RunReport,
    json: bool,
) -> Result<u8, AppError> {
    notify(config, vault, rt).await;
    if let Some(wf) = ci::Workflow::detect()? {
        let stages = vault
            .doc
            .credentials
            .iter()
            .filter_map(|(id, e)| e.rotation.as_ref().map(|r| (id.clone(), r.stage)))
            .collect();
        let summary = ci::run_summary(command, report, &stages);
        wf.append_summary(&summary)?;
        wf.set_outputs(&ci::run_outputs(report, &summary))?;
        for c in report.credentials.iter().filter(|c| c.outcome.failed()) {
            ci::error(&format!("rotagate: {}", c.id), &c.outcome.describe(), None);
        }
    }
    Ok(report_exit(report, json))
}

fn report_exit(report: &RunReport, json: bool) -> u8 {
    if json {
        print_json(report);
    }
    for c in &report.credentials {
        eprintln!("{}: {}", c.id, c.outcome.describe());
        for note in &c.notes {
            eprintln!("  {note}");
        }
    }
    if report.failed() {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("reports serialise");
    text.push('\n');
    print_stdout(&text);
}

/// The one place output meant for stdout is written.
pub fn print_stdout(text: &str) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // A closed pipe (`rotagate status | head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
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

/// Config errors with a snippet of the line each one is on.
pub fn render_config_error(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid { diagnostics, text } => {
            let mut out = String::new();
            for d in diagnostics {
                out.push_str(&render_diagnostic(d, text));
                out.push('\n');
            }
            out.push_str(&format!(
                "{} error{} in the config; nothing was changed\n",
                diagnostics.len(),
                if diagnostics.len() == 1 { "" } else { "s" }
            ));
            out
        }
        other => format!("error: {other}\n"),
    }
}

fn render_diagnostic(d: &Diagnostic, text: &str) -> String {
    use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
    let title = if d.path.is_empty() {
        d.message.clone()
    } else {
        format!("{}: {}", d.path, d.message)
    };
    let path = d.file.display().to_string();
    let span = byte_span(text, d.line, d.column);
    let mut group = Level::ERROR.primary_title(title.as_str()).element(
        Snippet::source(text)
            .path(path.as_str())
            .annotation(AnnotationKind::Primary.span(span)),
    );
    if let Some(hint) = &d.hint {
        group = group.element(Level::HELP.message(hint.as_str()));
    }
    Renderer::plain().render(&[group])
}

/// The byte range of the value at a 1-based line and column: a quoted scalar to its
/// closing quote, anything else to the next separator.
fn byte_span(text: &str, line: usize, column: usize) -> std::ops::Range<usize> {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let start = offset
                + l.char_indices()
                    .nth(column.saturating_sub(1))
                    .map_or(0, |(b, _)| b);
            let rest = text[start..].lines().next().unwrap_or("");
            let len = match rest.chars().next() {
                Some(q @ ('"' | '\'')) => rest[1..].find(q).map_or(rest.len(), |end| end + 2),
                _ => rest.find([',', '}', ']', '#']).unwrap_or(rest.len()),
            };
            let len = rest[..len].trim_end().len().max(1).min(text.len() - start);
            return start..start + len;
        }
        offset += l.len();
    }
    text.len()..text.len()
}

/// Under Actions, masks rotagate's own secrets (and the identity file's content)
/// before anything else is printed.
pub fn mask_startup(cli: &Cli) {
    if !ci::masking_enabled() {
        return;
    }
    ci::mask_env(ci::SECRET_ENV);
    if let Some(path) = &cli.identity_file
        && let Ok(text) = std::fs::read_to_string(path)
    {
        ci::mask(&zeroize::Zeroizing::new(text));
    }
}

/// Runs `execute` and turns the result into the process exit code, printing errors.
pub async fn main_with(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            match &e {
                AppError::Config(c) => {
                    annotate_config_error(c);
                    eprint!("{}", render_config_error(c));
                }
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}
