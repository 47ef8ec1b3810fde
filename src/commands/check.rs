//! `rotagate check`: expiry, due dates, owners and stuck rotations; exit 1 when
//! something needs a person. Owners are told through notification issues.

use std::time::Duration;

use crate::app::{AppError, EXIT_FAILED, EXIT_OK, notify, prepare, print_report};
use crate::ci;
use crate::cli::{Cli, JsonArgs};
use crate::inventory::{self, Finding, Severity};

/// One line per finding.
fn render(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "all credentials are owned, scheduled and in date\n".into();
    }
    let mut out = String::new();
    for f in findings {
        let owner = f.owner.as_deref().map(|o| format!(" (owner {o})")).unwrap_or_default();
        out.push_str(&format!(
            "{}: {}{owner}: {}: {}\n",
            f.severity.name(),
            f.credential,
            f.code,
            f.message
        ));
    }
    out
}

pub async fn run(cli: &Cli, args: &JsonArgs) -> Result<u8, AppError> {
    let (config, rt, vault) = prepare(cli, None, Duration::ZERO).await?;
    let findings = inventory::check(&config, &vault.doc, time::OffsetDateTime::now_utc());
    print_report(args.json, &findings, |findings| render(findings));
    notify(&config, &vault, &rt).await;
    if let Some(wf) = ci::Workflow::detect()? {
        let summary = ci::check_summary(&findings);
        wf.append_summary(&summary)?;
        let mut failed: Vec<&str> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.credential.as_str())
            .collect();
        failed.dedup();
        wf.set_outputs(&[("failed", failed.join(",")), ("summary", summary)])?;
    }
    let failing = findings.iter().any(|f| f.severity == Severity::Error);
    Ok(if failing { EXIT_FAILED } else { EXIT_OK })
}
