//! `rotagate status`: the inventory, one line per credential.

use std::time::Duration;

use crate::app::{AppError, EXIT_OK, prepare, print_report};
use crate::ci;
use crate::cli::{Cli, JsonArgs};
use crate::inventory;

pub async fn run(cli: &Cli, args: &JsonArgs) -> Result<u8, AppError> {
    let (config, _, vault) = prepare(cli, None, Duration::ZERO).await?;
    let rows = inventory::status(&config, &vault.doc, time::OffsetDateTime::now_utc());
    print_report(args.json, &rows, |rows| inventory::render_status(rows));
    if let Some(wf) = ci::Workflow::detect()? {
        wf.append_summary(&ci::status_summary(&rows))?;
    }
    Ok(EXIT_OK)
}
