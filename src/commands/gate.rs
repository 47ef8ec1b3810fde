//! `rotagate gate reopen ID`: a fresh pull request for a rejected gate.

use clap::Subcommand;

use super::RollbackArgs;
use crate::app::{AppError, on_one, options};
use crate::cli::Cli;
use crate::pipeline;

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Open a new pull request for a rejected gate.
    Reopen(RollbackArgs),
}

pub async fn run(cli: &Cli, command: &GateCommand) -> Result<u8, AppError> {
    let GateCommand::Reopen(args) = command;
    let opts = options(&args.waits, Vec::new(), false);
    on_one(
        cli,
        &opts,
        &args.id,
        "gate reopen",
        args.waits.output.json,
        async |c, v, rt| pipeline::reopen_gate(c, v, rt, &opts, &args.id).await,
    )
    .await
}
