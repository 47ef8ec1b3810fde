//! rotagate's performance, measured in one run and written to bench/RESULTS.md:
//!
//!   cargo bench --bench fleet                      # defaults below
//!   cargo bench --bench fleet -- --secrets 500 --repos 50 --latency-ms 50 \
//!       --concurrency 16 --window-secs 6 --quick
//!
//! 1. latency-bound fleet rotation against the fake GitHub (limits off), next to a
//!    per-secret serial script and the latency bound;
//! 2. limit-bound fleet rotation with the fake enforcing github.com's secondary limits,
//!    the "minute" scaled to --window-secs and the latency scaled with it;
//! 3. RSA key generation next to `openssl genrsa`;
//! 4. `rotagate plan` start-up on 1,000 credentials and their state;
//! 5. the size and encrypt/decrypt time of that state;
//! 6. a bootstrap `rotagate run` of 100, 300 and 1,000 local credentials in one state,
//!    next to as many one-credential states run one after another;
//! 7. an incident `rotagate rotate` of one credential in the 1,000-credential state,
//!    next to the same in a one-credential state;
//! 8. a state after 1,000 rotations of one credential next to a fresh one: size and one
//!    save's time;
//! 9. a bootstrap `rotagate run` of 200 credentials, each a secret in one of 50
//!    repositories, against the fake GitHub enforcing github.com's secondary limits (a
//!    real minute: the binary paces to it), with the state on a `github-branch` store.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use rotagate::secret::Secret;
use support::github::{FakeGitHub, SimLimits};

const SECRET_WRITE: &str = "PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}";
const PUBLIC_KEY: &str = "GET /repos/{owner}/{repo}/actions/secrets/public-key";

struct Args {
    secrets: usize,
    repos: usize,
    latency: Duration,
    concurrency: usize,
    window: Duration,
    quick: bool,
    /// Run by `cargo test` (no `--bench`): tiny sizes, only to prove the bench still
    /// runs; nothing is judged or written.
    smoke: bool,
    credentials: usize,
}

fn args() -> Args {
    let mut a = Args {
        secrets: 500,
        repos: 50,
        latency: Duration::from_millis(50),
        concurrency: 16,
        window: Duration::from_secs(6),
        quick: false,
        smoke: true,
        credentials: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} takes a number"))
        };
        match flag.as_str() {
            "--secrets" => a.secrets = value() as usize,
            "--repos" => a.repos = value() as usize,
            "--latency-ms" => a.latency = Duration::from_millis(value()),
            "--concurrency" => a.concurrency = value() as usize,
            "--window-secs" => a.window = Duration::from_secs(value()),
            "--quick" => a.quick = true,
            // cargo bench passes --bench to harness-less benches; cargo test does not.
            "--bench" => a.smoke = false,
            other => panic!("unknown flag {other}"),
        }
    }
    if a.smoke {
        a.secrets = 20;
        a.repos = 10;
        a.latency = Duration::from_millis(2);
        a.concurrency = 4;
        a.window = Duration::from_secs(1);
        a.quick = true;
        a.credentials = 50;
    }
    assert!(
        a.secrets.is_multiple_of(a.repos),
        "--secrets must be a multiple of --repos (each repository gets the same names)"
    );
    a
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A fake GitHub with `repos` repositories of one organisation, the App installed.
async fn fleet(repos: usize) -> (FakeGitHub, Vec<String>) {
    let fake = FakeGitHub::start().await;
    fake.add_org("fleet");
    fake.install("fleet");
    let names: Vec<String> = (0..repos).map(|i| format!("fleet/service-{i:03}")).collect();
    for r in &names {
        fake.add_repo(r);
    }
    (fake, names)
}

/// What a per-secret shell loop does (`gh secret set` in a loop): fetch the public key,
/// seal, PUT, one secret at a time. Returns wall time and the answers that were not 2xx.
async fn serial_script(fake: &FakeGitHub, repos: &[String], per_repo: usize) -> (Duration, usize) {
    let token = fake.installation_token("fleet");
    let client = reqwest::Client::new();
    let value = Secret::new("sk_live_serialbaselinevalue0123456789abcdef");
    let mut failed = 0;
    let started = Instant::now();
    for repo in repos {
        for i in 0..per_repo {
            let key = client
                .get(format!("{}/repos/{repo}/actions/secrets/public-key", fake.url()))
                .bearer_auth(&token)
                .header("user-agent", "serial-script")
                .send()
                .await
                .unwrap();
            if !key.status().is_success() {
                failed += 1;
                continue;
            }
            let key: serde_json::Value = key.json().await.unwrap();
            let sealed = rotagate::github::seal(key["key"].as_str().unwrap(), &value).unwrap();
            let put = client
                .put(format!("{}/repos/{repo}/actions/secrets/S_{i}", fake.url()))
                .bearer_auth(&token)
                .header("user-agent", "serial-script")
                .json(&serde_json::json!({ "encrypted_value": sealed, "key_id": key["key_id"] }))
                .send()
                .await
                .unwrap();
            if !put.status().is_success() {
                failed += 1;
            }
        }
    }
    (started.elapsed(), failed)
}

fn fleet_requests(counts: &BTreeMap<String, usize>) -> (usize, usize) {
    let fleet = counts.get(SECRET_WRITE).copied().unwrap_or(0)
        + counts.get(PUBLIC_KEY).copied().unwrap_or(0);
    let total: usize = counts.values().sum();
    (fleet, total - fleet)
}

struct Report {
    text: String,
    missed: Vec<String>,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        writeln!(self.text, "{}", s.as_ref()).unwrap();
    }

    fn budget(&mut self, what: &str, ok: bool, detail: String) {
        let mark = if ok { "met" } else { "MISSED" };
        self.line(format!("| {what} | {detail} | {mark} |"));
        if !ok {
            self.missed.push(format!("{what}: {detail}"));
        }
    }
}

async fn latency_bound(a: &Args, r: &mut Report) {
    let per_repo = a.secrets / a.repos;
    let scopes = a.repos;
    r.line(format!(
        "\n## 1. Latency-bound fleet rotation\n\n{} secrets ({per_repo} names × {} repositories), {} ms per request, no rate limits, concurrency {}.\n",
        a.secrets, a.repos, a.latency.as_millis(), a.concurrency
    ));
    let (fake, repos) = fleet(a.repos).await;
    fake.set_latency(a.latency);
    let gh = fake.client_with(None, a.concurrency);
    // rotagate's promote step, through the library, as a rotation runs it.
    let wall = support::github::write_secrets(gh, &repos, per_repo).await;
    let (requests, auth) = fleet_requests(&fake.counts());
    let expected = a.secrets + scopes;
    let bound = a.latency * expected.div_ceil(a.concurrency) as u32;

    let (serial_fake, serial_repos) = fleet(if a.quick { a.repos / 10 } else { a.repos }).await;
    serial_fake.set_latency(a.latency);
    let (serial_wall, serial_failed) = serial_script(&serial_fake, &serial_repos, per_repo).await;
    let serial_requests = serial_fake.total_requests();
    // --quick times a tenth of the repositories serially and scales up.
    let scale = a.repos / serial_repos.len();
    let serial_wall = serial_wall * scale as u32;
    let serial_requests = serial_requests * scale;

    r.line("| run | wall time | requests | not 2xx |\n|---|---|---|---|");
    r.line(format!("| rotagate | {} | {requests} (+{auth} App auth) | 0 |", secs(wall)));
    r.line(format!(
        "| serial script (GET key, PUT, one at a time){} | {} | {serial_requests} | {serial_failed} |",
        if a.quick { ", scaled from a tenth" } else { "" },
        secs(serial_wall)
    ));
    r.line(format!(
        "| latency bound: ⌈{expected} / {}⌉ × {} ms | {} | {expected} | |",
        a.concurrency,
        a.latency.as_millis(),
        secs(bound)
    ));
    r.line("\n| budget | measured | |\n|---|---|---|");
    let speedup = serial_wall.as_secs_f64() / wall.as_secs_f64();
    r.budget("≥ 20× faster than serial", speedup >= 20.0, format!("{speedup:.1}×"));
    let over = wall.as_secs_f64() / bound.as_secs_f64();
    r.budget("within 1.3× of the latency bound", over <= 1.3, format!("{over:.2}×"));
    r.budget(
        "requests = secrets + scopes",
        requests == expected,
        format!("{requests} = {} + {scopes}", a.secrets),
    );
}

async fn limit_bound(a: &Args, r: &mut Report) {
    let per_repo = a.secrets / a.repos;
    let minute = Duration::from_secs(60);
    let scale = a.window.as_secs_f64() / minute.as_secs_f64();
    let latency = a.latency.mul_f64(scale);
    let limits = SimLimits {
        window: a.window,
        points_per_endpoint: 900,
        content_per_window: 80,
        concurrency: 100,
    };
    r.line(format!(
        "\n## 2. Limit-bound fleet rotation\n\nThe same {} secrets with the fake enforcing github.com's secondary limits (100 in flight, 900 points per endpoint per minute, a write costs 5, 80 content-creating requests per minute; 403 with retry-after when exceeded). The minute is scaled to {} and the latency with it ({:.1} ms).\n",
        a.secrets,
        secs(a.window),
        latency.as_secs_f64() * 1000.0
    ));
    let (fake, repos) = fleet(a.repos).await;
    fake.set_latency(latency);
    fake.enforce_limits(Some(limits));
    let paced = rotagate::github::Limits {
        window: a.window,
        points_per_endpoint: 900,
        content_per_window: 80,
        concurrency: 100,
    };
    let wall = support::github::write_secrets(
        fake.client_with(Some(paced), a.concurrency),
        &repos,
        per_repo,
    )
    .await;
    let limited = fake.limit_responses();
    // 900 points buy 180 writes per minute: the last batch starts after
    // ⌈writes / 180⌉ − 1 whole minutes.
    let per_window = 900 / 5;
    let bound = a.window * (a.secrets.div_ceil(per_window) as u32 - 1) + latency;

    let (serial_fake, serial_repos) = fleet(a.repos).await;
    serial_fake.set_latency(latency);
    serial_fake.enforce_limits(Some(limits));
    let (serial_wall, serial_failed) = serial_script(&serial_fake, &serial_repos, per_repo).await;
    let serial_limited = serial_fake.limit_responses();

    r.line("| run | wall time | limit responses | secrets not written |\n|---|---|---|---|");
    r.line(format!("| rotagate (paced) | {} | {limited} | 0 |", secs(wall)));
    r.line(format!(
        "| serial script | {} | {serial_limited} | {serial_failed} |",
        secs(serial_wall)
    ));
    r.line(format!(
        "| limit bound: (⌈{} / {per_window}⌉ − 1) minutes | {} | | |",
        a.secrets,
        secs(bound)
    ));
    r.line("\n| budget | measured | |\n|---|---|---|");
    r.budget("zero limit responses", limited == 0, format!("{limited}"));
    let over = wall.as_secs_f64() / bound.as_secs_f64();
    r.budget("within 1.2× of the limit bound", over <= 1.2, format!("{over:.2}×"));
}

fn keygen(a: &Args, r: &mut Report) {
    r.line("\n## 3. RSA key generation\n\n| bits | rotagate (median) | openssl genrsa (median) | ratio |\n|---|---|---|---|");
    let mut ratios = Vec::new();
    for (bits, runs) in
        [(2048usize, if a.quick { 5 } else { 11 }), (4096, if a.quick { 3 } else { 7 })]
    {
        let ours = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    rotagate::material::rsa::generate(bits).unwrap();
                    t.elapsed()
                })
                .collect(),
        );
        let theirs = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let ok = Command::new("openssl")
                        .args(["genrsa", "-out", "/dev/null", &bits.to_string()])
                        .stderr(std::process::Stdio::null())
                        .status()
                        .expect("openssl is installed")
                        .success();
                    assert!(ok);
                    t.elapsed()
                })
                .collect(),
        );
        let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
        ratios.push((bits, ratio));
        r.line(format!(
            "| {bits} | {:.0} ms | {:.0} ms | {ratio:.2}× |",
            ours.as_secs_f64() * 1000.0,
            theirs.as_secs_f64() * 1000.0
        ));
    }
    r.line("\n| budget | measured | |\n|---|---|---|");
    for (bits, ratio) in ratios {
        r.budget(&format!("RSA {bits} within 2× of openssl"), ratio <= 2.0, format!("{ratio:.2}×"));
    }
}

async fn startup_and_state(a: &Args, r: &mut Report) {
    const EVENTS: usize = 20;
    let credentials = a.credentials;
    let ws = support::Ws::new();
    let mut yaml = format!(
        "version: 1\nstate:\n  store: file:.rotagate/state.age\n  recipients: [{}]\ncredentials:\n",
        ws.recipient
    );
    for i in 0..credentials {
        write!(
            yaml,
            "  - id: service-{i:04}\n    owner: \"@acme/team-{}\"\n    key: {{ type: secret, length: 40, prefix: sk_live_ }}\n    schedule: {{ every: 90d, warn: 14d }}\n    promote:\n      - file: {{ path: env/service-{i:04}.env, set: {{ API_KEY: \"{{{{ new.value }}}}\" }} }}\n    gate: none\n",
            i % 17
        )
        .unwrap();
    }
    ws.write("rotagate.yaml", &yaml);
    let mut vault = ws.vault().await;
    let now = time::OffsetDateTime::now_utc();
    let spec = rotagate::config::KeySpec::Secret {
        length: 40,
        alphabet: Default::default(),
        prefix: "sk_live_".into(),
        kid: Default::default(),
    };
    for i in 0..credentials {
        let entry = vault.doc.credentials.entry(format!("service-{i:04}")).or_default();
        let m = rotagate::material::generate(&spec, format!("kid-{i}"), None, now).unwrap();
        entry.kids.insert(m.kid.clone(), m.fingerprint.clone());
        entry.current = Some(m);
        for e in 0..EVENTS {
            entry.audit(
                now,
                Some("20261123T100000Z-abcdef"),
                "promoted",
                format!("event {e}: promote/0 done"),
            );
        }
    }
    // The first save seals every entry into its shard; later ones write the head.
    let t = Instant::now();
    vault.save(now).await.unwrap();
    let first_save = t.elapsed();
    let encrypt = median(
        (0..if a.quick { 3 } else { 5 })
            .map(|_| {
                let t = Instant::now();
                futures_block(vault.save(now)).unwrap();
                t.elapsed()
            })
            .collect(),
    );
    let (head, shards) = state_size(&ws);
    let mut opens = Vec::new();
    for _ in 0..if a.quick { 3 } else { 5 } {
        let t = Instant::now();
        ws.vault().await;
        opens.push(t.elapsed());
    }
    let open = median(opens);

    // `rotagate plan`, as a fresh process: wall time and peak RSS.
    let mut walls = Vec::new();
    let mut peak_kb = 0u64;
    for _ in 0..if a.quick { 3 } else { 7 } {
        let plan = measured(&ws, &["plan"]);
        walls.push(plan.wall);
        peak_kb = peak_kb.max(plan.peak_kb);
    }
    let wall = median(walls);
    let rss_mb = peak_kb as f64 / 1024.0;

    r.line(format!(
        "\n## 4. Start-up\n\n`rotagate plan` (release build) on a config of {credentials} credentials with a state of {credentials} entries, {EVENTS} audit events each.\n\n| measure | value |\n|---|---|\n| wall time (median) | {:.0} ms |\n| peak RSS | {rss_mb:.1} MB |",
        wall.as_secs_f64() * 1000.0
    ));
    r.line(format!(
        "\n## 5. State\n\nThe same {credentials} entries, each in its shard.\n\n| measure | value |\n|---|---|\n| head (armored) | {:.1} KB |\n| shards ({credentials} binary age files) | {:.2} MB |\n| first save: {credentials} shards sealed and synced, then the head | {:.0} ms |\n| a save of the head, nothing in flight (median) | {:.1} ms |\n| open: head and {credentials} shards decrypted and verified (median) | {:.0} ms |",
        head as f64 / 1024.0,
        shards as f64 / 1_048_576.0,
        first_save.as_secs_f64() * 1000.0,
        encrypt.as_secs_f64() * 1000.0,
        open.as_secs_f64() * 1000.0
    ));
    r.line("\n| budget | measured | |\n|---|---|---|");
    r.budget(
        "plan under 150 ms",
        wall < Duration::from_millis(150),
        format!("{:.0} ms", wall.as_secs_f64() * 1000.0),
    );
    r.budget("plan under 60 MB", rss_mb < 60.0, format!("{rss_mb:.1} MB"));
}

/// What one `rotagate` process cost.
struct Measured {
    wall: Duration,
    /// Bytes it wrote (the kernel adds a reaped child's `wchar` to its parent's, so a
    /// wrapper reads its own).
    written: u64,
    peak_kb: u64,
}

/// Runs `rotagate ARGS` in `ws` under a wrapper that measures it.
fn measured(ws: &support::Ws, args: &[&str]) -> Measured {
    let probe = r#"
import resource, subprocess, sys, time
def wchar():
    for line in open("/proc/self/io"):
        if line.startswith("wchar:"):
            return int(line.split()[1])
before = wchar()
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t
if p.returncode != 0:
    sys.exit(p.stderr.decode())
print(wall, wchar() - before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(probe)
        .arg(support::BIN)
        .args(args)
        .current_dir(ws.dir.path())
        .env("ROTAGATE_AGE_IDENTITY", &ws.identity)
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert!(out.status.success(), "rotagate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let mut next = || parts.next().unwrap();
    Measured {
        wall: Duration::from_secs_f64(next().parse().unwrap()),
        written: next().parse().unwrap(),
        peak_kb: next().parse().unwrap(),
    }
}

/// A workspace whose config holds `n` local credentials, first issued by the next run.
fn local_fleet(n: usize) -> support::Ws {
    let ws = support::Ws::new();
    let mut yaml = format!(
        "version: 1\nstate:\n  store: file:.rotagate/state.age\n  recipients: [{}]\ncredentials:\n",
        ws.recipient
    );
    for i in 0..n {
        write!(
            yaml,
            "  - id: service-{i:04}\n    bootstrap: true\n    key: {{ type: secret, length: 40 }}\n    promote:\n      - file: {{ path: env/service-{i:04}.env, set: {{ API_KEY: \"{{{{ new.value }}}}\" }} }}\n    drain: 0s\n    gate: none\n"
        )
        .unwrap();
    }
    ws.write("rotagate.yaml", &yaml);
    ws
}

/// The generation of the state in `ws`: how many saves made it.
fn generation(ws: &support::Ws) -> u64 {
    let identity =
        rotagate::state::StateIdentity::parse(&Secret::new(ws.identity.clone())).unwrap();
    let bytes = std::fs::read(ws.path(".rotagate/state.age")).unwrap();
    rotagate::state::open(&bytes, &identity).unwrap().chain.generation
}

fn fleet_run(a: &Args, r: &mut Report) {
    let sizes: &[usize] = if a.smoke { &[10, 30] } else { &[100, 300, 1000] };
    // --quick runs a tenth of the one-credential states and scales up.
    let sample = |n: usize| if a.quick { n.div_ceil(10) } else { n };
    r.line(format!(
        "\n## 6. Fleet run\n\nA bootstrap `rotagate run` (release build, default `--concurrency`, median of 3) of N local credentials in one file state: each a `type: secret` promoted to its own env file, `drain: 0s`, `gate: none`. Next to it, N one-credential states, each run by its own process one after another{}.\n\n| N | wall time | state saves | bytes written | final state (head + shards) | N one-credential states |\n|---|---|---|---|---|---|",
        if a.quick { " (a tenth of them, scaled up)" } else { "" }
    ));
    let mut fleet_times = BTreeMap::new();
    let mut separate_times = BTreeMap::new();
    let mut biggest = None;
    for &n in sizes {
        // The median of three runs, each on a fresh workspace.
        let mut runs: Vec<(Duration, u64, support::Ws)> = (0..3)
            .map(|_| {
                let ws = local_fleet(n);
                let Measured { wall, written, .. } = measured(&ws, &["run"]);
                (wall, written, ws)
            })
            .collect();
        runs.sort_by_key(|(wall, _, _)| *wall);
        let (wall, written, ws) = runs.swap_remove(1);
        let saves = generation(&ws);
        let (head, shards) = state_size(&ws);
        let size = head + shards;
        let mut separate = Duration::ZERO;
        for _ in 0..sample(n) {
            separate += measured(&local_fleet(1), &["run"]).wall;
        }
        let separate = separate * n as u32 / sample(n) as u32;
        r.line(format!(
            "| {n} | {} | {saves} | {:.1} MB | {:.2} MB | {} |",
            secs(wall),
            written as f64 / 1_048_576.0,
            size as f64 / 1_048_576.0,
            secs(separate)
        ));
        fleet_times.insert(n, wall);
        separate_times.insert(n, separate);
        biggest = Some((n, ws));
    }
    let (n, big) = biggest.unwrap();
    let small = local_fleet(1);
    measured(&small, &["run"]);
    // The fleet's config with only service-0000 in the state: what the state costs,
    // apart from reading a config of the whole fleet.
    let lone = local_fleet(n);
    measured(&lone, &["run", "--only", "service-0000"]);
    let rotate = |ws: &support::Ws, id: &str| {
        median((0..11).map(|_| measured(ws, &["rotate", id, "--reason", "bench"]).wall).collect())
    };
    let rotate_big = rotate(&big, "service-0000");
    let rotate_lone = rotate(&lone, "service-0000");
    let rotate_small = rotate(&small, "service-0000");
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    r.line(format!(
        "\n## 7. Incident rotate in a big state\n\n`rotagate rotate service-0000` (the whole rotation, median of 11) in the {n}-credential state of section 6 and in a one-credential state; between them, the {n}-credential config with only service-0000 in its state, which separates what the state costs from reading the fleet's config.\n\n| config | state | wall time |\n|---|---|---|\n| {n} credentials | {n} credentials | {} |\n| {n} credentials | 1 credential | {} |\n| 1 credential | 1 credential | {} |",
        ms(rotate_big),
        ms(rotate_lone),
        ms(rotate_small)
    ));
    r.line("\n| budget | measured | |\n|---|---|---|");
    let ratio = fleet_times[&n].as_secs_f64() / separate_times[&n].as_secs_f64();
    r.budget(
        &format!("{n} credentials in one run ≤ 1.0× {n} one-credential states"),
        ratio <= 1.0,
        format!("{ratio:.2}×"),
    );
    let (lo, hi) = (sizes[sizes.len() - 2], n);
    let growth = fleet_times[&hi].as_secs_f64() / fleet_times[&lo].as_secs_f64();
    r.budget(
        &format!(
            "growth from {lo} to {hi} credentials within 4× (linear: {:.1}×)",
            hi as f64 / lo as f64
        ),
        growth <= 4.0,
        format!("{growth:.2}×"),
    );
    let state_ratio = rotate_big.as_secs_f64() / rotate_lone.as_secs_f64();
    r.line(format!(
        "| (not a budget) the {n}-credential state next to a one-credential state, same config | {state_ratio:.2}× | |"
    ));
    let rotate_ratio = rotate_big.as_secs_f64() / rotate_small.as_secs_f64();
    r.budget(
        &format!("rotate in a {n}-credential state within 2× of a one-credential state"),
        rotate_ratio <= 2.0,
        format!("{rotate_ratio:.2}×"),
    );
}

/// The bytes of the head and of the shards it lists.
fn state_size(ws: &support::Ws) -> (u64, u64) {
    let size = |rel: &str| std::fs::metadata(ws.path(rel)).unwrap().len();
    let vault = futures_block(ws.vault());
    let shards = vault
        .doc
        .shards
        .values()
        .map(|sha| size(&format!(".rotagate/state-credentials/cred-{}.age", &sha[..16])))
        .sum();
    (size(".rotagate/state.age"), shards)
}

/// One save of the state in `ws` (median) as a step makes it: the credentials leased,
/// so their entries are written whole in the head; encrypt, MAC, atomic write.
fn save_time(ws: &support::Ws, times: usize) -> Duration {
    let mut vault = futures_block(ws.vault());
    let now = time::OffsetDateTime::now_utc();
    let ids: Vec<String> = vault.doc.credentials.keys().cloned().collect();
    futures_block(vault.acquire(&ids, now)).unwrap();
    median(
        (0..times)
            .map(|_| {
                let t = Instant::now();
                futures_block(vault.save(now)).unwrap();
                t.elapsed()
            })
            .collect(),
    )
}

fn long_history(a: &Args, r: &mut Report) {
    let rotations = if a.smoke { 30 } else { 1000 };
    let fresh = local_fleet(1);
    measured(&fresh, &["run"]);
    let old = local_fleet(1);
    measured(&old, &["run"]);
    for _ in 1..rotations {
        measured(&old, &["rotate", "service-0000", "--reason", "bench"]);
    }
    let size = |ws: &support::Ws| {
        let (head, shards) = state_size(ws);
        head + shards
    };
    let segments =
        std::fs::read_dir(old.path(".rotagate/state-audit")).map(|d| d.count()).unwrap_or(0);
    let times = if a.quick { 5 } else { 11 };
    let (fresh_save, old_save) = (save_time(&fresh, times), save_time(&old, times));
    r.line(format!(
        "\n## 8. A long history\n\nOne credential after {rotations} rotations (each a `rotagate rotate`), next to the same credential after its first. Older audit events live in sealed segments ({segments} of them here); the live state (head and shard) keeps the last 50 to 100 per credential, the kid history and the segment list. A save is timed as a step makes it, the credential leased and so written whole in the head.\n\n| state | size (head + shard) | one save (median of {times}) |\n|---|---|---|\n| after 1 rotation | {:.1} KB | {:.1} ms |\n| after {rotations} rotations | {:.1} KB | {:.1} ms |",
        size(&fresh) as f64 / 1024.0,
        fresh_save.as_secs_f64() * 1000.0,
        size(&old) as f64 / 1024.0,
        old_save.as_secs_f64() * 1000.0
    ));
    r.line("\n| budget | measured | |\n|---|---|---|");
    let ratio = old_save.as_secs_f64() / fresh_save.as_secs_f64();
    r.budget(
        &format!("a save after {rotations} rotations within 2× of a fresh state's"),
        ratio <= 2.0,
        format!("{ratio:.2}×"),
    );
}

async fn github_fleet(a: &Args, r: &mut Report) {
    const HOME: &str = "fleet/ops";
    let (credentials, repos) = if a.smoke { (20, 10) } else { (200, 50) };
    let window = Duration::from_secs(60);
    let (fake, names) = fleet(repos).await;
    fake.add_repo(HOME);
    fake.set_latency(a.latency);
    fake.enforce_limits(Some(SimLimits {
        window,
        points_per_endpoint: 900,
        content_per_window: 80,
        concurrency: 100,
    }));
    let ws = support::Ws::new();
    let mut yaml = format!(
        "version: 1\nstate:\n  store: github-branch:rotagate-state\n  recipients: [{}]\ngithub:\n  repo: {HOME}\n  secondary_limits: true\ncredentials:\n",
        ws.recipient
    );
    for i in 0..credentials {
        write!(
            yaml,
            "  - id: svc-{i:03}\n    bootstrap: true\n    key: {{ type: secret, length: 40 }}\n    promote:\n      - github-secret: {{ repo: {}, set: {{ API_KEY_{}: \"{{{{ new.value }}}}\" }} }}\n    drain: 0s\n    gate: none\n",
            names[i % repos],
            i / repos
        )
        .unwrap();
    }
    ws.write("rotagate.yaml", &yaml);
    let started = Instant::now();
    let out = ws.gh(&fake, HOME, &["run"]).await;
    let wall = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.all());
    let writes = fake.count(SECRET_WRITE);
    let commits = fake.count("PUT /repos/{owner}/{repo}/contents/{path}");
    let anchors = fake.count("PATCH /repos/{owner}/{repo}/actions/variables/{name}")
        + fake.count("POST /repos/{owner}/{repo}/actions/variables");
    let limited = fake.limit_responses();
    // 900 points buy 180 secret writes a minute; each save is a commit and an anchor
    // write, one after another.
    let per_window = 900 / 5;
    let bound =
        window * (writes.div_ceil(per_window) as u32 - 1) + a.latency * (commits + anchors) as u32;
    r.line(format!(
        "\n## 9. Fleet run on GitHub\n\nA bootstrap `rotagate run` of {credentials} credentials, each a secret in one of {repos} repositories, the state on the `rotagate-state` branch of {HOME}. The fake enforces github.com's secondary limits over a real minute ({} ms latency); the binary paces to them (`secondary_limits: true`).\n\n| measure | value |\n|---|---|\n| wall time | {} |\n| secret writes | {writes} |\n| state commits | {commits} |\n| anchor writes | {anchors} |\n| limit answers | {limited} |\n| bound: (⌈{writes} / {per_window}⌉ − 1) minutes + a round trip per commit and anchor write | {} |",
        a.latency.as_millis(),
        secs(wall),
        secs(bound)
    ));
    r.line("\n| budget | measured | |\n|---|---|---|");
    r.budget("state commits under 40", commits < 40, format!("{commits}"));
    r.budget("zero limit answers", limited == 0, format!("{limited}"));
    let over = wall.as_secs_f64() / bound.as_secs_f64();
    r.budget("within 1.3× of the bound", over <= 1.3, format!("{over:.2}×"));
}

/// Runs a future to completion from synchronous code inside the runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("unknown".into(), |kb| format!("{:.1} GB", kb / 1_048_576.0));
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {mem} RAM; {} {}; {openssl}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let command: Vec<String> = std::env::args().skip(1).filter(|x| x != "--bench").collect();
    let mut r = Report { text: String::new(), missed: Vec::new() };
    r.line("# rotagate benchmark results\n");
    r.line(format!(
        "Command: `cargo bench --bench fleet{}{}`  \nMachine: {}  \nWhen: {}",
        if command.is_empty() { "" } else { " -- " },
        command.join(" "),
        machine(),
        time::OffsetDateTime::now_utc().date()
    ));
    latency_bound(&a, &mut r).await;
    limit_bound(&a, &mut r).await;
    keygen(&a, &mut r);
    startup_and_state(&a, &mut r).await;
    fleet_run(&a, &mut r);
    long_history(&a, &mut r);
    github_fleet(&a, &mut r).await;
    r.line("\n## Budgets missed\n");
    if r.missed.is_empty() {
        r.line("None.");
    } else {
        for m in r.missed.clone() {
            r.line(format!("- {m}"));
        }
    }
    if a.smoke {
        println!("\nsmoke run (cargo test): sizes cut down, budgets not judged, nothing written");
        return;
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/RESULTS.md");
    std::fs::write(path, &r.text).unwrap();
    println!("\nwritten to bench/RESULTS.md");
}
