//! `rotagate gate reopen ID`: a fresh pull request for a rejected gate.

use clap::Subcommand;

use super::RollbackArgs;
use crate::app::{AppError, finish, prepare_one};
use crate::cli::Cli;
use crate::pipeline;

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Open a new pull request for a rejected gate.
    Reopen(RollbackArgs),
}

pub async fn run(cli: &Cli, command: &GateCommand) -> Result<u8, AppError> {
    let GateCommand::Reopen(args) = command;
    let (config, rt, mut vault, opts) = prepare_one(cli, &args.waits, &args.id, false).await?;
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
