//! `rotagate demo`: a complete local rotation on an embedded config. No account, no
//! network: a file state store, a JWKS file, an env file and a probe script.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::actions::{read_env_file, read_jwks};
use crate::app::{AppError, EXIT_FAILED, EXIT_OK, open_store, print_stdout, runtime};
use crate::pipeline::{self, Outcome, RunOptions, RunReport};
use crate::state::{RunIdentity, StateIdentity, Vault, parse_recipients};
use crate::{config, inventory};

const CONFIG: &str = include_str!("rotagate.yaml");
const CHECK_KID: &str = include_str!("check-kid.sh");
const ID: &str = "api-signing";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to run the demo (default: a new temporary directory, kept).
    #[arg(long, env = "ROTAGATE_DEMO_DIR")]
    pub dir: Option<std::path::PathBuf>,
}

pub async fn run(args: &DemoArgs) -> Result<u8, AppError> {
    let dir = match args.dir.as_deref() {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| fail(d, e))?;
            d.to_path_buf()
        }
        None => tempfile::Builder::new()
            .prefix("rotagate-demo-")
            .tempdir()
            .map_err(|e| AppError::Failed(format!("cannot make a temporary directory: {e}")))?
            .keep(),
    };
    let config_path = dir.join("rotagate.yaml");
    if config_path.exists() {
        return Err(AppError::Usage(format!(
            "{} already holds a rotagate.yaml; give the demo an empty --dir",
            dir.display()
        )));
    }

    say(&format!("rotagate demo in {}\n", dir.display()));
    say("1. set-up: a state identity, the embedded config, a probe script");
    let identity = StateIdentity::generate();
    let identity_path = dir.join("demo-identity.txt");
    write_private(&identity_path, &format!("{}\n", identity.to_secret().expose()))?;
    std::fs::write(&config_path, CONFIG.replace("{RECIPIENT}", &identity.recipient()))
        .map_err(|e| fail(&config_path, e))?;
    let script = dir.join("check-kid.sh");
    std::fs::write(&script, CHECK_KID).map_err(|e| fail(&script, e))?;
    make_executable(&script)?;

    let config = config::load(&config_path)?;
    let rt = runtime(&config, Some(&[]))?;
    let mut vault = Vault::open(
        open_store(&config, &rt)?,
        identity,
        parse_recipients(&config.config.state.recipients)?,
        RunIdentity::current(),
        Duration::from_secs(1800),
    )
    .await?;
    let opts = RunOptions { max_wait: Duration::from_secs(60), ..RunOptions::default() };

    say("\n2. `rotagate run`: no material yet and `bootstrap: true`, so the first key is issued");
    let first = pipeline::run(&config, &mut vault, &rt, &opts).await?;
    report(&first);
    show_files(&dir)?;

    say(
        "\n3. `rotagate rotate api-signing`: generate, publish next to the old key, propagate,\n   promote kid and key together, verify, drain, retire the old key",
    );
    let second =
        pipeline::rotate(&config, &mut vault, &rt, &opts, ID, "demo rotation", false).await?;
    report(&second);
    show_files(&dir)?;

    say("\n4. a rotation whose new key the service refuses: verify fails and it rolls back");
    let live_kid = read_env_file(&dir.join("service/signing.env"))
        .ok()
        .and_then(|f| f.get("SIGNING_KID").map(|k| k.to_string()))
        .unwrap_or_default();
    let accept_only = dir.join("ACCEPT_ONLY");
    std::fs::write(&accept_only, &live_kid).map_err(|e| fail(&accept_only, e))?;
    let third =
        pipeline::rotate(&config, &mut vault, &rt, &opts, ID, "demo rotation that fails", false)
            .await?;
    report(&third);
    std::fs::remove_file(&accept_only).map_err(|e| fail(&accept_only, e))?;
    show_files(&dir)?;

    say("\n5. `rotagate status`");
    print_stdout(&inventory::render_status(&inventory::status(
        &config,
        &vault.doc,
        rt.clock.now(),
    )));

    say("\n6. `rotagate audit`");
    for l in inventory::audit(&vault.doc, &vault.archived_audit().await?, Some(ID)) {
        say(&format!("  {}  {}: {}", crate::clock::show(l.at), l.event, l.detail));
    }

    let expected = matches!(first.credentials[0].outcome, Outcome::Completed { .. })
        && matches!(second.credentials[0].outcome, Outcome::Completed { .. })
        && matches!(third.credentials[0].outcome, Outcome::RolledBack { .. });
    // The binary that runs now, by its path: after `cargo run` rotagate is not on PATH.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "rotagate".into());
    say(&format!(
        "\nThe state is {state} (the head) and, once settled, each credential's shard in {shards}, all age-encrypted. Read them as an operator would at break-glass:\n  age -d -i {id} {state}\n  age -d -i {id} {shards}/cred-index-<first 16 hex of its shard_index>.age\nTry it yourself (or `cargo install --path .` first, to call it `rotagate`):\n  cd {dir} && {exe} --identity-file demo-identity.txt plan\n  cd {dir} && {exe} --identity-file demo-identity.txt rotate api-signing --reason practice",
        state = dir.join(".rotagate/state.age").display(),
        shards = dir.join(".rotagate/state-credentials").display(),
        id = identity_path.display(),
        dir = dir.display(),
    ));
    Ok(if expected { EXIT_OK } else { EXIT_FAILED })
}

fn say(text: &str) {
    print_stdout(&format!("{text}\n"));
}

fn report(report: &RunReport) {
    for c in &report.credentials {
        say(&format!("   => {}: {}", c.id, c.outcome.describe()));
    }
}

fn show_files(dir: &Path) -> Result<(), AppError> {
    let jwks =
        read_jwks(&dir.join("public/jwks.json")).map_err(|e| AppError::Failed(e.to_string()))?;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .map(|keys| keys.iter().filter_map(|k| k["kid"].as_str()).collect())
        .unwrap_or_default();
    let env = read_env_file(&dir.join("service/signing.env")).map_err(|e| fail(dir, e))?;
    let kid = env.get("SIGNING_KID").map(|k| k.to_string()).unwrap_or_default();
    say(&format!(
        "   public/jwks.json serves [{}]; service/signing.env uses {kid} (its SIGNING_KEY is the matching private key)",
        kids.join(", ")
    ));
    Ok(())
}

fn fail(path: &Path, e: std::io::Error) -> AppError {
    AppError::Failed(format!("{}: {e}", path.display()))
}

fn write_private(path: &PathBuf, text: &str) -> Result<(), AppError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| fail(path, e))?;
    file.write_all(text.as_bytes()).map_err(|e| fail(path, e))
}

fn make_executable(path: &Path) -> Result<(), AppError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| fail(path, e))?;
    }
    Ok(())
}
