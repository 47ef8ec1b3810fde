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
    let (config, rt, vault) = prepare(cli, None, Duration::ZERO).await?;
    let now = time::OffsetDateTime::now_utc();
    let mut items = pipeline::plan(&config, &vault.doc, now, args.bootstrap);
    for item in items.iter_mut().filter(|i| matches!(i.action.as_str(), "bootstrap" | "start")) {
        if let Some(c) = config.credential(&item.credential) {
            item.steps = steps(&c.resolved(&config.config.defaults), &rt.providers);
        }
    }
    for f in inventory::check(&config, &vault.doc, now).iter().filter(|f| f.code == "stale-expiry")
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
            for step in &i.steps {
                out.push_str(&format!("  {step}\n"));
            }
        }
        print_stdout(&out);
    }
    Ok(EXIT_OK)
}

/// A rotation's steps in order, each as its kind describes itself (a kind whose client
/// is not configured here is named with what it needs).
fn steps(c: &crate::config::Credential, providers: &crate::step::Providers) -> Vec<String> {
    let mut out = Vec::new();
    for (stage, list) in [("publish", &c.publish), ("promote", &c.promote), ("retire", &c.retire)] {
        for (i, spec) in list.iter().enumerate() {
            let what = match crate::actions::build(spec, providers) {
                Ok(Some(action)) => action.describe(),
                Ok(None) => match spec {
                    crate::config::ActionSpec::Manual(t) => format!("manual: {}", t.raw()),
                    other => other.kind().to_string(),
                },
                Err(e) => format!("{} ({e})", spec.kind()),
            };
            out.push(format!("{stage}/{i}: {what}"));
        }
    }
    out
}
