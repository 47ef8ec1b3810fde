//! The CLI end to end on the local credential: exit codes, plan, status, check, audit.

use crate::support::{CHECK_KID, LOCAL, Ws};

pub fn local() -> Ws {
    let ws = Ws::new();
    ws.config(LOCAL);
    ws.script("scripts/check-kid.sh", CHECK_KID);
    ws
}

#[test]
fn a_full_local_rotation_then_plan_changes_nothing() {
    let ws = local();
    let first = ws.run(&["run"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let kid1 = ws.env_value(".env", "SIGNING_KID").unwrap();
    assert_eq!(ws.kids_served("public/jwks.json"), vec![kid1.clone()]);

    let rotated = ws.run(&["rotate", "api-signing", "--reason", "test"]);
    assert_eq!(rotated.code, 0, "{}", rotated.all());
    let kid2 = ws.env_value(".env", "SIGNING_KID").unwrap();
    assert_ne!(kid1, kid2);
    assert_eq!(kid2, format!("{kid1}-2"), "a second date kid the same day is suffixed");
    assert_eq!(ws.kids_served("public/jwks.json"), vec![kid2.clone()]);

    let before = ws.state_bytes();
    let plan = ws.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.stdout.contains("api-signing: nothing: next due"), "{}", plan.stdout);
    let plan_json = ws.run(&["plan", "--json"]);
    let items: serde_json::Value = serde_json::from_str(&plan_json.stdout).unwrap();
    assert_eq!(items[0]["action"], "nothing");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["check"],
        &["audit"],
        &["audit", "api-signing", "--json"],
    ] {
        let out = ws.run(args);
        assert!(out.code == 0, "{args:?}: {}", out.all());
    }
    assert_eq!(ws.state_bytes(), before, "read-only commands leave the state byte for byte");

    let status: serde_json::Value =
        serde_json::from_str(&ws.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status[0]["kid"], kid2);
    let audit: serde_json::Value =
        serde_json::from_str(&ws.run(&["audit", "--json"]).stdout).unwrap();
    let events: Vec<&str> =
        audit.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events.iter().filter(|e| **e == "completed").count(), 2, "{events:?}");
}

#[test]
fn first_issuance_needs_bootstrap_and_unknown_ids_are_usage_errors() {
    let ws = local();
    ws.config(&LOCAL.replace("    bootstrap: true\n", ""));
    let out = ws.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("no key yet: adopt the live one"), "{}", out.stderr);
    assert!(!ws.exists("public/jwks.json"), "nothing was issued");
    let out = ws.run(&["rotate", "nope", "--reason", "x"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.all().contains("credential `nope` is not in the config"), "{}", out.stderr);
    let out = ws.run(&["run", "--bootstrap"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(ws.kids_served("public/jwks.json").len(), 1);
}

#[test]
fn usage_errors_exit_2_and_a_missing_identity_says_what_to_set() {
    let ws = local();
    assert_eq!(ws.run(&["frobnicate"]).code, 2);
    assert_eq!(ws.run(&["rotate", "api-signing"]).code, 2, "--reason is required");
    let out = ws.cmd(&["plan"]).env_remove("ROTAGATE_AGE_IDENTITY").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("set ROTAGATE_AGE_IDENTITY or pass --identity-file")
    );
    let out = ws
        .cmd(&["--identity-file", "identity.txt", "plan"])
        .env_remove("ROTAGATE_AGE_IDENTITY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_flags_due_expired_and_ownerless_keys() {
    let ws = local();
    ws.config(&format!(
        "{LOCAL}{}",
        r#"  - id: expiring-cert
    owner: "@acme/platform-oncall"
    key: { type: rsa }
    schedule: { every: 365d, warn: 14d, expires: 2020-01-01 }
  - id: orphan
    key: { type: secret, length: 40, prefix: whsec_ }
    schedule: { every: 90d }
  - id: undated
    owner: someone
    key: { type: secret }
"#
    ));
    assert_eq!(ws.run(&["run", "--only", "api-signing"]).code, 0);
    let out = ws.run(&["check", "--json"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let findings: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let codes: Vec<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (f["credential"].as_str().unwrap().to_string(), f["code"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(codes.contains(&("expiring-cert".into(), "expired".into())), "{codes:?}");
    assert!(codes.contains(&("orphan".into(), "ownerless".into())), "{codes:?}");
    assert!(codes.contains(&("undated".into(), "no-schedule".into())), "{codes:?}");
    assert!(!codes.iter().any(|(c, _)| c == "api-signing"), "{codes:?}");
    let human = ws.run(&["check"]);
    assert!(
        human.stdout.contains("error: expiring-cert (owner @acme/platform-oncall): expired"),
        "{}",
        human.stdout
    );
}

#[test]
fn init_scaffolds_a_config_that_runs() {
    let ws = crate::support::Ws::new();
    let out = ws.run(&["init", "--identity-out", "id.txt"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(ws.read("rotagate.yaml").contains("age1"));
    let mode = std::fs::metadata(ws.path("id.txt")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    assert!(ws.read(".gitignore").lines().any(|l| l == "id.txt"));
    for name in ["rotate-scheduled.yml", "rotate-incident.yml", "rotate-approval.yml"] {
        let written = ws.read(&format!(".github/workflows/{name}"));
        let shipped =
            std::fs::read_to_string(format!("{}/workflows/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert_eq!(written, shipped, "{name}");
    }
    assert!(
        !ws.exists(".github/workflows/rotate-matrix.yml"),
        "the matrix replaces the scheduled workflow only with --matrix"
    );
    let again = ws.run(&["init", "--identity-out", "id2.txt"]);
    assert_eq!(again.code, 2, "an existing config is not overwritten");
    let run = ws
        .cmd(&["--identity-file", "id.txt", "run"])
        .env_remove("ROTAGATE_AGE_IDENTITY")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(ws.kids_served("public/jwks.json").len(), 1);
}

/// clap lists a global flag given through its environment variable in a usage line as
/// if it were required; `rotate`'s is spelt out.
#[test]
fn rotate_without_a_reason_shows_a_usage_line_without_global_flags() {
    let ws = local();
    let out = ws
        .cmd(&["rotate", "api-signing"])
        .env("ROTAGATE_IDENTITY_FILE", ws.path("identity.txt"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("Usage: rotagate rotate [OPTIONS] --reason <REASON> <ID>")
            && !err.contains("--identity-file"),
        "{err}"
    );
}

#[test]
fn the_demo_runs_to_completion() {
    let ws = crate::support::Ws::new();
    let out = ws.run(&["demo", "--dir", "demo"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("rolled back: verify/0 failed"), "{}", out.stdout);
    // A kid is public: the refusal names it.
    assert!(
        out.all().contains("the service refuses kid prod-key-")
            && !out.all().contains("kid <redacted>"),
        "{}",
        out.all()
    );
    // The try-it lines name the binary that ran, which `cargo run` leaves off PATH.
    assert!(
        out.all().contains(&format!(
            "{} --identity-file demo-identity.txt plan",
            env!("CARGO_BIN_EXE_rotagate")
        )),
        "{}",
        out.all()
    );
    let served = ws.kids_served("demo/public/jwks.json");
    assert_eq!(served.len(), 1);
    assert_eq!(ws.env_value("demo/service/signing.env", "SIGNING_KID").unwrap(), served[0]);
}

#[test]
fn a_file_store_is_refused_under_actions_unless_allowed() {
    let ws = local();
    ws.write("event.json", r#"{"repository":{"default_branch":"main"}}"#);
    let on_main = |args: &[&str]| {
        let mut c = ws.cmd(args);
        c.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_REF", "refs/heads/main")
            .env("GITHUB_EVENT_NAME", "schedule")
            .env("GITHUB_EVENT_PATH", ws.path("event.json"));
        c
    };
    let out = on_main(&["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a runner's disk does not outlast the job")
    );
    assert!(!ws.exists(".rotagate/state.age"));
    let out = on_main(&["run"]).env("ROTAGATE_ALLOW_EPHEMERAL_STATE", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn adopt_records_live_material_from_a_file_or_the_environment() {
    let ws = local();
    ws.config(&format!(
        "{}{}",
        LOCAL.replace("    bootstrap: true\n", ""),
        "  - id: webhook\n    owner: o\n    key: { type: secret, length: 32, prefix: whsec_ }\n    promote: [ { file: { path: hook.env, set: { SECRET: \"{{ new.value }}\" } } } ]\n    gate: none\n"
    ));
    let live = rotagate::material::generate(
        &rotagate::config::KeySpec::Rsa { bits: 2048, kid: Default::default() },
        "x".into(),
        None,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    ws.write("live.pem", live.secret.as_ref().unwrap().expose());
    let out = ws.run(&["adopt", "api-signing", "--from-file", "live.pem", "--kid", "live-kid"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.all().contains("adopted kid live-kid"), "{}", out.stderr);
    let again = ws.run(&["adopt", "api-signing", "--from-file", "live.pem", "--kid", "live-kid"]);
    assert!(again.all().contains("already current; nothing changed"), "{}", again.stderr);
    let out = ws
        .cmd(&["adopt", "webhook", "--from-env", "LIVE_HOOK"])
        .env("LIVE_HOOK", "whsec_live0123456789abcdef")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ws.run(&["adopt", "webhook", "--from-env", "GITHUB_TOKEN"]);
    assert_eq!(out.code, 2, "reserved variables are never read");
    let out = ws.run(&["adopt", "webhook"]);
    assert_eq!(out.code, 2, "a source is required");
    let state = ws.state();
    assert_eq!(
        state["body"]["doc"]["credentials"]["api-signing"]["current"]["fingerprint"],
        live.fingerprint.as_str()
    );
    assert_eq!(state["body"]["doc"]["credentials"]["webhook"]["current"]["source"], "adopted");
}

/// GitHub's git refs API for rotagate's repository: `v<version>` is an annotated tag
/// whose object is `commit`.
async fn tag_server(version: &'static str, commit: &'static str) -> String {
    use axum::routing::get;
    let tag_object = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
    let app = axum::Router::new()
        .route(
            &format!("/repos/rotagate/rotagate/git/ref/tags/v{version}"),
            get(move || async move {
                axum::Json(serde_json::json!({
                    "ref": format!("refs/tags/v{version}"),
                    "object": { "type": "tag", "sha": tag_object }
                }))
            }),
        )
        .route(
            &format!("/repos/rotagate/rotagate/git/tags/{tag_object}"),
            get(move || async move {
                axum::Json(serde_json::json!({
                    "tag": format!("v{version}"), "sha": tag_object,
                    "object": { "type": "commit", "sha": commit }
                }))
            }),
        );
    format!("http://{}", crate::support::server::serve(app).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn init_of_a_release_build_pins_the_workflows_to_its_tags_commit() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c";
    let api = tag_server(version, commit).await;
    let ws = Ws::new();
    let mut cmd = ws.cmd(&["init", "--identity-out", "id.txt"]);
    cmd.env("ROTAGATE_INIT_PIN_RELEASE", "1").env("GITHUB_API_URL", &api);
    let out: crate::support::Run =
        tokio::process::Command::from(cmd).output().await.unwrap().into();
    assert_eq!(out.code, 0, "{}", out.all());
    let scheduled = ws.read(".github/workflows/rotate-scheduled.yml");
    assert!(
        scheduled.contains(&format!("- uses: rotagate/rotagate@{commit} # v{version}\n")),
        "{scheduled}"
    );
    assert!(!scheduled.contains("before v"), "{scheduled}");

    // No such tag (or no network): the embedded pin stays, with a warning saying so.
    let ws = Ws::new();
    let mut cmd = ws.cmd(&["init", "--identity-out", "id.txt"]);
    cmd.env("ROTAGATE_INIT_PIN_RELEASE", "1").env("GITHUB_API_URL", format!("{api}/nothing-here"));
    let out: crate::support::Run =
        tokio::process::Command::from(cmd).output().await.unwrap().into();
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.all()
            .contains(&format!("warning: cannot look up the commit of rotagate's v{version} tag")),
        "{}",
        out.all()
    );
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workflows/rotate-scheduled.yml"
    ))
    .unwrap();
    assert_eq!(ws.read(".github/workflows/rotate-scheduled.yml"), shipped);
}

#[test]
fn the_release_workflow_tags_its_own_sums_then_pins_and_goes_through_a_pull_request() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.github/workflows/release.yml"
    ))
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let build = &doc["jobs"]["build"]["steps"];
    let build_env = build.as_sequence().unwrap().iter().find(|s| s["name"] == "Build").unwrap();
    assert_eq!(build_env["env"]["ROTAGATE_RELEASE_BUILD"], "1");
    let release =
        doc["jobs"].as_mapping().unwrap().values().find(|j| j["needs"] == "build").unwrap();
    let script: String =
        release["steps"].as_sequence().unwrap().iter().filter_map(|s| s["run"].as_str()).collect();
    let at = |needle: &str| {
        script.find(needle).unwrap_or_else(|| panic!("release.yml does not run `{needle}`"))
    };
    // sums → commit → tag (the tag holds its sums) → pins to the tag's commit → push the
    // tag and a branch → release → pull request.
    let order = [
        at("sha256sum rotagate-*"),
        at("git commit -m \"sums/$VERSION"),
        at("git tag \"v$VERSION\""),
        at("release_sha=\"$(git rev-parse HEAD)\""),
        at("\\# v${VERSION}#\" workflows/*.yml"),
        at("git push \"$remote\" \"v$VERSION\" \"HEAD:refs/heads/$branch\""),
        at("gh release create \"v$VERSION\""),
        at("gh pr create"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(
        !script.contains("HEAD:${GITHUB_REF_NAME}"),
        "nothing is pushed to the protected default branch"
    );
    assert!(script.contains("--verify-tag"));
}
