//! Command-line arguments. Every flag has an environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::commands::{
    AdoptArgs, AuditArgs, DemoArgs, GateCommand, InitArgs, PlanArgs, RollbackArgs, RotateArgs,
    RunArgs, StateCommand,
};
use crate::config::Dur;

#[derive(Debug, Parser)]
#[command(
    name = "rotagate",
    version,
    about = "Rotates signing keys and secrets from CI: each run advances every rotation as far as its gates allow, saves, and stops.",
    after_help = "Exit codes: 0 ok (including waiting on a gate), 1 a check or step failed, 2 bad usage or bad config."
)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "ROTAGATE_CONFIG", default_value = "rotagate.yaml")]
    pub config: PathBuf,

    /// The state identity (AGE-SECRET-KEY-1...) as a file; ROTAGATE_AGE_IDENTITY holds
    /// it as a value instead.
    #[arg(long, global = true, env = "ROTAGATE_IDENTITY_FILE")]
    pub identity_file: Option<PathBuf>,

    /// Keep a copy of the encrypted state here, written after every save (the action
    /// uploads it as an artifact).
    #[arg(long, global = true, env = "ROTAGATE_STATE_COPY")]
    pub state_copy: Option<PathBuf>,

    /// More log detail (-v debug, -vv trace). ROTAGATE_LOG takes a level or filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold rotagate.yaml and a state identity.
    Init(InitArgs),
    /// Show what the next run would do; changes nothing.
    Plan(PlanArgs),
    /// Advance every due or in-flight rotation as far as its gates allow.
    Run(RunArgs),
    /// Start a rotation now (an incident).
    Rotate(RotateArgs),
    /// Revert a rotation that has not retired its old material yet.
    Rollback(RollbackArgs),
    /// Record live material as current, so the first rotation can roll back to it.
    Adopt(AdoptArgs),
    /// Each credential: current material, stage, age, due date, owner.
    Status(JsonArgs),
    /// Expiry, due dates, owners and stuck rotations; exit 1 when something needs action.
    Check(JsonArgs),
    /// The append-only event log from the state.
    Audit(AuditArgs),
    /// Gate maintenance.
    #[command(subcommand)]
    Gate(GateCommand),
    /// State maintenance.
    #[command(subcommand)]
    State(StateCommand),
    /// Print the JSON Schema of rotagate.yaml.
    Schema,
    /// Run a complete local rotation in a scratch directory: no account, no network.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Machine-readable output on stdout.
    #[arg(long, env = "ROTAGATE_JSON")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Waits {
    /// Waits that end within this (a drain, a propagation, a probe retry) are waited out
    /// in-process; longer ones are left to a later run.
    #[arg(long, env = "ROTAGATE_MAX_WAIT", default_value = "10m")]
    pub max_wait: Dur,
    /// How long to wait for another run's lease on a credential.
    #[arg(long, env = "ROTAGATE_LEASE_WAIT", default_value = "1m")]
    pub lease_wait: Dur,
    #[command(flatten)]
    pub output: JsonArgs,
}
