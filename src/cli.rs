//! Command-line arguments. Every flag has an environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    #[arg(
        long,
        global = true,
        env = "ROTAGATE_CONFIG",
        default_value = "rotagate.yaml"
    )]
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
pub struct InitArgs {
    /// Where to create rotagate.yaml.
    #[arg(long, env = "ROTAGATE_INIT_DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the new state identity (mode 0600). Put it in the `rotation`
    /// environment's ROTAGATE_AGE_IDENTITY secret, then delete the file.
    #[arg(
        long,
        env = "ROTAGATE_IDENTITY_OUT",
        default_value = "rotagate-identity.txt"
    )]
    pub identity_out: PathBuf,
    /// Overwrite an existing rotagate.yaml and workflow files.
    #[arg(long, env = "ROTAGATE_FORCE")]
    pub force: bool,
    /// Write rotate-matrix.yml (one job per credential) instead of rotate-scheduled.yml.
    #[arg(long, env = "ROTAGATE_INIT_MATRIX")]
    pub matrix: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Machine-readable output on stdout.
    #[arg(long, env = "ROTAGATE_JSON")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub output: JsonArgs,
    /// Plan as if `run --bootstrap` were given.
    #[arg(long, env = "ROTAGATE_BOOTSTRAP")]
    pub bootstrap: bool,
    /// Print a GitHub Actions job matrix, one entry per credential with work
    /// (`{"include":[{"credential":"..."}]}`); under Actions also the `matrix` output.
    #[arg(long, env = "ROTAGATE_MATRIX", conflicts_with = "json")]
    pub matrix: bool,
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

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only these credentials (repeat, or comma-separate).
    #[arg(long, env = "ROTAGATE_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Issue first material for credentials the state has none of.
    #[arg(long, env = "ROTAGATE_BOOTSTRAP")]
    pub bootstrap: bool,
    #[command(flatten)]
    pub waits: Waits,
}

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The credential id.
    pub id: String,
    #[command(flatten)]
    pub waits: Waits,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true))]
pub struct AdoptArgs {
    /// The credential id.
    pub id: String,
    /// Read the live material from this file (a PEM or private JWK, or a secret).
    #[arg(long, group = "source", env = "ROTAGATE_ADOPT_FILE")]
    pub from_file: Option<PathBuf>,
    /// Read the live material from this environment variable.
    #[arg(long, group = "source", env = "ROTAGATE_ADOPT_ENV")]
    pub from_env: Option<String>,
    /// The live kid (default: the JWK's kid, else the key's thumbprint).
    #[arg(long, env = "ROTAGATE_ADOPT_KID")]
    pub kid: Option<String>,
    /// For alternating credentials: the role the live material is on.
    #[arg(long, env = "ROTAGATE_ADOPT_ROLE")]
    pub role: Option<String>,
    /// Replace material already recorded as current.
    #[arg(long, env = "ROTAGATE_ADOPT_REPLACE")]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this credential.
    pub id: Option<String>,
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Open a new pull request for a rejected gate.
    Reopen(RollbackArgs),
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Re-encrypt the state to state.recipients with a new writer identity, keeping
    /// the chain.
    Rekey(RekeyArgs),
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// The new state identity (its recipient must be in state.recipients).
    #[arg(long, env = "ROTAGATE_NEW_IDENTITY_FILE")]
    pub new_identity_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to run the demo (default: a new temporary directory, kept).
    #[arg(long, env = "ROTAGATE_DEMO_DIR")]
    pub dir: Option<PathBuf>,
}
