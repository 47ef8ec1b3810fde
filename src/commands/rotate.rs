//! `rotagate rotate ID --reason TEXT [--emergency]`: start a rotation now (an incident).

use clap::Args;

use crate::app::{AppError, finish, prepare_one};
use crate::cli::{Cli, Waits};
use crate::pipeline;

// The usage line is spelled out: clap would list a global flag given through its
// environment variable (ROTAGATE_IDENTITY_FILE) as if it were required.
#[derive(Debug, Args)]
#[command(override_usage = "rotagate rotate [OPTIONS] --reason <REASON> <ID>")]
pub struct RotateArgs {
    /// The credential id.
    pub id: String,
    /// Why (recorded in the audit log).
    #[arg(long, env = "ROTAGATE_REASON")]
    pub reason: String,
    /// The key is compromised: replace any rotation in flight, revoke the old material,
    /// skip propagate and drain.
    #[arg(long, env = "ROTAGATE_EMERGENCY")]
    pub emergency: bool,
    /// Allow first issuance if the credential has no material.
    #[arg(long, env = "ROTAGATE_BOOTSTRAP")]
    pub bootstrap: bool,
    #[command(flatten)]
    pub waits: Waits,
}

pub async fn run(cli: &Cli, args: &RotateArgs) -> Result<u8, AppError> {
    let (config, rt, mut vault, opts) =
        prepare_one(cli, &args.waits, &args.id, args.bootstrap).await?;
    let report = pipeline::rotate(
        &config,
        &mut vault,
        &rt,
        &opts,
        &args.id,
        &args.reason,
        args.emergency,
    )
    .await?;
    finish(
        &config,
        &vault,
        &rt,
        "rotate",
        &report,
        args.waits.output.json,
    )
    .await
}
