//! `rotagate gate reopen ID`: a fresh pull request for a rejected gate.

use clap::Subcommand;

use super::RollbackArgs;
use crate::app::AppError;
use crate::cli::Cli;
use crate::pipeline;

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Open a new pull request for a rejected gate.
    Reopen(RollbackArgs),
}

pub async fn run(cli: &Cli, command: &GateCommand) -> Result<u8, AppError> {
    let GateCommand::Reopen(args) = command;
    super::rollback::on_credential(cli, args, "gate reopen", pipeline::reopen_gate).await
}
