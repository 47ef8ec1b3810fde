//! Helpers shared by the integration tests: scratch workspaces, the binary, the
//! library with a manual clock, and the real `age` CLI.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rotagate::clock::ManualClock;
use rotagate::config::LoadedConfig;
use rotagate::http::{HttpClient, RetryPolicy};
use rotagate::pipeline::{FixedEnv, GateFactory, Runtime, StandardGates};
use rotagate::secret::Secret;
use rotagate::state::{FileStore, RunIdentity, StateIdentity, Vault, parse_recipients};
use rotagate::step::Providers;

pub mod aws;
pub mod github;
pub mod kubernetes;
pub mod postgres;
pub mod server;
pub mod tls;
pub mod vault;
pub mod vercel;

pub const BIN: &str = env!("CARGO_BIN_EXE_rotagate");

/// A scratch directory with a state identity.
pub struct Ws {
    pub dir: tempfile::TempDir,
    pub identity: String,
    pub recipient: String,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Ws {
    pub fn new() -> Ws {
        let id = StateIdentity::generate();
        let ws = Ws {
            dir: tempfile::tempdir().unwrap(),
            identity: id.to_secret().expose().to_string(),
            recipient: id.recipient(),
        };
        ws.write("identity.txt", &format!("{}\n", ws.identity));
        ws
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Writes rotagate.yaml with RECIPIENT replaced.
    pub fn config(&self, yaml: &str) {
        self.write("rotagate.yaml", &yaml.replace("RECIPIENT", &self.recipient));
    }

    pub fn script(&self, rel: &str, body: &str) {
        self.write(rel, body);
        make_executable(&self.path(rel));
    }

    /// The binary, in this workspace, with the identity in its environment and nothing
    /// of the CI's own environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("GITHUB_")
                || k.starts_with("ROTAGATE_")
                || k.starts_with("RUNNER_")
                || k.starts_with("ACTIONS_")
            {
                c.env_remove(k);
            }
        }
        c.env("ROTAGATE_AGE_IDENTITY", &self.identity);
        c
    }

    /// Runs the binary and kills it with SIGKILL right after its `line`-th log line.
    /// Returns whether it was killed (false: it finished first).
    pub fn run_killed_after_line(&self, args: &[&str], line: usize) -> bool {
        kill_after_line(self.cmd(args), line)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().unwrap().into()
    }

    /// The state as the `age` CLI decrypts it (the break-glass path).
    /// The state as an operator reads it at break-glass: the head decrypted with the
    /// age CLI, and each credential its shard index lists (and the head does not hold
    /// whole, being newer) decrypted from `state-credentials/` and put in its place
    /// under `credentials`.
    pub fn state(&self) -> serde_json::Value {
        let mut state = self.age_decrypt(".rotagate/state.age");
        for (id, sha) in self.shard_list(&state) {
            if state["body"]["doc"]["credentials"].get(&id).is_some() {
                continue;
            }
            let sha = sha.as_str().unwrap();
            let shard =
                self.age_decrypt(&format!(".rotagate/state-credentials/cred-{}.age", &sha[..16]));
            assert_eq!(shard["credential"], id.as_str(), "the shard listed for {id}");
            state["body"]["doc"]["credentials"][&id] = shard["entry"].clone();
        }
        state
    }

    /// The shards the shard index named by `head` (the decrypted head) lists: each
    /// credential with its shard's SHA-256.
    pub fn shard_list(
        &self,
        head: &serde_json::Value,
    ) -> serde_json::Map<String, serde_json::Value> {
        let Some(sha) = head["body"]["doc"]["shard_index"].as_str() else {
            return serde_json::Map::new();
        };
        let index =
            self.age_decrypt(&format!(".rotagate/state-credentials/cred-index-{}.age", &sha[..16]));
        index["shards"].as_object().cloned().unwrap()
    }

    /// `age -d` of the file at `rel` with the workspace's identity, as JSON.
    pub fn age_decrypt(&self, rel: &str) -> serde_json::Value {
        let out = Command::new("age")
            .args(["-d", "-i"])
            .arg(self.path("identity.txt"))
            .arg(self.path(rel))
            .output()
            .expect("the age CLI is installed (scripts/install-test-deps)");
        assert!(
            out.status.success(),
            "age -d {rel} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn state_bytes(&self) -> Vec<u8> {
        std::fs::read(self.path(".rotagate/state.age")).unwrap_or_default()
    }

    pub fn kids_served(&self, rel: &str) -> Vec<String> {
        let text = self.read(rel);
        if text.is_empty() {
            return Vec::new();
        }
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn env_value(&self, rel: &str, key: &str) -> Option<String> {
        rotagate::actions::read_env_file(&self.path(rel)).unwrap().get(key).map(|v| v.to_string())
    }

    pub fn loaded(&self) -> LoadedConfig {
        rotagate::config::load(&self.path("rotagate.yaml")).unwrap()
    }

    /// The library's view: a vault on this workspace's file store.
    pub async fn vault(&self) -> Vault {
        let identity = StateIdentity::parse(&Secret::new(self.identity.clone())).unwrap();
        let config = self.loaded();
        Vault::open(
            Box::new(FileStore::new(self.path(".rotagate/state.age"), "file:.rotagate/state.age")),
            identity,
            parse_recipients(&config.config.state.recipients).unwrap(),
            RunIdentity::current(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap()
    }
}

pub fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A runtime on a manual clock, with a fixed environment.
pub fn runtime(clock: Arc<ManualClock>, env: &[(&str, &str)]) -> Runtime {
    runtime_with_gates(
        clock,
        env,
        Arc::new(StandardGates { providers: Providers::default(), repo: None }),
    )
}

pub fn runtime_with_gates(
    clock: Arc<ManualClock>,
    env: &[(&str, &str)],
    gates: Arc<dyn GateFactory>,
) -> Runtime {
    let retry = RetryPolicy {
        attempts: 2,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_server_wait: Duration::from_secs(5),
    };
    Runtime {
        clock,
        http: HttpClient::new(retry).unwrap(),
        env: Arc::new(FixedEnv(
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        )),
        gates,
        providers: Providers::default(),
        progress: Arc::new(rotagate::pipeline::Quiet),
    }
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(time::macros::datetime!(2026-11-23 10:00 UTC)))
}

/// A kid-checking probe script, like the one README's local example names.
pub const CHECK_KID: &str = r#"#!/bin/sh
set -eu
kid=$(cat)
grep -q "\"kid\": \"$kid\"" public/jwks.json
"#;

/// The local credential of DESIGN.md, with one env file carrying kid and key together.
pub const LOCAL: &str = r#"version: 1
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
      - file: { path: .env, set: { SIGNING_KID: "{{ new.kid }}", SIGNING_KEY: "{{ new.private_pem }}" } }
    verify:
      - command: { run: "./scripts/check-kid.sh", stdin: "{{ new.kid }}" }
    drain: 0s
    gate: none
"#;

impl Ws {
    /// The binary, talking to `fake` as the GitHub App, working in `repo`.
    pub fn gh_cmd(&self, fake: &github::FakeGitHub, repo: &str, args: &[&str]) -> Command {
        let mut c = self.cmd(args);
        c.env("GITHUB_API_URL", fake.url())
            .env("ROTAGATE_GITHUB_APP_ID", github::APP_ID.to_string())
            .env("ROTAGATE_GITHUB_APP_KEY", &fake.app_key_pem)
            .env("GITHUB_REPOSITORY", repo);
        c
    }

    /// Runs the binary without blocking the runtime the fake server lives on.
    pub async fn gh(&self, fake: &github::FakeGitHub, repo: &str, args: &[&str]) -> Run {
        self.gh_env(fake, repo, args, &[]).await
    }

    pub async fn gh_env(
        &self,
        fake: &github::FakeGitHub,
        repo: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let mut cmd = tokio::process::Command::from(self.gh_cmd(fake, repo, args));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().await.unwrap().into()
    }
}

/// Runs `cmd` and kills it with SIGKILL right after its `line`-th log line. Returns
/// whether it was killed (false: it finished first).
pub fn kill_after_line(mut cmd: Command, line: usize) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = 0;
    let mut killed = false;
    for l in BufReader::new(stderr).lines() {
        let Ok(l) = l else { break };
        if l.contains("INFO") || l.contains("WARN") {
            seen += 1;
            if seen == line {
                child.kill().unwrap();
                killed = true;
                break;
            }
        }
    }
    child.wait().unwrap();
    killed
}
