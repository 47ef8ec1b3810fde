//! `rotagate plan`: what the next run would do, per credential; changes nothing.

use std::time::Duration;

use clap::Args;

use crate::app::{AppError, EXIT_OK, prepare, print_json, print_stderr, print_stdout};
use crate::cli::{Cli, JsonArgs};
use crate::{ci, inventory, pipeline};

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

pub async fn run(cli: &Cli, args: &PlanArgs) -> Result<u8, AppError> {
    let (config, _, vault) = prepare(cli, None, Duration::ZERO).await?;
    let now = time::OffsetDateTime::now_utc();
    let items = pipeline::plan(&config, &vault.doc, now, args.bootstrap);
    for f in inventory::check(&config, &vault.doc, now)
        .iter()
        .filter(|f| f.code == "stale-expiry")
    {
        print_stderr(&format!("warning: {}: {}\n", f.credential, f.message));
    }
    if let Some(wf) = ci::Workflow::detect()? {
        wf.append_summary(&ci::plan_summary(&items))?;
    }
    if args.matrix {
        let matrix = ci::plan_matrix(&items);
        print_stdout(&format!("{matrix}\n"));
        if let Some(wf) = ci::Workflow::detect()? {
            wf.set_outputs(&[("matrix", matrix)])?;
        }
    } else if args.output.json {
        print_json(&items);
    } else {
        let mut out = String::new();
        for i in &items {
            out.push_str(&format!("{}: {}: {}\n", i.credential, i.action, i.detail));
        }
        print_stdout(&out);
    }
    Ok(EXIT_OK)
}
