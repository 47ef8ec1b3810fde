//! Secret hygiene: a full rotation at the most verbose log level, with scripts that
//! echo secrets into their errors, prints no secret, no line of a PEM and no base64 of
//! a secret.

use base64::Engine;

use crate::support::Ws;

const CONFIG: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: signing
    owner: o
    bootstrap: true
    key: { type: rsa }
    publish: [ { jwks-file: { path: jwks.json } } ]
    promote:
      - file: { path: app.env, set: { KID: "{{ new.kid }}", KEY: "{{ new.private_pem }}" } }
      - command: { run: ./noisy.sh, stdin: "{{ new.private_pem }}" }
    verify:
      - command: { run: ./flaky.sh, args: [signing], stdin: "{{ new.private_jwk }}", retries: 1, interval: 1s }
    gate: none
  - id: webhook
    owner: o
    bootstrap: true
    key: { type: secret, length: 40, prefix: whsec_ }
    env: [HOOK_TOKEN]
    promote:
      - file: { path: hook.env, set: { SECRET: "{{ new.value }}" } }
      - command: { run: ./noisy.sh, stdin: "{{ new.value }}", env: [HOOK_TOKEN] }
    verify:
      - command: { run: ./flaky.sh, args: [webhook], stdin: "{{ new.value }}", retries: 1, interval: 1s }
    gate: none
"#;

/// Prints what it gets (and the token) to stderr, and succeeds.
const NOISY: &str = "#!/bin/sh\ncat >&2\necho \"token=$HOOK_TOKEN\" >&2\n";

/// Prints its stdin to stderr and fails once per kid, then passes.
const FLAKY: &str = "#!/bin/sh\nvalue=$(cat)\nsum=$(printf %s \"$value\" | cksum | cut -d' ' -f1)\nif [ ! -e \"seen-$1-$sum\" ]; then : > \"seen-$1-$sum\"; printf 'rejected %s\\n' \"$value\" >&2; exit 1; fi\n";

const TOKEN: &str = "hooktoken-0123456789abcdef";

fn secrets(ws: &Ws, into: &mut Vec<String>) {
    for (file, key) in [("app.env", "KEY"), ("hook.env", "SECRET")] {
        if let Some(v) = ws.env_value(file, key) {
            into.push(v);
        }
    }
}

#[test]
fn no_secret_reaches_stdout_or_stderr_at_trace_level() {
    let ws = Ws::new();
    ws.config(CONFIG);
    ws.script("noisy.sh", NOISY);
    ws.script("flaky.sh", FLAKY);
    let mut outputs = Vec::new();
    let mut known = vec![TOKEN.to_string()];
    let commands: [&[&str]; 5] = [
        &["-vv", "run", "--max-wait", "1m"],
        &["-vv", "rotate", "signing", "--reason", "hygiene", "--max-wait", "1m"],
        &["-vv", "rotate", "webhook", "--reason", "hygiene", "--max-wait", "1m"],
        &["-vv", "status", "--json"],
        &["-vv", "audit"],
    ];
    for args in commands {
        secrets(&ws, &mut known);
        let out =
            ws.cmd(args).env("ROTAGATE_LOG", "trace").env("HOOK_TOKEN", TOKEN).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    secrets(&ws, &mut known);
    let all = outputs.join("\n");
    assert!(
        all.contains("rejected <redacted>"),
        "the probe's echo was redacted, not dropped:\n{all}"
    );
    assert!(all.contains("DEBUG") || all.contains("TRACE"), "the run logged at its most verbose");

    // The private JWK of the current signing key, as the probe received it.
    let state = ws.state();
    let d = {
        let pem =
            state["body"]["doc"]["credentials"]["signing"]["current"]["secret"].as_str().unwrap();
        let m = rotagate::material::adopt(
            &rotagate::config::KeySpec::Rsa { bits: 2048, kid: Default::default() },
            &rotagate::secret::Secret::new(pem),
            None,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let jwk: serde_json::Value = serde_json::from_str(
            m.field(rotagate::config::template::Field::PrivateJwk).unwrap().expose(),
        )
        .unwrap();
        jwk["d"].as_str().unwrap().to_string()
    };
    known.push(d);
    assert!(known.len() >= 5, "{} secrets collected", known.len());
    for secret in &known {
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        for line in all.lines() {
            assert!(!line.contains(secret.as_str()), "a secret leaked: {line}");
            assert!(!line.contains(&b64), "a secret's base64 leaked: {line}");
            for pem_line in secret.lines().filter(|l| l.len() >= 16 && !l.starts_with("-----")) {
                assert!(!line.contains(pem_line), "a PEM line leaked: {line}");
            }
        }
    }
}
