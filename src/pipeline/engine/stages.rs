//! The forward stages: generate, publish, propagate, verify, drain, retire, complete.

use serde_json::json;
use tracing::{info, warn};

use super::{Driver, Flow, OpKind, Planned, ProbeFlow, ProbesStopped};
use crate::clock::show;
use crate::config::{KeySpec, Strategy};
use crate::material::{self, KidContext};
use crate::pipeline::EngineError;
use crate::pipeline::outcome::Outcome;
use crate::pipeline::rotation::{At, Failure, RollbackStage, Stage};
use crate::step::View;

impl Driver<'_, '_> {
    pub(super) async fn generate(&mut self) -> Result<Flow, EngineError> {
        if let Err(message) = self.preflight().await {
            return self.cannot_start("preflight", message).await;
        }
        let now = self.now();
        let (kid, role) = {
            let entry = self.entry_ref();
            let kid = material::next_kid(
                self.cred.key.kid(),
                &KidContext {
                    credential: &self.id,
                    today: now.date(),
                    seq: entry.rotations,
                    used: &|kid| entry.kid_used(kid),
                },
            );
            let role = self.cred.roles().map(|[a, b]| {
                match entry.current.as_ref().and_then(|c| c.role.as_deref()) {
                    Some(r) if r == a => b,
                    _ => a,
                }
            });
            (kid, role)
        };
        let spec = self.cred.key.clone();
        // A mint is the one generate that must never run twice: journaled as such.
        let minted = matches!(spec, KeySpec::Minted { .. });
        self.rot().journal.begin("generate", minted, None, now);
        self.save().await?;
        let generated = if let KeySpec::Minted { http, extract, kid_from, expires_from, .. } = &spec
        {
            let current = self.entry_ref().current.clone();
            let view = View::new(None, current.as_ref(), &self.env);
            material::mint(
                http,
                extract,
                kid_from.as_deref(),
                expires_from.as_deref(),
                kid,
                role,
                now,
                &self.rt.http,
                &view,
            )
            .await
        } else {
            tokio::task::spawn_blocking(move || material::generate(&spec, kid, role, now))
                .await
                .map_err(|e| EngineError::Internal(format!("key generation task failed: {e}")))?
        };
        let material = match generated {
            Ok(m) => m,
            // Left started, so the next run stops and asks for a reconcile instead of
            // minting again.
            Err(e @ material::MaterialError::Uncertain(_)) => {
                let message = self.record_failure_unjournaled("generate", &e.to_string()).await?;
                return Ok(Flow::Stop(self.outcome_failed("generate", &message)));
            }
            Err(e) => {
                let message = self.record_failure("generate", &e.to_string()).await?;
                return Ok(Flow::Stop(self.outcome_failed("generate", &message)));
            }
        };
        let summary = material.summary();
        let (kid, fingerprint) = (material.kid.clone(), material.fingerprint.clone());
        let now = self.now();
        self.entry().record_kid(&kid, &fingerprint);
        let r = self.rot();
        r.new = Some(material);
        r.journal.finish("generate", json!({ "kid": kid, "fingerprint": fingerprint }), now);
        info!("{}: generated {} {summary}", self.id, self.cred.key.kind());
        // The new material is saved, encrypted, before anything is sent anywhere.
        self.reach(Stage::Generated, &summary).await?;
        Ok(Flow::Continue)
    }

    pub(super) async fn publish(&mut self) -> Result<Flow, EngineError> {
        let (new, old) = self.materials();
        let publish = self.run_stage("publish", |c| &c.publish, OpKind::Publish, &new, &old);
        if let Some(stop) = publish.await? {
            return Ok(stop);
        }
        let manual = Self::manual(&self.cred.publish);
        if !manual.is_empty()
            && let Flow::Stop(o) = self.gate("publish", &manual).await?
        {
            return Ok(Flow::Stop(o));
        }
        self.reach(Stage::Published, "the new public half is trusted next to the old").await?;
        Ok(Flow::Continue)
    }

    pub(super) async fn propagate(&mut self) -> Result<Flow, EngineError> {
        let skip = self.rot_ref().emergency() || self.cred.strategy == Strategy::Immediate;
        if !skip {
            let origin = self.cred.propagate.as_ref().and_then(|p| p.origin().cloned());
            if let Some(origin) = origin
                && self.rot_ref().origin_seen_at.is_none()
            {
                let probe = match self.probe_for(&origin) {
                    Ok(p) => p,
                    Err(m) => return self.cannot_start("origin", m).await,
                };
                let (new, old) = self.materials();
                match self
                    .probe("origin", &origin, probe.as_ref(), new.as_ref(), old.as_ref())
                    .await?
                {
                    ProbeFlow::Passed => {
                        let now = self.now();
                        self.rot().origin_seen_at = Some(At(now));
                        self.audit("origin-serving", "the origin serves the new public half");
                        self.save().await?;
                    }
                    ProbeFlow::Waiting(o) => return Ok(Flow::Stop(o)),
                    ProbeFlow::Exhausted(reason) => {
                        self.rot().journal.undo("origin");
                        let message = self.record_failure("origin", &reason).await?;
                        return Ok(Flow::Stop(self.outcome_failed("origin", &message)));
                    }
                }
            }
            let wait = self.cred.propagate_wait();
            let base = {
                let r = self.rot_ref();
                r.origin_seen_at
                    .map(|a| a.0)
                    .or_else(|| r.reached(Stage::Published))
                    .unwrap_or_else(|| self.now())
            };
            if let Flow::Stop(o) =
                self.wait_until(base + wait.signed(), "propagation to verifiers' caches").await
            {
                return Ok(Flow::Stop(o));
            }
        }
        self.reach(Stage::Propagated, "verifiers hold the new public half").await?;
        Ok(Flow::Continue)
    }

    pub(super) async fn verify(&mut self) -> Result<Flow, EngineError> {
        let (new, old) = self.materials();
        match self.run_probes("verify", new.as_ref(), old.as_ref()).await? {
            None => {}
            Some(ProbesStopped::Flow(flow)) => return Ok(flow),
            Some(ProbesStopped::Exhausted { step, reason }) => {
                return self.verify_failed(&step, &reason).await;
            }
        }
        self.reach(Stage::Verified, "every probe passed").await?;
        Ok(Flow::Continue)
    }

    pub(super) async fn verify_failed(
        &mut self,
        step: &str,
        reason: &str,
    ) -> Result<Flow, EngineError> {
        self.failed_here = true;
        let now = self.now();
        let failure = Failure::new(step, reason, now);
        match self.cred.on_verify_failure() {
            crate::config::OnVerifyFailure::Rollback => {
                let r = self.rot();
                r.error = Some(failure);
                r.rollback = Some(crate::pipeline::rotation::RollbackState {
                    reason: format!("{step} failed: {reason}"),
                    stage: RollbackStage::Requested,
                    times: [(RollbackStage::Requested, At(now))].into(),
                    undo_promote: true,
                });
                self.audit("verify-failed", format!("{step}: {reason}; rolling back"));
                self.save().await?;
                warn!("{}: {step} failed: {reason}; rolling back", self.id);
                self.notes.push(format!("{step} failed: {reason}"));
                Ok(Flow::Continue)
            }
            crate::config::OnVerifyFailure::Hold => {
                let r = self.rot();
                r.journal.undo("verify/");
                r.error = Some(failure);
                self.audit(
                    "verify-failed",
                    format!("{step}: {reason}; holding (on_verify_failure: hold)"),
                );
                self.save().await?;
                Ok(Flow::Stop(self.outcome_failed(
                    step,
                    &format!("{reason} (held: the new material stays in place; the next run verifies again, or run `rotagate rollback {}`)", self.id),
                )))
            }
        }
    }

    pub(super) async fn drain(&mut self) -> Result<Flow, EngineError> {
        let skip = self.rot_ref().emergency()
            || self.cred.strategy == Strategy::Immediate
            || self.bootstrap();
        if !skip {
            let verified = self.rot_ref().reached(Stage::Verified).unwrap_or_else(|| self.now());
            let until = verified + self.cred.drain().signed();
            if let Flow::Stop(o) =
                self.wait_until(until, "drain (tokens signed with the old material expire)").await
            {
                return Ok(Flow::Stop(o));
            }
        }
        self.reach(Stage::Drained, "tokens signed with the old material have expired").await?;
        Ok(Flow::Continue)
    }

    pub(super) async fn retire(&mut self) -> Result<Flow, EngineError> {
        let (new, old) = self.materials();
        let manual = if old.is_some() { Self::manual(&self.cred.retire) } else { Vec::new() };
        let approval = old.is_some() && self.cred.strategy != Strategy::Immediate;
        if (approval || !manual.is_empty())
            && let Flow::Stop(o) = self.gate("retire", &manual).await?
        {
            return Ok(Flow::Stop(o));
        }
        let publishers = match self.steps(&self.cred.publish) {
            Ok(s) => s,
            Err(m) => return self.cannot_start("retire", m).await,
        };
        // The old public half leaves every publish target, then any abandoned pending
        // material's, then the retire steps run.
        let unpublish = |name: &dyn Fn(usize) -> String| -> Vec<Planned> {
            publishers
                .iter()
                .map(|(i, a)| Planned::new(name(*i), a.as_ref(), OpKind::Unpublish))
                .collect()
        };
        if let Some(old) = &old
            && let Err((step, m)) = self
                .run_steps(unpublish(&|i| format!("retire/unpublish/{i}")), Some(old), None)
                .await?
        {
            return Ok(Flow::Stop(self.outcome_failed(&step, &m)));
        }
        let abandoned = self.rot_ref().abandoned.clone();
        for (j, material) in abandoned.iter().enumerate() {
            let planned = unpublish(&|i| format!("retire/abandoned/{j}/{i}"));
            if let Err((step, m)) = self.run_steps(planned, Some(material), None).await? {
                return Ok(Flow::Stop(self.outcome_failed(&step, &m)));
            }
        }
        if old.is_some() {
            let retire = self.run_stage("retire", |c| &c.retire, OpKind::Run, &new, &old);
            if let Some(stop) = retire.await? {
                return Ok(stop);
            }
        }
        // Irreversible from here: the old private half leaves the state, unless the key
        // type keeps it for a while (an age identity old backups need).
        let retain_until = self
            .cred
            .key
            .retain()
            .and_then(|d| time::Duration::try_from(d.0).ok())
            .map(|d| self.now() + d);
        let detail = match self.entry().current.as_mut() {
            Some(current) => match retain_until {
                Some(until) => {
                    current.retain_until = Some(until);
                    format!(
                        "{} replaced; its private half is kept until {} (retain)",
                        current.summary(),
                        show(until)
                    )
                }
                None => {
                    current.drop_private();
                    format!("{} removed; its private half dropped", current.summary())
                }
            },
            None => "nothing to remove (first issuance)".to_string(),
        };
        self.reach(Stage::Retired, &detail).await?;
        Ok(Flow::Continue)
    }

    pub(super) async fn complete(&mut self) -> Result<Flow, EngineError> {
        let (now, entry, rotation) = self.end_rotation();
        let old = entry.current.take();
        let new = rotation.new.clone().expect("a retired rotation has new material");
        if let Some(kept) = old.as_ref().filter(|o| o.retain_until.is_some()) {
            entry.retained.push(kept.clone());
        }
        entry.previous = old.map(|mut o| {
            o.drop_private();
            o
        });
        entry.current = Some(new.clone());
        entry.last = Some(crate::state::Finished {
            rotation: rotation.id.clone(),
            outcome: "completed".into(),
            at: now,
        });
        entry.audit(now, Some(&rotation.id), "completed", format!("{} is current", new.summary()));
        self.save().await?;
        info!("{}: completed; {} is current", self.id, new.summary());
        Ok(Flow::Stop(Outcome::Completed { rotation: rotation.id, kid: new.kid }))
    }
}
