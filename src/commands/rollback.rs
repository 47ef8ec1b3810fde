//! `rotagate rollback ID`: revert a rotation that has not retired its old material.

use clap::Args;

use crate::app::{AppError, finish, prepare_one};
use crate::cli::{Cli, Waits};
use crate::pipeline;

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The credential id.
    pub id: String,
    #[command(flatten)]
    pub waits: Waits,
}

pub async fn run(cli: &Cli, args: &RollbackArgs) -> Result<u8, AppError> {
    let (config, rt, mut vault, opts) = prepare_one(cli, &args.waits, &args.id, false).await?;
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
