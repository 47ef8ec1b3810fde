//! Crash safety: the binary is killed with SIGKILL inside every stage of a rotation and
//! of a rollback, then run again until it finishes. After every kill and at the end:
//! the consumer's kid is served, its private key matches the served JWK, the old kid
//! leaves only after the gate, exactly one new kid ends up served, and the state
//! decrypts and verifies.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rotagate::material::rsa::parse_private;

use crate::support::Ws;

const CONFIG: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: api-signing
    owner: platform
    bootstrap: true
    key: { type: rsa, bits: 2048, kid: { date: "prod-key-" } }
    publish:
      - jwks-file: { path: public/jwks.json }
    propagate: { wait: 1s, origin: { command: { run: ./hold.sh, args: [origin], stdin: "{{ new.kid }}" } } }
    promote:
      - file: { path: app.env, set: { SIGNING_KID: "{{ new.kid }}", SIGNING_KEY: "{{ new.private_pem }}" } }
      - command: { run: ./hold.sh, args: [deploy], stdin: "{{ new.kid }}" }
    verify:
      - command: { run: ./hold.sh, args: [verify], stdin: "{{ new.kid }}" }
    drain: 1s
    retire:
      - command: { run: ./hold.sh, args: [retire], stdin: "{{ old.kid }}" }
    gate: none
"#;

/// Blocks while hold-NAME exists and is empty or names this kid (after creating
/// at-NAME); fails when accept-NAME exists and names another kid.
const HOLD: &str = r#"#!/bin/sh
name=$1
kid=$(cat)
if [ -e "hold-$name" ] && { [ ! -s "hold-$name" ] || [ "$(cat "hold-$name")" = "$kid" ]; }; then
  : > "at-$name"
  while [ -e "hold-$name" ]; do sleep 0.05; done
fi
if [ -e "accept-$name" ] && [ "$(cat "accept-$name")" != "$kid" ]; then
  echo "refusing $kid" >&2
  exit 1
fi
"#;

struct Scenario {
    /// `rotate` for a rotation that completes; with accept-verify set, one that rolls back.
    failing_verify: bool,
}

fn baseline() -> Ws {
    let ws = Ws::new();
    ws.config(CONFIG);
    ws.script("hold.sh", HOLD);
    let out = ws.run(&["run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    ws
}

fn copy_of(base: &Ws) -> Ws {
    let ws = Ws {
        dir: tempfile::tempdir().unwrap(),
        identity: base.identity.clone(),
        recipient: base.recipient.clone(),
    };
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", base.dir.path().display()))
        .arg(ws.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    ws
}

/// What the consumer sees, checked after every kill.
fn check_invariants(ws: &Ws, old_kid: &str) -> (String, Option<String>) {
    let served = ws.kids_served("public/jwks.json");
    let kid = ws.env_value("app.env", "SIGNING_KID").expect("the consumer always has a kid");
    assert!(served.contains(&kid), "the consumer's kid {kid} is not served: {served:?}");
    let pem = ws.env_value("app.env", "SIGNING_KEY").expect("the consumer always has a key");
    let (parts, _) = parse_private(&pem).expect("the consumer's key parses");
    let jwks: serde_json::Value = serde_json::from_str(&ws.read("public/jwks.json")).unwrap();
    let served_jwk =
        jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!(
        served_jwk["n"], parts.public_components["n"],
        "the consumer's private key matches the JWK served for its kid"
    );
    // The state decrypts and verifies (MAC and chain), by the library and by the age CLI.
    let state = ws.state();
    let entry = &state["body"]["doc"]["credentials"]["api-signing"];
    let rotation = entry.get("rotation");
    let stage = rotation.map(|r| r["stage"].as_str().unwrap().to_string());
    if !served.iter().any(|k| k == old_kid) {
        let gate_passed = rotation.is_none_or(|r| {
            r["journal"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["step"] == "gate/retire" && e["status"] == "done")
        });
        assert!(gate_passed, "the old kid was removed before the retire gate opened");
        assert!(
            rotation.is_none_or(|r| r.get("rollback").is_none()),
            "a rollback never removes the old kid"
        );
    }
    for k in &served {
        assert!(entry["kids"].get(k).is_some(), "an unknown kid {k} is served");
    }
    let last_step =
        rotation.and_then(|r| {
            r["journal"]["entries"].as_array().unwrap().last().map(|e| {
                format!("{} {}", e["step"].as_str().unwrap(), e["status"].as_str().unwrap())
            })
        });
    (stage.unwrap_or_else(|| "finished".into()), last_step)
}

fn library_verifies(ws: &Ws) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { drop(ws.vault().await) });
}

/// Runs until the hook named `point` blocks (for `kid`, or any kid when empty), then
/// kills the binary inside it.
fn run_killed_inside(ws: &Ws, args: &[&str], point: &str, kid: &str) -> bool {
    ws.write(&format!("hold-{point}"), kid);
    let mut child = ws.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let marker = ws.path(&format!("at-{point}"));
    let started = Instant::now();
    let mut reached = false;
    while started.elapsed() < Duration::from_secs(30) {
        if marker.exists() {
            reached = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().unwrap();
    // Release the orphaned hook.
    let _ = std::fs::remove_file(ws.path(&format!("hold-{point}")));
    let _ = std::fs::remove_file(marker);
    reached
}

/// Runs again until the rotation is over; checks the invariants after every attempt.
fn converge(ws: &Ws, old: &str) {
    for _ in 0..6 {
        let out = ws.run(&["run", "--max-wait", "1m"]);
        check_invariants(ws, old);
        let state = ws.state();
        if state["body"]["doc"]["credentials"]["api-signing"].get("rotation").is_none() {
            return;
        }
        assert!(out.code <= 1, "{}", out.all());
    }
    panic!("the rotation did not converge");
}

fn expect_end(ws: &Ws, old: &str, scenario: &Scenario) {
    let served = ws.kids_served("public/jwks.json");
    let state = ws.state();
    let entry = &state["body"]["doc"]["credentials"]["api-signing"];
    assert_eq!(served.len(), 1, "exactly one kid ends up served: {served:?}");
    let kid = ws.env_value("app.env", "SIGNING_KID").unwrap();
    assert_eq!(served[0], kid);
    assert_eq!(entry["current"]["kid"], kid.as_str());
    assert_eq!(entry["kids"].as_object().unwrap().len(), 2, "one new kid was generated, never two");
    if scenario.failing_verify {
        assert_eq!(kid, old, "rolled back to the old kid");
        assert_eq!(entry["last"]["outcome"], "rolled-back");
    } else {
        assert_ne!(kid, old, "exactly one new kid");
        assert_eq!(entry["last"]["outcome"], "completed");
        assert!(entry["previous"].get("secret").is_none(), "the old private half is gone");
    }
    library_verifies(ws);
}

fn sweep(scenario: Scenario) -> usize {
    let base = baseline();
    let old = base.env_value("app.env", "SIGNING_KID").unwrap();
    if scenario.failing_verify {
        base.write("accept-verify", &old);
    }
    let args = ["rotate", "api-signing", "--reason", "crash test", "--max-wait", "1m"];
    let mut points: BTreeSet<(String, Option<String>)> = BTreeSet::new();

    // Kills inside the hooks and probes, while they run; in the rolling-back scenario
    // also inside the rollback's re-run of the deploy hook and its verification of the
    // old key (the calls that carry the old kid).
    let mut inside: Vec<(&str, &str)> = vec![("origin", ""), ("deploy", ""), ("verify", "")];
    if scenario.failing_verify {
        inside.extend([("deploy", old.as_str()), ("verify", old.as_str())]);
    } else {
        inside.push(("retire", ""));
    }
    for (point, kid) in &inside {
        let ws = copy_of(&base);
        assert!(run_killed_inside(&ws, &args, point, kid), "never reached {point} {kid}");
        points.insert(check_invariants(&ws, &old));
        converge(&ws, &old);
        expect_end(&ws, &old, &scenario);
    }
    // Kills right after each log line of an uninterrupted run.
    let mut line = 1;
    loop {
        let ws = copy_of(&base);
        if !ws.run_killed_after_line(&args, line) {
            break;
        }
        points.insert(check_invariants(&ws, &old));
        converge(&ws, &old);
        expect_end(&ws, &old, &scenario);
        line += 1;
    }
    assert!(line > 10, "the sweep saw only {line} log lines");
    eprintln!(
        "crash sweep ({}): {} kills after log lines + {} inside hooks; {} distinct kill points (stage, last journal step):",
        if scenario.failing_verify { "rotation that rolls back" } else { "full rotation" },
        line - 1,
        inside.len(),
        points.len()
    );
    for p in &points {
        eprintln!("  {} / {}", p.0, p.1.as_deref().unwrap_or("-"));
    }
    points.len()
}

#[test]
fn killed_inside_every_stage_of_a_rotation_it_converges() {
    let points = sweep(Scenario { failing_verify: false });
    // due, generated, published (origin, wait), propagated, promoted, verified (drain),
    // drained, retired, and finished: each seen at least once.
    assert!(points >= 12, "{points} kill points");
}

#[test]
fn killed_inside_every_stage_of_a_rollback_it_converges() {
    let points = sweep(Scenario { failing_verify: true });
    assert!(points >= 10, "{points} kill points");
}

#[test]
fn a_second_run_while_the_first_holds_the_lease_waits_then_fails_cleanly() {
    let base = baseline();
    let ws = copy_of(&base);
    ws.write("hold-verify", "");
    let mut first = ws
        .cmd(&["rotate", "api-signing", "--reason", "first"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ws.path("at-verify").exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = ws.run(&["run", "--lease-wait", "3s"]);
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(second.all().contains("is leased by run"), "{}", second.stderr);
    std::fs::remove_file(ws.path("hold-verify")).unwrap();
    assert!(first.wait().unwrap().success());
    let old = base.env_value("app.env", "SIGNING_KID").unwrap();
    expect_end(&ws, &old, &Scenario { failing_verify: false });
}
