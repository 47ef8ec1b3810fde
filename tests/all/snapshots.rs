//! The whole CLI output of `plan`, `status`, `check`, `audit` and config errors, as
//! insta snapshots (`tests/all/snapshots/`): a change to what an operator reads shows up
//! in review. Times, rotation ids, date kids and fingerprints are filtered.

use crate::support::Ws;

const FLEET: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: api-signing
    owner: platform
    bootstrap: true
    key: { type: rsa, bits: 2048, kid: { date: "prod-key-" } }
    schedule: { every: 90d, warn: 14d }
    publish:
      - jwks-file: { path: public/jwks.json }
    promote:
      - file: { path: .env, set: { SIGNING_KID: "{{ new.kid }}" } }
    drain: 0s
    gate: none
  - id: session
    owner: "@acme/web"
    key: { type: secret, length: 40 }
    promote:
      - file: { path: session.env, set: { SESSION: "{{ new.value }}" } }
    gate: none
"#;

fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\d{8}T\d{6}Z-[0-9a-f]{6}", "[ROTATION]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]"),
        (r"prod-key-\d{4}-\d{2}-\d{2}", "prod-key-[DATE]"),
        (r"\b\d{4}-\d{2}-\d{2}\b", "[DATE]"),
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "[UUID]"),
        // base64url: a fingerprint may start or end with `-`, where `\b` finds no boundary.
        (r"(^|[^A-Za-z0-9_-])[A-Za-z0-9_-]{43}([^A-Za-z0-9_-]|$)", "${1}[FINGERPRINT]${2}"),
    ]
}

/// Runs `args` and snapshots what it printed on stdout and stderr, with its exit code.
fn snapshot(ws: &Ws, name: &str, args: &[&str]) {
    let out = ws.run(args);
    let text = format!(
        "$ rotagate {}\nexit {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.code,
        out.stdout,
        out.stderr
    );
    insta::with_settings!({ filters => filters(), prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn the_inventory_commands_print_what_an_operator_reads() {
    let ws = Ws::new();
    ws.config(FLEET);
    snapshot(&ws, "plan_before_the_first_run", &["plan"]);
    snapshot(&ws, "run", &["run"]);
    snapshot(&ws, "plan", &["plan"]);
    snapshot(&ws, "status", &["status"]);
    snapshot(&ws, "check", &["check"]);
    snapshot(&ws, "audit", &["audit"]);
}

#[test]
fn config_errors_print_every_mistake_with_its_line() {
    let ws = Ws::new();
    ws.config(
        &FLEET
            .replace("length: 40", "length: 8")
            .replace("{{ new.value }}", "{{ new.valu }}")
            .replace("owner: platform", "owner: platform\n    env: [GITHUB_TOKEN]"),
    );
    snapshot(&ws, "config_errors", &["plan"]);
    ws.config(&FLEET.replace("drain: 0s", "drain: 5 minuts"));
    snapshot(&ws, "config_parse_error", &["plan"]);
}

#[test]
fn status_shows_a_failing_rotation_at_a_glance() {
    let ws = Ws::new();
    ws.config(
        r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: api-token
    owner: platform
    bootstrap: true
    key: { type: secret, length: 40 }
    schedule: { every: 30d }
    promote:
      - file: { path: app.env, set: { TOKEN: "{{ new.value }}" } }
    verify:
      - command: { run: ./ready.sh }
    on_verify_failure: hold
    gate: none
"#,
    );
    ws.script("ready.sh", "#!/bin/sh\necho the service is not ready >&2\nexit 1\n");
    snapshot(&ws, "run_held", &["run"]);
    snapshot(&ws, "status_failing", &["status"]);
    snapshot(&ws, "check_failing", &["check"]);
}

#[test]
fn a_stale_hard_expiry_and_a_lifetime_are_reported() {
    let ws = Ws::new();
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(400)).date();
    ws.config(&format!(
        r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: legacy
    owner: platform
    key: {{ type: secret, length: 40 }}
    schedule: {{ every: 90d, expires: {expires} }}
    promote:
      - file: {{ path: legacy.env, set: {{ TOKEN: "{{{{ new.value }}}}" }} }}
    gate: none
  - id: short-lived
    owner: platform
    bootstrap: true
    key: {{ type: secret, length: 40 }}
    schedule: {{ every: 30d, lifetime: 60d }}
    promote:
      - file: {{ path: short.env, set: {{ TOKEN: "{{{{ new.value }}}}" }} }}
    gate: none
"#
    ));
    let adopt = ws
        .cmd(&["adopt", "legacy", "--from-env", "LIVE"])
        .env("LIVE", "live-token-value-0123456789abcdef")
        .output()
        .unwrap();
    assert!(adopt.status.success());
    assert_eq!(ws.run(&["run"]).code, 0);
    snapshot(&ws, "check_before_rotating", &["check"]);
    let rotated = ws.run(&["rotate", "legacy", "--reason", "test"]);
    assert_eq!(rotated.code, 0, "{}", rotated.all());
    snapshot(&ws, "check_stale_expiry", &["check"]);
    snapshot(&ws, "status_lifetime", &["status"]);
}
