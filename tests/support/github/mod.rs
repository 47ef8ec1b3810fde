//! A fake GitHub REST API, as GitHub documents it: the routes rotagate uses, their
//! status codes and error bodies, answers built from the documented examples of the
//! official OpenAPI description (github-examples.json, see scripts/github-examples),
//! GitHub App JWTs and installation tokens with permissions, X25519 secrets keys whose
//! private halves the tests keep, a small git (refs, commits, trees, blobs), pull
//! requests with files, reviews and merges, issues and labels. It can inject 500s, 429
//! with Retry-After, 403 secondary-rate-limit answers, slow answers and connection
//! resets, enforce github.com's secondary limits, add latency, and count requests per
//! route.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod auth;
mod contents;
mod control;
mod issues;
mod pulls;
mod runs;
mod values;

pub use values::write_secrets;

pub const APP_ID: u64 = 4242;
pub const APP_SLUG: &str = "rotagate-test";
pub const BOT: &str = "rotagate-test[bot]";

fn examples() -> &'static Value {
    static EXAMPLES: OnceLock<Value> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let text = include_str!("../github-examples.json");
        serde_json::from_str::<Value>(text).unwrap()["examples"].clone()
    })
}

/// A documented example answer, to fill in.
fn example(op: &str) -> Value {
    examples().get(op).unwrap_or_else(|| panic!("no example for {op}")).clone()
}

fn first(op: &str) -> Value {
    example(op)[0].clone()
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn sha_of(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// GitHub wraps base64 content at 60 characters.
fn wrapped_b64(bytes: &[u8]) -> String {
    let b = STANDARD.encode(bytes);
    let mut out = String::new();
    for (i, c) in b.chars().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push('\n');
    out
}

#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    TooMany { retry_after: u64 },
    Secondary { retry_after: u64 },
    Slow(Duration),
    Reset,
}

#[derive(Debug, Clone, Copy)]
pub struct SimLimits {
    pub window: Duration,
    pub points_per_endpoint: u32,
    pub content_per_window: u32,
    pub concurrency: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Actor {
    App,
    Installation { owner: String },
    User(String),
    Workflow { repo: String },
}

#[derive(Default)]
struct KeyPair {
    id: String,
    secret: Option<crypto_box::SecretKey>,
}

impl KeyPair {
    fn new(id: &str) -> KeyPair {
        KeyPair {
            id: id.to_string(),
            secret: Some(crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng)),
        }
    }

    fn public_b64(&self) -> String {
        STANDARD.encode(self.secret.as_ref().unwrap().public_key().as_bytes())
    }

    fn open(&self, sealed_b64: &str) -> String {
        let sealed = STANDARD.decode(sealed_b64).expect("sealed values are base64");
        String::from_utf8(
            self.secret.as_ref().unwrap().unseal(&sealed).expect("the sealed box opens"),
        )
        .unwrap()
    }
}

#[derive(Default)]
struct Values {
    keys: KeyPair,
    secrets: BTreeMap<String, (String, String)>,
    variables: BTreeMap<String, String>,
    org_settings: BTreeMap<String, Value>,
}

#[derive(Clone)]
struct Commit {
    tree: BTreeMap<String, String>,
    parents: Vec<String>,
    message: String,
}

#[derive(Clone)]
pub struct Review {
    pub id: u64,
    pub user: String,
    pub state: String,
    pub commit_id: String,
    pub submitted_at: String,
}

#[derive(Clone)]
pub struct Pull {
    pub number: u64,
    pub user: String,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub base_sha: String,
    pub state: String,
    pub merged_by: Option<String>,
    pub merged_at: Option<String>,
    pub merge_sha: Option<String>,
    pub reviews: Vec<Review>,
}

#[derive(Clone, Debug)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub state: String,
    pub labels: Vec<String>,
    pub comments: Vec<String>,
}

#[derive(Clone)]
pub struct Run {
    pub id: u64,
    pub number: u64,
    pub status: String,
    pub conclusion: Option<String>,
    pub created_at: String,
    pub inputs: Value,
    pub git_ref: String,
}

struct Repo {
    id: u64,
    owner: String,
    name: String,
    default_branch: String,
    values: Values,
    environments: BTreeMap<String, Values>,
    refs: BTreeMap<String, String>,
    pulls: Vec<Pull>,
    issues: Vec<Issue>,
    labels: BTreeSet<String>,
    collaborators: BTreeMap<String, String>,
    runs: BTreeMap<String, Vec<Run>>,
    workflow_outcome: BTreeMap<String, (String, Option<String>)>,
    /// Runs whose input `.0` is not `.1` fail (a deploy that only works for one kid).
    accept_input: BTreeMap<String, (String, String)>,
    /// Ruleset rule types in force per branch (`non_fast_forward`, `deletion`).
    rules: BTreeMap<String, Vec<String>>,
}

#[derive(Default)]
struct World {
    app_key_public: String,
    installations: BTreeMap<String, (u64, BTreeSet<String>)>,
    tokens: HashMap<String, Actor>,
    users: BTreeSet<String>,
    repos: BTreeMap<String, Repo>,
    orgs: BTreeMap<String, Values>,
    teams: BTreeMap<String, BTreeSet<String>>,
    commits: HashMap<String, Commit>,
    blobs: HashMap<String, Vec<u8>>,
    trees: HashMap<String, BTreeMap<String, String>>,
    next_id: u64,
    counts: BTreeMap<String, usize>,
    faults: Vec<(String, Fault, usize)>,
    latency: Duration,
    limits: Option<SimLimits>,
    spent: HashMap<String, VecDeque<(Instant, u32)>>,
    created: VecDeque<Instant>,
    limited: usize,
}

pub struct FakeGitHub {
    pub addr: SocketAddr,
    world: Arc<Mutex<World>>,
    in_flight: Arc<AtomicUsize>,
    pub app_key_pem: String,
}

/// Every installation permission rotagate uses.
pub const PERMISSIONS: &[&str] = &[
    "secrets",
    "organization_secrets",
    "variables",
    "actions",
    "contents",
    "pull_requests",
    "issues",
    "metadata",
    "members",
];

type Answer = (StatusCode, Vec<(&'static str, String)>, Option<Value>);

fn answer(status: u16, body: Value) -> Answer {
    (StatusCode::from_u16(status).unwrap(), Vec::new(), Some(body))
}

/// One page of `items` as GitHub serves a list: `per_page` (default 30, at most `max`)
/// from `page` (from 1), and a `Link` header naming the next and last pages in
/// GitHub's own `/repositories/{id}/...` form, which clients must not need to parse.
fn page_of(
    items: Vec<Value>,
    query: &BTreeMap<String, String>,
    max: usize,
) -> (Vec<Value>, Vec<(&'static str, String)>) {
    let per_page =
        query.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(30).clamp(1, max);
    let page = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let mut headers = Vec::new();
    if page < pages {
        let link = |n: usize| {
            format!("<https://api.github.com/repositories/1/list?per_page={per_page}&page={n}>")
        };
        headers.push((
            "link",
            format!("{}; rel=\"next\", {}; rel=\"last\"", link(page + 1), link(pages)),
        ));
    }
    let slice = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    (slice, headers)
}

/// A paginated list answer.
fn paged(items: Vec<Value>, query: &BTreeMap<String, String>) -> Answer {
    let (slice, headers) = page_of(items, query, 100);
    (StatusCode::OK, headers, Some(Value::Array(slice)))
}

fn empty(status: u16) -> Answer {
    (StatusCode::from_u16(status).unwrap(), Vec::new(), None)
}

fn error(status: u16, message: &str) -> Answer {
    let doc = match status {
        401 => "https://docs.github.com/rest",
        403 => "https://docs.github.com/rest/overview/permissions-required-for-github-apps",
        404 => "https://docs.github.com/rest",
        409 => "https://docs.github.com/rest/repos/contents#create-or-update-file-contents",
        _ => "https://docs.github.com/rest",
    };
    answer(
        status,
        json!({ "message": message, "documentation_url": doc, "status": status.to_string() }),
    )
}

fn validation(message: &str, code: &str) -> Answer {
    answer(
        422,
        json!({
            "message": message,
            "errors": [{ "resource": "Request", "code": code, "message": message }],
            "documentation_url": "https://docs.github.com/rest",
            "status": "422"
        }),
    )
}

fn user_object(login: &str, id: u64) -> Value {
    let mut u = example("GET /repos/{owner}/{repo}/pulls/{pull_number}")["user"].clone();
    u["login"] = login.into();
    u["id"] = id.into();
    // As GitHub spells them: a bot's URLs encode the brackets; its page is the App's.
    let encoded = login.replace('[', "%5B").replace(']', "%5D");
    u["url"] = format!("https://api.github.com/users/{encoded}").into();
    match login.strip_suffix("[bot]") {
        Some(app) => {
            u["type"] = "Bot".into();
            u["html_url"] = format!("https://github.com/apps/{app}").into();
        }
        None => {
            u["type"] = "User".into();
            u["html_url"] = format!("https://github.com/{login}").into();
        }
    }
    u
}

impl World {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn user_id(&self, login: &str) -> u64 {
        login.bytes().map(u64::from).sum::<u64>() + 1000
    }

    fn blob(&mut self, bytes: &[u8]) -> String {
        let sha = sha_of(bytes);
        self.blobs.insert(sha.clone(), bytes.to_vec());
        sha
    }

    fn commit(
        &mut self,
        tree: BTreeMap<String, String>,
        parents: Vec<String>,
        message: &str,
    ) -> String {
        let seed = format!("{tree:?}{parents:?}{message}{}", self.id());
        let sha = sha_of(seed.as_bytes());
        self.commits.insert(sha.clone(), Commit { tree, parents, message: message.to_string() });
        sha
    }

    fn tree_at(&self, repo: &str, git_ref: &str) -> Option<(String, BTreeMap<String, String>)> {
        let r = self.repos.get(repo)?;
        let sha = r
            .refs
            .get(git_ref)
            .cloned()
            .or_else(|| self.commits.contains_key(git_ref).then(|| git_ref.to_string()))?;
        Some((sha.clone(), self.commits[&sha].tree.clone()))
    }

    fn file(&self, repo: &str, git_ref: &str, path: &str) -> Option<(String, Vec<u8>)> {
        let (_, tree) = self.tree_at(repo, git_ref)?;
        let blob = tree.get(path)?;
        Some((blob.clone(), self.blobs[blob].clone()))
    }

    /// Commits `files` (None deletes) on `branch`.
    fn commit_files(
        &mut self,
        repo: &str,
        branch: &str,
        files: &[(String, Option<Vec<u8>>)],
        message: &str,
    ) -> String {
        let (parent, mut tree) = self.tree_at(repo, branch).expect("branch exists");
        for (path, content) in files {
            match content {
                Some(bytes) => {
                    let b = self.blob(bytes);
                    tree.insert(path.clone(), b);
                }
                None => {
                    tree.remove(path);
                }
            }
        }
        let sha = self.commit(tree, vec![parent], message);
        self.repos.get_mut(repo).unwrap().refs.insert(branch.to_string(), sha.clone());
        sha
    }

    fn pull_files(&self, repo: &str, pull: &Pull) -> Vec<(String, &'static str)> {
        let base_tree = self.commits[&pull.base_sha].tree.clone();
        let head_tree = self.tree_at(repo, &pull.head).map(|(_, t)| t).unwrap_or_default();
        let mut out = Vec::new();
        for (path, blob) in &head_tree {
            match base_tree.get(path) {
                None => out.push((path.clone(), "added")),
                Some(b) if b != blob => out.push((path.clone(), "modified")),
                _ => {}
            }
        }
        for path in base_tree.keys() {
            if !head_tree.contains_key(path) {
                out.push((path.clone(), "removed"));
            }
        }
        out
    }

    fn values_mut(&mut self, scope: &Scope) -> Option<&mut Values> {
        match scope {
            Scope::Repo(r) => self.repos.get_mut(r).map(|r| &mut r.values),
            Scope::Env(r, e) => self.repos.get_mut(r).map(|r| {
                r.environments.entry(e.clone()).or_insert_with(|| Values {
                    keys: KeyPair::new(&format!("env-{e}")),
                    ..Default::default()
                })
            }),
            Scope::Org(o) => self.orgs.get_mut(o),
        }
    }
}

enum Scope {
    Repo(String),
    Env(String, String),
    Org(String),
}

/// The route template of a request, as the OpenAPI description names it, and whether it
/// creates content (for the secondary limits).
fn template(method: &Method, segs: &[&str]) -> (String, bool) {
    let t = match (method.as_str(), segs) {
        ("GET", ["app"]) => "GET /app",
        ("GET", ["user"]) => "GET /user",
        ("GET", ["orgs", _, "installation"]) => "GET /orgs/{org}/installation",
        ("GET", ["users", _, "installation"]) => "GET /users/{username}/installation",
        ("POST", ["app", "installations", _, "access_tokens"]) => {
            "POST /app/installations/{installation_id}/access_tokens"
        }
        ("GET", ["repos", _, _]) => "GET /repos/{owner}/{repo}",
        ("GET", ["repos", _, _, "actions", "secrets", "public-key"]) => {
            "GET /repos/{owner}/{repo}/actions/secrets/public-key"
        }
        ("PUT", ["repos", _, _, "actions", "secrets", _]) => {
            "PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}"
        }
        ("GET", ["repos", _, _, "environments", _, "secrets", "public-key"]) => {
            "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key"
        }
        ("PUT", ["repos", _, _, "environments", _, "secrets", _]) => {
            "PUT /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}"
        }
        ("GET", ["orgs", _, "actions", "secrets", "public-key"]) => {
            "GET /orgs/{org}/actions/secrets/public-key"
        }
        ("PUT", ["orgs", _, "actions", "secrets", _]) => {
            "PUT /orgs/{org}/actions/secrets/{secret_name}"
        }
        ("GET", ["repos", _, _, "rules", "branches", ..]) => {
            "GET /repos/{owner}/{repo}/rules/branches/{branch}"
        }
        ("GET", ["repos", _, _, "actions", "variables"]) => {
            "GET /repos/{owner}/{repo}/actions/variables"
        }
        ("PATCH", ["repos", _, _, "actions", "variables", _]) => {
            "PATCH /repos/{owner}/{repo}/actions/variables/{name}"
        }
        ("DELETE", ["repos", _, _, "actions", "variables", _]) => {
            "DELETE /repos/{owner}/{repo}/actions/variables/{name}"
        }
        ("POST", ["repos", _, _, "actions", "variables"]) => {
            "POST /repos/{owner}/{repo}/actions/variables"
        }
        ("GET", ["repos", _, _, "environments", _, "variables"]) => {
            "GET /repos/{owner}/{repo}/environments/{environment_name}/variables"
        }
        ("PATCH", ["repos", _, _, "environments", _, "variables", _]) => {
            "PATCH /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"
        }
        ("DELETE", ["repos", _, _, "environments", _, "variables", _]) => {
            "DELETE /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"
        }
        ("POST", ["repos", _, _, "environments", _, "variables"]) => {
            "POST /repos/{owner}/{repo}/environments/{environment_name}/variables"
        }
        ("GET", ["orgs", _, "actions", "variables"]) => "GET /orgs/{org}/actions/variables",
        ("PATCH", ["orgs", _, "actions", "variables", _]) => {
            "PATCH /orgs/{org}/actions/variables/{name}"
        }
        ("DELETE", ["orgs", _, "actions", "variables", _]) => {
            "DELETE /orgs/{org}/actions/variables/{name}"
        }
        ("POST", ["orgs", _, "actions", "variables"]) => "POST /orgs/{org}/actions/variables",
        ("POST", ["repos", _, _, "actions", "workflows", _, "dispatches"]) => {
            "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"
        }
        ("GET", ["repos", _, _, "actions", "workflows", _, "runs"]) => {
            "GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs"
        }
        ("GET", ["repos", _, _, "contents", ..]) => "GET /repos/{owner}/{repo}/contents/{path}",
        ("PUT", ["repos", _, _, "contents", ..]) => "PUT /repos/{owner}/{repo}/contents/{path}",
        ("GET", ["repos", _, _, "branches", ..]) => "GET /repos/{owner}/{repo}/branches/{branch}",
        ("POST", ["repos", _, _, "git", "refs"]) => "POST /repos/{owner}/{repo}/git/refs",
        ("POST", ["repos", _, _, "git", "trees"]) => "POST /repos/{owner}/{repo}/git/trees",
        ("POST", ["repos", _, _, "git", "commits"]) => "POST /repos/{owner}/{repo}/git/commits",
        ("GET", ["repos", _, _, "git", "blobs", _]) => {
            "GET /repos/{owner}/{repo}/git/blobs/{file_sha}"
        }
        ("GET", ["repos", _, _, "commits"]) => "GET /repos/{owner}/{repo}/commits",
        ("GET", ["repos", _, _, "pulls"]) => "GET /repos/{owner}/{repo}/pulls",
        ("POST", ["repos", _, _, "pulls"]) => "POST /repos/{owner}/{repo}/pulls",
        ("GET", ["repos", _, _, "pulls", _]) => "GET /repos/{owner}/{repo}/pulls/{pull_number}",
        ("GET", ["repos", _, _, "pulls", _, "files"]) => {
            "GET /repos/{owner}/{repo}/pulls/{pull_number}/files"
        }
        ("GET", ["repos", _, _, "pulls", _, "reviews"]) => {
            "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews"
        }
        ("GET", ["repos", _, _, "collaborators", _, "permission"]) => {
            "GET /repos/{owner}/{repo}/collaborators/{username}/permission"
        }
        ("GET", ["orgs", _, "teams", _, "memberships", _]) => {
            "GET /orgs/{org}/teams/{team_slug}/memberships/{username}"
        }
        ("GET", ["repos", _, _, "issues"]) => "GET /repos/{owner}/{repo}/issues",
        ("POST", ["repos", _, _, "issues"]) => "POST /repos/{owner}/{repo}/issues",
        ("PATCH", ["repos", _, _, "issues", _]) => {
            "PATCH /repos/{owner}/{repo}/issues/{issue_number}"
        }
        ("POST", ["repos", _, _, "issues", _, "comments"]) => {
            "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
        }
        ("POST", ["repos", _, _, "labels"]) => "POST /repos/{owner}/{repo}/labels",
        _ => return (format!("{method} (unknown)"), false),
    };
    let creates = matches!(
        t,
        "PUT /repos/{owner}/{repo}/contents/{path}"
            | "POST /repos/{owner}/{repo}/git/refs"
            | "POST /repos/{owner}/{repo}/git/trees"
            | "POST /repos/{owner}/{repo}/git/commits"
            | "POST /repos/{owner}/{repo}/pulls"
            | "POST /repos/{owner}/{repo}/issues"
            | "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
            | "POST /repos/{owner}/{repo}/labels"
            | "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"
    );
    (t.to_string(), creates)
}

/// The installation permission a route needs.
fn permission(t: &str) -> &'static str {
    if t.contains("/orgs/{org}/actions/secrets") {
        "organization_secrets"
    } else if t.contains("/secrets") {
        "secrets"
    } else if t.contains("/variables") {
        "variables"
    } else if t.contains("/actions/") {
        "actions"
    } else if t.contains("/contents/") || t.contains("/git/") || t.contains("/commits") {
        "contents"
    } else if t.contains("/pulls") {
        "pull_requests"
    } else if t.contains("/issues") || t.contains("/labels") {
        "issues"
    } else if t.contains("/teams/") {
        "members"
    } else {
        "metadata"
    }
}

fn respond(answer: Answer) -> Response {
    let (status, headers, body) = answer;
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json; charset=utf-8")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

async fn handle(
    world: Arc<Mutex<World>>,
    in_flight: Arc<AtomicUsize>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches("/api/v3").to_string();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let segs_owned: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let segs: Vec<&str> = segs_owned.iter().map(String::as_str).collect();
    let (endpoint, creates) = template(&method, &segs);
    let (fault, latency) = {
        let mut w = world.lock().unwrap();
        *w.counts.entry(endpoint.clone()).or_default() += 1;
        let fault =
            w.faults.iter_mut().find(|(e, _, n)| *e == endpoint && *n > 0).map(|(_, f, n)| {
                *n -= 1;
                f.clone()
            });
        (fault, w.latency)
    };
    let concurrent = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    struct Leave(Arc<AtomicUsize>);
    impl Drop for Leave {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _leave = Leave(in_flight.clone());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(Fault::Status(s)) => return respond(error(s, "Server Error")),
        Some(Fault::TooMany { retry_after }) => {
            let mut a = error(429, "API rate limit exceeded");
            a.1.push(("retry-after", retry_after.to_string()));
            return respond(a);
        }
        Some(Fault::Secondary { retry_after }) => {
            let mut a = error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            a.1.push(("retry-after", retry_after.to_string()));
            return respond(a);
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::Reset) => {
            // Headers go out, then the body breaks off: the connection is dropped.
            let stream = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("connection reset"))
            });
            return Response::builder().status(200).body(Body::from_stream(stream)).unwrap();
        }
        None => {}
    }
    let mut w = world.lock().unwrap();
    if let Some(limits) = w.limits
        && let Some(wait) =
            secondary_limit(&mut w, &limits, &endpoint, &method, creates, concurrent)
    {
        w.limited += 1;
        let mut a = error(
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        a.1.push(("retry-after", wait.to_string()));
        return respond(a);
    }
    let actor = match authenticate(&w, &headers) {
        Ok(a) => a,
        Err(a) => return respond(a),
    };
    if let Err(a) = authorize(&w, &actor, &endpoint, &segs) {
        return respond(a);
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    respond(route(&mut w, &actor, &method, &segs, &query, &body, &endpoint))
}

/// github.com's secondary limits: concurrency, points per endpoint per minute, content
/// creation per minute. Returns the wait to advertise when exceeded.
fn secondary_limit(
    w: &mut World,
    l: &SimLimits,
    endpoint: &str,
    method: &Method,
    creates: bool,
    concurrent: usize,
) -> Option<u64> {
    let now = Instant::now();
    let window_secs = l.window.as_secs_f64().ceil().max(1.0) as u64;
    if concurrent > l.concurrency {
        return Some(1);
    }
    let points = if *method == Method::GET { 1 } else { 5 };
    let spent = w.spent.entry(endpoint.to_string()).or_default();
    while spent.front().is_some_and(|(t, _)| now.duration_since(*t) >= l.window) {
        spent.pop_front();
    }
    let used: u32 = spent.iter().map(|(_, p)| p).sum();
    if used + points > l.points_per_endpoint {
        return Some(window_secs);
    }
    while w.created.front().is_some_and(|t| now.duration_since(*t) >= l.window) {
        w.created.pop_front();
    }
    if creates && w.created.len() as u32 >= l.content_per_window {
        return Some(window_secs);
    }
    w.spent.get_mut(endpoint).unwrap().push_back((now, points));
    if creates {
        w.created.push_back(now);
    }
    None
}

fn authenticate(w: &World, headers: &HeaderMap) -> Result<Actor, Answer> {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("token "))
        .unwrap_or_default()
        .trim();
    if token.is_empty() {
        return Err(error(401, "Requires authentication"));
    }
    if token.split('.').count() == 3 {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(w.app_key_public.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        // GitHub takes `iss` as the App id, an integer; it is checked below.
        validation.required_spec_claims = ["exp"].iter().map(|s| s.to_string()).collect();
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|_| error(401, "A JSON web token could not be decoded"))?;
        let iss = &claims.claims["iss"];
        if claims.claims["iat"].as_i64().is_none() {
            return Err(error(
                401,
                "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
            ));
        }
        if iss.as_u64() != Some(APP_ID) && iss.as_str() != Some(&APP_ID.to_string()) {
            return Err(error(401, "'Issuer' claim ('iss') must be an Integer"));
        }
        return Ok(Actor::App);
    }
    w.tokens.get(token).cloned().ok_or_else(|| error(401, "Bad credentials"))
}

fn authorize(w: &World, actor: &Actor, endpoint: &str, segs: &[&str]) -> Result<(), Answer> {
    let app_route = endpoint.starts_with("GET /app")
        || endpoint.contains("/installation")
        || endpoint.starts_with("POST /app/");
    match actor {
        Actor::App if app_route => Ok(()),
        Actor::App => Err(error(
            401,
            "A JSON web token cannot be used to authenticate this route; use an installation token",
        )),
        _ if app_route && !endpoint.starts_with("GET /app") => {
            Err(error(401, "Requires a GitHub App JSON web token"))
        }
        Actor::User(_) => Ok(()),
        Actor::Workflow { repo } => {
            let target = match segs {
                ["repos", o, r, ..] => Some(format!("{o}/{r}")),
                _ => None,
            };
            if target.as_deref() != Some(repo.as_str()) && endpoint != "GET /user" {
                return Err(error(404, "Not Found"));
            }
            if matches!(
                permission(endpoint),
                "secrets" | "variables" | "organization_secrets" | "members"
            ) {
                return Err(error(403, "Resource not accessible by integration"));
            }
            Ok(())
        }
        Actor::Installation { owner } => {
            let target = match segs {
                ["repos", o, ..] | ["orgs", o, ..] => Some(o.to_string()),
                _ => None,
            };
            if let Some(t) = &target
                && t != owner
            {
                return Err(error(404, "Not Found"));
            }
            let granted = &w.installations[owner].1;
            if !granted.contains(permission(endpoint)) {
                return Err(error(403, "Resource not accessible by integration"));
            }
            Ok(())
        }
    }
}

fn repo_key(segs: &[&str]) -> String {
    format!("{}/{}", segs[1], segs[2])
}

#[allow(clippy::too_many_lines)]
fn route(
    w: &mut World,
    actor: &Actor,
    method: &Method,
    segs: &[&str],
    query: &BTreeMap<String, String>,
    body: &Value,
    endpoint: &str,
) -> Answer {
    let not_found = || error(404, "Not Found");
    // Every repository route needs the repository.
    if segs.first() == Some(&"repos") && segs.len() >= 3 && !w.repos.contains_key(&repo_key(segs)) {
        return not_found();
    }
    if let (&Method::GET, ["repos", _, _]) = (method, segs) {
        let r = &w.repos[&repo_key(segs)];
        let mut a = example("GET /repos/{owner}/{repo}");
        a["id"] = r.id.into();
        a["name"] = r.name.clone().into();
        a["full_name"] = repo_key(segs).into();
        a["owner"]["login"] = r.owner.clone().into();
        a["default_branch"] = r.default_branch.clone().into();
        a["html_url"] = format!("https://github.com/{}", repo_key(segs)).into();
        return answer(200, a);
    }
    let resources =
        [auth::route, values::route, runs::route, contents::route, pulls::route, issues::route];
    let request = Request { actor, method, segs, query, body, endpoint };
    for resource in resources {
        if let Some(answer) = resource(w, &request) {
            return answer;
        }
    }
    not_found()
}

/// A request as the resources' routes see it.
#[derive(Clone, Copy)]
struct Request<'a> {
    actor: &'a Actor,
    method: &'a Method,
    segs: &'a [&'a str],
    query: &'a BTreeMap<String, String>,
    body: &'a Value,
    endpoint: &'a str,
}
