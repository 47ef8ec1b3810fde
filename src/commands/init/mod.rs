//! `rotagate init`: a starter rotagate.yaml and a state identity.

use std::io::Write;
use std::path::Path;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::app::{AppError, EXIT_OK};
use crate::state::StateIdentity;

const CONFIG_TEMPLATE: &str = include_str!("rotagate.yaml");

/// The workflows of workflows/, written to .github/workflows/. The matrix one replaces
/// the scheduled one with `--matrix` (both run on the same cron).
const WORKFLOWS: &[(&str, &str)] = &[
    ("rotate-scheduled.yml", include_str!("../../../workflows/rotate-scheduled.yml")),
    ("rotate-incident.yml", include_str!("../../../workflows/rotate-incident.yml")),
    ("rotate-approval.yml", include_str!("../../../workflows/rotate-approval.yml")),
    ("rotate-matrix.yml", include_str!("../../../workflows/rotate-matrix.yml")),
];

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create rotagate.yaml.
    #[arg(long, env = "ROTAGATE_INIT_DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the new state identity (mode 0600). Put it in the `rotation`
    /// environment's ROTAGATE_AGE_IDENTITY secret, then delete the file.
    #[arg(long, env = "ROTAGATE_IDENTITY_OUT", default_value = "rotagate-identity.txt")]
    pub identity_out: PathBuf,
    /// Overwrite an existing rotagate.yaml and workflow files.
    #[arg(long, env = "ROTAGATE_FORCE")]
    pub force: bool,
    /// Write rotate-matrix.yml (one job per credential) instead of rotate-scheduled.yml.
    #[arg(long, env = "ROTAGATE_INIT_MATRIX")]
    pub matrix: bool,
}

pub async fn run(args: &InitArgs) -> Result<u8, AppError> {
    init(args).await.map(|()| EXIT_OK)
}

/// The repository the workflows run rotagate from.
const ACTION_REPOSITORY: &str = "rotagate/rotagate";

/// Whether this binary was built by release.yml: only then does `init` pin the
/// workflows to its release's tag. (A binary cannot carry that pin itself: the tagged
/// commit holds the binary's checksum, so it is made after the binary.)
fn is_release_build() -> bool {
    option_env!("ROTAGATE_RELEASE_BUILD").is_some()
        || std::env::var("ROTAGATE_INIT_PIN_RELEASE").is_ok_and(|v| v == "1")
}

/// The commit the `v<version>` tag of rotagate's repository names (following an
/// annotated tag to its commit), asked of GitHub's git refs API.
async fn release_commit(version: &str) -> Result<String, String> {
    use crate::http::{HttpClient, Request, RetryPolicy};
    let api = std::env::var("GITHUB_API_URL").unwrap_or_else(|_| "https://api.github.com".into());
    let http = HttpClient::new(RetryPolicy { attempts: 2, ..RetryPolicy::default() })
        .map_err(|e| e.to_string())?;
    let token = crate::secret::process_secret("ROTAGATE_GITHUB_TOKEN");
    let get = async |path: String| -> Result<serde_json::Value, String> {
        let url = url::Url::parse(&format!("{}{path}", api.trim_end_matches('/')))
            .map_err(|e| format!("{api} is not a URL ({e})"))?;
        let headers = token
            .iter()
            .map(|t| {
                (
                    reqwest::header::AUTHORIZATION,
                    crate::secret::Secret::new(format!("Bearer {}", t.expose())),
                )
            })
            .collect();
        let response = http
            .send(&Request {
                method: reqwest::Method::GET,
                url,
                shown: format!("GET {path}"),
                headers,
                body: None,
                content_type: None,
                timeout: Duration::from_secs(15),
                trusted_hosts: Vec::new(),
            })
            .await
            .map_err(|e| e.to_string())?;
        if !response.status.is_success() {
            return Err(format!("GET {path} answered {}", response.status.as_u16()));
        }
        response.json().ok_or_else(|| format!("GET {path} answered no JSON"))
    };
    let tag = get(format!("/repos/{ACTION_REPOSITORY}/git/ref/tags/v{version}")).await?;
    let mut object = tag["object"].clone();
    if object["type"] == "tag" {
        let sha = object["sha"].as_str().unwrap_or_default().to_string();
        object = get(format!("/repos/{ACTION_REPOSITORY}/git/tags/{sha}")).await?["object"].clone();
    }
    match (object["type"].as_str(), object["sha"].as_str()) {
        (Some("commit"), Some(sha))
            if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(sha.to_string())
        }
        _ => Err(format!("the v{version} tag names no commit")),
    }
}

/// `text` with every `uses: rotagate/rotagate@<sha> # ...` pinned to `sha` (`# v<version>`).
fn pin_workflow(text: &str, sha: &str, version: &str) -> String {
    let prefix = format!("uses: {ACTION_REPOSITORY}@");
    text.lines()
        .map(|line| match line.find(&prefix) {
            Some(at) => format!("{}{prefix}{sha} # v{version}", &line[..at]),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

async fn init(args: &InitArgs) -> Result<(), AppError> {
    let config_path = args.dir.join("rotagate.yaml");
    if config_path.exists() && !args.force {
        return Err(AppError::Usage(format!(
            "{} exists; pass --force to overwrite it",
            config_path.display()
        )));
    }
    if args.identity_out.exists() {
        return Err(AppError::Usage(format!(
            "{} exists; an identity is never overwritten: pass another --identity-out",
            args.identity_out.display()
        )));
    }
    let identity = StateIdentity::generate();
    write_identity(&args.identity_out, &identity)?;
    let io = |what: &Path, e: std::io::Error| {
        AppError::Failed(format!("cannot write {}: {e}", what.display()))
    };
    std::fs::create_dir_all(args.dir.join(".rotagate")).map_err(|e| io(&args.dir, e))?;
    std::fs::write(&config_path, CONFIG_TEMPLATE.replace("{RECIPIENT}", &identity.recipient()))
        .map_err(|e| io(&config_path, e))?;
    let workflows_dir = args.dir.join(".github/workflows");
    let version = env!("CARGO_PKG_VERSION");
    let pin = if is_release_build() {
        match release_commit(version).await {
            Ok(sha) => Some(sha),
            Err(e) => {
                crate::app::print_stderr(&format!(
                    "warning: cannot look up the commit of rotagate's v{version} tag ({e}); the workflows keep the pin this binary carries: before committing them, pin {ACTION_REPOSITORY} to the v{version} tag's commit\n"
                ));
                None
            }
        }
    } else {
        None
    };
    let mut written = Vec::new();
    for (name, text) in WORKFLOWS {
        let wanted = if *name == "rotate-scheduled.yml" {
            !args.matrix
        } else if *name == "rotate-matrix.yml" {
            args.matrix
        } else {
            true
        };
        let path = workflows_dir.join(name);
        if !wanted || (path.exists() && !args.force) {
            continue;
        }
        std::fs::create_dir_all(&workflows_dir).map_err(|e| io(&workflows_dir, e))?;
        let text = match &pin {
            Some(sha) => pin_workflow(text, sha, version),
            None => text.to_string(),
        };
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        written.push(path.display().to_string());
    }
    let ignore = args.dir.join(".gitignore");
    let mut lines = vec!["/.rotagate/*.lock", "/.rotagate/.state-*.tmp", "/secrets/"];
    let identity_name = args.identity_out.to_string_lossy().to_string();
    if args.identity_out.is_relative() {
        lines.push(&identity_name);
    }
    append_missing(&ignore, &lines).map_err(|e| io(&ignore, e))?;
    let workflows =
        if written.is_empty() { String::new() } else { format!("wrote {}\n", written.join(", ")) };
    crate::app::print_stderr(&format!(
        "wrote {config}\n{workflows}wrote the state identity to {id} (mode 0600; its recipient {r} is in the config)\n\nnext:\n  1. store {id}'s content as the ROTAGATE_AGE_IDENTITY secret of a GitHub environment named `rotation` (deployable from the default branch only), then delete the file\n  2. edit {config}: one entry per credential (README has one per runbook); on GitHub Actions set state.store to github-branch:rotagate-state\n  3. rotagate plan --identity-file {id}\n  4. README \"On GitHub Actions\": the GitHub App, its secrets, CODEOWNERS\n",
        config = config_path.display(),
        id = args.identity_out.display(),
        r = identity.recipient(),
    ));
    Ok(())
}

fn write_identity(path: &Path, identity: &StateIdentity) -> Result<(), AppError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| AppError::Failed(format!("cannot create {}: {e}", path.display())))?;
    let created = crate::clock::show(time::OffsetDateTime::now_utc());
    let text = zeroize::Zeroizing::new(format!(
        "# rotagate state identity, created {created}\n# public key: {}\n{}\n",
        identity.recipient(),
        identity.to_secret().expose()
    ));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| AppError::Failed(format!("cannot write {}: {e}", path.display())))
}

fn append_missing(path: &Path, lines: &[&str]) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let missing: Vec<&&str> =
        lines.iter().filter(|l| !existing.lines().any(|e| e.trim() == **l)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for l in missing {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(path, text)
}
