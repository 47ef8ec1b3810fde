//! Backup encryption key (age recipients): a new identity is made, its recipient goes
//! where backups are encrypted, a round trip proves it, the old identity stays in the
//! state until `retain` passes, then it is dropped.

use std::process::Command;
use std::time::Duration;

use rotagate::pipeline::{self, Outcome, RunOptions};

use crate::support::{Ws, clock, runtime};

pub const CONFIG: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [STATE_RECIPIENT]
credentials:
  - id: backup-key
    owner: vps-ops
    bootstrap: true
    key: { type: age, retain: 400d }
    schedule: { every: 90d }
    promote:
      - file: { path: backup.env, set: { OFFSITE_BACKUP_AGE_RECIPIENT: "{{ new.recipient }}" } }
    verify:
      - command: { run: ./scripts/backup-roundtrip.sh, stdin: "{{ new.value }}" }
    drain: 0s
    gate: none
"#;

fn age_encrypt(recipient: &str, text: &str, out: &std::path::Path) {
    use std::io::Write;
    let mut child = Command::new("age")
        .args(["-r", recipient, "-o"])
        .arg(out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

fn age_decrypt(identity: &str, file: &std::path::Path, dir: &std::path::Path) -> Option<String> {
    let id = dir.join("id.tmp");
    std::fs::write(&id, identity).unwrap();
    let out = Command::new("age").arg("-d").arg("-i").arg(&id).arg(file).output().unwrap();
    std::fs::remove_file(&id).unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_backup_identity_round_trips_and_the_old_one_is_kept_until_retain_passes() {
    let ws = Ws::new();
    ws.write("rotagate.yaml", &CONFIG.replace("STATE_RECIPIENT", &ws.recipient));
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/scripts/backup-roundtrip.sh"
    ))
    .unwrap();
    ws.script("scripts/backup-roundtrip.sh", &text);
    let clock = clock();
    let rt = runtime(clock.clone(), &[]);
    let run = async || {
        let mut vault = ws.vault().await;
        let opts = RunOptions { max_wait: Duration::ZERO, ..RunOptions::default() };
        pipeline::run(&ws.loaded(), &mut vault, &rt, &opts).await.unwrap().credentials[0]
            .outcome
            .clone()
    };
    let recipient = || ws.env_value("backup.env", "OFFSITE_BACKUP_AGE_RECIPIENT").unwrap();

    let outcome = run().await;
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let first = recipient();
    assert!(first.starts_with("age1"));
    // A nightly backup, encrypted to the live recipient.
    let old_backup = ws.path("backup-1.tar.age");
    age_encrypt(&first, "nightly backup 1", &old_backup);

    clock.advance(Duration::from_secs(91 * 86_400));
    let outcome = run().await;
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let second = recipient();
    assert_ne!(first, second);

    // The old identity is still in the state, whole, and still opens the old backup.
    let state = ws.state();
    let retained = &state["body"]["doc"]["credentials"]["backup-key"]["retained"];
    assert_eq!(retained.as_array().unwrap().len(), 1, "{retained}");
    assert_eq!(retained[0]["recipient"], first.as_str());
    let old_identity = retained[0]["secret"].as_str().unwrap().to_string();
    assert_eq!(
        age_decrypt(&old_identity, &old_backup, ws.dir.path()).as_deref(),
        Some("nightly backup 1")
    );
    let current = &state["body"]["doc"]["credentials"]["backup-key"]["current"];
    let new_identity = current["secret"].as_str().unwrap();
    assert!(
        age_decrypt(new_identity, &old_backup, ws.dir.path()).is_none(),
        "the new identity cannot open old backups: that is why the old one is kept"
    );

    // Before retain passes, a run keeps it; after, it is dropped and audited.
    clock.advance(Duration::from_secs(80 * 86_400));
    run().await;
    let state = ws.state();
    assert!(state["body"]["doc"]["credentials"]["backup-key"]["retained"][0]["secret"].is_string());
    clock.advance(Duration::from_secs(330 * 86_400));
    run().await;
    let state = ws.state();
    let entry = &state["body"]["doc"]["credentials"]["backup-key"];
    let still: Vec<&str> = entry["retained"]
        .as_array()
        .map(|r| r.iter().filter_map(|m| m["recipient"].as_str()).collect())
        .unwrap_or_default();
    assert!(!still.contains(&first.as_str()), "{still:?}");
    assert!(!state.to_string().contains(&old_identity), "the old identity left the state");
    let audit = entry["audit"].as_array().unwrap();
    assert!(audit.iter().any(|e| e["event"] == "retained-dropped"));
}
