//! A fleet in one state: credentials advance side by side, their saves are group
//! commits, and a run killed anywhere converges with nothing done twice.

use crate::support::Ws;

const FLEET: usize = 12;

/// `FLEET` local credentials, each promoted to its own env file, with a deploy hook that
/// logs the kid it deployed and a verify that reads the env file back.
fn fleet() -> Ws {
    let ws = Ws::new();
    let mut yaml = String::from(
        "version: 1\nstate:\n  store: file:.rotagate/state.age\n  recipients: [RECIPIENT]\ncredentials:\n",
    );
    for i in 0..FLEET {
        yaml.push_str(&format!(
            r#"  - id: svc-{i:02}
    bootstrap: true
    key: {{ type: secret, length: 32 }}
    promote:
      - file: {{ path: env/svc-{i:02}.env, set: {{ KEY: "{{{{ new.value }}}}" }} }}
      - command: {{ run: ./deploy.sh, args: [svc-{i:02}], stdin: "{{{{ new.kid }}}}" }}
    verify:
      - command: {{ run: ./verify.sh, args: [svc-{i:02}], stdin: "{{{{ new.value }}}}" }}
    drain: 0s
    gate: none
"#
        ));
    }
    ws.config(&yaml);
    ws.script("deploy.sh", "#!/bin/sh\nmkdir -p deployed\necho \"$(cat)\" >> \"deployed/$1\"\n");
    ws.script(
        "verify.sh",
        "#!/bin/sh\ngrep -qx \"KEY=$(cat)\" \"env/$1.env\" || { echo \"env/$1.env holds another key\" >&2; exit 1; }\n",
    );
    ws
}

/// Every credential finished its first issuance: its env file holds the current value,
/// its deploy hook saw exactly that kid (never another, at most once more after a kill
/// inside it), and no lease or rotation is left.
fn check_converged(ws: &Ws, kills: usize) {
    for (id, kid) in check_settled(ws) {
        let deployed = ws.read(&format!("deployed/{id}"));
        let lines: Vec<&str> = deployed.lines().collect();
        // A hook orphaned by the kill may have read its stdin only in part (empty).
        assert!(
            lines.contains(&kid.as_str()) && lines.iter().all(|l| *l == kid || l.is_empty()),
            "{id}: deployed {lines:?}, current {kid}"
        );
        assert!(
            lines.len() <= 1 + kills,
            "{id}: deployed {} times after {kills} kill(s)",
            lines.len()
        );
    }
}

/// Every credential is settled (no rotation, no lease) and its env file holds its
/// current value. Returns each credential's current kid.
fn check_settled(ws: &Ws) -> Vec<(String, String)> {
    let state = ws.state();
    (0..FLEET)
        .map(|i| {
            let id = format!("svc-{i:02}");
            let entry = &state["body"]["doc"]["credentials"][&id];
            assert!(entry.get("rotation").is_none(), "{id}: still in flight");
            assert!(entry.get("lease").is_none(), "{id}: lease left behind");
            let current = &entry["current"];
            assert_eq!(
                ws.env_value(&format!("env/{id}.env"), "KEY").as_deref(),
                current["secret"].as_str(),
                "{id}: the env file holds the current value"
            );
            (id, current["kid"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn a_fleet_run_saves_in_waves_not_per_credential_step() {
    let ws = fleet();
    let out = ws.run(&["run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    check_converged(&ws, 0);
    let generation = ws.state()["body"]["generation"].as_u64().unwrap();
    // Saves come in waves: the fleet takes about as many as one credential alone (hooks
    // ending at different times split a few waves), not one per credential step.
    let single = fleet();
    let only = single.run(&["run", "--only", "svc-00"]);
    assert_eq!(only.code, 0, "{}", only.all());
    let alone = single.state()["body"]["generation"].as_u64().unwrap();
    assert!(
        generation <= 2 * alone,
        "{FLEET} credentials took {generation} saves, one alone {alone}"
    );
    // With one step slot the commands run one at a time, and the result is the same.
    let serial = fleet();
    let out = serial.run(&["run", "--concurrency", "1"]);
    assert_eq!(out.code, 0, "{}", out.all());
    check_converged(&serial, 0);
}

#[test]
fn a_fleet_run_killed_mid_batch_converges_with_nothing_done_twice() {
    // Log lines 1..: leases, then each stage of every credential, interleaved.
    for line in [1, 5, 17, 30, 48, 70, 95] {
        let ws = fleet();
        let killed = ws.run_killed_after_line(&["run"], line);
        assert!(killed, "the run finished before log line {line}");
        let again = ws.run(&["run"]);
        assert_eq!(again.code, 0, "after a kill at line {line}: {}", again.all());
        check_converged(&ws, 1);
    }
}

/// The shard file of `id`, as the head lists it.
fn shard_path(ws: &Ws, id: &str) -> String {
    let head = ws.age_decrypt(".rotagate/state.age");
    let sha = ws.shard_list(&head)[id].as_str().unwrap().to_string();
    format!(".rotagate/state-credentials/cred-{}.age", &sha[..16])
}

#[test]
fn settled_credentials_live_in_shards_and_an_incident_reads_only_its_own() {
    let ws = fleet();
    assert_eq!(ws.run(&["run"]).code, 0);
    let head = ws.age_decrypt(".rotagate/state.age");
    assert_eq!(head["body"]["format"], 2);
    assert_eq!(head["body"]["doc"]["credentials"], serde_json::json!({}), "nothing in flight");
    assert_eq!(ws.shard_list(&head).len(), FLEET);
    // Each shard's file key is wrapped to the recipients (what `age -d` above used) and
    // to the index's shard key (what rotagate reads a fleet with).
    let header = std::fs::read(ws.path(&shard_path(&ws, "svc-00"))).unwrap();
    let header = String::from_utf8_lossy(&header[..200]);
    assert!(header.contains("\n-> X25519 ") && header.contains("\n-> rotagate-shard "), "{header}");

    // Another credential's shard gone: an incident on svc-00 never reads it...
    let before = ws.state()["body"]["doc"]["credentials"]["svc-00"]["current"]["kid"].clone();
    let other = shard_path(&ws, "svc-05");
    let other_bytes = std::fs::read(ws.path(&other)).unwrap();
    std::fs::remove_file(ws.path(&other)).unwrap();
    let out = ws.run(&["rotate", "svc-00", "--reason", "incident"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let head = ws.age_decrypt(".rotagate/state.age");
    assert_eq!(ws.shard_list(&head).len(), FLEET);
    // ...but a command over the fleet does, and refuses a state it cannot read whole.
    let out = ws.run(&["plan"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("the shard of svc-05") && out.stderr.contains("is missing"),
        "{}",
        out.stderr
    );
    std::fs::write(ws.path(&other), &other_bytes).unwrap();
    let state = ws.state();
    assert_ne!(
        state["body"]["doc"]["credentials"]["svc-00"]["current"]["kid"], before,
        "svc-00 rotated"
    );
    check_settled(&ws);

    // A shard swapped for another credential's, or re-encrypted by someone holding only
    // the public recipient, is refused: the head's MACed hash names the exact bytes.
    let victim = shard_path(&ws, "svc-01");
    std::fs::copy(ws.path(&shard_path(&ws, "svc-02")), ws.path(&victim)).unwrap();
    let out = ws.run(&["status"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("the shard of svc-01 (cred-")
            && out.stderr.contains("is not the one the state lists"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_format_1_state_is_read_and_upgraded_in_place() {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    let ws = fleet();
    assert_eq!(ws.run(&["run"]).code, 0);
    // What a format-1 build wrote: every entry in the one document, no shards. Sealed
    // here the way envelope.rs documents it (HKDF-SHA-256 of the identity keys an
    // HMAC-SHA-256 over the exact body bytes), as an independent check of the format.
    let mut state = ws.state();
    let body = &mut state["body"];
    body["format"] = 1.into();
    body["doc"].as_object_mut().unwrap().remove("shard_index");
    let body_json = serde_json::to_string(body).unwrap();
    let identity = ws.identity.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).unwrap();
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"rotagate/state-mac/v1"), identity.as_bytes());
    let mut key = [0u8; 32];
    hk.expand(b"hmac-sha256", &mut key).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(body_json.as_bytes());
    let tag = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let plaintext = format!("{{\n\"body\": {body_json},\n\"mac\": \"{tag}\"\n}}\n");
    let mut age = std::process::Command::new("age")
        .args(["-a", "-r", &ws.recipient, "-o"])
        .arg(ws.path(".rotagate/state.age"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut age.stdin.take().unwrap(), plaintext.as_bytes()).unwrap();
    assert!(age.wait().unwrap().success());
    std::fs::remove_dir_all(ws.path(".rotagate/state-credentials")).unwrap();

    let plan = ws.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.stdout.contains("svc-11: nothing"), "{}", plan.stdout);
    // The first save writes format 2, every settled entry in its shard.
    let out = ws.run(&["rotate", "svc-03", "--reason", "after the upgrade"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let head = ws.age_decrypt(".rotagate/state.age");
    assert_eq!(head["body"]["format"], 2);
    assert_eq!(ws.shard_list(&head).len(), FLEET);
    assert_eq!(head["body"]["doc"]["credentials"], serde_json::json!({}));
    check_settled(&ws);
    assert_eq!(ws.run(&["status"]).code, 0);
}
