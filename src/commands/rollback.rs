//! `rotagate rollback ID`: revert a rotation that has not retired its old material.

use clap::Args;

use crate::app::{AppError, on_one, options};
use crate::cli::{Cli, Waits};
use crate::config::LoadedConfig;
use crate::pipeline::{self, EngineError, RunOptions, RunReport, Runtime};
use crate::state::Vault;

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The credential id.
    pub id: String,
    #[command(flatten)]
    pub waits: Waits,
}

pub async fn run(cli: &Cli, args: &RollbackArgs) -> Result<u8, AppError> {
    on_credential(cli, args, "rollback", pipeline::rollback).await
}

/// `rollback ID` and `gate reopen ID`: `job` on the one credential.
pub(super) async fn on_credential(
    cli: &Cli,
    args: &RollbackArgs,
    command: &str,
    job: impl AsyncFnOnce(
        &LoadedConfig,
        &mut Vault,
        &Runtime,
        &RunOptions,
        &str,
    ) -> Result<RunReport, EngineError>,
) -> Result<u8, AppError> {
    let opts = options(&args.waits, Vec::new(), false);
    let json = args.waits.output.json;
    on_one(cli, &opts, &args.id, command, json, async |c, v, rt| {
        job(c, v, rt, &opts, &args.id).await
    })
    .await
}
