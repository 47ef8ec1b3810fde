//! The engine through the library on a manual clock: timing rules, strategies, gates,
//! compensation, hold, rollback order, emergency and adoption.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rotagate::clock::Clock;
use rotagate::config::GateSpec;
use rotagate::gate::{Gate, GateError, GateRequest, GateStatus};
use rotagate::pipeline::{self, EngineError, GateFactory, Outcome, RunOptions, Runtime, Stage};
use rotagate::secret::Secret;
use time::OffsetDateTime;

use crate::support::{Ws, clock, runtime, runtime_with_gates};

const M: Duration = Duration::from_secs(60);

fn opts(max_wait: Duration) -> RunOptions {
    RunOptions { max_wait, ..RunOptions::default() }
}

async fn run(ws: &Ws, rt: &Runtime, max_wait: Duration) -> Outcome {
    let config = ws.loaded();
    let mut vault = ws.vault().await;
    let report = pipeline::run(&config, &mut vault, rt, &opts(max_wait)).await.unwrap();
    report.credentials[0].outcome.clone()
}

async fn rotate(
    ws: &Ws,
    rt: &Runtime,
    max_wait: Duration,
    emergency: bool,
) -> Result<Outcome, EngineError> {
    let config = ws.loaded();
    let mut vault = ws.vault().await;
    let report =
        pipeline::rotate(&config, &mut vault, rt, &opts(max_wait), "k", "test", emergency).await?;
    Ok(report.credentials[0].outcome.clone())
}

async fn rollback(ws: &Ws, rt: &Runtime, max_wait: Duration) -> Result<Outcome, EngineError> {
    let config = ws.loaded();
    let mut vault = ws.vault().await;
    let report = pipeline::rollback(&config, &mut vault, rt, &opts(max_wait), "k").await?;
    Ok(report.credentials[0].outcome.clone())
}

fn until(o: &Outcome) -> OffsetDateTime {
    match o {
        Outcome::Waiting { until, .. } => *until,
        other => panic!("expected a wait, got {other:?}"),
    }
}

fn config(ws: &Ws, body: &str) {
    ws.config(&format!(
        "version: 1\nstate:\n  store: file:.rotagate/state.age\n  recipients: [RECIPIENT]\ncredentials:\n  - id: k\n    owner: o\n    bootstrap: true\n{body}"
    ));
}

#[tokio::test]
async fn propagation_is_counted_from_the_origin_serving_the_new_key() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    propagate: { wait: 10m, origin: { command: { run: ./origin.sh, retries: 100, interval: 1m } } }
    promote: [ { file: { path: app.env, set: { KID: "{{ new.kid }}" } } } ]
    gate: none
"#,
    );
    ws.script("origin.sh", "#!/bin/sh\ntest -e origin-ok\n");
    ws.write("origin-ok", "");
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    assert!(matches!(run(&ws, &rt, 60 * M).await, Outcome::Completed { .. }));
    let old = ws.env_value("app.env", "KID").unwrap();

    std::fs::remove_file(ws.path("origin-ok")).unwrap();
    let t0 = clock.now();
    let first = rotate(&ws, &rt, Duration::ZERO, false).await.unwrap();
    assert_eq!(until(&first), t0 + 1 * M, "the next origin probe attempt");
    clock.advance(5 * M);
    ws.write("origin-ok", "");
    let second = run(&ws, &rt, Duration::ZERO).await;
    assert_eq!(
        until(&second),
        t0 + 15 * M,
        "10m counted from the origin first serving it at t0+5m, not from publish"
    );
    assert_eq!(ws.env_value("app.env", "KID").unwrap(), old, "nobody signs with the new key yet");
    assert_eq!(ws.kids_served("jwks.json").len(), 2);
    clock.advance(10 * M);
    assert!(matches!(run(&ws, &rt, Duration::ZERO).await, Outcome::Completed { .. }));
    assert_ne!(ws.env_value("app.env", "KID").unwrap(), old);
}

#[tokio::test]
async fn drain_is_counted_from_verified_and_the_old_key_goes_only_after_it() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    promote: [ { file: { path: app.env, set: { KID: "{{ new.kid }}" } } } ]
    verify: [ { command: { run: ./ready.sh, retries: 5, interval: 1m } } ]
    drain: 3m
    gate: none
"#,
    );
    ws.script("ready.sh", "#!/bin/sh\ntest -e ready\n");
    ws.write("ready", "");
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    assert!(matches!(run(&ws, &rt, 60 * M).await, Outcome::Completed { .. }));
    let old = ws.env_value("app.env", "KID").unwrap();

    std::fs::remove_file(ws.path("ready")).unwrap();
    let t0 = clock.now();
    let first = rotate(&ws, &rt, Duration::ZERO, false).await.unwrap();
    assert_eq!(until(&first), t0 + M, "verify retries in a minute");
    clock.advance(2 * M);
    ws.write("ready", "");
    let second = run(&ws, &rt, Duration::ZERO).await;
    assert_eq!(until(&second), t0 + 5 * M, "3m from verified at t0+2m, not from the deploy at t0");
    assert!(ws.kids_served("jwks.json").contains(&old), "the old key is served through the drain");
    clock.advance(3 * M);
    assert!(matches!(run(&ws, &rt, Duration::ZERO).await, Outcome::Completed { .. }));
    assert!(!ws.kids_served("jwks.json").contains(&old));
}

#[tokio::test]
async fn short_waits_are_waited_out_within_max_wait() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    propagate: 2m
    promote: [ { file: { path: app.env, set: { KID: "{{ new.kid }}" } } } ]
    drain: 3m
    gate: none
"#,
    );
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    assert!(
        matches!(run(&ws, &rt, Duration::ZERO).await, Outcome::Waiting { .. }),
        "2m propagation > 0s max-wait"
    );
    assert!(matches!(run(&ws, &rt, 10 * M).await, Outcome::Completed { .. }));
    let t0 = clock.now();
    assert!(matches!(rotate(&ws, &rt, 10 * M, false).await.unwrap(), Outcome::Completed { .. }));
    assert!(
        clock.now() - t0 >= time::Duration::minutes(5),
        "propagate 2m + drain 3m were waited in-process"
    );
    let outcome = rotate(&ws, &rt, 4 * M, false).await.unwrap();
    assert_eq!(
        until(&outcome),
        clock.now() + 3 * M,
        "the drain would end past --max-wait, so the run stops"
    );
}

/// Gates that open only when the test says so, recording what they were asked.
#[derive(Default)]
struct ScriptedGates {
    open: Mutex<BTreeSet<String>>,
    asked: Mutex<Vec<(String, Vec<String>)>>,
}

struct ScriptedGate(Arc<ScriptedGates>);

/// The factory the runtime holds; every gate it makes answers from the shared script.
struct Scripted(Arc<ScriptedGates>);

impl GateFactory for Scripted {
    fn gate(&self, _spec: &GateSpec) -> Result<Box<dyn Gate>, GateError> {
        Ok(Box::new(ScriptedGate(self.0.clone())))
    }
}

#[async_trait]
impl Gate for ScriptedGate {
    async fn check(
        &self,
        req: &GateRequest<'_>,
        record: &mut serde_json::Value,
    ) -> Result<GateStatus, GateError> {
        self.0.asked.lock().unwrap().push((req.gate.to_string(), req.checklist.to_vec()));
        *record = serde_json::json!({ "asked": true });
        if self.0.open.lock().unwrap().contains(req.gate) {
            Ok(GateStatus::Open("approved".into()))
        } else {
            Ok(GateStatus::Waiting {
                detail: "awaiting approval".into(),
                link: Some(format!("https://example.test/{}", req.gate)),
            })
        }
    }
}

#[tokio::test]
async fn immediate_puts_its_gate_before_promote_and_skips_propagate_and_drain() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: secret, length: 40 }
    strategy: immediate
    promote: [ { file: { path: app.env, set: { SALT: "{{ new.value }}" } } } ]
    drain: 1h
    gate: none
"#,
    );
    let gates = Arc::new(ScriptedGates::default());
    let clock = clock();
    let rt = runtime_with_gates(clock.clone(), &[], Arc::new(Scripted(gates.clone())));
    assert!(
        matches!(run(&ws, &rt, Duration::ZERO).await, Outcome::Completed { .. }),
        "first issuance needs no window"
    );
    let salt = ws.env_value("app.env", "SALT").unwrap();
    let waiting = rotate(&ws, &rt, Duration::ZERO, false).await.unwrap();
    assert!(
        matches!(&waiting, Outcome::AwaitingGate { gate, .. } if gate == "promote"),
        "{waiting:?}"
    );
    assert_eq!(
        ws.env_value("app.env", "SALT").unwrap(),
        salt,
        "nothing changes before the window opens"
    );
    gates.open.lock().unwrap().insert("promote".into());
    let t0 = clock.now();
    assert!(
        matches!(run(&ws, &rt, Duration::ZERO).await, Outcome::Completed { .. }),
        "no drain wait for immediate"
    );
    assert_eq!(clock.now(), t0);
    assert_ne!(ws.env_value("app.env", "SALT").unwrap(), salt);
    let asked: Vec<String> = gates.asked.lock().unwrap().iter().map(|(g, _)| g.clone()).collect();
    assert_eq!(asked, vec!["promote", "promote"]);
}

#[tokio::test]
async fn manual_steps_end_in_a_gate_that_carries_them_as_a_checklist() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    publish:
      - jwks-file: { path: jwks.json }
      - manual: "Upload the public key for kid {{ new.kid }} at the portal"
    promote: [ { file: { path: app.env, set: { KID: "{{ new.kid }}" } } } ]
    retire:
      - manual: "Delete kid {{ old.kid }} at the portal"
    gate: none
"#,
    );
    // gate: none opens at once and hands the checklist to the operator.
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    let config = ws.loaded();
    let mut vault = ws.vault().await;
    let report = pipeline::run(&config, &mut vault, &rt, &opts(M)).await.unwrap();
    let old = ws.env_value("app.env", "KID").unwrap();
    assert_eq!(
        report.credentials[0].notes,
        vec![format!("do by hand now: Upload the public key for kid {old} at the portal")]
    );
    drop(vault);

    // A real gate holds each stage until it opens.
    let gates = Arc::new(ScriptedGates::default());
    let rt = runtime_with_gates(clock.clone(), &[], Arc::new(Scripted(gates.clone())));
    let first = rotate(&ws, &rt, M, false).await.unwrap();
    assert!(
        matches!(&first, Outcome::AwaitingGate { gate, link: Some(_), .. } if gate == "publish"),
        "{first:?}"
    );
    let new = ws.kids_served("jwks.json").into_iter().find(|k| k != &old).unwrap();
    assert_eq!(ws.env_value("app.env", "KID").unwrap(), old, "held before propagate and promote");
    gates.open.lock().unwrap().insert("publish".into());
    let second = run(&ws, &rt, M).await;
    assert!(
        matches!(&second, Outcome::AwaitingGate { gate, .. } if gate == "retire"),
        "{second:?}"
    );
    assert_eq!(ws.env_value("app.env", "KID").unwrap(), new);
    assert_eq!(
        ws.kids_served("jwks.json"),
        vec![old.clone(), new.clone()],
        "the old key stays until the gate"
    );
    gates.open.lock().unwrap().insert("retire".into());
    assert!(matches!(run(&ws, &rt, M).await, Outcome::Completed { .. }));
    assert_eq!(ws.kids_served("jwks.json"), vec![new.clone()]);
    let asked = gates.asked.lock().unwrap().clone();
    assert_eq!(
        asked[0],
        ("publish".to_string(), vec![format!("Upload the public key for kid {new} at the portal")])
    );
    assert_eq!(
        asked.last().unwrap(),
        &("retire".to_string(), vec![format!("Delete kid {old} at the portal")])
    );
    // The gate's record was journaled with the rotation.
    let state = ws.state();
    let audit = state["body"]["doc"]["credentials"]["k"]["audit"].as_array().unwrap().clone();
    assert!(audit.iter().any(|e| e["event"] == "gate-open" && e["detail"] == "retire: approved"));
}

#[tokio::test]
async fn a_first_issuance_whose_promote_fails_is_put_back_and_tried_again_not_stuck() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: secret, length: 32 }
    promote:
      - file: { path: a.env, set: { TOKEN: "{{ new.value }}" } }
      - command: { run: ./deploy.sh, stdin: "{{ new.value }}" }
      - command: { run: ./restart.sh }
    gate: none
"#,
    );
    ws.write("a.env", "TOKEN=hand-made-before-rotagate\n");
    ws.script(
        "deploy.sh",
        "#!/bin/sh\ncat >/dev/null\nif [ -e broken ]; then echo refused >&2; exit 1; fi\necho ok >> deploys.log\n",
    );
    ws.script("restart.sh", "#!/bin/sh\necho restart >> restarts.log\n");
    ws.write("broken", "");
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    for _ in 0..2 {
        match run(&ws, &rt, M).await {
            Outcome::Failed { step, message, .. } => {
                assert_eq!(step, "promote/1");
                assert!(message.contains("refused"), "{message}");
                assert!(message.contains("put back"), "{message}");
                assert!(!message.contains("has no value"), "{message}");
                assert!(!message.contains("may hold a mix"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ws.env_value("a.env", "TOKEN").unwrap(),
            "hand-made-before-rotagate",
            "what rotagate captured before the first write is back"
        );
    }
    // The hook that needs no material ran again after each put-back; the one that
    // renders the new value was skipped, not failed.
    assert_eq!(ws.read("restarts.log"), "restart\nrestart\n");
    std::fs::remove_file(ws.path("broken")).unwrap();
    assert!(matches!(run(&ws, &rt, M).await, Outcome::Completed { .. }));
    assert_ne!(ws.env_value("a.env", "TOKEN").unwrap(), "hand-made-before-rotagate");
}

#[tokio::test]
async fn a_partly_failed_promote_puts_back_what_it_wrote_and_reruns_the_hooks() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    promote:
      - file: { path: a.env, set: { KID: "{{ new.kid }}" } }
      - command: { run: ./deploy.sh, stdin: "{{ new.kid }}" }
    gate: none
"#,
    );
    // The deploy refuses every kid but the one in accept-only, when that file exists.
    ws.script(
        "deploy.sh",
        "#!/bin/sh\nkid=$(cat)\nif [ -e accept-only ] && [ \"$(cat accept-only)\" != \"$kid\" ]; then echo refused >&2; exit 1; fi\necho \"$kid\" >> deploys.log\n",
    );
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    assert!(matches!(run(&ws, &rt, M).await, Outcome::Completed { .. }));
    let old = ws.env_value("a.env", "KID").unwrap();
    ws.write("accept-only", &old);
    let failed = rotate(&ws, &rt, M, false).await.unwrap();
    match &failed {
        Outcome::Failed { step, message, .. } => {
            assert_eq!(step, "promote/1");
            assert!(message.contains("put back"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(failed.failed());
    assert_eq!(ws.env_value("a.env", "KID").unwrap(), old, "the written value was put back");
    assert_eq!(
        ws.read("deploys.log"),
        format!("{old}\n{old}\n"),
        "the hook ran again with the old values"
    );
    let state = ws.state();
    assert_eq!(state["body"]["doc"]["credentials"]["k"]["rotation"]["stage"], "propagated");
    std::fs::remove_file(ws.path("accept-only")).unwrap();
    assert!(
        matches!(run(&ws, &rt, M).await, Outcome::Completed { .. }),
        "the next run promotes again"
    );
    let new = ws.env_value("a.env", "KID").unwrap();
    assert_ne!(new, old);
    assert!(ws.read("deploys.log").ends_with(&format!("{new}\n")));
}

#[tokio::test]
async fn hold_leaves_the_new_material_and_rollback_puts_the_old_back_in_order() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    promote:
      - file: { path: a.env, set: { KID: "{{ new.kid }}", KEY: "{{ new.private_pem }}" } }
      - command: { run: ./log.sh, args: [deploy], stdin: "{{ new.kid }}" }
    verify: [ { command: { run: ./verify.sh, stdin: "{{ new.kid }}" } } ]
    on_verify_failure: hold
    drain: 5m
    gate: none
"#,
    );
    ws.script("log.sh", "#!/bin/sh\necho \"$1 $(cat)\" >> events.log\n");
    ws.script(
        "verify.sh",
        "#!/bin/sh\nkid=$(cat)\necho \"verify $kid\" >> events.log\nif [ -e broken ]; then echo \"kid $kid refused\" >&2; exit 1; fi\n",
    );
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    assert!(matches!(run(&ws, &rt, 10 * M).await, Outcome::Completed { .. }));
    let old = ws.env_value("a.env", "KID").unwrap();
    let old_key = ws.env_value("a.env", "KEY").unwrap();
    std::fs::remove_file(ws.path("events.log")).unwrap();

    ws.write("broken", "");
    let held = rotate(&ws, &rt, 10 * M, false).await.unwrap();
    assert!(
        matches!(&held, Outcome::Failed { step, message, .. } if step == "verify/0" && message.contains("held")),
        "{held:?}"
    );
    let new = ws.env_value("a.env", "KID").unwrap();
    assert_ne!(new, old, "hold leaves the new material in place");
    assert!(
        matches!(run(&ws, &rt, 10 * M).await, Outcome::Failed { .. }),
        "each run verifies again"
    );

    std::fs::remove_file(ws.path("broken")).unwrap();
    let t0 = clock.now();
    let draining = rollback(&ws, &rt, Duration::ZERO).await.unwrap();
    assert_eq!(
        until(&draining),
        t0 + 5 * M,
        "tokens signed with the new key expire before it is removed"
    );
    assert_eq!(ws.env_value("a.env", "KID").unwrap(), old);
    assert_eq!(ws.env_value("a.env", "KEY").unwrap(), old_key, "kid and key go back together");
    assert_eq!(ws.kids_served("jwks.json"), vec![old.clone(), new.clone()]);
    clock.advance(5 * M);
    let done = run(&ws, &rt, Duration::ZERO).await;
    assert!(
        matches!(&done, Outcome::RolledBack { failed: false, .. }),
        "the run that finishes the rollback cleanly succeeds: {done:?}"
    );
    assert_eq!(ws.kids_served("jwks.json"), vec![old.clone()]);
    let events: Vec<String> = ws.read("events.log").lines().map(str::to_string).collect();
    let tail: Vec<String> = events[events.len() - 2..].to_vec();
    assert_eq!(
        tail,
        vec![format!("deploy {old}"), format!("verify {old}")],
        "old values, hooks, then verify old: {events:?}"
    );
    let state = ws.state();
    let entry = &state["body"]["doc"]["credentials"]["k"];
    assert!(entry.get("rotation").is_none());
    assert_eq!(entry["last"]["outcome"], "rolled-back");
    assert_eq!(entry["current"]["kid"], old.as_str());
    assert!(entry["kids"].get(&new).is_some(), "the dropped kid is never reused");
}

/// A rotation whose deploy breaks the service: verify fails, and so does verifying the
/// old material during the automatic rollback. Returns the old kid.
async fn a_broken_deploy_mid_rollback(ws: &Ws, rt: &Runtime) -> String {
    config(
        ws,
        r#"    key: { type: rsa }
    promote:
      - file: { path: a.env, set: { KID: "{{ new.kid }}" } }
      - command: { run: ./log.sh, args: [deploy], stdin: "{{ new.kid }}" }
    verify: [ { command: { run: ./verify.sh } } ]
    gate: none
"#,
    );
    ws.script("log.sh", "#!/bin/sh\necho \"$1 $(cat)\" >> events.log\n");
    // The deploy breaks: every verify fails until a deploy runs after the fix.
    ws.script(
        "verify.sh",
        "#!/bin/sh\necho verify >> events.log\nif [ -e broken ]; then echo broken >&2; exit 1; fi\n",
    );
    assert!(matches!(run(ws, rt, M).await, Outcome::Completed { .. }));
    let old = ws.env_value("a.env", "KID").unwrap();
    ws.write("broken", "");
    let failed = rotate(ws, rt, M, false).await.unwrap();
    assert!(
        matches!(&failed, Outcome::Failed { step, .. } if step == "rollback/verify/0"),
        "{failed:?}"
    );
    assert!(failed.failed());
    assert_eq!(ws.env_value("a.env", "KID").unwrap(), old);
    // While it cannot finish, status says why.
    let rows = rotagate::inventory::status(&ws.loaded(), &ws.vault().await.doc, rt.clock.now());
    assert!(rows[0].rollback.is_some(), "{:?}", rows[0]);
    assert!(
        rows[0].error.as_deref().is_some_and(|e| e.starts_with("rollback/verify/0: ")),
        "{:?}",
        rows[0].error
    );
    std::fs::remove_file(ws.path("events.log")).unwrap();
    std::fs::remove_file(ws.path("broken")).unwrap();
    old
}

#[tokio::test]
async fn a_rollback_whose_verify_failed_redeploys_before_verifying_again() {
    let ws = Ws::new();
    let rt = runtime(clock(), &[]);
    let old = a_broken_deploy_mid_rollback(&ws, &rt).await;
    let done = rollback(&ws, &rt, M).await.unwrap();
    assert!(
        matches!(&done, Outcome::RolledBack { failed: false, .. }),
        "an operator's rollback that finishes is a success: {done:?}"
    );
    assert_eq!(
        ws.read("events.log"),
        format!("deploy {old}\nverify\n"),
        "the deploy hook ran again before the old material was verified"
    );
}

#[tokio::test]
async fn the_run_that_finishes_a_rollback_cleanly_succeeds_and_says_so() {
    let ws = Ws::new();
    let rt = runtime(clock(), &[]);
    a_broken_deploy_mid_rollback(&ws, &rt).await;
    let done = run(&ws, &rt, M).await;
    assert!(
        matches!(&done, Outcome::RolledBack { failed: false, .. }),
        "the failure was reported by the run that met it: {done:?}"
    );
    assert!(!done.failed());
    assert!(done.describe().contains("rolled back cleanly"), "{}", done.describe());
    let rows = rotagate::inventory::status(&ws.loaded(), &ws.vault().await.doc, rt.clock.now());
    assert_eq!(rows[0].rollback, None);
    assert_eq!(rows[0].error, None);
}

#[tokio::test]
async fn rollback_is_refused_once_retired_and_with_nothing_in_flight() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    promote: [ { file: { path: a.env, set: { KID: "{{ new.kid }}" } } } ]
    gate: none
"#,
    );
    let rt = runtime(clock(), &[]);
    assert!(matches!(run(&ws, &rt, M).await, Outcome::Completed { .. }));
    let err = rollback(&ws, &rt, M).await.unwrap_err();
    assert!(err.to_string().contains("nothing to roll back"), "{err}");
}

#[tokio::test]
async fn an_emergency_replaces_the_rotation_in_flight_and_revokes_the_old_key() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    propagate: 10m
    promote: [ { file: { path: a.env, set: { KID: "{{ new.kid }}", KEY: "{{ new.private_pem }}" } } } ]
    drain: 1h
    gate: none
"#,
    );
    let gates = Arc::new(ScriptedGates::default());
    gates.open.lock().unwrap().insert("retire".into());
    let clock = clock();
    let rt = runtime_with_gates(clock.clone(), &[], Arc::new(Scripted(gates.clone())));
    assert!(matches!(run(&ws, &rt, 20 * M).await, Outcome::Completed { .. }));
    let compromised = ws.env_value("a.env", "KID").unwrap();
    let compromised_pem = ws.env_value("a.env", "KEY").unwrap();
    let in_flight = rotate(&ws, &rt, Duration::ZERO, false).await.unwrap();
    assert!(matches!(in_flight, Outcome::Waiting { stage: Stage::Published, .. }));
    let pending = ws.kids_served("jwks.json").into_iter().find(|k| k != &compromised).unwrap();

    gates.open.lock().unwrap().clear();
    let t0 = clock.now();
    let held = rotate(&ws, &rt, Duration::ZERO, true).await.unwrap();
    assert!(matches!(&held, Outcome::AwaitingGate { gate, .. } if gate == "retire"), "{held:?}");
    assert_eq!(clock.now(), t0, "no propagate, no drain");
    let fresh = ws.env_value("a.env", "KID").unwrap();
    assert!(fresh != compromised && fresh != pending);
    let err = rollback(&ws, &rt, Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    gates.open.lock().unwrap().insert("retire".into());
    assert!(matches!(run(&ws, &rt, Duration::ZERO).await, Outcome::Completed { .. }));
    assert_eq!(
        ws.kids_served("jwks.json"),
        vec![fresh.clone()],
        "compromised and superseded keys both removed"
    );

    let state = ws.state();
    let entry = &state["body"]["doc"]["credentials"]["k"];
    assert_eq!(entry["revoked"].as_array().unwrap().len(), 2);
    let audit = serde_json::to_string(&entry["audit"]).unwrap();
    assert!(audit.contains("never restorable") && audit.contains("superseded"));

    // A revoked key is never adopted again.
    let config = ws.loaded();
    let mut vault = ws.vault().await;
    let err = pipeline::adopt(
        &config,
        &mut vault,
        &rt,
        &opts(M),
        "k",
        &Secret::new(compromised_pem),
        None,
        None,
        true,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[tokio::test]
async fn adopted_material_is_what_the_first_rotation_rolls_back_to() {
    let ws = Ws::new();
    ws.config(
        r#"version: 1
state: { store: "file:.rotagate/state.age", recipients: [RECIPIENT] }
credentials:
  - id: k
    owner: o
    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    promote: [ { file: { path: a.env, set: { KID: "{{ new.kid }}", KEY: "{{ new.private_pem }}" } } } ]
    drain: 1h
    gate: none
"#,
    );
    let live = rotagate::material::generate(
        &rotagate::config::KeySpec::Rsa { bits: 2048, kid: Default::default() },
        "x".into(),
        None,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let pem = live.secret.clone().unwrap();
    ws.write("jwks.json", &serde_json::json!({ "keys": [ { "kty": "RSA", "kid": "live-1", "n": live.jwk.as_ref().unwrap()["n"], "e": "AQAB" } ] }).to_string());
    let rt = runtime(clock(), &[]);
    assert!(matches!(run(&ws, &rt, M).await, Outcome::NoKey));
    let config = ws.loaded();
    let mut vault = ws.vault().await;
    let msg = pipeline::adopt(
        &config,
        &mut vault,
        &rt,
        &opts(M),
        "k",
        &pem,
        Some("live-1".into()),
        None,
        false,
    )
    .await
    .unwrap();
    assert!(msg.contains("adopted kid live-1"), "{msg}");
    drop(vault);
    let waiting = rotate(&ws, &rt, Duration::ZERO, false).await.unwrap();
    assert!(matches!(waiting, Outcome::Waiting { stage: Stage::Verified, .. }));
    assert_ne!(ws.env_value("a.env", "KID").unwrap(), "live-1");
    assert!(matches!(
        rollback(&ws, &rt, 2 * 60 * M).await.unwrap(),
        Outcome::RolledBack { failed: false, .. }
    ));
    assert_eq!(ws.env_value("a.env", "KID").unwrap(), "live-1");
    assert_eq!(ws.env_value("a.env", "KEY").unwrap(), pem.expose());
    assert_eq!(ws.kids_served("jwks.json"), vec!["live-1".to_string()]);
}

#[tokio::test]
async fn a_config_edit_mid_rotation_applies_to_the_next_rotation() {
    let ws = Ws::new();
    let body = r#"    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    promote: [ { file: { path: a.env, set: { KID: "{{ new.kid }}" } } } ]
    drain: 1h
    gate: none
"#;
    config(&ws, body);
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    assert!(matches!(run(&ws, &rt, M).await, Outcome::Completed { .. }));
    let old = ws.env_value("a.env", "KID").unwrap();
    assert!(matches!(
        rotate(&ws, &rt, Duration::ZERO, false).await.unwrap(),
        Outcome::Waiting { .. }
    ));
    // Someone moves the JWKS mid-rotation: the rotation in flight retires from its snapshot.
    config(&ws, &body.replace("jwks.json", "moved.json"));
    let items = pipeline::plan(&ws.loaded(), &ws.vault().await.doc, clock.now(), false);
    assert!(
        items[0].config_changed && items[0].detail.contains("applies to the next rotation"),
        "{items:?}"
    );
    clock.advance(60 * M);
    assert!(matches!(run(&ws, &rt, Duration::ZERO).await, Outcome::Completed { .. }));
    assert!(
        !ws.kids_served("jwks.json").contains(&old),
        "the old kid was removed where it was published"
    );
    assert!(!ws.exists("moved.json"));
}

#[tokio::test]
async fn alternating_puts_the_new_secret_on_the_idle_role() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: secret, length: 32, prefix: whsec_ }
    strategy: alternating
    roles: [primary, secondary]
    publish: [ { file: { path: receiver.env, set: { "WEBHOOK_SECRET_{{ new.role }}": "{{ new.value }}" } } } ]
    promote: [ { file: { path: sender.env, set: { WEBHOOK_SECRET: "{{ new.value }}", SLOT: "{{ new.role }}" } } } ]
    gate: none
"#,
    );
    let rt = runtime(clock(), &[]);
    let mut slots = Vec::new();
    for _ in 0..3 {
        let outcome = match ws.exists("sender.env") {
            false => run(&ws, &rt, M).await,
            true => rotate(&ws, &rt, M, false).await.unwrap(),
        };
        assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
        let slot = ws.env_value("sender.env", "SLOT").unwrap();
        let secret = ws.env_value("sender.env", "WEBHOOK_SECRET").unwrap();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(
            ws.env_value("receiver.env", &format!("WEBHOOK_SECRET_{slot}")).unwrap(),
            secret
        );
        slots.push(slot);
    }
    assert_eq!(slots, vec!["primary", "secondary", "primary"]);
    let receiver: BTreeMap<String, String> = ["primary", "secondary"]
        .iter()
        .filter_map(|s| {
            ws.env_value("receiver.env", &format!("WEBHOOK_SECRET_{s}")).map(|v| (s.to_string(), v))
        })
        .collect();
    assert_eq!(receiver.len(), 1, "retire cleared the old slot: {receiver:?}");
}

#[tokio::test]
async fn a_lease_held_by_a_live_run_blocks_another() {
    let ws = Ws::new();
    config(
        &ws,
        r#"    key: { type: rsa }
    promote: [ { file: { path: a.env, set: { KID: "{{ new.kid }}" } } } ]
    gate: none
"#,
    );
    let rt = runtime(clock(), &[]);
    let config = ws.loaded();
    // A run on another host holds the lease.
    let mut holder = ws.vault().await;
    let mut doc_entry = holder.doc.credentials.entry("k".into()).or_default().clone();
    doc_entry.lease = Some(rotagate::state::Lease {
        run_id: "other-run".into(),
        holder: "ci-runner-7:42".into(),
        host: "ci-runner-7".into(),
        pid: 42,
        expires_at: clock().now() + time::Duration::hours(1),
    });
    holder.doc.credentials.insert("k".into(), doc_entry);
    holder.save(clock().now()).await.unwrap();
    let mut vault = ws.vault().await;
    let report = pipeline::run(
        &config,
        &mut vault,
        &rt,
        &RunOptions { lease_wait: Duration::from_secs(4), ..RunOptions::default() },
    )
    .await
    .unwrap();
    match &report.credentials[0].outcome {
        Outcome::Busy { detail } => {
            assert!(detail.contains("leased by run other-run (ci-runner-7:42)"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert!(report.failed());
    assert!(!ws.exists("a.env"));
}
