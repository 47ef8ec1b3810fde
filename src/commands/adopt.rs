//! `rotagate adopt ID --from-file F | --from-env VAR`: record live material as current,
//! so the first rotation can roll back to it.

use std::path::PathBuf;

use clap::Args;

use crate::app::{AppError, EXIT_OK, prepare_changing, print_stdout};
use crate::cli::Cli;
use crate::config;
use crate::pipeline::{self, RunOptions};
use crate::secret::Secret;

#[derive(Debug, Args)]
#[command(
    group = clap::ArgGroup::new("source").required(true),
    override_usage = "rotagate adopt [OPTIONS] <ID> <--from-file <FROM_FILE>|--from-env <FROM_ENV>>"
)]
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

/// The live material, from the file or variable the arguments name.
fn live_material(args: &AdoptArgs) -> Result<Secret, AppError> {
    match (&args.from_file, &args.from_env) {
        (Some(f), _) => std::fs::read_to_string(f)
            .map(Secret::new)
            .map_err(|e| AppError::Usage(format!("cannot read {}: {e}", f.display()))),
        (None, Some(var)) => {
            if config::template::is_reserved_env(var) {
                return Err(AppError::Usage(format!(
                    "{var} is rotagate's or the runner's own variable"
                )));
            }
            std::env::var(var)
                .map(Secret::new)
                .map_err(|_| AppError::Usage(format!("environment variable {var} is not set")))
        }
        (None, None) => Err(AppError::Usage("give --from-file or --from-env".into())),
    }
}

pub async fn run(cli: &Cli, args: &AdoptArgs) -> Result<u8, AppError> {
    let input = live_material(args)?;
    let opts = RunOptions::default();
    let (config, rt, mut vault) = prepare_changing(cli, opts.max_wait).await?;
    let message = pipeline::adopt(
        &config,
        &mut vault,
        &rt,
        &opts,
        &args.id,
        &input,
        args.kid.clone(),
        args.role.clone(),
        args.replace,
    )
    .await?;
    print_stdout(&format!("{message}\n"));
    Ok(EXIT_OK)
}
