//! Every config in examples/ loads, and runs its lifecycle here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use rotagate::clock::Clock;
use rotagate::pipeline::{self, Outcome, RunOptions, StandardGates};
use rotagate::secret::Secret;
use rotagate::state::{GithubBranchStore, RunIdentity, StateIdentity, Vault, parse_recipients};
use rotagate::step::Providers;
use serde_json::json;

use crate::support::github::FakeGitHub;
use crate::support::{Ws, clock, runtime_with_gates, server};

const EXAMPLE_RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn examples_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
}

/// A workspace holding `name` (with this workspace's recipient) and the example scripts.
pub fn example(name: &str) -> Ws {
    let ws = Ws::new();
    let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
    ws.write("rotagate.yaml", &text.replace(EXAMPLE_RECIPIENT, &ws.recipient));
    for entry in std::fs::read_dir(examples_dir().join("scripts")).unwrap() {
        let entry = entry.unwrap();
        let rel = format!("scripts/{}", entry.file_name().to_string_lossy());
        ws.script(&rel, &std::fs::read_to_string(entry.path()).unwrap());
    }
    ws
}

#[test]
fn every_example_loads_and_is_exercised_below() {
    let exercised = [
        "01-local-jwks.yaml",
        "github-jwks.yaml",
        "001-key-expiry.yaml",
        "004-credential-inventory.yaml",
        "000-idp-signing-key.yaml",
        "002-jwks-auth-service.yaml",
        "003-bff.yaml",
        "vault-kv.yaml",
        "kubernetes-secret.yaml",
        "aws.yaml",
    ];
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let loaded = rotagate::config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
            assert!(exercised.contains(&name.as_str()), "{name} has no lifecycle test");
        }
    }
}

#[test]
fn local_jwks_rotates_and_rolls_back() {
    let ws = example("01-local-jwks.yaml");
    let out = ws.run(&["run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let first = ws.env_value(".env", "SIGNING_KID").unwrap();
    let pem = ws.read("secrets/signing.pem");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let out = ws.run(&["rotate", "api-signing", "--reason", "scheduled"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let second = ws.env_value(".env", "SIGNING_KID").unwrap();
    assert_ne!(first, second);
    assert_eq!(ws.kids_served("public/jwks.json"), vec![second.clone()]);
    assert_ne!(ws.read("secrets/signing.pem"), pem);

    // A rotation whose check fails (the env file is pinned back) rolls back by itself.
    ws.script("scripts/check-kid.sh", &format!("#!/bin/sh\n[ \"$(cat)\" = \"{second}\" ]\n"));
    let out = ws.run(&["rotate", "api-signing", "--reason", "bad"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("rolled back"), "{}", out.stderr);
    assert_eq!(ws.env_value(".env", "SIGNING_KID").unwrap(), second);
    assert_eq!(ws.kids_served("public/jwks.json"), vec![second]);
}

const HOME: &str = "acme/ops";
const READINESS_TOKEN: &str = "internal-probe-token";

/// Stands in for GitHub Pages (the JWKS as committed to acme/site) and for the API,
/// whose readiness endpoint reports the kid of its last deploy.
async fn pages_and_api(fake: Arc<FakeGitHub>) -> String {
    let pages = fake.clone();
    let router = axum::Router::new()
        .route(
            "/site/.well-known/jwks.json",
            get(move || {
                let fake = pages.clone();
                async move {
                    match fake.file("acme/site", "main", ".well-known/jwks.json") {
                        Some(text) => (StatusCode::OK, text),
                        None => (StatusCode::NOT_FOUND, String::new()),
                    }
                }
            }),
        )
        .route(
            "/internal/readiness",
            get(move |headers: HeaderMap| {
                let fake = fake.clone();
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some(&format!("Bearer {READINESS_TOKEN}"))
                    {
                        return (StatusCode::UNAUTHORIZED, "{}".to_string());
                    }
                    // A deploy reads the secrets as they are when its run starts.
                    let deployed = fake
                        .runs("acme/api", "deploy.yml")
                        .last()
                        .and(fake.secret("acme/api", "SIGNING_KID"));
                    let body = json!({ "status": "ready", "signing": { "kid": deployed } });
                    (StatusCode::OK, body.to_string())
                }
            }),
        );
    format!("http://{}", server::serve(router).await)
}

async fn github_vault(ws: &Ws, fake: &FakeGitHub, home: &str) -> Vault {
    let config = ws.loaded();
    Vault::open(
        Box::new(GithubBranchStore::new(fake.client(None), home.into(), "rotagate-state".into())),
        StateIdentity::parse(&Secret::new(ws.identity.clone())).unwrap(),
        parse_recipients(&config.config.state.recipients).unwrap(),
        RunIdentity::current(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn github_jwks_runs_to_its_gate_and_retires_once_the_approval_is_merged() {
    let fake = Arc::new(FakeGitHub::start().await);
    for repo in [HOME, "acme/api", "acme/site"] {
        fake.add_repo(repo);
    }
    fake.add_org("acme");
    fake.install("acme");
    fake.set_permission(HOME, "alice", "write");
    fake.set_permission(HOME, "bob", "write");
    fake.add_team_member("acme", "security", "alice");
    let origin = pages_and_api(fake.clone()).await;

    let ws = example("github-jwks.yaml");
    let text = ws.read("rotagate.yaml");
    ws.write(
        "rotagate.yaml",
        &text
            .replace("https://acme.github.io", &origin)
            .replace("https://api.acme.example", &origin),
    );
    let clock = clock();
    let providers = Providers { github: Some(fake.client(None)), ..Default::default() };
    let mut rt = runtime_with_gates(
        clock.clone(),
        &[("READINESS_TOKEN", READINESS_TOKEN)],
        Arc::new(StandardGates { providers: providers.clone(), repo: Some(HOME.into()) }),
    );
    rt.providers = providers;
    let run = async || {
        let config = ws.loaded();
        let mut vault = github_vault(&ws, &fake, HOME).await;
        let opts = RunOptions { max_wait: Duration::ZERO, ..RunOptions::default() };
        let report = pipeline::run(&config, &mut vault, &rt, &opts).await.unwrap();
        report.credentials[0].outcome.clone()
    };
    let kids = || -> Vec<String> {
        fake.file("acme/site", "main", ".well-known/jwks.json")
            .map(|t| serde_json::from_str::<serde_json::Value>(&t).unwrap())
            .map(|d| {
                d["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["kid"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };

    // First issuance: published, then promoted once Pages serves the key.
    let waiting = run().await;
    assert!(
        matches!(&waiting, Outcome::Waiting { what, .. } if what.contains("propagat")),
        "{waiting:?}"
    );
    clock.advance(Duration::from_secs(10 * 60));
    assert!(matches!(run().await, Outcome::Completed { .. }));
    let kid1 = fake.secret("acme/api", "SIGNING_KID").unwrap();
    assert_eq!(kids(), vec![kid1.clone()]);

    // Due after 90 days: runs until the retire gate, one wait at a time.
    clock.advance(Duration::from_secs(90 * 86_400));
    let mut outcome = run().await;
    let mut runs = 1;
    while let Outcome::Waiting { until, .. } = &outcome {
        clock.advance((*until - clock.now()).unsigned_abs());
        outcome = run().await;
        runs += 1;
        assert!(runs < 10, "{outcome:?}");
    }
    let Outcome::AwaitingGate { gate, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(gate, "retire");
    let kid2 = fake.secret("acme/api", "SIGNING_KID").unwrap();
    assert_ne!(kid1, kid2);
    assert_eq!(kids(), vec![kid1.clone(), kid2.clone()], "both served at the gate");
    assert_eq!(fake.runs("acme/api", "deploy.yml").len(), 2, "one redeploy per promote");

    // A scheduled run before the merge leaves it waiting, with one pull request.
    assert!(matches!(run().await, Outcome::AwaitingGate { .. }));
    let pulls = fake.pulls(HOME);
    assert_eq!(pulls.len(), 1);
    fake.approve(HOME, pulls[0].number, "alice");
    fake.merge(HOME, pulls[0].number, "bob");
    let done = run().await;
    assert!(matches!(&done, Outcome::Completed { kid, .. } if *kid == kid2), "{done:?}");
    assert_eq!(kids(), vec![kid2.clone()], "the old key is gone");
    assert!(fake.branch_head(HOME, "rotagate-state").is_some());
    let now = clock.now();
    assert!(matches!(run().await, Outcome::Idle { next_due: Some(at) } if at > now));
}

#[tokio::test(flavor = "multi_thread")]
async fn key_expiry_flags_the_warning_window_the_hard_expiry_and_the_missing_owner() {
    use rotagate::inventory::{Severity, check};
    let ws = example("001-key-expiry.yaml");
    let store = ws
        .read("rotagate.yaml")
        .replace("github-branch:rotagate-state", "file:.rotagate/state.age");
    ws.write("rotagate.yaml", &store);
    let config = ws.loaded();
    // The live keys, adopted as they are (each carries its config's hard expiry).
    let clock =
        Arc::new(rotagate::clock::ManualClock::new(time::macros::datetime!(2026-09-10 09:00 UTC)));
    let rt = crate::support::runtime(clock.clone(), &[]);
    let mut vault = ws.vault().await;
    let rsa = || rotagate::material::rsa::generate(2048).unwrap().private_pem;
    for (id, live) in [
        ("partner-api-key", Secret::new("sk_live_0123456789abcdefghijABCDEFGHIJ0123456789")),
        ("capability-issuer", rsa()),
        ("node-federation", rsa()),
    ] {
        pipeline::adopt(
            &config,
            &mut vault,
            &rt,
            &RunOptions::default(),
            id,
            &live,
            None,
            None,
            false,
        )
        .await
        .unwrap();
    }
    let findings = |date: time::OffsetDateTime| {
        check(&config, &vault.doc, date)
            .into_iter()
            .map(|f| (f.credential, f.code, f.severity))
            .collect::<Vec<_>>()
    };

    // 2026-12-02: the partner key (due 2026-12-09) is inside its 14-day warning
    // window, the issuer is past its hard expiry (2026-12-01), the node key has no owner.
    let now = findings(time::macros::datetime!(2026-12-02 09:00 UTC));
    assert!(
        now.contains(&("partner-api-key".into(), "expiring".into(), Severity::Warning)),
        "{now:?}"
    );
    assert!(
        now.contains(&("capability-issuer".into(), "expired".into(), Severity::Error)),
        "{now:?}"
    );
    assert!(
        now.contains(&("node-federation".into(), "ownerless".into(), Severity::Error)),
        "{now:?}"
    );
    assert_eq!(now.len(), 3, "{now:?}");
    // A week before, the issuer was already due (a rotation would have started).
    let before = findings(time::macros::datetime!(2026-11-25 09:00 UTC));
    assert!(
        before.contains(&("capability-issuer".into(), "due".into(), Severity::Error)),
        "{before:?}"
    );

    // The binary says the same, with the owner, and fails.
    let out = ws.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("node-federation"), "{}", out.all());
    assert!(out.all().contains("no owner"), "{}", out.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn credential_inventory_rotates_every_entry_and_rolls_one_back() {
    let (console_url, console) = crate::minted::console().await;
    let cluster = crate::support::postgres::Cluster::start();
    cluster
        .admin()
        .await
        .batch_execute("CREATE ROLE silver_a LOGIN; CREATE ROLE silver_b LOGIN;")
        .await
        .unwrap();
    let ws = example("004-credential-inventory.yaml");
    let tally = Arc::new(crate::webhook::Tally::default());
    let receiver = crate::webhook::receiver(ws.dir.path().to_path_buf(), tally.clone()).await;
    let run = |args: &[&str]| {
        let mut c = ws.cmd(args);
        c.env("SEQN_CONSOLE_URL", &console_url)
            .env("SEQN_ADMIN_TOKEN", crate::minted::ADMIN)
            .env("RECEIVER_URL", &receiver)
            .env("PG_ADMIN_URL", cluster.admin_url());
        crate::support::Run::from(c.output().unwrap())
    };
    let env = |file: &str, key: &str| ws.env_value(file, key).unwrap();

    let first = run(&["run"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let status = run(&["status"]);
    for id in [
        "seqn-secret-key",
        "webhook-signing-secret",
        "session-secret",
        "silver-postgres-password",
        "offsite-backup-key",
    ] {
        assert!(status.stdout.contains(id), "{}", status.all());
    }
    let before = (
        env("backend.env", "SEQN_SECRET_KEY"),
        env("sender.env", "WEBHOOK_SECRET"),
        env("silver.env", "SESSION_SECRET"),
        env("silver.env", "SILVER_POSTGRES_PASSWORD"),
        env("backup.env", "OFFSITE_BACKUP_AGE_RECIPIENT"),
    );
    assert_eq!(console.live(), vec!["key_1"]);
    assert!(cluster.can_login("silver_a", &before.3).await);

    // Every entry rotates through its own path.
    for id in [
        "seqn-secret-key",
        "webhook-signing-secret",
        "session-secret",
        "silver-postgres-password",
        "offsite-backup-key",
    ] {
        let out = run(&["rotate", id, "--reason", "quarterly hygiene"]);
        assert_eq!(out.code, 0, "{id}: {}", out.all());
    }
    assert_ne!(env("backend.env", "SEQN_SECRET_KEY"), before.0);
    assert_eq!(console.live(), vec!["key_2"], "the old sk_live_ key was revoked");
    assert_ne!(env("sender.env", "WEBHOOK_SECRET"), before.1);
    assert_eq!(
        std::fs::read_to_string(ws.path("receiver.env")).unwrap().lines().count(),
        1,
        "one receiver slot once the old is cleared"
    );
    assert_ne!(env("silver.env", "SESSION_SECRET"), before.2);
    assert_eq!(env("silver.env", "SILVER_POSTGRES_USER"), "silver_b");
    assert!(cluster.can_login("silver_b", &env("silver.env", "SILVER_POSTGRES_PASSWORD")).await);
    assert!(!cluster.can_login("silver_a", &before.3).await);
    assert_ne!(env("backup.env", "OFFSITE_BACKUP_AGE_RECIPIENT"), before.4);
    assert!(ws.read("recreated.log").lines().count() >= 6);

    // A receiver that reads only its live slot: the verification's test event with the
    // new secret is rejected and the rotation rolls back to the live secret and slot.
    let live = env("sender.env", "WEBHOOK_SECRET");
    let slots = ws.read("receiver.env");
    let idle =
        if slots.starts_with("WEBHOOK_SECRET_A") { "WEBHOOK_SECRET_B" } else { "WEBHOOK_SECRET_A" };
    *tally.ignored_slot.lock().unwrap() = Some(idle.to_string());
    let out = run(&["rotate", "webhook-signing-secret", "--reason", "exposed"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("rolled back"), "{}", out.all());
    assert_eq!(env("sender.env", "WEBHOOK_SECRET"), live);
    assert_eq!(ws.read("receiver.env"), slots);

    // Nothing secret reached the output; check has nothing to say.
    let check = run(&["check"]);
    assert_eq!(check.code, 0, "{}", check.all());
    for value in [&before.0, &before.1, &before.2, &before.3, &live] {
        assert!(!first.all().contains(value.as_str()));
        assert!(!out.all().contains(value.as_str()));
    }
}

/// An example run on a manual clock against the fake GitHub (its home repository keeps
/// the state branch and the approval pull requests), approving and merging each gate's
/// pull request as two people with write access.
struct Gated {
    ws: Ws,
    fake: Arc<FakeGitHub>,
    home: &'static str,
    clock: Arc<rotagate::clock::ManualClock>,
    rt: rotagate::pipeline::Runtime,
    /// Gates met, in order.
    gates: std::sync::Mutex<Vec<String>>,
}

impl Gated {
    async fn new(
        ws: Ws,
        home: &'static str,
        env: &[(&str, &str)],
        vercel: Option<rotagate::vercel::Vercel>,
    ) -> Gated {
        let fake = Arc::new(FakeGitHub::start().await);
        fake.add_repo(home);
        let owner = home.split('/').next().unwrap();
        fake.add_org(owner);
        fake.install(owner);
        fake.set_permission(home, "alice", "write");
        fake.set_permission(home, "bob", "write");
        let clock = clock();
        let providers = Providers { github: Some(fake.client(None)), vercel, ..Default::default() };
        let mut rt = runtime_with_gates(
            clock.clone(),
            env,
            Arc::new(StandardGates { providers: providers.clone(), repo: Some(home.into()) }),
        );
        rt.providers = providers;
        Gated { ws, fake, home, clock, rt, gates: Default::default() }
    }

    async fn vault(&self) -> Vault {
        github_vault(&self.ws, &self.fake, self.home).await
    }

    fn opts() -> RunOptions {
        RunOptions { max_wait: Duration::ZERO, ..RunOptions::default() }
    }

    async fn run(&self, id: &str) -> Outcome {
        let mut vault = self.vault().await;
        let mut opts = Self::opts();
        opts.only = vec![id.to_string()];
        let report = pipeline::run(&self.ws.loaded(), &mut vault, &self.rt, &opts).await.unwrap();
        report.credentials[0].outcome.clone()
    }

    async fn rotate(&self, id: &str, emergency: bool) -> Outcome {
        let mut vault = self.vault().await;
        let report = pipeline::rotate(
            &self.ws.loaded(),
            &mut vault,
            &self.rt,
            &Self::opts(),
            id,
            "example test",
            emergency,
        )
        .await
        .unwrap();
        report.credentials[0].outcome.clone()
    }

    async fn adopt(&self, id: &str, live: &Secret, kid: &str) {
        let mut vault = self.vault().await;
        pipeline::adopt(
            &self.ws.loaded(),
            &mut vault,
            &self.rt,
            &Self::opts(),
            id,
            live,
            Some(kid.into()),
            None,
            false,
        )
        .await
        .unwrap();
    }

    /// Runs `id` until it completes or rolls back: waits are waited out on the clock and
    /// each gate's pull request is approved by alice and merged by bob.
    async fn settle(&self, id: &str, mut outcome: Outcome) -> Outcome {
        for _ in 0..100 {
            match &outcome {
                Outcome::Waiting { until, .. } => {
                    self.clock.advance((*until - self.clock.now()).unsigned_abs());
                }
                Outcome::AwaitingGate { gate, .. } => {
                    self.gates.lock().unwrap().push(gate.clone());
                    let open: Vec<u64> = self
                        .fake
                        .pulls(self.home)
                        .into_iter()
                        .filter(|p| p.state == "open")
                        .map(|p| p.number)
                        .collect();
                    assert_eq!(open.len(), 1, "one pull request per gate: {open:?}");
                    self.fake.approve(self.home, open[0], "alice");
                    self.fake.merge(self.home, open[0], "bob");
                }
                _ => return outcome,
            }
            outcome = self.run(id).await;
        }
        panic!("{id} did not settle: {outcome:?}");
    }

    fn gates_met(&self) -> Vec<String> {
        std::mem::take(&mut *self.gates.lock().unwrap())
    }
}

/// A 308 from `apex` to the same path on localhost:`to`, as apier.no → www.apier.no.
async fn apex_redirect(to: u16) -> String {
    let router = axum::Router::new().fallback(move |uri: axum::http::Uri| async move {
        axum::response::Response::builder()
            .status(StatusCode::PERMANENT_REDIRECT)
            .header("location", format!("http://localhost:{to}{}", uri.path()))
            .body(axum::body::Body::empty())
            .unwrap()
    });
    format!("http://{}", server::serve(router).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn idp_signing_key_goes_through_the_portal_gates_flips_in_vercel_and_rolls_back() {
    use crate::support::vercel::{FakeVercel, TOKEN};
    let vercel = FakeVercel::start().await;
    vercel.add_project("apier", Some("team_apier"));
    for (k, v) in [("MASKINPORTEN_MODE", "live"), ("MASKINPORTEN_CLIENT_ID", "apier-client")] {
        vercel.set("apier", k, v, "encrypted", &["production"]);
    }
    let only_kid = Arc::new(std::sync::Mutex::new(None));
    let www = crate::vercel::readiness(vercel.clone(), "apier", only_kid.clone()).await;
    let www_port: u16 = www.rsplit(':').next().unwrap().parse().unwrap();
    let apex = apex_redirect(www_port).await;

    let ws = example("000-idp-signing-key.yaml");
    let text = ws.read("rotagate.yaml");
    ws.write(
        "rotagate.yaml",
        &text
            .replace("https://apier.no", &apex)
            .replace("www.apier.no", &format!("\"localhost:{www_port}\"")),
    );
    let hook = vercel.deploy_hook("apier");
    let g = Gated::new(
        ws,
        "apier/ops",
        &[("DEPLOY_HOOK_URL", &hook), ("INTERNAL_API_SECRET", "internal-SECRET-1")],
        Some(crate::vercel::vercel_client(&vercel, TOKEN)),
    )
    .await;
    let id = "maskinporten-signing";
    let pair = || {
        (
            vercel.value("apier", "MASKINPORTEN_KID").unwrap(),
            vercel.value("apier", "MASKINPORTEN_PRIVATE_KEY").unwrap(),
        )
    };

    // The live key, adopted; Vercel holds it.
    let live = rotagate::material::rsa::generate(2048).unwrap().private_pem;
    let live_kid = "6f1c2d9e-0000-4000-8000-000000000001";
    vercel.set("apier", "MASKINPORTEN_KID", live_kid, "sensitive", &["production"]);
    vercel.set("apier", "MASKINPORTEN_PRIVATE_KEY", live.expose(), "sensitive", &["production"]);
    g.adopt(id, &live, live_kid).await;

    // A rotation: the upload gate, the flip, the probe through the 308, the drain, the
    // deletion gate.
    let first = g.rotate(id, false).await;
    let Outcome::AwaitingGate { gate, .. } = &first else {
        panic!("{first:?}");
    };
    assert_eq!(gate, "publish");
    assert_eq!(pair().0, live_kid, "nothing flips before the portal has the key");
    let pull = g.fake.pulls("apier/ops").pop().unwrap();
    assert!(pull.body.contains("sjolvbetjening.samarbeid.digdir.no"), "{}", pull.body);
    assert!(!pull.body.contains("PRIVATE KEY"));
    let done = g.settle(id, first).await;
    assert!(matches!(done, Outcome::Completed { .. }), "{done:?}");
    assert_eq!(g.gates_met(), vec!["publish", "retire"]);
    let (kid2, key2) = pair();
    assert_ne!(kid2, live_kid);
    assert!(key2.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_ne!(key2, live.expose());
    let retire_pull = g.fake.pulls("apier/ops").pop().unwrap();
    assert!(retire_pull.body.contains(&format!("Delete kid {live_kid}")), "{}", retire_pull.body);
    assert_eq!(vercel.value("apier", "MASKINPORTEN_MODE").unwrap(), "live");

    // The next one's new key fails boot validation: readiness answers 503, the probe
    // retries, then both values go back together and the app is redeployed on them.
    *only_kid.lock().unwrap() = Some(kid2.clone());
    let outcome = g.rotate(id, false).await;
    let rolled = g.settle(id, outcome).await;
    assert!(matches!(rolled, Outcome::RolledBack { .. }), "{rolled:?}");
    assert_eq!(pair(), (kid2.clone(), key2.clone()));
    let last = vercel.deployments("apier").pop().unwrap();
    assert_eq!(last.get("MASKINPORTEN_KID"), Some(&kid2));
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_auth_service_propagates_before_signing_and_the_emergency_skips_the_waits() {
    let ws = example("002-jwks-auth-service.yaml");
    // auth.example.com serves the JWKS as committed to the service's repository.
    let fake_slot: Arc<std::sync::Mutex<Option<Arc<FakeGitHub>>>> = Default::default();
    let slot = fake_slot.clone();
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let fake = slot.lock().unwrap().clone().unwrap();
            async move {
                match fake.file("acme/auth-service", "main", "config/jwks.json") {
                    Some(text) => (StatusCode::OK, text),
                    None => (StatusCode::NOT_FOUND, String::new()),
                }
            }
        }),
    );
    let origin = format!("http://{}", server::serve(router).await);
    let text = ws.read("rotagate.yaml");
    ws.write("rotagate.yaml", &text.replace("https://auth.example.com", &origin));
    let g = Gated::new(ws, "acme/ops", &[], None).await;
    g.fake.add_repo("acme/auth-service");
    g.fake.add_environment("acme/auth-service", "production");
    *fake_slot.lock().unwrap() = Some(g.fake.clone());
    let id = "macp-auth-signing";
    let served = || -> Vec<String> {
        g.fake
            .file("acme/auth-service", "main", "config/jwks.json")
            .map(|t| serde_json::from_str::<serde_json::Value>(&t).unwrap())
            .map(|d| {
                d["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["kid"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let signing = || -> serde_json::Value {
        let text = g
            .fake
            .env_secret("acme/auth-service", "production", "MACP_AUTH_SIGNING_KEY_JSON")
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };

    // The live key, adopted; the service's JWKS serves it.
    let live = rotagate::material::rsa::generate(2048).unwrap();
    let live_jwk =
        rotagate::material::rsa::private_jwk(&live.private_pem, "prod-key-2026-08-25").unwrap();
    let public =
        rotagate::material::rsa::public_jwk(&live.public_components, "prod-key-2026-08-25");
    g.fake.push_file(
        "acme/auth-service",
        "main",
        "config/jwks.json",
        &json!({ "keys": [public] }).to_string(),
    );
    g.adopt(id, &live_jwk, "prod-key-2026-08-25").await;

    // A rotation: the secret changes only after the JWKS has served the new key for
    // the cache TTL.
    let waiting = g.rotate(id, false).await;
    assert!(
        matches!(&waiting, Outcome::Waiting { what, .. } if what.contains("propagat")),
        "{waiting:?}"
    );
    assert!(
        g.fake
            .env_secret("acme/auth-service", "production", "MACP_AUTH_SIGNING_KEY_JSON")
            .is_none(),
        "not signing with it yet"
    );
    let kid2 = "prod-key-2026-11-23";
    assert_eq!(served(), vec!["prod-key-2026-08-25".to_string(), kid2.to_string()]);
    let done = g.settle(id, waiting).await;
    assert!(matches!(done, Outcome::Completed { .. }), "{done:?}");
    assert_eq!(g.gates_met(), vec!["retire"]);
    let jwk = signing();
    assert_eq!(jwk["kid"], kid2);
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk["d"].is_string(), "a private JWK");
    assert_eq!(served(), vec![kid2.to_string()]);

    // A deploy of the next key fails: the rotation rolls back, the secret holds the
    // live key again (redeployed, and that deploy succeeds), and the new public key
    // leaves the JWKS after the drain.
    g.fake.accept_only_input(
        "acme/auth-service",
        "deploy.yml",
        "reason",
        &format!("signing key {kid2}"),
    );
    let failing = g.rotate(id, false).await;
    let rolled = g.settle(id, failing).await;
    assert!(matches!(rolled, Outcome::RolledBack { .. }), "{rolled:?}");
    assert_eq!(signing()["kid"], kid2);
    assert_eq!(served(), vec![kid2.to_string()]);
    g.fake.accept_any_input("acme/auth-service", "deploy.yml");
    g.gates_met();

    // Emergency: the key leaked. No propagation wait, no drain, no gate: one run.
    let emergency = g.rotate(id, true).await;
    assert!(matches!(emergency, Outcome::Completed { .. }), "{emergency:?}");
    assert!(g.gates_met().is_empty());
    let kid3 = signing()["kid"].as_str().unwrap().to_string();
    assert_eq!(
        kid3, "prod-key-2026-11-23-3",
        "the third rotation today; the rolled-back -2 is never reused"
    );
    assert_eq!(served(), vec![kid3.clone()], "the compromised key is gone at once");

    // The compromised key can never come back.
    let mut vault = g.vault().await;
    assert_eq!(vault.doc.credentials[id].revoked.len(), 1);
    let leaked = Secret::new(jwk.to_string());
    let refused = pipeline::adopt(
        &g.ws.loaded(),
        &mut vault,
        &g.rt,
        &Gated::opts(),
        id,
        &leaked,
        None,
        None,
        true,
    )
    .await;
    assert!(refused.is_err(), "a revoked key is never adopted");
}

/// The IdP (admin API minting client secrets, a token endpoint) and the BFF (its JWKS
/// and health, from the files rotagate writes) of runbook 003.
#[derive(Default)]
struct Bff {
    /// Client secrets the IdP accepts: (id, secret).
    secrets: std::sync::Mutex<Vec<(String, String)>>,
    minted: std::sync::atomic::AtomicUsize,
    /// Refuse client secrets minted after this many (a bad new secret).
    refuse_after: std::sync::Mutex<Option<usize>>,
}

async fn idp_and_bff(dir: std::path::PathBuf, bff: Arc<Bff>) -> String {
    use axum::extract::{Path as UrlPath, State};
    use axum::routing::{delete, post};
    use std::sync::atomic::Ordering;
    const ADMIN: &str = "Bearer idp-admin-SECRET";
    let router = axum::Router::new()
        .route(
            "/admin/clients/bff/secrets",
            post(|State((_, b)): State<(std::path::PathBuf, Arc<Bff>)>, h: HeaderMap| async move {
                if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(ADMIN) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                let n = b.minted.fetch_add(1, Ordering::SeqCst) + 1;
                let (id, secret) =
                    (format!("cs_{n}"), format!("bffsecret{}", uuid::Uuid::new_v4().simple()));
                b.secrets.lock().unwrap().push((id.clone(), secret.clone()));
                (StatusCode::CREATED, json!({ "id": id, "secret": secret }).to_string())
            }),
        )
        .route(
            "/admin/clients/bff/secrets/{id}",
            delete(
                |State((_, b)): State<(std::path::PathBuf, Arc<Bff>)>,
                 UrlPath(id): UrlPath<String>,
                 h: HeaderMap| async move {
                    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(ADMIN) {
                        return StatusCode::UNAUTHORIZED;
                    }
                    b.secrets.lock().unwrap().retain(|(i, _)| *i != id);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/token",
            post(|State((_, b)): State<(std::path::PathBuf, Arc<Bff>)>, body: String| async move {
                let form: std::collections::BTreeMap<String, String> =
                    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let given = form.get("client_secret").cloned().unwrap_or_default();
                let limit = *b.refuse_after.lock().unwrap();
                let ok = b.secrets.lock().unwrap().iter().any(|(id, s)| {
                    *s == given
                        && limit.is_none_or(|l| {
                            id.trim_start_matches("cs_").parse::<usize>().unwrap() <= l
                        })
                });
                if ok {
                    (
                        StatusCode::OK,
                        json!({ "access_token": "at", "token_type": "Bearer" }).to_string(),
                    )
                } else {
                    (StatusCode::UNAUTHORIZED, json!({ "error": "invalid_client" }).to_string())
                }
            }),
        )
        .route(
            "/.well-known/jwks.json",
            get(|State((dir, _)): State<(std::path::PathBuf, Arc<Bff>)>| async move {
                match std::fs::read_to_string(dir.join("keys/jwks.json")) {
                    Ok(t) => (StatusCode::OK, t),
                    Err(_) => (StatusCode::NOT_FOUND, String::new()),
                }
            }),
        )
        .route(
            "/healthz",
            get(|State((dir, _)): State<(std::path::PathBuf, Arc<Bff>)>| async move {
                // The BFF refuses to start with a salt or CSRF key that is too short.
                let ready = ["secrets/csrf_secret_key", "secrets/token_hash_salt"]
                    .iter()
                    .all(|f| std::fs::read_to_string(dir.join(f)).map_or(true, |v| v.len() >= 64));
                if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
            }),
        )
        .with_state((dir, bff));
    format!("http://{}", server::serve(router).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn bff_secrets_keep_their_grace_windows_and_salts_wait_for_their_maintenance_window() {
    let ws = example("003-bff.yaml");
    let bff = Arc::new(Bff::default());
    let url = idp_and_bff(ws.dir.path().to_path_buf(), bff.clone()).await;
    let dir = ws.dir.path().to_path_buf();
    let g = Gated::new(
        ws,
        "acme/ops",
        &[("IDP_URL", &url), ("IDP_ADMIN_TOKEN", "idp-admin-SECRET"), ("BFF_URL", &url)],
        None,
    )
    .await;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let kids = || g.ws.kids_served("keys/jwks.json");

    // The salts' first issuance (nothing live to disrupt yet).
    for id in ["bff-token-hash-salt", "bff-csrf-secret-key"] {
        let first = g.run(id).await;
        let done = g.settle(id, first).await;
        assert!(matches!(done, Outcome::Completed { .. }), "{id}: {done:?}");
    }
    g.gates_met();

    // A CSRF rotation changes nothing until its maintenance window is approved.
    let csrf = read("secrets/csrf_secret_key");
    let waiting = g.rotate("bff-csrf-secret-key", false).await;
    assert!(matches!(&waiting, Outcome::AwaitingGate { gate, .. } if gate == "promote"));
    assert_eq!(read("secrets/csrf_secret_key"), csrf, "no overlap: nothing before the window");
    let done = g.settle("bff-csrf-secret-key", waiting).await;
    assert!(matches!(done, Outcome::Completed { .. }), "{done:?}");
    assert_ne!(read("secrets/csrf_secret_key"), csrf);
    assert_eq!(g.gates_met(), vec!["promote"], "immediate has its gate before promote only");

    // The IdP client secret: minted next to the old, valid twice until retire.
    let first = g.run("bff-idp-client-secret").await;
    let done = g.settle("bff-idp-client-secret", first).await;
    assert!(matches!(done, Outcome::Completed { .. }), "{done:?}");
    let s1 = read("secrets/oidc-client-secret");
    let rotating = g.rotate("bff-idp-client-secret", false).await;
    let Outcome::Waiting { .. } = &rotating else { panic!("{rotating:?}") };
    assert_eq!(bff.secrets.lock().unwrap().len(), 2, "valid twice during the grace window");
    let done = g.settle("bff-idp-client-secret", rotating).await;
    assert!(matches!(done, Outcome::Completed { .. }), "{done:?}");
    let s2 = read("secrets/oidc-client-secret");
    assert_ne!(s1, s2);
    let valid: Vec<String> = bff.secrets.lock().unwrap().iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(valid, vec![s2.clone()], "the old secret was deleted at the IdP");
    // A new secret the IdP refuses: the BFF goes back to the one that works.
    *bff.refuse_after.lock().unwrap() = Some(bff.minted.load(std::sync::atomic::Ordering::SeqCst));
    let bad = g.rotate("bff-idp-client-secret", false).await;
    let bad = g.settle("bff-idp-client-secret", bad).await;
    assert!(matches!(bad, Outcome::RolledBack { .. }), "{bad:?}");
    assert_eq!(read("secrets/oidc-client-secret"), s2);
    g.gates_met();

    // The signing key: both in the JWKS for the grace window, the new one signing only
    // once the IdP's poll interval has passed.
    let first = g.run("bff-signing-key").await;
    let done = g.settle("bff-signing-key", first).await;
    assert!(matches!(done, Outcome::Completed { .. }), "{done:?}");
    let kid1 = g.ws.env_value("bff.env", "BFF_SIGNING_KID").unwrap();
    let waiting = g.rotate("bff-signing-key", false).await;
    assert!(
        matches!(&waiting, Outcome::Waiting { what, .. } if what.contains("propagat")),
        "{waiting:?}"
    );
    assert_eq!(kids().len(), 2);
    assert_eq!(g.ws.env_value("bff.env", "BFF_SIGNING_KID").unwrap(), kid1);
    let done = g.settle("bff-signing-key", waiting).await;
    assert!(matches!(done, Outcome::Completed { .. }), "{done:?}");
    let kid2 = g.ws.env_value("bff.env", "BFF_SIGNING_KID").unwrap();
    assert_ne!(kid1, kid2);
    assert_eq!(kids(), vec![kid2]);
}
