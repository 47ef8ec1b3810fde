//! `status`, `check` and `audit`: the inventory view of config and state.

use serde::Serialize;
use time::OffsetDateTime;

use crate::clock::show;
use crate::config::LoadedConfig;
use crate::pipeline::Stage;
use crate::pipeline::schedule::schedule;
use crate::state::StateDoc;
use crate::state::archive::ArchivedEvent;

#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub credential: String,
    pub owner: Option<String>,
    pub key: String,
    pub kid: Option<String>,
    pub fingerprint: Option<String>,
    /// Days since the current material was issued.
    pub age_days: Option<i64>,
    pub rotation: Option<String>,
    pub stage: Option<Stage>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_due: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    pub last: Option<String>,
    /// The rotation's last failure, `step: message`, until it moves on.
    pub error: Option<String>,
    /// Gates not yet open: `name: waiting|rejected: detail (link)`.
    pub gates: Vec<String>,
    /// A rollback in progress: the stage it has reached and why it started.
    pub rollback: Option<String>,
    pub description: Option<String>,
    pub blast_radius: Option<String>,
}

pub fn status(config: &LoadedConfig, doc: &StateDoc, now: OffsetDateTime) -> Vec<StatusRow> {
    config
        .resolved()
        .into_iter()
        .map(|c| {
            let entry = doc.credentials.get(&c.id);
            let current = entry.and_then(|e| e.current.as_ref());
            let s = schedule(&c, current);
            let rotation = entry.and_then(|e| e.rotation.as_ref());
            StatusRow {
                key: c.key.kind().to_string(),
                kid: current.map(|m| m.kid.clone()),
                fingerprint: current.map(|m| m.fingerprint.clone()),
                age_days: current.map(|m| (now - m.created_at).whole_days()),
                rotation: rotation.map(|r| r.id.clone()),
                stage: rotation.map(|r| r.stage),
                next_due: s.due_at,
                expires: s.expires_at,
                last: entry
                    .and_then(|e| e.last.as_ref())
                    .map(|l| format!("{} {} ({})", l.outcome, show(l.at), l.rotation)),
                error: rotation
                    .and_then(|r| r.error.as_ref().or(r.compensating.as_ref()))
                    .map(|f| format!("{}: {}", f.step, f.message)),
                gates: rotation
                    .into_iter()
                    .flat_map(|r| r.gates.iter())
                    .filter(|(_, g)| g.status != "open")
                    .map(|(name, g)| {
                        let link = g.link.as_deref().map(|l| format!(" ({l})")).unwrap_or_default();
                        format!("{name}: {}: {}{link}", g.status, g.detail)
                    })
                    .collect(),
                rollback: rotation
                    .and_then(|r| r.rollback.as_ref())
                    .map(|rb| format!("{} ({})", rb.stage.name(), rb.reason)),
                owner: c.owner.clone(),
                description: c.description.clone(),
                blast_radius: c.blast_radius.clone(),
                credential: c.id,
            }
        })
        .collect()
}

pub fn render_status(rows: &[StatusRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let kid = r.kid.as_deref().unwrap_or("(no material)");
        out.push_str(&format!(
            "{}  [{}]  owner {}\n",
            r.credential,
            r.key,
            r.owner.as_deref().unwrap_or("NONE")
        ));
        out.push_str(&format!("  current   {kid}"));
        if let Some(age) = r.age_days {
            out.push_str(&format!(", {age} days old"));
        }
        out.push('\n');
        if let (Some(id), Some(stage)) = (&r.rotation, r.stage) {
            out.push_str(&format!("  rotation  {id} at {stage}\n"));
        }
        if let Some(rollback) = &r.rollback {
            out.push_str(&format!("  ROLLBACK  {rollback}\n"));
        }
        for gate in &r.gates {
            out.push_str(&format!("  gate      {gate}\n"));
        }
        if let Some(error) = &r.error {
            out.push_str(&format!("  FAILING   {error}\n"));
        }
        if let Some(due) = r.next_due {
            out.push_str(&format!("  next due  {}\n", show(due)));
        }
        if let Some(exp) = r.expires {
            out.push_str(&format!("  expires   {}\n", show(exp)));
        }
        if let Some(last) = &r.last {
            out.push_str(&format!("  last      {last}\n"));
        }
        if let Some(b) = &r.blast_radius {
            out.push_str(&format!("  blast     {b}\n"));
        }
    }
    out
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn name(&self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// How long a gate may wait before `check` fails (`gate.timeout`).
pub const DEFAULT_GATE_TIMEOUT: crate::config::Dur =
    crate::config::Dur(std::time::Duration::from_secs(14 * 86_400));

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub credential: String,
    pub owner: Option<String>,
    pub severity: Severity,
    /// `expired`, `due`, `expiring`, `ownerless`, `no-schedule`, `no-key`, `failing`,
    /// `gate-rejected`, `gate-timeout`.
    pub code: String,
    pub message: String,
}

/// Policy: expiry, due dates, owners, schedules and stuck rotations.
pub fn check(config: &LoadedConfig, doc: &StateDoc, now: OffsetDateTime) -> Vec<Finding> {
    let mut findings = Vec::new();
    for c in config.resolved() {
        let entry = doc.credentials.get(&c.id);
        let current = entry.and_then(|e| e.current.as_ref());
        let rotation = entry.and_then(|e| e.rotation.as_ref());
        let mut add = |severity: Severity, code: &str, message: String| {
            findings.push(Finding {
                credential: c.id.clone(),
                owner: c.owner.clone(),
                severity,
                code: code.into(),
                message,
            })
        };
        if c.owner.is_none() {
            add(
                Severity::Error,
                "ownerless",
                "no owner: nobody is told when it needs a human; set `owner:`".into(),
            );
        }
        let has_schedule = c
            .schedule
            .as_ref()
            .is_some_and(|s| s.every.is_some() || s.expires.is_some() || s.lifetime.is_some());
        if !has_schedule {
            add(
                Severity::Error,
                "no-schedule",
                "no rotation date: set `schedule: { every: ... }` (or `expires:` for a hard deadline)".into(),
            );
        }
        let s = schedule(&c, current);
        if s.is_expired(now) {
            add(
                Severity::Error,
                "expired",
                format!(
                    "expired {}: rotate it now (`rotagate rotate {} --reason expired`)",
                    show(s.expires_at.expect("expired")),
                    c.id
                ),
            );
        } else if s.is_due(now) && rotation.is_none() {
            let hard =
                s.expires_at.map(|e| format!(" (hard expiry {})", show(e))).unwrap_or_default();
            add(
                Severity::Error,
                "due",
                format!(
                    "due since {}{hard}; the next run starts a rotation",
                    show(s.due_at.expect("due"))
                ),
            );
        } else if s.in_warning(now) && rotation.is_none() {
            add(
                Severity::Warning,
                "expiring",
                format!(
                    "due {}: inside its warning window",
                    show(s.due_at.expect("a warning has a due date"))
                ),
            );
        }
        // `schedule.expires` binds the material live when it was adopted; once rotagate
        // has issued newer material the line no longer describes anything.
        if let (Some(configured), Some(m)) = (c.expires(), current)
            && m.expires != Some(configured)
        {
            add(
                Severity::Warning,
                "stale-expiry",
                format!(
                    "schedule.expires ({configured}) was the hard expiry of the material adopted before; rotagate has since issued kid {} on {}, which it does not bind: remove `expires`, or set `schedule.lifetime` if consumers enforce one",
                    m.kid,
                    show(m.created_at)
                ),
            );
        }
        if current.is_none() && rotation.is_none() {
            add(
                Severity::Warning,
                "no-key",
                "no material recorded: adopt the live one (`rotagate adopt`) or bootstrap".into(),
            );
        }
        if let Some(r) = rotation {
            let timeout = crate::config::credential_from_snapshot(&r.snapshot)
                .ok()
                .map(|c| match c.gate() {
                    crate::config::GateSpec::PullRequest(pr) => {
                        pr.timeout.unwrap_or(DEFAULT_GATE_TIMEOUT)
                    }
                    crate::config::GateSpec::None => DEFAULT_GATE_TIMEOUT,
                })
                .unwrap_or(DEFAULT_GATE_TIMEOUT);
            for (name, g) in r.gates.iter().filter(|(_, g)| g.status == "waiting") {
                if now - g.since.0 > timeout.signed() {
                    let link = g.link.as_deref().map(|l| format!(" ({l})")).unwrap_or_default();
                    add(
                        Severity::Error,
                        "gate-timeout",
                        format!(
                            "rotation {}: gate {name} has waited since {}, longer than {timeout}{link}",
                            r.id,
                            show(g.since.0)
                        ),
                    );
                }
            }
            if let Some(g) = r.gates.iter().find(|(_, g)| g.status == "rejected") {
                add(
                    Severity::Error,
                    "gate-rejected",
                    format!("rotation {}: gate {} rejected: {}", r.id, g.0, g.1.detail),
                );
            } else if let Some(e) = &r.error {
                add(
                    Severity::Error,
                    "failing",
                    format!("rotation {} at {}: {} failed: {}", r.id, r.stage, e.step, e.message),
                );
            }
        }
    }
    findings
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditLine {
    pub credential: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub rotation: Option<String>,
    pub event: String,
    pub detail: String,
}

/// The whole log: the archived events, then each credential's live tail, by time.
pub fn audit(doc: &StateDoc, archived: &[ArchivedEvent], only: Option<&str>) -> Vec<AuditLine> {
    let live = doc.credentials.iter().flat_map(|(id, e)| e.audit.iter().map(move |a| (id, a)));
    let archived = archived.iter().map(|a| (&a.credential, &a.event));
    let mut lines: Vec<AuditLine> = archived
        .chain(live)
        .filter(|(id, _)| only.is_none_or(|o| o == id.as_str()))
        .map(|(id, a)| AuditLine {
            credential: id.clone(),
            at: a.at,
            rotation: a.rotation.clone(),
            event: a.event.clone(),
            detail: a.detail.clone(),
        })
        .collect();
    // Stable: events of one instant keep the order they were recorded in.
    lines.sort_by_key(|l| l.at);
    lines
}
