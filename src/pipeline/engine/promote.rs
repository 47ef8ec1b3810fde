//! Promote, and putting values back when it fails part-way (compensation) or a
//! rollback asks for the old values.

use tracing::{info, warn};

use super::{Driver, Flow, OpKind, Planned};
use crate::config::Strategy;
use crate::pipeline::EngineError;
use crate::pipeline::rotation::{Failure, Stage};

impl Driver<'_, '_> {
    pub(super) fn bootstrap(&self) -> bool {
        self.entry_ref().current.is_none()
    }

    pub(super) async fn promote(&mut self) -> Result<Flow, EngineError> {
        let manual = Self::manual(&self.cred.promote);
        // `immediate` has no overlap: its approval is a maintenance window before promote.
        let window = self.cred.strategy == Strategy::Immediate && !self.bootstrap();
        if (window || !manual.is_empty())
            && let Flow::Stop(o) = self.gate("promote", &manual).await?
        {
            return Ok(Flow::Stop(o));
        }
        let (new, old) = self.materials();
        let steps = match self.steps(&self.cred.promote) {
            Ok(s) => s,
            Err(m) => return self.cannot_start("promote", m).await,
        };
        let planned = steps
            .iter()
            .map(|(i, a)| {
                let op = if a.writes_values() { OpKind::Write } else { OpKind::Run };
                Planned::new(format!("promote/{i}"), a.as_ref(), op)
            })
            .collect();
        if let Err((step, message)) = self.run_steps(planned, new.as_ref(), old.as_ref()).await? {
            let now = self.now();
            self.rot().compensating = Some(Failure::new(&step, &message, now));
            self.promote_failed_here = true;
            self.save().await?;
            return Ok(Flow::Continue);
        }
        self.reach(Stage::Promoted, "consumers use the new material").await?;
        Ok(Flow::Continue)
    }

    /// Puts back what a partly failed promote wrote, re-runs the hooks, and stops.
    pub(super) async fn compensate(&mut self, failure: Failure) -> Result<Flow, EngineError> {
        warn!(
            "{}: {} failed; putting back what promote wrote: {}",
            self.id, failure.step, failure.message
        );
        let left = match self.restore_values("compensate").await? {
            Ok(left) => left,
            Err(message) => {
                let message = format!(
                    "{} failed ({}) and putting the old values back failed too ({message}); consumers may hold a mix of old and new values: the next run tries again",
                    failure.step, failure.message
                );
                return Ok(Flow::Stop(self.outcome_failed(&failure.step, &message)));
            }
        };
        let r = self.rot();
        r.journal.undo("promote/");
        r.journal.undo("compensate/");
        r.compensating = None;
        r.error = Some(failure.clone());
        self.audit("promote-compensated", format!("{}: old values put back", failure.step));
        if !left.is_empty() {
            // A first issuance: nothing was there before some writes, so they stay.
            let message = format!(
                "{} failed ({}). This is the first issuance, so there is nothing to go back to for {}: {} the new values. Fix the cause, then the next run promotes again, or run `rotagate rollback {}` to abandon this first issuance",
                failure.step,
                failure.message,
                left.join(", "),
                if left.len() == 1 { "it keeps" } else { "they keep" },
                self.id
            );
            self.rot().error = Some(Failure::new(&failure.step, &message, failure.at.0));
            self.save().await?;
            return Ok(Flow::Stop(self.outcome_failed(&failure.step, &message)));
        }
        self.save().await?;
        if !self.promote_failed_here {
            // That failure was reported by the run that met it: try promote again.
            info!("{}: the old values are back; promoting again", self.id);
            return Ok(Flow::Continue);
        }
        Ok(Flow::Stop(self.outcome_failed(
            &failure.step,
            &format!("{} (the values promote had written were put back and the hooks re-run; the next run tries promote again)", failure.message),
        )))
    }

    /// Writes the old values back to every promote target, then re-runs the hooks.
    /// Used by compensation and rollback; each write is its own journaled step.
    ///
    /// A first issuance has no old material: a write is undone from what was captured
    /// before it, one with nothing captured is left as it is (returned, described), and
    /// hooks that render material are skipped (there is none to go back to).
    pub(super) async fn restore_values(
        &mut self,
        prefix: &str,
    ) -> Result<Result<Vec<String>, String>, EngineError> {
        let (new, old) = self.materials();
        let steps = match self.steps(&self.cred.promote) {
            Ok(s) => s,
            Err(m) => return Ok(Err(m)),
        };
        let mut left = Vec::new();
        let mut writes = Vec::new();
        for (i, action) in steps.iter().filter(|(_, a)| a.writes_values()) {
            let promote_step = format!("promote/{i}");
            if !self.rot_ref().journal.touched(&promote_step) {
                continue;
            }
            let op = match (&old, self.rot_ref().journal.before(&promote_step)) {
                (Some(_), _) => OpKind::Write,
                (None, Some(before)) => OpKind::Restore(before.clone()),
                (None, None) => {
                    left.push(action.describe());
                    continue;
                }
            };
            writes.push(Planned::new(format!("{prefix}/restore/{i}"), action.as_ref(), op));
        }
        if writes.is_empty() {
            return Ok(Ok(left));
        }
        let mut hooks = Vec::new();
        for (i, action) in steps.iter().filter(|(_, a)| !a.writes_values()) {
            let step = format!("{prefix}/hook/{i}");
            if old.is_none() && crate::config::template::reads_material(&self.cred.promote[*i]) {
                info!(
                    "{}: {step}: {} skipped: it renders key material, and a first issuance has none to go back to",
                    self.id,
                    action.describe()
                );
                continue;
            }
            hooks.push(Planned::new(step, action.as_ref(), OpKind::Run));
        }
        // The old material is what consumers should see again.
        writes.extend(hooks);
        if let Err((_, e)) = self.run_steps(writes, old.as_ref(), new.as_ref()).await? {
            return Ok(Err(e));
        }
        Ok(Ok(left))
    }
}
