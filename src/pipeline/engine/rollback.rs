//! Rollback, in order: old values back, hooks, verify the old material, drain, remove
//! the new public half.

use tracing::info;

use super::{Driver, Flow, OpKind, Planned, ProbesStopped};
use crate::config::Strategy;
use crate::material::Material;
use crate::pipeline::EngineError;
use crate::pipeline::outcome::Outcome;
use crate::pipeline::rotation::{At, RollbackStage};

impl Driver<'_, '_> {
    pub(super) async fn rollback_step(&mut self) -> Result<Flow, EngineError> {
        let rb = self.rot_ref().rollback.clone().expect("rolling back");
        let (new, old) = self.materials();
        let next = match rb.stage {
            RollbackStage::Requested => {
                if rb.undo_promote {
                    if let Err(m) = self.restore_values("rollback").await? {
                        return Ok(Flow::Stop(self.outcome_failed("rollback/restore", &m)));
                    }
                    RollbackStage::Restored
                } else {
                    RollbackStage::Drained
                }
            }
            RollbackStage::Restored => {
                if old.is_some() {
                    // Verify the old material as if it were the new one.
                    match self.run_probes("rollback/verify", old.as_ref(), new.as_ref()).await? {
                        None => {}
                        Some(ProbesStopped::Flow(flow)) => return Ok(flow),
                        Some(ProbesStopped::Exhausted { step, reason }) => {
                            // The next attempt re-runs the hooks (a redeploy, say) before
                            // verifying again: probing the same failed run would never pass.
                            let rot = self.rot();
                            rot.journal.undo("rollback/verify/");
                            rot.journal.undo("rollback/hook/");
                            if let Some(rb) = rot.rollback.as_mut() {
                                rb.stage = RollbackStage::Requested;
                            }
                            let message = self
                                .record_failure(
                                    &step,
                                    &format!(
                                        "the old material does not verify after rollback: {reason}"
                                    ),
                                )
                                .await?;
                            return Ok(Flow::Stop(self.outcome_failed(&step, &message)));
                        }
                    }
                }
                RollbackStage::VerifiedOld
            }
            RollbackStage::VerifiedOld => {
                let skip = self.rot_ref().emergency()
                    || self.cred.strategy == Strategy::Immediate
                    || old.is_none();
                if !skip {
                    let since = rb
                        .times
                        .get(&RollbackStage::VerifiedOld)
                        .map_or_else(|| self.now(), |a| a.0);
                    let until = since + self.cred.drain().signed();
                    if let Flow::Stop(o) = self
                        .wait_until(
                            until,
                            "rollback drain (tokens signed with the new material expire)",
                        )
                        .await
                    {
                        return Ok(Flow::Stop(o));
                    }
                }
                RollbackStage::Drained
            }
            RollbackStage::Drained => {
                if let Some(new) = &new {
                    let publishers = match self.steps(&self.cred.publish) {
                        Ok(s) => s,
                        Err(m) => return self.cannot_start("rollback/unpublish", m).await,
                    };
                    let planned = publishers
                        .iter()
                        .filter(|(i, _)| self.rot_ref().journal.touched(&format!("publish/{i}")))
                        .map(|(i, a)| {
                            Planned::new(
                                format!("rollback/unpublish/{i}"),
                                a.as_ref(),
                                OpKind::Unpublish,
                            )
                        })
                        .collect();
                    if let Err((step, m)) = self.run_steps(planned, Some(new), None).await? {
                        return Ok(Flow::Stop(self.outcome_failed(&step, &m)));
                    }
                }
                RollbackStage::Unpublished
            }
            RollbackStage::Unpublished => return self.finish_rollback().await,
        };
        let now = self.now();
        if let Some(rb) = self.rot().rollback.as_mut() {
            rb.stage = next;
            rb.times.insert(next, At(now));
        }
        self.audit("rollback", format!("rollback: {}", next.name()));
        self.save().await?;
        info!("{}: rollback: {}", self.id, next.name());
        Ok(Flow::Continue)
    }

    pub(super) async fn finish_rollback(&mut self) -> Result<Flow, EngineError> {
        let (now, entry, rotation) = self.end_rotation();
        let reason = rotation.rollback.as_ref().map(|r| r.reason.clone()).unwrap_or_default();
        let dropped =
            rotation.new.as_ref().map(Material::summary).unwrap_or_else(|| "no material".into());
        entry.last = Some(crate::state::Finished {
            rotation: rotation.id.clone(),
            outcome: "rolled-back".into(),
            at: now,
        });
        entry.audit(
            now,
            Some(&rotation.id),
            "rolled-back",
            format!("{reason}; new material dropped ({dropped})"),
        );
        self.save().await?;
        info!("{}: rolled back; the new material was dropped ({dropped})", self.id);
        Ok(Flow::Stop(Outcome::RolledBack {
            rotation: rotation.id,
            // A failure met in an earlier run was reported by that run: the run that
            // finishes the rollback cleanly succeeds.
            failed: self.failed_here,
            reason,
        }))
    }
}
