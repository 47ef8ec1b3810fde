//! The state: readable by the real `age` CLI, refused when forged, replayed or broken,
//! and never changed by a refusal.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::cli::local;

/// Re-encrypts `plaintext` to `recipient` with the age CLI, as an attacker who knows
/// only the public recipient could.
fn age_encrypt(recipient: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut child = Command::new("age")
        .args(["-a", "-r", recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(plaintext).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn the_age_cli_decrypts_the_state_and_private_halves_leave_at_retire() {
    let ws = local();
    assert_eq!(ws.run(&["run"]).code, 0);
    assert_eq!(ws.run(&["rotate", "api-signing", "--reason", "t"]).code, 0);
    let state = ws.state();
    let body = &state["body"];
    assert_eq!(body["format"], 2);
    assert!(body["generation"].as_u64().unwrap() > 10);
    assert!(body["previous"].as_str().unwrap().starts_with("sha256:"));
    let entry = &body["doc"]["credentials"]["api-signing"];
    assert!(entry["current"]["secret"].as_str().unwrap().contains("BEGIN PRIVATE KEY"));
    assert!(entry["previous"].get("secret").is_none(), "the retired private half is gone");
    assert!(entry["previous"]["fingerprint"].is_string(), "its fingerprint stays");
    assert!(entry.get("lease").is_none(), "leases are released");
}

#[test]
fn a_forged_state_is_refused_and_nothing_changes() {
    let ws = local();
    assert_eq!(ws.run(&["run"]).code, 0);
    let mut state = ws.state();
    // An attacker who can write the store but lacks the identity: edit and re-encrypt.
    state["body"]["doc"]["credentials"]["api-signing"]["current"]["kid"] = "attacker-kid".into();
    let forged =
        age_encrypt(&ws.recipient, serde_json::to_string_pretty(&state).unwrap().as_bytes());
    std::fs::write(ws.path(".rotagate/state.age"), &forged).unwrap();
    let env_before = ws.read(".env");
    let jwks_before = ws.read("public/jwks.json");
    for args in [&["rotate", "api-signing", "--reason", "t"][..], &["run"], &["plan"], &["status"]]
    {
        let out = ws.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.all());
        assert!(
            out.all().contains("refusing the state: its MAC does not match its content"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(ws.state_bytes(), forged, "the refused state is left as it was");
    assert_eq!(ws.read(".env"), env_before);
    assert_eq!(ws.read("public/jwks.json"), jwks_before);

    // A state built from scratch by someone else's identity is refused too.
    let other = rotagate::state::StateIdentity::generate();
    let recipients =
        rotagate::state::parse_recipients(std::slice::from_ref(&ws.recipient)).unwrap();
    let (bytes, _) = rotagate::state::seal(
        &Default::default(),
        None,
        &other,
        &recipients,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    std::fs::write(ws.path(".rotagate/state.age"), &bytes).unwrap();
    let out = ws.run(&["run"]);
    assert_eq!(out.code, 1);
    assert!(out.all().contains("written with another identity, or forged"), "{}", out.stderr);
}

#[test]
fn wrong_identity_truncated_state_and_newer_format_are_clear_errors() {
    let ws = local();
    assert_eq!(ws.run(&["run"]).code, 0);
    let good = ws.state_bytes();

    let stranger = rotagate::state::StateIdentity::generate();
    let out = ws
        .cmd(&["run"])
        .env("ROTAGATE_AGE_IDENTITY", stranger.to_secret().expose())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("is not in state.recipients"), "{err}");
    // Listed as a recipient, but the state was never encrypted to it.
    ws.config(
        &crate::support::LOCAL
            .replace("[RECIPIENT]", &format!("[RECIPIENT, {}]", stranger.recipient())),
    );
    let out = ws
        .cmd(&["run"])
        .env("ROTAGATE_AGE_IDENTITY", stranger.to_secret().expose())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("is not one the state was encrypted to"), "{err}");
    assert_eq!(ws.state_bytes(), good);

    std::fs::write(ws.path(".rotagate/state.age"), &good[..good.len() / 2]).unwrap();
    let out = ws.run(&["run"]);
    assert_eq!(out.code, 1);
    assert!(
        out.all().contains("the state is unreadable") && out.all().contains("truncated"),
        "{}",
        out.stderr
    );
    assert_eq!(ws.state_bytes(), &good[..good.len() / 2], "untouched");

    // Damaged, not truncated: one character of the header changed.
    let mut damaged = good.clone();
    let at = damaged.iter().position(|b| *b == b'\n').unwrap() + 5;
    damaged[at] = if damaged[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(ws.path(".rotagate/state.age"), &damaged).unwrap();
    let out = ws.run(&["plan"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("the state file is damaged")
            && out.stderr.contains("restore the last good state")
            && !out.stderr.contains("upgrading"),
        "{}",
        out.stderr
    );

    std::fs::write(ws.path(".rotagate/state.age"), &good).unwrap();
    let mut state = ws.state();
    state["body"]["format"] = 99.into();
    let newer = age_encrypt(&ws.recipient, serde_json::to_string(&state).unwrap().as_bytes());
    std::fs::write(ws.path(".rotagate/state.age"), &newer).unwrap();
    let out = ws.run(&["plan"]);
    assert_eq!(out.code, 1);
    assert!(out.all().contains("written by a newer rotagate (state format 99"), "{}", out.stderr);
}

#[test]
fn a_jwks_file_that_is_not_json_fails_the_step_and_keeps_both() {
    let ws = local();
    assert_eq!(ws.run(&["run"]).code, 0);
    ws.write("public/jwks.json", "{ not json");
    let out = ws.run(&["rotate", "api-signing", "--reason", "t"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("public/jwks.json is not JSON"), "{}", out.stderr);
    assert_eq!(ws.read("public/jwks.json"), "{ not json", "left untouched");
    // The state recorded the failure and is intact; fixing the file lets the next run on.
    let state = ws.state();
    let rotation = &state["body"]["doc"]["credentials"]["api-signing"]["rotation"];
    assert_eq!(rotation["stage"], "generated");
    assert_eq!(rotation["error"]["step"], "publish/0");
    ws.write("public/jwks.json", "{\"keys\": []}");
    let out = ws.run(&["run"]);
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn rekey_moves_the_state_to_a_new_identity_keeping_the_chain() {
    let ws = local();
    assert_eq!(ws.run(&["run"]).code, 0);
    let before = ws.state()["body"]["generation"].as_u64().unwrap();
    let shard_key = || {
        let head = ws.age_decrypt(".rotagate/state.age");
        let sha = head["body"]["doc"]["shard_index"].as_str().unwrap().to_string();
        ws.age_decrypt(&format!(".rotagate/state-credentials/cred-index-{}.age", &sha[..16]))["key"]
            .clone()
    };
    let key_before = shard_key();
    let new = rotagate::state::StateIdentity::generate();
    ws.write("new-identity.txt", new.to_secret().expose());
    ws.config(
        &crate::support::LOCAL.replace("[RECIPIENT]", &format!("[RECIPIENT, {}]", new.recipient())),
    );
    let out = ws.run(&["state", "rekey", "--new-identity-file", "new-identity.txt"]);
    assert_eq!(out.code, 0, "{}", out.all());
    // The old identity can still decrypt (it is a recipient) but no longer verify.
    let old = ws.run(&["status"]);
    assert_eq!(old.code, 1);
    assert!(old.all().contains("another identity"), "{}", old.stderr);
    let out = ws
        .cmd(&["status", "--json"])
        .env("ROTAGATE_AGE_IDENTITY", new.to_secret().expose())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let after = ws.state()["body"]["generation"].as_u64().unwrap();
    assert!(after > before, "the chain continues: {before} -> {after}");
    // A recipient dropped later may hold the old shard key: the shards moved to a new one.
    assert_ne!(shard_key(), key_before);
}

/// Where a listed segment is stored: named by its SHA-256.
fn segment_name(segment: &serde_json::Value) -> String {
    format!("audit-{}", &segment["sha256"].as_str().unwrap()[..16])
}

const ONE_SECRET: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: api-key
    bootstrap: true
    key: { type: secret, length: 32 }
    promote:
      - file: { path: .env, set: { API_KEY: "{{ new.value }}" } }
    drain: 0s
    gate: none
"#;

/// The audit log's older events leave the live state for sealed segments that the age
/// CLI reads; `audit` still shows every event, and a segment that is not the one the
/// state lists is refused.
#[test]
fn older_audit_events_move_to_sealed_segments_and_audit_shows_them_all() {
    let ws = crate::support::Ws::new();
    ws.config(ONE_SECRET);
    assert_eq!(ws.run(&["run"]).code, 0);
    let rotations = 12;
    for _ in 1..rotations {
        let out = ws.run(&["rotate", "api-key", "--reason", "t"]);
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let state = ws.state();
    let doc = &state["body"]["doc"];
    let live = doc["credentials"]["api-key"]["audit"].as_array().unwrap().len();
    let segments = doc["archive"].as_array().unwrap();
    assert!(!segments.is_empty(), "{doc}");
    assert!(live <= 100, "{live} events live");
    let archived: u64 = segments.iter().map(|s| s["events"].as_u64().unwrap()).sum();

    let out = ws.run(&["audit", "api-key", "--json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let lines: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(lines.len() as u64, live as u64 + archived);
    let completed = lines.iter().filter(|l| l["event"] == "completed").count();
    assert_eq!(completed, rotations, "every rotation's end is in the log");
    assert!(lines.windows(2).all(|w| w[0]["at"].as_str() <= w[1]["at"].as_str()));

    // Break-glass: the age CLI opens a segment with the state identity.
    let name = segment_name(&segments[0]);
    let path = ws.path(&format!(".rotagate/state-audit/{name}.age"));
    let plain = Command::new("age")
        .args(["-d", "-i"])
        .arg(ws.path("identity.txt"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(plain.status.success());
    let body: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(body["events"][0]["credential"], "api-key");

    // A rekey seals the segments anew for the new identity; the log stays whole.
    let new = rotagate::state::StateIdentity::generate();
    ws.write("new-identity.txt", new.to_secret().expose());
    ws.config(&ONE_SECRET.replace("[RECIPIENT]", &format!("[RECIPIENT, {}]", new.recipient())));
    let out = ws.run(&["state", "rekey", "--new-identity-file", "new-identity.txt"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let audit_as_new = || {
        ws.cmd(&["audit", "--json"])
            .env("ROTAGATE_AGE_IDENTITY", new.to_secret().expose())
            .output()
            .unwrap()
    };
    let out = audit_as_new();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rekeyed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rekeyed.len(), lines.len());

    // A segment swapped for another that decrypts just as well is refused.
    let name = segment_name(&ws.state()["body"]["doc"]["archive"][0]);
    let path = ws.path(&format!(".rotagate/state-audit/{name}.age"));
    let forged = age_encrypt(&new.recipient(), br#"{"events":[]}"#);
    std::fs::write(&path, forged).unwrap();
    let out = audit_as_new();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("audit segment {name} is not the one the state lists")),
        "{stderr}"
    );
}
