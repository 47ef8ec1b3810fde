//! Honesty against GitHub's official OpenAPI description: rotagate talks to the fake
//! GitHub through prism, a proxy that validates every request and every answer against
//! the description (npm @octokit/openapi), across the flows rotagate uses. Neither
//! rotagate's requests nor the fake's answers may depart from it.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::Ws;
use crate::support::github::FakeGitHub;

const HOME: &str = "acme/ops";

fn tools() -> PathBuf {
    std::env::var_os("ROTAGATE_TEST_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/rotagate-test-tools")
    })
}

struct Prism {
    child: tokio::process::Child,
    url: String,
}

impl Prism {
    async fn start(upstream: &str, log_dir: &std::path::Path) -> Prism {
        let tools = tools();
        let prism = tools.join("node_modules/.bin/prism");
        let spec = tools.join("node_modules/@octokit/openapi/generated/api.github.com.json");
        assert!(
            prism.exists() && spec.exists(),
            "prism and @octokit/openapi are not in {}: run scripts/install-test-deps",
            tools.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = log_dir.join("prism.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(prism)
            .arg("proxy")
            .arg(&spec)
            .arg(upstream)
            .args(["--errors", "--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..240 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Prism { child, url };
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("prism did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }
}

/// Sits between rotagate and prism. It records, per request, the violations prism
/// reports in each answer's `sl-violations` header and any error answer of prism's own
/// (a request it could not route would otherwise pass as a 404). And, because prism
/// splits a path on `/` before matching it, it encodes the slashes of the contents API's
/// multi-segment `{path}` (`.rotagate/approvals/x/retire.yaml`), which GitHub itself
/// takes raw (and where a literal `%2F` would be part of a file name).
struct Adapter {
    url: String,
    violations: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Adapter {
    async fn start(prism: String) -> Adapter {
        use axum::body::{Body, Bytes};
        use axum::http::{HeaderMap, Method, Uri};
        let violations = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = violations.clone();
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (client, prism, seen) = (client.clone(), prism.clone(), seen.clone());
                async move {
                    let path = uri.path();
                    let path = match path.split_once("/contents/") {
                        Some((head, tail)) => {
                            format!("{head}/contents/{}", tail.replace('/', "%2F"))
                        }
                        None => path.to_string(),
                    };
                    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                    let mut request =
                        client.request(method.clone(), format!("{prism}{path}{query}")).body(body);
                    for (name, value) in &headers {
                        if name != "host" && name != "content-length" {
                            request = request.header(name, value);
                        }
                    }
                    let answer = request.send().await.unwrap();
                    let status = answer.status().as_u16();
                    let mut response = axum::response::Response::builder().status(status);
                    if let Some(v) = answer.headers().get("sl-violations") {
                        let list: Vec<serde_json::Value> =
                            serde_json::from_str(v.to_str().unwrap_or("[]")).unwrap_or_default();
                        for violation in list {
                            let message = violation["message"].as_str().unwrap_or_default();
                            seen.lock()
                                .unwrap()
                                .push(format!("{method} {} → {status}: {message}", uri.path()));
                        }
                    }
                    for (name, value) in answer.headers() {
                        if name != "content-length"
                            && name != "transfer-encoding"
                            && name != "connection"
                        {
                            response = response.header(name, value);
                        }
                    }
                    let bytes = answer.bytes().await.unwrap();
                    let text = String::from_utf8_lossy(&bytes);
                    if text.contains("https://stoplight.io/prism/errors") {
                        seen.lock()
                            .unwrap()
                            .push(format!("{method} {} → {status}: {text}", uri.path()));
                    }
                    response.body(Body::from(bytes)).unwrap()
                }
            },
        );
        Adapter { url: format!("http://{}", crate::support::server::serve(app).await), violations }
    }

    fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

async fn run(ws: &Ws, fake: &FakeGitHub, api: &str, args: &[&str]) -> crate::support::Run {
    let mut cmd = ws.gh_cmd(fake, HOME, args);
    cmd.env("GITHUB_API_URL", api);
    tokio::process::Command::from(cmd).output().await.unwrap().into()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_and_answer_keeps_to_githubs_openapi_description() {
    let fake = FakeGitHub::start().await;
    for repo in [HOME, "acme/api", "acme/site", "acme/worker"] {
        fake.add_repo(repo);
    }
    fake.add_org("acme");
    fake.add_environment("acme/api", "production");
    fake.install("acme");
    fake.set_permission(HOME, "alice", "write");
    fake.add_team_member("acme", "security", "alice");
    let logs = tempfile::tempdir().unwrap();
    let mut prism = Prism::start(&fake.url(), logs.path()).await;
    let adapter = Adapter::start(prism.url.clone()).await;
    let api = adapter.url.clone();

    let ws = Ws::new();
    ws.config(
        r#"version: 1
state: { store: "github-branch:rotagate-state", recipients: [RECIPIENT] }
# One request at a time, so each violation prism logs is tied to its request.
github: { concurrency: 1 }
credentials:
  - id: api-signing
    owner: "@acme/platform"
    bootstrap: true
    key: { type: rsa, kid: { date: "prod-key-" } }
    publish:
      - jwks-file: { repo: acme/site, path: public/jwks.json }
    promote:
      - github-secret: { repo: acme/api, set: { SIGNING_KEY: "{{ new.private_pem }}", SIGNING_KID: "{{ new.kid }}" } }
      - github-secret: { repo: acme/api, environment: production, set: { SIGNING_KID: "{{ new.kid }}" } }
      - github-secret: { org: acme, visibility: selected, repositories: [api, worker], set: { SIGNING_KID: "{{ new.kid }}" } }
      - github-variable: { repo: acme/api, set: { SIGNING_KID: "{{ new.kid }}" } }
      - github-variable: { repo: acme/api, environment: production, set: { SIGNING_KID: "{{ new.kid }}" } }
      - github-variable: { org: acme, set: { SIGNING_KID: "{{ new.kid }}" } }
      - github-workflow: { repo: acme/api, workflow: deploy.yml, inputs: { kid: "{{ new.kid }}" } }
    verify:
      - github-workflow: { repo: acme/api, workflow: deploy.yml }
    gate: { pull_request: { approvals: 1, reviewers: ["@acme/security"] } }
"#,
    );
    let first = run(&ws, &fake, &api, &["run"]).await;
    assert_eq!(first.code, 0, "{}\n{:#?}", first.all(), adapter.violations());
    let waiting = run(&ws, &fake, &api, &["rotate", "api-signing", "--reason", "openapi"]).await;
    assert_eq!(waiting.code, 0, "{}\n{:#?}", waiting.all(), adapter.violations());
    let pr = fake.pulls(HOME).last().unwrap().clone();
    fake.approve(HOME, pr.number, "alice");
    fake.merge(HOME, pr.number, "bob");
    let done = run(&ws, &fake, &api, &["run"]).await;
    assert_eq!(done.code, 0, "{}\n{:#?}", done.all(), adapter.violations());
    assert!(done.all().contains("completed"), "{}", done.stderr);

    // Notifications: a failing rotation opens an issue, a good one closes it. The
    // deploy fails rather than a permission: GitHub's description documents no 403
    // for most of these routes, though github.com sends one.
    fake.set_workflow_outcome("acme/api", "deploy.yml", "completed", Some("failure"));
    let failing =
        run(&ws, &fake, &api, &["rotate", "api-signing", "--reason", "openapi failing"]).await;
    assert_eq!(failing.code, 1, "{}", failing.all());
    fake.set_workflow_outcome("acme/api", "deploy.yml", "completed", Some("success"));
    let healed = run(&ws, &fake, &api, &["rollback", "api-signing"]).await;
    assert_eq!(healed.code, 0, "{}\n{:#?}", healed.all(), adapter.violations());
    let issues = fake.issues(HOME);
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].state, "closed");

    let status = run(&ws, &fake, &api, &["status"]).await;
    assert_eq!(status.code, 0, "{}", status.all());
    prism.child.kill().await.unwrap();
    let requests: usize = fake.total_requests();
    let violations = adapter.violations();
    assert!(
        violations.is_empty(),
        "{} violations in {requests} requests:\n{}",
        violations.len(),
        violations.join("\n")
    );
    assert!(requests > 80, "the flows covered {requests} requests");
}
