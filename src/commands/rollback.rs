//! `rotagate rollback ID`: revert a rotation that has not retired its old material.

use clap::Args;

use crate::app::{AppError, on_one, options};
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
    let opts = options(&args.waits, Vec::new(), false);
    on_one(
        cli,
        &opts,
        &args.id,
        "rollback",
        args.waits.output.json,
        async |c, v, rt| pipeline::rollback(c, v, rt, &opts, &args.id).await,
    )
    .await
}
