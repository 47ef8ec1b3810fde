//! The engine: advances one rotation as far as its gates and waits allow, saving the
//! state before and after every step. It knows stages and the action, probe and gate
//! traits; never a provider.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::outcome::Outcome;
use super::rotation::{At, Failure, Rotation, Stage};
use super::{EngineError, EnvSource};
use crate::actions::{self, Action, Op};
use crate::clock::{Clock, show};
use crate::config::{ActionSpec, Credential, GateSpec};
use crate::http::HttpClient;
use crate::material::Material;
use crate::probes::{self, Probe};
use crate::state::{CredentialState, SharedVault};
use crate::step::{EnvValues, Providers, StepContext, View};

mod gate;
mod promote;
mod rollback;
mod stages;

/// How often a waiting run prints where it stands.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// The run's tools, shared by every credential.
pub struct Runtime {
    pub clock: Arc<dyn Clock>,
    pub http: HttpClient,
    pub env: Arc<dyn EnvSource>,
    pub gates: Arc<dyn GateFactory>,
    /// Provider clients (GitHub, ...), handed to actions and probes unopened.
    pub providers: Providers,
    pub progress: Arc<dyn Progress>,
}

/// Told when a run starts and stops working on a credential (CI log groups).
pub trait Progress: Send + Sync {
    fn begin(&self, credential: &str);
    fn end(&self, credential: &str);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _credential: &str) {}
    fn end(&self, _credential: &str) {}
}

/// Builds the gate a credential's config names.
pub trait GateFactory: Send + Sync {
    fn gate(&self, spec: &GateSpec) -> Result<Box<dyn crate::gate::Gate>, crate::gate::GateError>;
}

/// The gates this build offers, with what they need to reach GitHub.
pub struct StandardGates {
    pub providers: Providers,
    /// The repository approval pull requests go to.
    pub repo: Option<String>,
}

impl GateFactory for StandardGates {
    fn gate(&self, spec: &GateSpec) -> Result<Box<dyn crate::gate::Gate>, crate::gate::GateError> {
        crate::gate::build(spec, &self.providers, self.repo.as_deref())
    }
}

/// A stage's actions with their index in the config list.
type Steps = Vec<(usize, Box<dyn Action>)>;

/// One step a stage asks for: its journal name, its action and what to ask of it.
struct Planned<'s> {
    step: String,
    action: &'s dyn Action,
    op: OpKind,
}

impl<'s> Planned<'s> {
    fn new(step: String, action: &'s dyn Action, op: OpKind) -> Self {
        Planned { step, action, op }
    }
}

/// Where the step loop stopped: the step and its message.
type StepFailure = (String, String);

/// How the probe loop ended short of every probe passing.
enum ProbesStopped {
    /// Waiting on a retry, or a probe that could not start.
    Flow(Flow),
    /// A probe used up its retries.
    Exhausted { step: String, reason: String },
}

pub(crate) enum Flow {
    Continue,
    Stop(Outcome),
}

enum ProbeFlow {
    Passed,
    Waiting(Outcome),
    Exhausted(String),
}

/// Which operation a step performs; the view decides which material it sees.
#[derive(Clone)]
enum OpKind {
    Publish,
    Unpublish,
    Write,
    Restore(Value),
    Run,
}

pub(crate) struct Driver<'a, 'v> {
    rt: &'a Runtime,
    state: &'a SharedVault<'v>,
    /// Held while a step reaches beyond this machine, so a fleet keeps a bounded number
    /// of commands and requests going at once.
    slots: &'a Semaphore,
    /// This credential's entry; handed to `state` at every save.
    entry: CredentialState,
    base_dir: &'a Path,
    id: String,
    cred: Credential,
    env: EnvValues,
    deadline: OffsetDateTime,
    pub notes: Vec<String>,
    /// A promote failed in this run (its compensation then ends the run); a
    /// compensation resumed from an earlier run carries on once done.
    promote_failed_here: bool,
    /// A step failed in this run.
    failed_here: bool,
    /// This run is an operator's `rollback`: finishing it is a success, whatever
    /// failure led to it in an earlier run.
    pub(crate) operator_rollback: bool,
}

impl<'a, 'v> Driver<'a, 'v> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        rt: &'a Runtime,
        state: &'a SharedVault<'v>,
        slots: &'a Semaphore,
        entry: CredentialState,
        base_dir: &'a Path,
        id: &str,
        cred: Credential,
        deadline: OffsetDateTime,
    ) -> Self {
        let env = EnvValues::new(
            cred.env
                .iter()
                .filter_map(|name| rt.env.var(name).map(|v| (name.clone(), v)))
                .collect(),
        );
        Driver {
            rt,
            state,
            slots,
            entry,
            base_dir,
            id: id.to_string(),
            cred,
            env,
            deadline,
            notes: Vec::new(),
            promote_failed_here: false,
            failed_here: false,
            operator_rollback: false,
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.rt.clock.now()
    }

    fn entry(&mut self) -> &mut CredentialState {
        &mut self.entry
    }

    /// Ends the rotation in flight: the time, the entry, and the rotation taken from it.
    fn end_rotation(&mut self) -> (OffsetDateTime, &mut CredentialState, Rotation) {
        let now = self.now();
        let rotation = self.entry.rotation.take().expect("a rotation in flight");
        (now, &mut self.entry, rotation)
    }

    fn entry_ref(&self) -> &CredentialState {
        &self.entry
    }

    fn rot(&mut self) -> &mut Rotation {
        self.entry().rotation.as_mut().expect("the driver runs on a rotation in flight")
    }

    fn rot_ref(&self) -> &Rotation {
        self.entry_ref().rotation.as_ref().expect("the driver runs on a rotation in flight")
    }

    /// (new, old): the pending material and what consumers had before.
    fn materials(&self) -> (Option<Material>, Option<Material>) {
        (self.rot_ref().new.clone(), self.entry_ref().current.clone())
    }

    /// A slot for a step, unless it only touches files here.
    async fn slot(&self, local: bool) -> Option<tokio::sync::SemaphorePermit<'a>> {
        if local {
            return None;
        }
        Some(self.slots.acquire().await.expect("the slots are never closed"))
    }

    async fn save(&mut self) -> Result<(), EngineError> {
        self.state.put(&self.id, self.entry.clone()).await?;
        Ok(())
    }

    fn audit(&mut self, event: &str, detail: impl Into<String>) {
        let now = self.now();
        let rotation = self.entry_ref().rotation.as_ref().map(|r| r.id.clone());
        self.entry().audit(now, rotation.as_deref(), event, detail);
    }

    fn outcome_failed(&self, step: &str, message: &str) -> Outcome {
        Outcome::Failed {
            rotation: self.rot_ref().id.clone(),
            step: step.to_string(),
            message: message.to_string(),
        }
    }

    /// Advances the rotation until it completes, waits, meets a gate or fails.
    pub(crate) async fn drive(&mut self) -> Result<Outcome, EngineError> {
        // An operator's rollback is the documented way out once they have reconciled.
        if let Some(e) =
            self.rot_ref().journal.interrupted_once().filter(|_| !self.operator_rollback)
        {
            let message = format!(
                "step {} was started at {} and must not be repeated, but its result was never recorded (the run was killed): reconcile by hand (see README, \"Interrupted steps\"), then run `rotagate rollback {}` to abandon this rotation",
                e.step,
                show(e.started_at.0),
                self.id
            );
            let step = e.step.clone();
            return Ok(self.outcome_failed(&step, &message));
        }
        loop {
            let (stage, rolling_back, compensating) = {
                let r = self.rot_ref();
                (r.stage, r.rollback.is_some(), r.compensating.clone())
            };
            tracing::debug!(
                "{}: at {stage}{}{}",
                self.id,
                if rolling_back { ", rolling back" } else { "" },
                if compensating.is_some() { ", putting back a failed promote" } else { "" }
            );
            let flow = if let Some(failure) = compensating {
                self.compensate(failure).await?
            } else if rolling_back {
                self.rollback_step().await?
            } else {
                match stage {
                    Stage::Due => self.generate().await?,
                    Stage::Generated => self.publish().await?,
                    Stage::Published => self.propagate().await?,
                    Stage::Propagated => self.promote().await?,
                    Stage::Promoted => self.verify().await?,
                    Stage::Verified => self.drain().await?,
                    Stage::Drained => self.retire().await?,
                    Stage::Retired => self.complete().await?,
                    Stage::Completed | Stage::RolledBack => {
                        unreachable!("finished rotations are removed from the state")
                    }
                }
            };
            if let Flow::Stop(outcome) = flow {
                return Ok(outcome);
            }
        }
    }

    /// Records reaching `stage` (with what the audit log should say about it) and saves.
    async fn reach(&mut self, stage: Stage, detail: &str) -> Result<(), EngineError> {
        let now = self.now();
        let r = self.rot();
        r.stage = stage;
        r.times.insert(stage, At(now));
        r.error = None;
        self.audit(stage.name(), detail);
        self.save().await?;
        info!("{}: {stage}", self.id);
        Ok(())
    }

    fn step_context<'s>(&'s self, step: &'s str, produced: &'s [Value]) -> StepContext<'s> {
        StepContext {
            credential: &self.id,
            step,
            base_dir: self.base_dir,
            http: &self.rt.http,
            env: &self.env,
            produced,
        }
    }

    /// Outputs of this rotation's finished steps, oldest first.
    fn produced(&self) -> Vec<Value> {
        self.rot_ref().journal.outputs("").into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// Builds a stage's actions; a kind that cannot be built (missing credentials)
    /// fails the stage.
    fn steps(&self, list: &[ActionSpec]) -> Result<Steps, String> {
        let mut steps = Vec::new();
        for (i, spec) in list.iter().enumerate() {
            if let Some(action) =
                actions::build(spec, &self.rt.providers).map_err(|e| e.to_string())?
            {
                steps.push((i, action));
            }
        }
        Ok(steps)
    }

    /// Asks every step of the rotation whether its target will take the writes, before
    /// anything is generated.
    async fn preflight(&self) -> Result<(), String> {
        for (stage, list) in [
            ("publish", &self.cred.publish),
            ("promote", &self.cred.promote),
            ("retire", &self.cred.retire),
        ] {
            for (i, action) in self.steps(list)? {
                let step = format!("{stage}/{i}");
                let _slot = self.slot(action.local()).await;
                let cx = self.step_context(&step, &[]);
                action
                    .preflight(&cx)
                    .await
                    .map_err(|e| format!("{step} ({}): {e}", action.describe()))?;
            }
        }
        Ok(())
    }

    fn probe_for(&self, spec: &crate::config::ProbeSpec) -> Result<Box<dyn Probe>, String> {
        probes::build(spec, &self.rt.providers).map_err(|e| e.to_string())
    }

    /// Records that a stage could not even begin, and stops.
    async fn cannot_start(&mut self, step: &str, message: String) -> Result<Flow, EngineError> {
        let message = self.record_failure_unjournaled(step, &message).await?;
        Ok(Flow::Stop(self.outcome_failed(step, &message)))
    }

    async fn record_failure_unjournaled(
        &mut self,
        step: &str,
        message: &str,
    ) -> Result<String, EngineError> {
        let now = self.now();
        self.failed_here = true;
        // A step's message may echo what it was given or found: it is stored and shown
        // only with every known secret cut out.
        let message = crate::secret::redact(message);
        self.rot().error = Some(Failure::new(step, &message, now));
        self.audit("step-failed", format!("{step}: {message}"));
        self.save().await?;
        warn!("{}: {step} failed: {message}", self.id);
        Ok(message)
    }

    /// Runs one journaled action step: `started` is saved before it runs, `done` (with
    /// its output) or `failed` after.
    async fn execute(
        &mut self,
        step: &str,
        action: &dyn Action,
        op: OpKind,
        new: Option<&Material>,
        old: Option<&Material>,
    ) -> Result<Result<Value, String>, EngineError> {
        let before = if matches!(op, OpKind::Write)
            && action.writes_values()
            && !self.rot_ref().journal.touched(step)
        {
            let view = View::new(new, old, &self.env);
            let produced = self.produced();
            match action.capture(&view, &self.step_context(step, &produced)).await {
                Ok(before) => before,
                Err(e) => return self.record_failure(step, &e.to_string()).await.map(Err),
            }
        } else {
            None
        };
        let now = self.now();
        tracing::trace!(
            "{}: journal: {step} started (captured before: {})",
            self.id,
            before.is_some()
        );
        let attempt = self.rot().journal.begin(step, false, before, now);
        self.save().await?;
        info!("{}: {step}: {} (attempt {attempt})", self.id, action.describe());
        let produced = self.produced();
        let result = {
            let view = View::new(new, old, &self.env);
            let cx = self.step_context(step, &produced);
            let op = match &op {
                OpKind::Publish => Op::Publish(&view),
                OpKind::Unpublish => Op::Unpublish(&view),
                OpKind::Write => Op::Write(&view),
                OpKind::Restore(before) => Op::Restore(before),
                OpKind::Run => Op::Run(&view),
            };
            let _slot = self.slot(action.local()).await;
            action.execute(op, &cx).await
        };
        match result {
            Ok(output) => {
                let now = self.now();
                self.rot().journal.finish(step, output.clone(), now);
                self.save().await?;
                Ok(Ok(output))
            }
            Err(e) => self.record_failure(step, &e.to_string()).await.map(Err),
        }
    }

    /// The one step loop every stage uses: runs each planned step not yet done (the
    /// journal says which), with `new` and `old` as its templates' materials, and stops
    /// at the first failure.
    /// Runs the steps `list` picks from the credential as `op`, named `{stage}/{i}`: a
    /// stage that cannot begin, or a step that fails, stops the rotation.
    async fn run_stage(
        &mut self,
        stage: &str,
        list: fn(&Credential) -> &[ActionSpec],
        op: OpKind,
        new: &Option<Material>,
        old: &Option<Material>,
    ) -> Result<Option<Flow>, EngineError> {
        let steps = match self.steps(list(&self.cred)) {
            Ok(s) => s,
            Err(m) => return self.cannot_start(stage, m).await.map(Some),
        };
        let planned = steps
            .iter()
            .map(|(i, a)| Planned::new(format!("{stage}/{i}"), a.as_ref(), op.clone()))
            .collect();
        if let Err((step, message)) = self.run_steps(planned, new.as_ref(), old.as_ref()).await? {
            return Ok(Some(Flow::Stop(self.outcome_failed(&step, &message))));
        }
        Ok(None)
    }

    async fn run_steps(
        &mut self,
        planned: Vec<Planned<'_>>,
        new: Option<&Material>,
        old: Option<&Material>,
    ) -> Result<Result<(), StepFailure>, EngineError> {
        for Planned { step, action, op } in planned {
            if self.rot_ref().journal.is_done(&step) {
                continue;
            }
            if let Err(message) = self.execute(&step, action, op, new, old).await? {
                return Ok(Err((step, message)));
            }
        }
        Ok(Ok(()))
    }

    /// The one probe loop: runs each `verify` probe not yet done, journaled as
    /// `{prefix}/{i}`, with `new` and `old` as its materials (a rollback verifies the old
    /// material as the new one).
    async fn run_probes(
        &mut self,
        prefix: &str,
        new: Option<&Material>,
        old: Option<&Material>,
    ) -> Result<Option<ProbesStopped>, EngineError> {
        for (i, spec) in self.cred.verify.clone().iter().enumerate() {
            let step = format!("{prefix}/{i}");
            if self.rot_ref().journal.is_done(&step) {
                continue;
            }
            let probe = match self.probe_for(spec) {
                Ok(p) => p,
                Err(m) => {
                    return Ok(Some(ProbesStopped::Flow(self.cannot_start(&step, m).await?)));
                }
            };
            match self.probe(&step, spec, probe.as_ref(), new, old).await? {
                ProbeFlow::Passed => {}
                ProbeFlow::Waiting(o) => return Ok(Some(ProbesStopped::Flow(Flow::Stop(o)))),
                ProbeFlow::Exhausted(reason) => {
                    return Ok(Some(ProbesStopped::Exhausted { step, reason }));
                }
            }
        }
        Ok(None)
    }

    async fn record_failure(&mut self, step: &str, message: &str) -> Result<String, EngineError> {
        let now = self.now();
        self.rot().journal.fail(step, message, now);
        self.record_failure_unjournaled(step, message).await
    }

    /// Waits for `until` in-process when it falls within this run's `--max-wait`;
    /// otherwise stops and leaves it to a later run.
    async fn wait_until(&mut self, until: OffsetDateTime, what: &str) -> Flow {
        loop {
            let now = self.now();
            if now >= until {
                return Flow::Continue;
            }
            if until > self.deadline {
                let r = self.rot_ref();
                return Flow::Stop(Outcome::Waiting {
                    rotation: r.id.clone(),
                    stage: r.stage,
                    until,
                    what: what.to_string(),
                });
            }
            let left = Duration::try_from(until - now).unwrap_or_default();
            info!(
                "{}: waiting for {what}: {} left (until {})",
                self.id,
                humantime::format_duration(Duration::from_secs(left.as_secs().max(1))),
                show(until)
            );
            self.rt.clock.sleep(left.min(PROGRESS_EVERY)).await;
        }
    }

    /// Runs a probe with its retries; a retry beyond `--max-wait` is left to a later run.
    async fn probe(
        &mut self,
        step: &str,
        spec: &crate::config::ProbeSpec,
        probe: &dyn Probe,
        new: Option<&Material>,
        old: Option<&Material>,
    ) -> Result<ProbeFlow, EngineError> {
        let (retries, interval) = spec.retries();
        loop {
            let (failures, last) = {
                let j = &self.rot_ref().journal;
                (j.failures(step), j.latest(step).cloned())
            };
            if failures > 0 {
                let last = last.expect("a failure is journaled");
                let reason = last.error.clone().unwrap_or_default();
                if failures > retries {
                    return Ok(ProbeFlow::Exhausted(reason));
                }
                let next = last.finished_at.map_or(self.now(), |t| t.0)
                    + time::Duration::try_from(interval).unwrap_or_default();
                let what = format!("attempt {} of {}", failures + 1, probe.describe());
                if let Flow::Stop(o) = self.wait_until(next, &what).await {
                    return Ok(ProbeFlow::Waiting(o));
                }
            }
            let now = self.now();
            self.rot().journal.begin(step, false, None, now);
            self.save().await?;
            let produced = self.produced();
            let result = {
                let view = View::new(new, old, &self.env);
                let _slot = self.slot(false).await;
                probe.check(&view, &self.step_context(step, &produced)).await
            };
            let now = self.now();
            match result {
                Ok(evidence) => {
                    info!("{}: {step}: {evidence}", self.id);
                    self.rot().journal.finish(step, json!({ "evidence": evidence }), now);
                    self.save().await?;
                    return Ok(ProbeFlow::Passed);
                }
                Err(e) => {
                    let message = e.to_string();
                    warn!(
                        "{}: {step}: {message} (attempt {} of {})",
                        self.id,
                        failures + 1,
                        retries + 1
                    );
                    self.rot().journal.fail(step, &message, now);
                    self.save().await?;
                }
            }
        }
    }
}
