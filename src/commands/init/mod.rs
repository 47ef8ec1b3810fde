//! `rotagate init`: a starter rotagate.yaml and a state identity.

use std::io::Write;
use std::path::Path;

use std::path::PathBuf;

use clap::Args;

use crate::app::{AppError, EXIT_OK};
use crate::state::StateIdentity;

const CONFIG_TEMPLATE: &str = include_str!("rotagate.yaml");

/// The workflows of workflows/, written to .github/workflows/. The matrix one replaces
/// the scheduled one with `--matrix` (both run on the same cron).
const WORKFLOWS: &[(&str, &str)] = &[
    (
        "rotate-scheduled.yml",
        include_str!("../../../workflows/rotate-scheduled.yml"),
    ),
    (
        "rotate-incident.yml",
        include_str!("../../../workflows/rotate-incident.yml"),
    ),
    (
        "rotate-approval.yml",
        include_str!("../../../workflows/rotate-approval.yml"),
    ),
    (
        "rotate-matrix.yml",
        include_str!("../../../workflows/rotate-matrix.yml"),
    ),
];

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create rotagate.yaml.
    #[arg(long, env = "ROTAGATE_INIT_DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the new state identity (mode 0600). Put it in the `rotation`
    /// environment's ROTAGATE_AGE_IDENTITY secret, then delete the file.
    #[arg(
        long,
        env = "ROTAGATE_IDENTITY_OUT",
        default_value = "rotagate-identity.txt"
    )]
    pub identity_out: PathBuf,
    /// Overwrite an existing rotagate.yaml and workflow files.
    #[arg(long, env = "ROTAGATE_FORCE")]
    pub force: bool,
    /// Write rotate-matrix.yml (one job per credential) instead of rotate-scheduled.yml.
    #[arg(long, env = "ROTAGATE_INIT_MATRIX")]
    pub matrix: bool,
}

pub fn run(args: &InitArgs) -> Result<u8, AppError> {
    init(args).map(|()| EXIT_OK)
}

fn init(args: &InitArgs) -> Result<(), AppError> {
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
    std::fs::write(
        &config_path,
        CONFIG_TEMPLATE.replace("{RECIPIENT}", &identity.recipient()),
    )
    .map_err(|e| io(&config_path, e))?;
    let workflows_dir = args.dir.join(".github/workflows");
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
    let workflows = if written.is_empty() {
        String::new()
    } else {
        format!("wrote {}\n", written.join(", "))
    };
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
    let missing: Vec<&&str> = lines
        .iter()
        .filter(|l| !existing.lines().any(|e| e.trim() == **l))
        .collect();
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
