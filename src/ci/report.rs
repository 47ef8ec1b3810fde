//! What a run tells the job: the Markdown step summary, the step outputs, the matrix
//! `plan --matrix` prints.

use std::collections::BTreeMap;

use serde_json::json;

use crate::clock::show;
use crate::inventory::{AuditLine, Finding, Severity, StatusRow};
use crate::pipeline::{Outcome, PlanItem, RunReport, Stage};

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() { "–".into() } else { one_line.replace('|', "\\|") }
}

/// A table's head: its columns and the line under them.
fn head(columns: &[&str]) -> String {
    format!("| {} |\n|{}\n", columns.join(" | "), "---|".repeat(columns.len()))
}

/// A table row, each text made a cell.
fn row(texts: &[&str]) -> String {
    let cells: Vec<String> = texts.iter().map(|t| cell(t)).collect();
    format!("| {} |\n", cells.join(" | "))
}

/// What the summary says of a credential beyond its outcome, read from config and
/// state after the run.
#[derive(Debug, Default)]
pub struct SummaryContext {
    /// The stage of its rotation in flight.
    pub stage: Option<Stage>,
    /// When its next rotation is due.
    pub next_due: Option<time::OffsetDateTime>,
    /// Manual steps a person must do before its gate opens.
    pub manual: Vec<String>,
}

/// The step summary of a run: per credential, its owner, the outcome, the stage it is
/// at, the next step, what it waits on until when, manual steps pending, the pull
/// request to approve and when the next rotation is due; then the version and where
/// the run's encrypted state is.
pub fn run_summary(
    command: &str,
    report: &RunReport,
    context: &BTreeMap<String, SummaryContext>,
    run_url: Option<&str>,
) -> String {
    let mut md = format!("### rotagate {} {command}\n\n", env!("CARGO_PKG_VERSION"));
    md.push_str(&head(&[
        "credential",
        "owner",
        "outcome",
        "stage",
        "next step",
        "waiting on",
        "until",
        "manual steps pending",
        "pull request",
        "next due",
    ]));
    let empty = SummaryContext::default();
    for c in &report.credentials {
        let cx = context.get(&c.id).unwrap_or(&empty);
        let stage = cx.stage.map(|s| s.name().to_string()).unwrap_or_default();
        let none = String::new;
        let (outcome, stage, next, waiting, until, link) = match &c.outcome {
            Outcome::Idle { next_due } => (
                "idle".to_string(),
                none(),
                next_due
                    .map_or("no schedule".into(), |at| format!("next rotation due {}", show(at))),
                none(),
                none(),
                none(),
            ),
            Outcome::NoKey => (
                "no key".into(),
                none(),
                "adopt the live material (`rotagate adopt`) or bootstrap".into(),
                none(),
                none(),
                none(),
            ),
            Outcome::Busy { detail } => {
                ("busy".into(), stage, detail.clone(), "another run".into(), none(), none())
            }
            Outcome::Completed { kid, .. } => (
                "✅ completed".into(),
                "completed".into(),
                format!("kid {kid} is current"),
                none(),
                none(),
                none(),
            ),
            Outcome::RolledBack { failed, reason, .. } => (
                if *failed { "❌ rolled back after a failure" } else { "↩️ rolled back" }.into(),
                "rolled-back".into(),
                reason.clone(),
                none(),
                none(),
                none(),
            ),
            Outcome::Waiting { stage, until, what, .. } => (
                "⏳ waiting".into(),
                stage.name().into(),
                "a later run continues".into(),
                what.clone(),
                show(*until),
                none(),
            ),
            Outcome::AwaitingGate { gate, detail, link, .. } => (
                "🔒 awaiting approval".into(),
                stage,
                "approve and merge the pull request".into(),
                format!("gate {gate}: {detail}"),
                none(),
                link.clone().unwrap_or_default(),
            ),
            Outcome::GateRejected { gate, detail, .. } => (
                "❌ gate rejected".into(),
                stage,
                format!("`rotagate gate reopen {0}` or `rotagate rollback {0}`", c.id),
                format!("gate {gate}: {detail}"),
                none(),
                none(),
            ),
            Outcome::Failed { step, message, .. } => (
                "❌ failed".into(),
                stage,
                format!("fix the cause; the next run retries {step}"),
                message.clone(),
                none(),
                none(),
            ),
        };
        md.push_str(&row(&[
            &c.id,
            c.owner.as_deref().unwrap_or(""),
            &outcome,
            &stage,
            &next,
            &waiting,
            &until,
            &cx.manual.join("; "),
            &link,
            &cx.next_due.map(show).unwrap_or_default(),
        ]));
    }
    md.push('\n');
    md.push_str(&state_note(run_url));
    md
}

/// Where the run's encrypted state is kept as evidence.
fn state_note(run_url: Option<&str>) -> String {
    match run_url {
        Some(url) => format!(
            "The encrypted state after this run is an artifact of [this run]({url}) (`rotagate-state-…`).\n"
        ),
        None => String::new(),
    }
}

fn ids(report: &RunReport, pick: impl Fn(&Outcome) -> bool) -> String {
    report
        .credentials
        .iter()
        .filter(|c| pick(&c.outcome))
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// `rotated`, `awaiting-approval`, `failed` (comma-separated credential ids) and
/// `summary`.
pub fn run_outputs(report: &RunReport, summary: &str) -> Vec<(&'static str, String)> {
    vec![
        ("rotated", ids(report, |o| matches!(o, Outcome::Completed { .. }))),
        ("awaiting-approval", ids(report, |o| matches!(o, Outcome::AwaitingGate { .. }))),
        ("failed", ids(report, Outcome::failed)),
        ("summary", summary.to_string()),
    ]
}

/// The step summary of `check`.
pub fn check_summary(findings: &[Finding]) -> String {
    let mut md = format!("### rotagate {} check\n\n", env!("CARGO_PKG_VERSION"));
    if findings.is_empty() {
        md.push_str("All credentials are owned, scheduled and in date.\n\n");
        return md;
    }
    md.push_str(&head(&["credential", "severity", "finding", "owner", "detail"]));
    for f in findings {
        let severity = match f.severity {
            Severity::Error => "❌ error",
            Severity::Warning => "⚠️ warning",
        };
        md.push_str(&row(&[
            &f.credential,
            severity,
            &f.code,
            f.owner.as_deref().unwrap_or(""),
            &f.message,
        ]));
    }
    md.push('\n');
    md
}

/// The step summary of `status`: per credential its owner, current kid, stage, gates
/// not yet open (with what they carry) and when it is next due.
pub fn status_summary(rows: &[StatusRow]) -> String {
    let mut md = format!("### rotagate {} status\n\n", env!("CARGO_PKG_VERSION"));
    md.push_str(&head(&["credential", "owner", "kid", "stage", "gates", "next due", "error"]));
    for r in rows {
        md.push_str(&row(&[
            &r.credential,
            r.owner.as_deref().unwrap_or(""),
            r.kid.as_deref().unwrap_or(""),
            &r.stage.map(|s| s.name().to_string()).unwrap_or_default(),
            &r.gates.join("; "),
            &r.next_due.map(show).unwrap_or_default(),
            r.error.as_deref().unwrap_or(""),
        ]));
    }
    md.push('\n');
    md
}

/// How many of the newest audit events the `audit` summary shows.
const AUDIT_SUMMARY_EVENTS: usize = 100;

/// The step summary of `audit`: the newest events, newest last.
pub fn audit_summary(lines: &[AuditLine]) -> String {
    let shown = &lines[lines.len().saturating_sub(AUDIT_SUMMARY_EVENTS)..];
    let mut md = format!(
        "### rotagate {} audit\n\n{} events{}\n\n",
        env!("CARGO_PKG_VERSION"),
        lines.len(),
        if shown.len() < lines.len() {
            format!(", the newest {} below (`rotagate audit --json` has all)", shown.len())
        } else {
            String::new()
        }
    );
    md.push_str(&head(&["time", "credential", "rotation", "event", "detail"]));
    for l in shown {
        md.push_str(&row(&[
            &show(l.at),
            &l.credential,
            l.rotation.as_deref().unwrap_or(""),
            &l.event,
            &l.detail,
        ]));
    }
    md.push('\n');
    md
}

/// The step summary of `plan`: what the next run would do, per credential.
pub fn plan_summary(items: &[PlanItem]) -> String {
    let mut md = format!("### rotagate {} plan\n\n", env!("CARGO_PKG_VERSION"));
    md.push_str(&head(&["credential", "owner", "next", "detail"]));
    for i in items {
        md.push_str(&row(&[&i.credential, i.owner.as_deref().unwrap_or(""), &i.action, &i.detail]));
    }
    md.push('\n');
    md
}

/// A job matrix with one entry per credential the next run has work for.
pub fn plan_matrix(items: &[PlanItem]) -> String {
    let include: Vec<_> = items
        .iter()
        .filter(|i| !matches!(i.action.as_str(), "nothing" | "no-key"))
        .map(|i| json!({ "credential": i.credential }))
        .collect();
    json!({ "include": include }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::CredentialReport;

    fn report(outcomes: Vec<(&str, Outcome)>) -> RunReport {
        RunReport {
            credentials: outcomes
                .into_iter()
                .map(|(id, outcome)| CredentialReport {
                    id: id.into(),
                    owner: None,
                    outcome,
                    notes: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn outputs_name_the_credentials_by_outcome() {
        let r = report(vec![
            ("a", Outcome::Completed { rotation: "r1".into(), kid: "k".into() }),
            (
                "b",
                Outcome::AwaitingGate {
                    rotation: "r2".into(),
                    gate: "retire".into(),
                    detail: "d".into(),
                    link: None,
                },
            ),
            (
                "c",
                Outcome::Failed {
                    rotation: "r3".into(),
                    step: "promote/0".into(),
                    message: "m".into(),
                },
            ),
            ("d", Outcome::Completed { rotation: "r4".into(), kid: "k2".into() }),
        ]);
        let out: BTreeMap<_, _> = run_outputs(&r, "S").into_iter().collect();
        assert_eq!(out["rotated"], "a,d");
        assert_eq!(out["awaiting-approval"], "b");
        assert_eq!(out["failed"], "c");
        assert_eq!(out["summary"], "S");
    }

    #[test]
    fn cells_stay_on_one_line() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell(""), "–");
    }

    #[test]
    fn the_matrix_lists_credentials_with_work() {
        let item = |id: &str, action: &str| PlanItem {
            credential: id.into(),
            owner: None,
            action: action.into(),
            detail: String::new(),
            rotation: None,
            stage: None,
            config_changed: false,
            steps: Vec::new(),
        };
        let m = plan_matrix(&[item("a", "start"), item("b", "nothing"), item("c", "gate")]);
        assert_eq!(m, r#"{"include":[{"credential":"a"},{"credential":"c"}]}"#);
        assert_eq!(plan_matrix(&[]), r#"{"include":[]}"#);
    }
}
