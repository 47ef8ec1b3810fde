//! `rotagate state rekey` (re-encrypt the state to new recipients, keeping the chain)
//! and `rotagate state restore` (put the newest state back after a branch reset).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::app::{
    AppError, EXIT_OK, ensure_default_branch, load, load_identity, open_store, prepare_changing,
    print_stdout, runtime,
};
use crate::cli::Cli;
use crate::pipeline;
use crate::secret::Secret;
use crate::state::{self, StateIdentity, parse_recipients};

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Re-encrypt the state to state.recipients with a new writer identity, keeping
    /// the chain.
    Rekey(RekeyArgs),
    /// Put the newest state back after its store was reset (the file must be exactly
    /// the state the replay anchor names, e.g. the last run's state artifact).
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// The new state identity (its recipient must be in state.recipients).
    #[arg(long, env = "ROTAGATE_NEW_IDENTITY_FILE")]
    pub new_identity_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The sealed state to put back (`state.age`).
    #[arg(long, env = "ROTAGATE_RESTORE_FILE")]
    pub from_file: PathBuf,
}

pub async fn run(cli: &Cli, command: &StateCommand) -> Result<u8, AppError> {
    match command {
        StateCommand::Rekey(args) => rekey(cli, args).await,
        StateCommand::Restore(args) => restore(cli, args).await,
    }
}

async fn rekey(cli: &Cli, args: &RekeyArgs) -> Result<u8, AppError> {
    let now = time::OffsetDateTime::now_utc;
    let (config, _, mut vault) = prepare_changing(cli, Duration::ZERO).await?;
    let text = std::fs::read_to_string(&args.new_identity_file).map_err(|e| {
        AppError::Usage(format!("cannot read {}: {e}", args.new_identity_file.display()))
    })?;
    let new_identity = StateIdentity::parse(&Secret::new(text))?;
    let recipients = parse_recipients(&config.config.state.recipients)?;
    let ids = pipeline::all_ids(&config, &vault);
    vault.acquire(&ids, now()).await?;
    let writer = new_identity.writer_id().to_string();
    vault.rekey(new_identity, recipients, now()).await?;
    vault.release(now()).await?;
    print_stdout(&format!(
        "state re-encrypted to {} recipient(s); new writer {writer}. Use the new identity from now on (ROTAGATE_AGE_IDENTITY).\n",
        config.config.state.recipients.len()
    ));
    Ok(EXIT_OK)
}

async fn restore(cli: &Cli, args: &RestoreArgs) -> Result<u8, AppError> {
    let config = load(cli)?;
    let rt = runtime(&config, None)?;
    ensure_default_branch(&rt).await?;
    let bytes = std::fs::read(&args.from_file)
        .map_err(|e| AppError::Usage(format!("cannot read {}: {e}", args.from_file.display())))?;
    let identity = load_identity(cli.identity_file.as_deref())?;
    let store = open_store(&config, &rt)?;
    let generation = state::restore(store.as_ref(), &identity, &bytes).await?;
    print_stdout(&format!("put generation {generation} back into {}\n", store.describe()));
    Ok(EXIT_OK)
}
