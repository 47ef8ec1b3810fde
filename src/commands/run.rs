//! `rotagate run`: advance every due or in-flight rotation as far as its gates allow.
//! Under Actions the triggering event may narrow the run (merged approval files) or make
//! it an incident rotation (`workflow_dispatch`); flags win.

use clap::Args;

use crate::app::{AppError, finish, options, prepare, print_stderr};
use crate::cli::{Cli, Waits};
use crate::{ci, pipeline};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only these credentials (repeat, or comma-separate).
    #[arg(long, env = "ROTAGATE_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Issue first material for credentials the state has none of.
    #[arg(long, env = "ROTAGATE_BOOTSTRAP")]
    pub bootstrap: bool,
    /// Every credential advances side by side; this many of their steps that reach beyond
    /// this machine (commands, HTTP requests, provider APIs) run at once. Provider clients
    /// keep their own pacing across all of them.
    #[arg(long, env = "ROTAGATE_CONCURRENCY", default_value_t = pipeline::DEFAULT_CONCURRENCY as u64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    #[command(flatten)]
    pub waits: Waits,
}

pub async fn run(cli: &Cli, args: &RunArgs) -> Result<u8, AppError> {
    let mut opts = options(&args.waits, args.only.clone(), args.bootstrap);
    opts.concurrency = args.concurrency as usize;
    let trigger = match ci::Workflow::detect()? {
        Some(wf) if args.only.is_empty() => wf.trigger(),
        _ => ci::Trigger::Routine,
    };
    match trigger {
        ci::Trigger::Incident { credential, reason, emergency } => {
            if reason.is_empty() {
                return Err(AppError::Usage(format!(
                    "the workflow_dispatch names credential {credential} but no reason: an incident rotation needs one (the `reason` input)"
                )));
            }
            print_stderr(&format!(
                "workflow_dispatch: rotating {credential}{}: {reason}\n",
                if emergency { " (emergency)" } else { "" }
            ));
            let json = args.waits.output.json;
            return super::rotate::rotate(cli, &opts, &credential, &reason, emergency, json).await;
        }
        ci::Trigger::Approvals(ids) => {
            print_stderr(&format!("push merged approval files: running {}\n", ids.join(", ")));
            opts.only = ids;
        }
        ci::Trigger::Routine => {}
    }
    let (config, rt, mut vault) = prepare(cli, Some(&opts.only), opts.max_wait).await?;
    opts.only.retain(|id| {
        let known = config.credential(id).is_some() || vault.knows(id);
        if !known {
            print_stderr(&format!(
                "warning: an approval file names {id}, which is neither in the config nor in the state\n"
            ));
        }
        known || args.only.contains(id)
    });
    let report = pipeline::run(&config, &mut vault, &rt, &opts).await?;
    finish(&config, &vault, &rt, "run", &report, args.waits.output.json).await
}
