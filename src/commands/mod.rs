//! One file per command, holding its arguments and what it does; [`execute`] is the
//! only place a command is chosen by name. Shared plumbing (loading the config and the
//! state, the run's tools, reporting) lives in [`crate::app`].

mod adopt;
mod audit;
mod check;
pub mod demo;
mod gate;
pub mod init;
mod plan;
mod rollback;
mod rotate;
mod run;
mod schema;
mod state;
mod status;

pub use adopt::AdoptArgs;
pub use audit::AuditArgs;
pub use demo::DemoArgs;
pub use gate::GateCommand;
pub use init::InitArgs;
pub use plan::PlanArgs;
pub use rollback::RollbackArgs;
pub use rotate::RotateArgs;
pub use run::RunArgs;
pub use state::StateCommand;

use crate::app::AppError;
use crate::cli::{Cli, Command};

/// Runs the command `cli` names; the result is the exit code.
pub async fn execute(cli: &Cli) -> Result<u8, AppError> {
    match &cli.command {
        Command::Schema => schema::run(),
        Command::Init(args) => init::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Plan(args) => plan::run(cli, args).await,
        Command::Run(args) => run::run(cli, args).await,
        Command::Rotate(args) => rotate::run(cli, args).await,
        Command::Rollback(args) => rollback::run(cli, args).await,
        Command::Gate(command) => gate::run(cli, command).await,
        Command::Adopt(args) => adopt::run(cli, args).await,
        Command::Status(args) => status::run(cli, args).await,
        Command::Check(args) => check::run(cli, args).await,
        Command::Audit(args) => audit::run(cli, args).await,
        Command::State(command) => state::run(cli, command).await,
    }
}
