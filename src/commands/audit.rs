//! `rotagate audit [ID]`: the append-only event log from the state.

use std::time::Duration;

use clap::Args;

use crate::app::{AppError, EXIT_OK, prepare, print_json, print_stdout};
use crate::ci;
use crate::cli::{Cli, JsonArgs};
use crate::clock::show;
use crate::inventory;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this credential.
    pub id: Option<String>,
    #[command(flatten)]
    pub output: JsonArgs,
}

pub async fn run(cli: &Cli, args: &AuditArgs) -> Result<u8, AppError> {
    let (_, _, vault) = prepare(cli, None, Duration::ZERO).await?;
    let archived = vault.archived_audit().await?;
    let lines = inventory::audit(&vault.doc, &archived, args.id.as_deref());
    if args.output.json {
        print_json(&lines);
    } else {
        let mut out = String::new();
        for l in &lines {
            out.push_str(&format!(
                "{}  {}  {}  {}: {}\n",
                show(l.at),
                l.credential,
                l.rotation.as_deref().unwrap_or("-"),
                l.event,
                l.detail
            ));
        }
        print_stdout(&out);
    }
    if let Some(wf) = ci::Workflow::detect()? {
        wf.append_summary(&ci::audit_summary(&lines))?;
    }
    Ok(EXIT_OK)
}
