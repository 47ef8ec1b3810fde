//! `rotagate rotate ID --reason TEXT [--emergency]`: start a rotation now (an incident).

use clap::Args;

use crate::app::{AppError, on_one, options};
use crate::cli::{Cli, Waits};
use crate::pipeline::{self, RunOptions};

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
    let opts = options(&args.waits, Vec::new(), args.bootstrap);
    let (id, reason) = (&args.id, &args.reason);
    rotate(cli, &opts, id, reason, args.emergency, args.waits.output.json).await
}

/// Rotates `id` now: this command, and `run` answering a workflow_dispatch that names a
/// credential.
pub(crate) async fn rotate(
    cli: &Cli,
    opts: &RunOptions,
    id: &str,
    reason: &str,
    emergency: bool,
    json: bool,
) -> Result<u8, AppError> {
    on_one(cli, opts, id, "rotate", json, async |c, v, rt| {
        pipeline::rotate(c, v, rt, opts, id, reason, emergency).await
    })
    .await
}
