//! Gates inside the engine: the approval a stage waits for, with its checklist and
//! evidence; a rejection is final for its attempt.

use serde_json::{Value, json};
use tracing::info;

use super::{Driver, Flow};
use crate::clock::show;
use crate::config::{ActionSpec, GateSpec, Template};
use crate::gate::{GateRequest, GateStatus};
use crate::pipeline::EngineError;
use crate::pipeline::outcome::Outcome;
use crate::pipeline::rotation::{At, Failure, GateRecord};
use crate::step::View;

impl Driver<'_, '_> {
    pub(super) fn gate_spec(&self) -> GateSpec {
        if self.rot_ref().emergency() { self.cred.emergency_gate() } else { self.cred.gate() }
    }

    /// Holds the rotation until the named gate opens.
    pub(super) async fn gate(
        &mut self,
        name: &str,
        manual: &[Template],
    ) -> Result<Flow, EngineError> {
        let step = format!("gate/{name}");
        if self.rot_ref().journal.is_done(&step) {
            return Ok(Flow::Continue);
        }
        // A rejection is final for its attempt: the pull request behind it may be
        // reopened and merged on GitHub, but only `gate reopen` or `rollback` decides.
        if let Some(g) = self.rot_ref().gates.get(name)
            && g.status == "rejected"
        {
            let (rotation, detail) = (self.rot_ref().id.clone(), g.detail.clone());
            info!("{}: gate {name} stays rejected: {detail}", self.id);
            return Ok(Flow::Stop(Outcome::GateRejected {
                rotation,
                gate: name.to_string(),
                detail,
            }));
        }
        let (new, old) = self.materials();
        let checklist: Result<Vec<String>, _> = {
            let view = View::new(new.as_ref(), old.as_ref(), &self.env);
            manual.iter().map(|t| t.render(&view).map(|s| s.expose().to_string())).collect()
        };
        let checklist = match checklist {
            Ok(c) => c,
            Err(e) => {
                let message = self.record_failure(&step, &e.to_string()).await?;
                return Ok(Flow::Stop(self.outcome_failed(&step, &message)));
            }
        };
        let spec = self.gate_spec();
        let gate = match self.rt.gates.gate(&spec) {
            Ok(g) => g,
            Err(e) => {
                let message = self.record_failure(&step, &e.to_string()).await?;
                return Ok(Flow::Stop(self.outcome_failed(&step, &message)));
            }
        };
        let evidence = self.evidence();
        let (rotation_id, mut record, since) = {
            let r = self.rot_ref();
            let g = r.gates.get(name);
            (
                r.id.clone(),
                g.map(|g| g.data.clone()).unwrap_or(Value::Null),
                g.filter(|g| g.status == "waiting").map(|g| g.since),
            )
        };
        let request = GateRequest {
            credential: &self.id,
            owner: self.cred.owner.as_deref(),
            rotation: &rotation_id,
            gate: name,
            old: old.as_ref(),
            new: new.as_ref(),
            checklist: &checklist,
            evidence: &evidence,
        };
        let status = gate.check(&request, &mut record).await;
        let now = self.now();
        let (status_name, detail, link) = match &status {
            Ok(GateStatus::Open(d)) => ("open", d.clone(), None),
            Ok(GateStatus::Waiting { detail, link }) => ("waiting", detail.clone(), link.clone()),
            Ok(GateStatus::Rejected(d)) => ("rejected", d.clone(), None),
            Err(e) => ("waiting", e.to_string(), None),
        };
        let previous_link = self.rot_ref().gates.get(name).and_then(|g| g.link.clone());
        self.rot().gates.insert(
            name.to_string(),
            GateRecord {
                status: status_name.into(),
                detail: crate::secret::redact(&detail),
                link: link.clone().or(previous_link),
                since: since.unwrap_or(At(now)),
                data: record,
            },
        );
        match status {
            Ok(GateStatus::Open(detail)) => {
                self.rot().journal.begin(&step, false, None, now);
                self.rot().journal.finish(&step, json!({ "detail": detail }), now);
                if spec == GateSpec::None && !checklist.is_empty() {
                    for line in &checklist {
                        self.notes.push(format!("do by hand now: {line}"));
                    }
                }
                self.audit("gate-open", format!("{name}: {detail}"));
                self.save().await?;
                info!("{}: gate {name} open: {detail}", self.id);
                Ok(Flow::Continue)
            }
            Ok(GateStatus::Waiting { detail, link }) => {
                self.save().await?;
                info!("{}: waiting on gate {name}: {detail}", self.id);
                Ok(Flow::Stop(Outcome::AwaitingGate {
                    rotation: rotation_id,
                    gate: name.to_string(),
                    detail,
                    link,
                }))
            }
            Ok(GateStatus::Rejected(detail)) => {
                self.rot().error = Some(Failure::new(&step, &detail, now));
                self.audit("gate-rejected", format!("{name}: {detail}"));
                self.save().await?;
                Ok(Flow::Stop(Outcome::GateRejected {
                    rotation: rotation_id,
                    gate: name.to_string(),
                    detail,
                }))
            }
            Err(e) => {
                let message = self.record_failure(&step, &e.to_string()).await?;
                Ok(Flow::Stop(self.outcome_failed(&step, &message)))
            }
        }
    }

    /// Stage times and probe results, for a gate's reviewers.
    pub(super) fn evidence(&self) -> Vec<String> {
        let r = self.rot_ref();
        let mut lines: Vec<String> =
            r.times.iter().map(|(stage, at)| format!("{stage}: {}", show(at.0))).collect();
        for (step, output) in
            r.journal.outputs("verify/").into_iter().chain(r.journal.outputs("origin"))
        {
            if let Some(e) = output.get("evidence").and_then(Value::as_str) {
                lines.push(format!("{step}: {e}"));
            }
        }
        lines
    }

    pub(super) fn manual(list: &[ActionSpec]) -> Vec<Template> {
        list.iter()
            .filter_map(|a| match a {
                ActionSpec::Manual(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }
}
