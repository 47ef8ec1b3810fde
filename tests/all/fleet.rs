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
    ws.script(
        "deploy.sh",
        "#!/bin/sh\nmkdir -p deployed\necho \"$(cat)\" >> \"deployed/$1\"\n",
    );
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
    let state = ws.state();
    for i in 0..FLEET {
        let id = format!("svc-{i:02}");
        let entry = &state["body"]["doc"]["credentials"][&id];
        assert!(entry.get("rotation").is_none(), "{id}: still in flight");
        assert!(entry.get("lease").is_none(), "{id}: lease left behind");
        let current = &entry["current"];
        let kid = current["kid"].as_str().unwrap();
        assert_eq!(
            ws.env_value(&format!("env/{id}.env"), "KEY").as_deref(),
            current["secret"].as_str(),
            "{id}: the env file holds the current value"
        );
        let deployed = ws.read(&format!("deployed/{id}"));
        let lines: Vec<&str> = deployed.lines().collect();
        // A hook orphaned by the kill may have read its stdin only in part (empty).
        assert!(
            lines.contains(&kid) && lines.iter().all(|l| *l == kid || l.is_empty()),
            "{id}: deployed {lines:?}, current {kid}"
        );
        assert!(
            lines.len() <= 1 + kills,
            "{id}: deployed {} times after {kills} kill(s)",
            lines.len()
        );
    }
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
        assert_eq!(
            again.code,
            0,
            "after a kill at line {line}: {}",
            again.all()
        );
        check_converged(&ws, 1);
    }
}
