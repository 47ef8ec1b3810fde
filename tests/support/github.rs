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

pub const APP_ID: u64 = 4242;
pub const APP_SLUG: &str = "rotagate-test";
pub const BOT: &str = "rotagate-test[bot]";

fn examples() -> &'static Value {
    static EXAMPLES: OnceLock<Value> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let text = include_str!("github-examples.json");
        serde_json::from_str::<Value>(text).unwrap()["examples"].clone()
    })
}

/// A documented example answer, to fill in.
fn example(op: &str) -> Value {
    examples()
        .get(op)
        .unwrap_or_else(|| panic!("no example for {op}"))
        .clone()
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
            secret: Some(crypto_box::SecretKey::generate(
                &mut crypto_box::aead::OsRng,
            )),
        }
    }

    fn public_b64(&self) -> String {
        STANDARD.encode(self.secret.as_ref().unwrap().public_key().as_bytes())
    }

    fn open(&self, sealed_b64: &str) -> String {
        let sealed = STANDARD
            .decode(sealed_b64)
            .expect("sealed values are base64");
        String::from_utf8(
            self.secret
                .as_ref()
                .unwrap()
                .unseal(&sealed)
                .expect("the sealed box opens"),
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
    (
        StatusCode::from_u16(status).unwrap(),
        Vec::new(),
        Some(body),
    )
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
        self.commits.insert(
            sha.clone(),
            Commit {
                tree,
                parents,
                message: message.to_string(),
            },
        );
        sha
    }

    fn tree_at(&self, repo: &str, git_ref: &str) -> Option<(String, BTreeMap<String, String>)> {
        let r = self.repos.get(repo)?;
        let sha = r.refs.get(git_ref).cloned().or_else(|| {
            self.commits
                .contains_key(git_ref)
                .then(|| git_ref.to_string())
        })?;
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
        self.repos
            .get_mut(repo)
            .unwrap()
            .refs
            .insert(branch.to_string(), sha.clone());
        sha
    }

    fn pull_files(&self, repo: &str, pull: &Pull) -> Vec<(String, &'static str)> {
        let base_tree = self.commits[&pull.base_sha].tree.clone();
        let head_tree = self
            .tree_at(repo, &pull.head)
            .map(|(_, t)| t)
            .unwrap_or_default();
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

impl FakeGitHub {
    pub async fn start() -> FakeGitHub {
        let key = rotagate::material::rsa::generate(2048).unwrap();
        let world = World {
            app_key_public: key.public_pem.clone(),
            ..Default::default()
        };
        let world = Arc::new(Mutex::new(world));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (w, f) = (world.clone(), in_flight.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (w, f) = (w.clone(), f.clone());
                async move { handle(w, f, method, uri, headers, body).await }
            },
        );
        let addr = crate::support::server::serve(app).await;
        FakeGitHub {
            addr,
            world,
            in_flight,
            app_key_pem: key.private_pem.expose().to_string(),
        }
    }

    /// A client of this fake as the test GitHub App, with quick retries.
    pub fn client(&self, limits: Option<rotagate::github::Limits>) -> rotagate::github::GitHub {
        self.client_with(limits, 16)
    }

    /// A client with `concurrency` requests in flight for bulk writes.
    pub fn client_with(
        &self,
        limits: Option<rotagate::github::Limits>,
        concurrency: usize,
    ) -> rotagate::github::GitHub {
        rotagate::github::GitHub::new(
            rotagate::github::Credentials::App {
                id: APP_ID,
                key: rotagate::secret::Secret::new(self.app_key_pem.clone()),
            },
            rotagate::github::Options {
                api: self.url(),
                limits,
                concurrency,
                retry: rotagate::http::RetryPolicy {
                    attempts: 6,
                    min_delay: Duration::from_millis(50),
                    max_delay: Duration::from_secs(2),
                    max_server_wait: Duration::from_secs(5),
                },
            },
        )
        .unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    pub fn add_repo(&self, full: &str) {
        let mut w = self.w();
        let id = w.id() + 100_000;
        let readme = w.blob(b"# repository\n");
        let tree: BTreeMap<String, String> = [("README.md".to_string(), readme)].into();
        let root = w.commit(tree, vec![], "initial commit");
        let (owner, name) = full.split_once('/').unwrap();
        w.repos.insert(
            full.to_string(),
            Repo {
                id,
                owner: owner.into(),
                name: name.into(),
                default_branch: "main".into(),
                values: Values {
                    keys: KeyPair::new(&format!("repo-{id}")),
                    ..Default::default()
                },
                environments: BTreeMap::new(),
                refs: [("main".to_string(), root)].into(),
                pulls: Vec::new(),
                issues: Vec::new(),
                labels: BTreeSet::new(),
                collaborators: BTreeMap::new(),
                runs: BTreeMap::new(),
                workflow_outcome: BTreeMap::new(),
                accept_input: BTreeMap::new(),
            },
        );
    }

    pub fn add_org(&self, org: &str) {
        self.w().orgs.insert(
            org.to_string(),
            Values {
                keys: KeyPair::new(&format!("org-{org}")),
                ..Default::default()
            },
        );
    }

    pub fn add_environment(&self, repo: &str, env: &str) {
        let mut w = self.w();
        w.values_mut(&Scope::Env(repo.into(), env.into())).unwrap();
    }

    /// Installs the App on `owner` with every permission.
    pub fn install(&self, owner: &str) -> u64 {
        let mut w = self.w();
        let id = w.id() + 5_000;
        w.installations.insert(
            owner.to_string(),
            (id, PERMISSIONS.iter().map(|p| p.to_string()).collect()),
        );
        id
    }

    pub fn revoke(&self, owner: &str, permission: &str) {
        self.w()
            .installations
            .get_mut(owner)
            .unwrap()
            .1
            .remove(permission);
    }

    /// A personal access token acting as `login`.
    pub fn user_token(&self, login: &str) -> String {
        let mut w = self.w();
        let t = format!("ghp_{}", sha_of(login.as_bytes()));
        w.users.insert(login.to_string());
        w.tokens.insert(t.clone(), Actor::User(login.to_string()));
        t
    }

    /// An installation token for `owner` (as the App would get one).
    pub fn installation_token(&self, owner: &str) -> String {
        let mut w = self.w();
        let t = format!("ghs_{}", sha_of(format!("installation {owner}").as_bytes()));
        w.tokens.insert(
            t.clone(),
            Actor::Installation {
                owner: owner.to_string(),
            },
        );
        t
    }

    /// The workflow's GITHUB_TOKEN for `repo`.
    pub fn workflow_token(&self, repo: &str) -> String {
        let mut w = self.w();
        let t = format!("ghs_workflow_{}", sha_of(repo.as_bytes()));
        w.tokens.insert(
            t.clone(),
            Actor::Workflow {
                repo: repo.to_string(),
            },
        );
        t
    }

    pub fn set_permission(&self, repo: &str, login: &str, permission: &str) {
        self.w()
            .repos
            .get_mut(repo)
            .unwrap()
            .collaborators
            .insert(login.into(), permission.into());
    }

    pub fn add_team_member(&self, org: &str, team: &str, login: &str) {
        self.w()
            .teams
            .entry(format!("{org}/{team}"))
            .or_default()
            .insert(login.into());
    }

    pub fn inject(&self, endpoint: &str, fault: Fault, times: usize) {
        self.w().faults.push((endpoint.to_string(), fault, times));
    }

    pub fn set_latency(&self, latency: Duration) {
        self.w().latency = latency;
    }

    pub fn enforce_limits(&self, limits: Option<SimLimits>) {
        self.w().limits = limits;
    }

    pub fn limit_responses(&self) -> usize {
        self.w().limited
    }

    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.w().counts.clone()
    }

    pub fn count(&self, endpoint: &str) -> usize {
        self.w().counts.get(endpoint).copied().unwrap_or(0)
    }

    pub fn total_requests(&self) -> usize {
        self.w().counts.values().sum()
    }

    pub fn reset_counts(&self) {
        let mut w = self.w();
        w.counts.clear();
        w.limited = 0;
    }

    /// A secret as sealed and stored, opened with the key the test keeps.
    pub fn secret(&self, repo: &str, name: &str) -> Option<String> {
        let w = self.w();
        let v = &w.repos.get(repo)?.values;
        v.secrets.get(name).map(|(sealed, _)| v.keys.open(sealed))
    }

    pub fn env_secret(&self, repo: &str, env: &str, name: &str) -> Option<String> {
        let w = self.w();
        let v = w.repos.get(repo)?.environments.get(env)?;
        v.secrets.get(name).map(|(sealed, _)| v.keys.open(sealed))
    }

    pub fn org_secret(&self, org: &str, name: &str) -> Option<(String, Value)> {
        let w = self.w();
        let v = w.orgs.get(org)?;
        v.secrets.get(name).map(|(sealed, _)| {
            (
                v.keys.open(sealed),
                v.org_settings.get(name).cloned().unwrap_or(Value::Null),
            )
        })
    }

    /// The raw sealed value and the repository's public key (for an independent check).
    pub fn sealed(&self, repo: &str, name: &str) -> Option<(String, String, String)> {
        let w = self.w();
        let v = &w.repos.get(repo)?.values;
        let secret_key = STANDARD.encode(v.keys.secret.as_ref()?.to_bytes());
        v.secrets
            .get(name)
            .map(|(sealed, _)| (sealed.clone(), v.keys.public_b64(), secret_key))
    }

    pub fn variable(&self, repo: &str, name: &str) -> Option<String> {
        self.w()
            .repos
            .get(repo)?
            .values
            .variables
            .get(name)
            .cloned()
    }

    pub fn set_variable(&self, repo: &str, name: &str, value: &str) {
        self.w()
            .repos
            .get_mut(repo)
            .unwrap()
            .values
            .variables
            .insert(name.into(), value.into());
    }

    pub fn file(&self, repo: &str, branch: &str, path: &str) -> Option<String> {
        self.w()
            .file(repo, branch, path)
            .map(|(_, b)| String::from_utf8(b).unwrap())
    }

    pub fn branch_head(&self, repo: &str, branch: &str) -> Option<String> {
        self.w().repos.get(repo)?.refs.get(branch).cloned()
    }

    /// Commits a file directly (someone pushing).
    pub fn push_file(&self, repo: &str, branch: &str, path: &str, content: &str) -> String {
        self.w().commit_files(
            repo,
            branch,
            &[(path.into(), Some(content.as_bytes().to_vec()))],
            "a push",
        )
    }

    pub fn create_branch(&self, repo: &str, branch: &str, from: &str) {
        let mut w = self.w();
        let sha = w.repos[repo].refs[from].clone();
        w.repos
            .get_mut(repo)
            .unwrap()
            .refs
            .insert(branch.into(), sha);
    }

    pub fn pulls(&self, repo: &str) -> Vec<Pull> {
        self.w().repos[repo].pulls.clone()
    }

    pub fn pull(&self, repo: &str, number: u64) -> Pull {
        self.w().repos[repo]
            .pulls
            .iter()
            .find(|p| p.number == number)
            .unwrap()
            .clone()
    }

    fn with_pull<T>(&self, repo: &str, number: u64, f: impl FnOnce(&mut World, usize) -> T) -> T {
        let mut w = self.w();
        let i = w.repos[repo]
            .pulls
            .iter()
            .position(|p| p.number == number)
            .unwrap();
        f(&mut w, i)
    }

    pub fn review(&self, repo: &str, number: u64, login: &str, state: &str) -> u64 {
        self.with_pull(repo, number, |w, i| {
            let id = w.id();
            let head = w.repos[repo].pulls[i].head.clone();
            let commit = w.repos[repo].refs[&head].clone();
            w.repos.get_mut(repo).unwrap().pulls[i]
                .reviews
                .push(Review {
                    id,
                    user: login.into(),
                    state: state.into(),
                    commit_id: commit,
                    submitted_at: now(),
                });
            id
        })
    }

    pub fn approve(&self, repo: &str, number: u64, login: &str) -> u64 {
        self.review(repo, number, login, "APPROVED")
    }

    pub fn dismiss(&self, repo: &str, number: u64, review: u64) {
        self.with_pull(repo, number, |w, i| {
            for r in w.repos.get_mut(repo).unwrap().pulls[i]
                .reviews
                .iter_mut()
                .filter(|r| r.id == review)
            {
                r.state = "DISMISSED".into();
            }
        })
    }

    /// A new commit on the pull request's branch.
    pub fn push_to_pull(&self, repo: &str, number: u64, path: &str, content: &str) {
        self.with_pull(repo, number, |w, i| {
            let head = w.repos[repo].pulls[i].head.clone();
            w.commit_files(
                repo,
                &head,
                &[(path.into(), Some(content.as_bytes().to_vec()))],
                "a push to the pull request",
            );
        })
    }

    pub fn change_base(&self, repo: &str, number: u64, base: &str) {
        self.with_pull(repo, number, |w, i| {
            w.repos.get_mut(repo).unwrap().pulls[i].base = base.into()
        });
    }

    /// Merges as `merger`: the pull request's changes land on its base branch.
    pub fn merge(&self, repo: &str, number: u64, merger: &str) {
        self.with_pull(repo, number, |w, i| {
            let pull = w.repos[repo].pulls[i].clone();
            let changes: Vec<(String, Option<Vec<u8>>)> = w
                .pull_files(repo, &pull)
                .into_iter()
                .map(|(path, status)| {
                    let content =
                        (status != "removed").then(|| w.file(repo, &pull.head, &path).unwrap().1);
                    (path, content)
                })
                .collect();
            let sha = w.commit_files(
                repo,
                &pull.base,
                &changes,
                &format!("Merge pull request #{number}"),
            );
            let p = &mut w.repos.get_mut(repo).unwrap().pulls[i];
            p.state = "closed".into();
            p.merged_by = Some(merger.into());
            p.merged_at = Some(now());
            p.merge_sha = Some(sha);
        })
    }

    pub fn close(&self, repo: &str, number: u64) {
        self.with_pull(repo, number, |w, i| {
            w.repos.get_mut(repo).unwrap().pulls[i].state = "closed".into()
        });
    }

    /// Someone else opens a pull request from `head` (created with `files`).
    pub fn open_pull_as(&self, login: &str, repo: &str, head: &str, files: &[(&str, &str)]) -> u64 {
        let mut w = self.w();
        let default = w.repos[repo].default_branch.clone();
        let base_sha = w.repos[repo].refs[&default].clone();
        w.repos
            .get_mut(repo)
            .unwrap()
            .refs
            .insert(head.into(), base_sha.clone());
        let changes: Vec<(String, Option<Vec<u8>>)> = files
            .iter()
            .map(|(p, c)| (p.to_string(), Some(c.as_bytes().to_vec())))
            .collect();
        w.commit_files(repo, head, &changes, "someone's change");
        let number = w.id();
        w.repos.get_mut(repo).unwrap().pulls.push(Pull {
            number,
            user: login.into(),
            title: "a pull request".into(),
            body: String::new(),
            head: head.into(),
            base: default,
            base_sha,
            state: "open".into(),
            merged_by: None,
            merged_at: None,
            merge_sha: None,
            reviews: Vec::new(),
        });
        number
    }

    pub fn issues(&self, repo: &str) -> Vec<Issue> {
        self.w().repos[repo].issues.clone()
    }

    pub fn set_workflow_outcome(
        &self,
        repo: &str,
        workflow: &str,
        status: &str,
        conclusion: Option<&str>,
    ) {
        self.w()
            .repos
            .get_mut(repo)
            .unwrap()
            .workflow_outcome
            .insert(
                workflow.into(),
                (status.into(), conclusion.map(str::to_string)),
            );
    }

    /// Runs of `workflow` fail unless their input `input` is `value`.
    pub fn accept_only_input(&self, repo: &str, workflow: &str, input: &str, value: &str) {
        self.w()
            .repos
            .get_mut(repo)
            .unwrap()
            .accept_input
            .insert(workflow.into(), (input.into(), value.into()));
    }

    /// Lifts [`FakeGitHub::accept_only_input`].
    pub fn accept_any_input(&self, repo: &str, workflow: &str) {
        self.w()
            .repos
            .get_mut(repo)
            .unwrap()
            .accept_input
            .remove(workflow);
    }

    /// Moves every run of `workflow` to `status`/`conclusion`.
    pub fn finish_runs(&self, repo: &str, workflow: &str, conclusion: &str) {
        let mut w = self.w();
        for run in w
            .repos
            .get_mut(repo)
            .unwrap()
            .runs
            .entry(workflow.into())
            .or_default()
        {
            run.status = "completed".into();
            run.conclusion = Some(conclusion.into());
        }
    }

    pub fn runs(&self, repo: &str, workflow: &str) -> Vec<Run> {
        self.w().repos[repo]
            .runs
            .get(workflow)
            .cloned()
            .unwrap_or_default()
    }
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
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
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
        let fault = w
            .faults
            .iter_mut()
            .find(|(e, _, n)| *e == endpoint && *n > 0)
            .map(|(_, f, n)| {
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
            return Response::builder()
                .status(200)
                .body(Body::from_stream(stream))
                .unwrap();
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
    respond(route(
        &mut w, &actor, &method, &segs, &query, &body, &endpoint,
    ))
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
    while spent
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) >= l.window)
    {
        spent.pop_front();
    }
    let used: u32 = spent.iter().map(|(_, p)| p).sum();
    if used + points > l.points_per_endpoint {
        return Some(window_secs);
    }
    while w
        .created
        .front()
        .is_some_and(|t| now.duration_since(*t) >= l.window)
    {
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
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
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
    w.tokens
        .get(token)
        .cloned()
        .ok_or_else(|| error(401, "Bad credentials"))
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
    match (method.as_str(), segs) {
        ("GET", ["app"]) => {
            let mut a = example("GET /app");
            a["id"] = APP_ID.into();
            a["slug"] = APP_SLUG.into();
            a["name"] = "rotagate test".into();
            answer(200, a)
        }
        ("GET", ["user"]) => match actor {
            Actor::User(login) => {
                let mut u = example("GET /user");
                u["login"] = login.as_str().into();
                u["id"] = w.user_id(login).into();
                answer(200, u)
            }
            _ => error(403, "Resource not accessible by integration"),
        },
        ("GET", ["orgs" | "users", owner, "installation"]) => match w.installations.get(*owner) {
            Some((id, _)) => {
                let mut a = example(if segs[0] == "orgs" {
                    "GET /orgs/{org}/installation"
                } else {
                    "GET /users/{username}/installation"
                });
                a["id"] = (*id).into();
                a["app_id"] = APP_ID.into();
                a["app_slug"] = APP_SLUG.into();
                a["account"]["login"] = (*owner).into();
                answer(200, a)
            }
            None => not_found(),
        },
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            let Some(owner) = w
                .installations
                .iter()
                .find(|(_, (i, _))| i.to_string() == *id)
                .map(|(o, _)| o.clone())
            else {
                return not_found();
            };
            let token = format!("ghs_{}", sha_of(format!("{owner}{}", w.next_id).as_bytes()));
            w.next_id += 1;
            w.tokens
                .insert(token.clone(), Actor::Installation { owner });
            let mut a = example("POST /app/installations/{installation_id}/access_tokens");
            a["token"] = token.into();
            a["expires_at"] = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
                .replace_nanosecond(0)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
                .into();
            answer(201, a)
        }
        ("GET", ["repos", _, _]) => {
            let r = &w.repos[&repo_key(segs)];
            let mut a = example("GET /repos/{owner}/{repo}");
            a["id"] = r.id.into();
            a["name"] = r.name.clone().into();
            a["full_name"] = repo_key(segs).into();
            a["owner"]["login"] = r.owner.clone().into();
            a["default_branch"] = r.default_branch.clone().into();
            a["html_url"] = format!("https://github.com/{}", repo_key(segs)).into();
            answer(200, a)
        }
        (_, ["repos", _, _, "actions", "secrets", ..])
        | (_, ["repos", _, _, "environments", _, "secrets", ..])
        | (_, ["orgs", _, "actions", "secrets", ..]) => secrets(w, method, segs, body, endpoint),
        (_, ["repos", _, _, "actions", "variables", ..])
        | (_, ["repos", _, _, "environments", _, "variables", ..])
        | (_, ["orgs", _, "actions", "variables", ..]) => {
            variables(w, method, segs, body, query, endpoint)
        }
        ("POST", ["repos", _, _, "actions", "workflows", wf, "dispatches"]) => {
            let key = repo_key(segs);
            let Some(git_ref) = body["ref"].as_str() else {
                return validation(
                    "Invalid request.\n\n\"ref\" wasn't supplied.",
                    "missing_field",
                );
            };
            if !w.repos[&key].refs.contains_key(git_ref) {
                return validation(&format!("No ref found for: {git_ref}"), "invalid");
            }
            let id = w.id();
            let r = w.repos.get_mut(&key).unwrap();
            let (status, mut conclusion) = r
                .workflow_outcome
                .get(*wf)
                .cloned()
                .unwrap_or(("completed".into(), Some("success".into())));
            if let Some((input, value)) = r.accept_input.get(*wf)
                && body["inputs"][input.as_str()].as_str() != Some(value.as_str())
            {
                conclusion = Some("failure".into());
            }
            let runs = r.runs.entry(wf.to_string()).or_default();
            let number = runs.len() as u64 + 1;
            runs.push(Run {
                id,
                number,
                status,
                conclusion,
                created_at: now(),
                inputs: body["inputs"].clone(),
                git_ref: git_ref.into(),
            });
            empty(204)
        }
        ("GET", ["repos", _, _, "actions", "workflows", wf, "runs"]) => {
            let key = repo_key(segs);
            let mut a = example("GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs");
            let template = a["workflow_runs"][0].clone();
            let runs: Vec<Value> = w.repos[&key]
                .runs
                .get(*wf)
                .into_iter()
                .flatten()
                .rev()
                // Every run here is a workflow_dispatch run.
                .filter(|_| query.get("event").is_none_or(|e| e == "workflow_dispatch"))
                .map(|r| {
                    let mut v = template.clone();
                    v["id"] = r.id.into();
                    v["run_number"] = r.number.into();
                    v["status"] = r.status.clone().into();
                    v["conclusion"] = r.conclusion.clone().map_or(Value::Null, Value::from);
                    v["created_at"] = r.created_at.clone().into();
                    v["updated_at"] = r.created_at.clone().into();
                    v["event"] = "workflow_dispatch".into();
                    v["head_branch"] = r.git_ref.clone().into();
                    v["html_url"] =
                        format!("https://github.com/{key}/actions/runs/{}", r.id).into();
                    v
                })
                .collect();
            a["total_count"] = runs.len().into();
            a["workflow_runs"] = runs.into();
            answer(200, a)
        }
        ("GET", ["repos", _, _, "contents", rest @ ..]) => {
            let key = repo_key(segs);
            let path = rest.join("/");
            let git_ref = query
                .get("ref")
                .cloned()
                .unwrap_or_else(|| w.repos[&key].default_branch.clone());
            match w.file(&key, &git_ref, &path) {
                Some((sha, bytes)) => {
                    let mut a = example("GET /repos/{owner}/{repo}/contents/{path}");
                    a["type"] = "file".into();
                    a["encoding"] = "base64".into();
                    a["size"] = bytes.len().into();
                    a["name"] = path.rsplit('/').next().unwrap().into();
                    a["path"] = path.clone().into();
                    a["sha"] = sha.into();
                    // Over 1 MB the contents API leaves the content out.
                    a["content"] = if bytes.len() > 1_000_000 {
                        "".into()
                    } else {
                        wrapped_b64(&bytes).into()
                    };
                    answer(200, a)
                }
                None => not_found(),
            }
        }
        ("PUT", ["repos", _, _, "contents", rest @ ..]) => {
            let key = repo_key(segs);
            let path = rest.join("/");
            let branch = body["branch"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| w.repos[&key].default_branch.clone());
            let (Some(message), Some(content)) =
                (body["message"].as_str(), body["content"].as_str())
            else {
                return validation(
                    "Invalid request.\n\n\"message\" and \"content\" are required.",
                    "missing_field",
                );
            };
            if !w.repos[&key].refs.contains_key(&branch) {
                return error(404, &format!("Branch {branch} not found"));
            }
            let Ok(bytes) = STANDARD.decode(content) else {
                return validation("content is not valid Base64", "invalid");
            };
            let existing = w.file(&key, &branch, &path).map(|(sha, _)| sha);
            match (&existing, body["sha"].as_str()) {
                (Some(_), None) => {
                    return validation(
                        "Invalid request.\n\n\"sha\" wasn't supplied.",
                        "missing_field",
                    );
                }
                (Some(current), Some(given)) if current != given => {
                    return error(409, &format!("{path} does not match {given}"));
                }
                (None, Some(given)) => {
                    return error(409, &format!("{path} does not match {given}"));
                }
                _ => {}
            }
            let commit = w.commit_files(
                &key,
                &branch,
                &[(path.clone(), Some(bytes.clone()))],
                message,
            );
            let blob = sha_of(&bytes);
            let mut a = example("PUT /repos/{owner}/{repo}/contents/{path}");
            a["content"]["name"] = path.rsplit('/').next().unwrap().into();
            a["content"]["path"] = path.into();
            a["content"]["sha"] = blob.into();
            a["content"]["size"] = bytes.len().into();
            a["commit"]["sha"] = commit.into();
            a["commit"]["message"] = message.into();
            answer(if existing.is_some() { 200 } else { 201 }, a)
        }
        ("GET", ["repos", _, _, "branches", branch @ ..]) => {
            let branch = branch.join("/");
            match w.repos[&repo_key(segs)].refs.get(&branch) {
                Some(sha) => {
                    let mut a = example("GET /repos/{owner}/{repo}/branches/{branch}");
                    a["name"] = branch.into();
                    a["commit"]["sha"] = sha.clone().into();
                    answer(200, a)
                }
                None => error(404, "Branch not found"),
            }
        }
        ("POST", ["repos", _, _, "git", "refs"]) => {
            let key = repo_key(segs);
            let (Some(full), Some(sha)) = (body["ref"].as_str(), body["sha"].as_str()) else {
                return validation(
                    "Invalid request.\n\n\"ref\" and \"sha\" are required.",
                    "missing_field",
                );
            };
            let Some(branch) = full.strip_prefix("refs/heads/") else {
                return validation("Reference name must start with 'refs/'", "invalid");
            };
            if !w.commits.contains_key(sha) {
                return validation("Object does not exist", "invalid");
            }
            if w.repos[&key].refs.contains_key(branch) {
                return validation("Reference already exists", "already_exists");
            }
            w.repos
                .get_mut(&key)
                .unwrap()
                .refs
                .insert(branch.into(), sha.into());
            let mut a = example("POST /repos/{owner}/{repo}/git/refs");
            a["ref"] = full.into();
            a["object"]["sha"] = sha.into();
            answer(201, a)
        }
        ("POST", ["repos", _, _, "git", "trees"]) => {
            let mut tree = body["base_tree"]
                .as_str()
                .and_then(|b| w.trees.get(b).cloned())
                .unwrap_or_default();
            for e in body["tree"].as_array().into_iter().flatten() {
                let (Some(path), Some(content)) = (e["path"].as_str(), e["content"].as_str())
                else {
                    return validation("tree entries need a path and content", "invalid");
                };
                let b = w.blob(content.as_bytes());
                tree.insert(path.into(), b);
            }
            let sha = sha_of(format!("tree {tree:?}").as_bytes());
            w.trees.insert(sha.clone(), tree);
            let mut a = example("POST /repos/{owner}/{repo}/git/trees");
            a["sha"] = sha.into();
            a["truncated"] = false.into();
            answer(201, a)
        }
        ("POST", ["repos", _, _, "git", "commits"]) => {
            let Some(tree) = body["tree"].as_str().and_then(|t| w.trees.get(t).cloned()) else {
                return validation("Tree SHA does not exist", "invalid");
            };
            let parents: Vec<String> = body["parents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            let message = body["message"].as_str().unwrap_or_default();
            let sha = w.commit(tree, parents.clone(), message);
            let mut a = example("POST /repos/{owner}/{repo}/git/commits");
            a["sha"] = sha.into();
            a["message"] = message.into();
            a["parents"] = parents.iter().map(|p| json!({ "sha": p, "url": "https://api.github.com", "html_url": "https://github.com" })).collect::<Vec<_>>().into();
            answer(201, a)
        }
        ("GET", ["repos", _, _, "git", "blobs", sha]) => match w.blobs.get(*sha) {
            Some(bytes) => {
                let mut a = example("GET /repos/{owner}/{repo}/git/blobs/{file_sha}");
                a["content"] = wrapped_b64(bytes).into();
                a["encoding"] = "base64".into();
                a["sha"] = (*sha).into();
                a["size"] = bytes.len().into();
                answer(200, a)
            }
            None => not_found(),
        },
        ("GET", ["repos", _, _, "commits"]) => {
            let key = repo_key(segs);
            let start = query
                .get("sha")
                .cloned()
                .unwrap_or_else(|| w.repos[&key].default_branch.clone());
            let Some(mut sha) = w.repos[&key]
                .refs
                .get(&start)
                .cloned()
                .or(Some(start))
                .filter(|s| w.commits.contains_key(s))
            else {
                return not_found();
            };
            let per_page: usize = query
                .get("per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(30);
            let mut out = Vec::new();
            loop {
                let c = w.commits[&sha].clone();
                let parent = c.parents.first().cloned();
                let touched = match (query.get("path"), &parent) {
                    (Some(p), Some(parent)) => c.tree.get(p) != w.commits[parent].tree.get(p),
                    (Some(p), None) => c.tree.contains_key(p),
                    (None, _) => true,
                };
                if touched {
                    let mut v = first("GET /repos/{owner}/{repo}/commits");
                    v["sha"] = sha.clone().into();
                    v["commit"]["message"] = c.message.clone().into();
                    v["parents"] = c
                        .parents
                        .iter()
                        .map(|p| json!({ "sha": p, "url": "https://api.github.com" }))
                        .collect::<Vec<_>>()
                        .into();
                    out.push(v);
                }
                if out.len() >= per_page {
                    break;
                }
                match parent {
                    Some(p) => sha = p,
                    None => break,
                }
            }
            answer(200, Value::Array(out))
        }
        (_, ["repos", _, _, "pulls", ..]) => pulls(w, actor, method, segs, query, body),
        ("GET", ["repos", _, _, "collaborators", login, "permission"]) => {
            let key = repo_key(segs);
            let permission = w.repos[&key]
                .collaborators
                .get(*login)
                .cloned()
                .unwrap_or_else(|| "none".into());
            let mut a = example("GET /repos/{owner}/{repo}/collaborators/{username}/permission");
            a["permission"] = match permission.as_str() {
                "maintain" => "write",
                "triage" => "read",
                other => other,
            }
            .into();
            a["role_name"] = permission.into();
            a["user"]["login"] = (*login).into();
            answer(200, a)
        }
        ("GET", ["orgs", org, "teams", team, "memberships", login]) => {
            if w.teams
                .get(&format!("{org}/{team}"))
                .is_some_and(|m| m.contains(*login))
            {
                let mut a = example("GET /orgs/{org}/teams/{team_slug}/memberships/{username}");
                a["state"] = "active".into();
                answer(200, a)
            } else {
                not_found()
            }
        }
        (_, ["repos", _, _, "issues", ..]) | (_, ["repos", _, _, "labels"]) => {
            issues(w, method, segs, query, body)
        }
        _ => not_found(),
    }
}

fn scope_of(segs: &[&str]) -> Scope {
    match segs {
        ["orgs", o, ..] => Scope::Org(o.to_string()),
        ["repos", o, r, "environments", e, ..] => Scope::Env(format!("{o}/{r}"), e.to_string()),
        ["repos", o, r, ..] => Scope::Repo(format!("{o}/{r}")),
        _ => unreachable!(),
    }
}

fn secrets(w: &mut World, method: &Method, segs: &[&str], body: &Value, endpoint: &str) -> Answer {
    let scope = scope_of(segs);
    if let Scope::Env(r, e) = &scope
        && !w.repos[r].environments.contains_key(e)
    {
        return error(404, "Not Found");
    }
    if let Scope::Org(o) = &scope
        && !w.orgs.contains_key(o)
    {
        return error(404, "Not Found");
    }
    let last = *segs.last().unwrap();
    let ex_key = endpoint.to_string();
    let values = w.values_mut(&scope).unwrap();
    match (method.as_str(), last) {
        ("GET", "public-key") => {
            let mut a = example(&ex_key);
            a["key_id"] = values.keys.id.clone().into();
            a["key"] = values.keys.public_b64().into();
            answer(200, a)
        }
        ("PUT", name) => {
            let (Some(sealed), Some(key_id)) =
                (body["encrypted_value"].as_str(), body["key_id"].as_str())
            else {
                return validation(
                    "Invalid request.\n\n\"encrypted_value\" and \"key_id\" are required.",
                    "missing_field",
                );
            };
            if key_id != values.keys.id {
                return validation(
                    "Invalid request.\n\nkey_id does not match the public key",
                    "invalid",
                );
            }
            if STANDARD
                .decode(sealed)
                .map(|b| b.len() < 48)
                .unwrap_or(true)
            {
                return validation(
                    "Invalid request.\n\nencrypted_value is not a sealed box",
                    "invalid",
                );
            }
            if matches!(scope, Scope::Org(_)) && body["visibility"].as_str().is_none() {
                return validation(
                    "Invalid request.\n\n\"visibility\" wasn't supplied.",
                    "missing_field",
                );
            }
            let existed = values
                .secrets
                .insert(name.to_string(), (sealed.to_string(), now()))
                .is_some();
            if matches!(scope, Scope::Org(_)) {
                values.org_settings.insert(
                    name.to_string(),
                    json!({ "visibility": body["visibility"], "selected_repository_ids": body["selected_repository_ids"] }),
                );
            }
            if existed {
                empty(204)
            } else {
                answer(201, json!({}))
            }
        }
        _ => error(404, "Not Found"),
    }
}

fn variables(
    w: &mut World,
    method: &Method,
    segs: &[&str],
    body: &Value,
    query: &BTreeMap<String, String>,
    endpoint: &str,
) -> Answer {
    let scope = scope_of(segs);
    if let Scope::Env(r, e) = &scope
        && !w.repos[r].environments.contains_key(e)
    {
        return error(404, "Not Found");
    }
    let Some(values) = w.values_mut(&scope) else {
        return error(404, "Not Found");
    };
    let last = *segs.last().unwrap();
    match (method.as_str(), last) {
        ("GET", "variables") => {
            let mut a = example(endpoint);
            let template = a["variables"][0].clone();
            // Documented: per_page defaults to 10, at most 30; pages count from 1.
            let per_page = query
                .get("per_page")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(10)
                .clamp(1, 30);
            let page = query
                .get("page")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            a["total_count"] = values.variables.len().into();
            let list: Vec<Value> = values
                .variables
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|(name, value)| {
                    let mut v = template.clone();
                    v["name"] = name.clone().into();
                    v["value"] = value.clone().into();
                    v
                })
                .collect();
            a["variables"] = list.into();
            answer(200, a)
        }
        ("PATCH", name) => match values.variables.get_mut(name) {
            Some(v) => {
                *v = body["value"].as_str().unwrap_or_default().to_string();
                empty(204)
            }
            None => error(404, "Not Found"),
        },
        ("DELETE", name) => match values.variables.remove(name) {
            Some(_) => empty(204),
            None => error(404, "Not Found"),
        },
        ("POST", _) => {
            let (Some(name), Some(value)) = (body["name"].as_str(), body["value"].as_str()) else {
                return validation(
                    "Invalid request.\n\n\"name\" and \"value\" are required.",
                    "missing_field",
                );
            };
            if values.variables.contains_key(name) {
                return error(409, "Already exists - Variable already exists");
            }
            values.variables.insert(name.into(), value.into());
            answer(201, json!({}))
        }
        _ => error(404, "Not Found"),
    }
}

fn pull_json(w: &World, repo: &str, p: &Pull, full: bool) -> Value {
    let op = if full {
        "GET /repos/{owner}/{repo}/pulls/{pull_number}"
    } else {
        "GET /repos/{owner}/{repo}/pulls"
    };
    let mut v = if full { example(op) } else { first(op) };
    v["number"] = p.number.into();
    v["id"] = (p.number + 7_000_000).into();
    v["title"] = p.title.clone().into();
    v["body"] = p.body.clone().into();
    v["state"] = p.state.clone().into();
    v["user"] = user_object(&p.user, w.user_id(&p.user));
    v["html_url"] = format!("https://github.com/{repo}/pull/{}", p.number).into();
    v["head"]["ref"] = p.head.clone().into();
    v["head"]["sha"] = w.repos[repo]
        .refs
        .get(&p.head)
        .cloned()
        .unwrap_or_default()
        .into();
    v["head"]["label"] = format!("{}:{}", w.repos[repo].owner, p.head).into();
    v["base"]["ref"] = p.base.clone().into();
    v["base"]["label"] = format!("{}:{}", w.repos[repo].owner, p.base).into();
    v["merged_at"] = p.merged_at.clone().map_or(Value::Null, Value::from);
    v["merge_commit_sha"] = p.merge_sha.clone().map_or(Value::Null, Value::from);
    if full {
        v["merged"] = p.merged_at.is_some().into();
        v["merged_by"] = p
            .merged_by
            .as_ref()
            .map_or(Value::Null, |m| user_object(m, w.user_id(m)));
    }
    v
}

fn pulls(
    w: &mut World,
    actor: &Actor,
    method: &Method,
    segs: &[&str],
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Answer {
    let key = repo_key(segs);
    match (method.as_str(), &segs[3..]) {
        ("GET", ["pulls"]) => {
            let head = query
                .get("head")
                .and_then(|h| h.split_once(':'))
                .map(|(_, b)| b.to_string());
            let state = query.get("state").map(String::as_str).unwrap_or("open");
            let list: Vec<Value> = w.repos[&key]
                .pulls
                .iter()
                .rev()
                .filter(|p| head.as_ref().is_none_or(|h| *h == p.head))
                .filter(|p| state == "all" || p.state == state)
                .map(|p| pull_json(w, &key, p, false))
                .collect();
            answer(200, Value::Array(list))
        }
        ("POST", ["pulls"]) => {
            let (Some(head), Some(base), Some(title)) = (
                body["head"].as_str(),
                body["base"].as_str(),
                body["title"].as_str(),
            ) else {
                return validation(
                    "Invalid request.\n\n\"head\", \"base\" and \"title\" are required.",
                    "missing_field",
                );
            };
            let refs = &w.repos[&key].refs;
            if !refs.contains_key(head) || !refs.contains_key(base) {
                return validation("Validation Failed: head or base does not exist", "invalid");
            }
            if w.repos[&key]
                .pulls
                .iter()
                .any(|p| p.head == head && p.state == "open")
            {
                return validation(
                    &format!(
                        "A pull request already exists for {}:{head}.",
                        w.repos[&key].owner
                    ),
                    "custom",
                );
            }
            if refs[head] == refs[base] {
                return validation(&format!("No commits between {base} and {head}"), "custom");
            }
            let user = match actor {
                Actor::Installation { .. } | Actor::App => BOT.to_string(),
                Actor::User(login) => login.clone(),
                Actor::Workflow { .. } => "github-actions[bot]".to_string(),
            };
            let base_sha = refs[base].clone();
            let number = w.id();
            let pull = Pull {
                number,
                user,
                title: title.into(),
                body: body["body"].as_str().unwrap_or_default().into(),
                head: head.into(),
                base: base.into(),
                base_sha,
                state: "open".into(),
                merged_by: None,
                merged_at: None,
                merge_sha: None,
                reviews: Vec::new(),
            };
            let v = pull_json(w, &key, &pull, true);
            w.repos.get_mut(&key).unwrap().pulls.push(pull);
            answer(201, v)
        }
        (_, ["pulls", n, rest @ ..]) => {
            let Some(pull) = w.repos[&key]
                .pulls
                .iter()
                .find(|p| p.number.to_string() == *n)
                .cloned()
            else {
                return error(404, "Not Found");
            };
            match rest {
                [] => answer(200, pull_json(w, &key, &pull, true)),
                ["files"] => {
                    let template = first("GET /repos/{owner}/{repo}/pulls/{pull_number}/files");
                    let files: Vec<Value> = w
                        .pull_files(&key, &pull)
                        .into_iter()
                        .map(|(path, status)| {
                            let mut f = template.clone();
                            f["filename"] = path.into();
                            f["status"] = status.into();
                            f
                        })
                        .collect();
                    answer(200, Value::Array(files))
                }
                ["reviews"] => {
                    let template = first("GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews");
                    let reviews: Vec<Value> = pull
                        .reviews
                        .iter()
                        .map(|r| {
                            let mut v = template.clone();
                            v["id"] = r.id.into();
                            v["user"] = user_object(&r.user, w.user_id(&r.user));
                            v["state"] = r.state.clone().into();
                            v["commit_id"] = r.commit_id.clone().into();
                            v["submitted_at"] = r.submitted_at.clone().into();
                            v
                        })
                        .collect();
                    answer(200, Value::Array(reviews))
                }
                _ => error(404, "Not Found"),
            }
        }
        _ => error(404, "Not Found"),
    }
}

fn issue_json(i: &Issue, repo: &str) -> Value {
    let mut v = first("GET /repos/{owner}/{repo}/issues");
    v["number"] = i.number.into();
    v["id"] = (i.number + 9_000_000).into();
    v["title"] = i.title.clone().into();
    v["body"] = i.body.clone().into();
    v["state"] = i.state.clone().into();
    v["html_url"] = format!("https://github.com/{repo}/issues/{}", i.number).into();
    let label = v["labels"][0].clone();
    v["labels"] = i
        .labels
        .iter()
        .map(|l| {
            let mut lv = label.clone();
            lv["name"] = l.clone().into();
            lv
        })
        .collect::<Vec<_>>()
        .into();
    if let Some(map) = v.as_object_mut() {
        map.remove("pull_request");
    }
    v
}

fn issues(
    w: &mut World,
    method: &Method,
    segs: &[&str],
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Answer {
    let key = repo_key(segs);
    match (method.as_str(), &segs[3..]) {
        ("POST", ["labels"]) => {
            let Some(name) = body["name"].as_str() else {
                return validation(
                    "Invalid request.\n\n\"name\" wasn't supplied.",
                    "missing_field",
                );
            };
            if !w.repos.get_mut(&key).unwrap().labels.insert(name.into()) {
                return validation("Validation Failed", "already_exists");
            }
            let mut a = example("POST /repos/{owner}/{repo}/labels");
            a["name"] = name.into();
            answer(201, a)
        }
        ("GET", ["issues"]) => {
            let labels: Vec<&str> = query
                .get("labels")
                .map(|l| l.split(',').collect())
                .unwrap_or_default();
            let state = query.get("state").map(String::as_str).unwrap_or("open");
            let list: Vec<Value> = w.repos[&key]
                .issues
                .iter()
                .filter(|i| state == "all" || i.state == state)
                .filter(|i| labels.iter().all(|l| i.labels.iter().any(|x| x == l)))
                .map(|i| issue_json(i, &key))
                .collect();
            answer(200, Value::Array(list))
        }
        ("POST", ["issues"]) => {
            let Some(title) = body["title"].as_str() else {
                return validation(
                    "Invalid request.\n\n\"title\" wasn't supplied.",
                    "missing_field",
                );
            };
            let number = w.id();
            let issue = Issue {
                number,
                title: title.into(),
                body: body["body"].as_str().unwrap_or_default().into(),
                state: "open".into(),
                labels: body["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect(),
                comments: Vec::new(),
            };
            let mut v = example("POST /repos/{owner}/{repo}/issues");
            let shaped = issue_json(&issue, &key);
            for k in [
                "number", "id", "title", "body", "state", "html_url", "labels",
            ] {
                v[k] = shaped[k].clone();
            }
            w.repos.get_mut(&key).unwrap().issues.push(issue);
            answer(201, v)
        }
        (_, ["issues", n, rest @ ..]) => {
            let r = w.repos.get_mut(&key).unwrap();
            let Some(issue) = r.issues.iter_mut().find(|i| i.number.to_string() == *n) else {
                return error(404, "Not Found");
            };
            match (method.as_str(), rest) {
                ("PATCH", []) => {
                    if let Some(b) = body["body"].as_str() {
                        issue.body = b.into();
                    }
                    if let Some(s) = body["state"].as_str() {
                        issue.state = s.into();
                    }
                    let shaped = issue_json(issue, &key);
                    let mut v = example("PATCH /repos/{owner}/{repo}/issues/{issue_number}");
                    for k in [
                        "number", "id", "title", "body", "state", "html_url", "labels",
                    ] {
                        v[k] = shaped[k].clone();
                    }
                    answer(200, v)
                }
                ("POST", ["comments"]) => {
                    issue
                        .comments
                        .push(body["body"].as_str().unwrap_or_default().into());
                    let mut v =
                        example("POST /repos/{owner}/{repo}/issues/{issue_number}/comments");
                    v["body"] = body["body"].clone();
                    answer(201, v)
                }
                _ => error(404, "Not Found"),
            }
        }
        _ => error(404, "Not Found"),
    }
}

/// Writes a new secret value as S_0..S_{names-1} into every repository, as one
/// github-secret promote step runs it; returns how long the step took.
pub async fn write_secrets(
    gh: rotagate::github::GitHub,
    repos: &[impl AsRef<str>],
    names: usize,
) -> Duration {
    let set: String = (0..names)
        .map(|i| format!("S_{i}: \"{{{{ new.value }}}}\", "))
        .collect();
    let repos: Vec<&str> = repos.iter().map(AsRef::as_ref).collect();
    let yaml = format!(
        "github-secret: {{ repos: [{}], set: {{ {} }} }}",
        repos.join(", "),
        set.trim_end_matches(", ")
    );
    let spec: rotagate::config::ActionSpec =
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            &yaml,
        ))
        .unwrap();
    let providers = rotagate::actions::Providers {
        github: Some(gh),
        ..Default::default()
    };
    let action = rotagate::actions::build(&spec, &providers)
        .unwrap()
        .unwrap();
    let material = rotagate::material::generate(
        &rotagate::config::KeySpec::Secret {
            length: 40,
            alphabet: Default::default(),
            prefix: "sk_live_".into(),
            kid: Default::default(),
        },
        "k".into(),
        None,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let env = rotagate::actions::EnvValues::default();
    let http = rotagate::http::HttpClient::new(Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cx = rotagate::actions::StepContext {
        credential: "c",
        step: "promote/0",
        base_dir: dir.path(),
        http: &http,
        env: &env,
        produced: &[],
    };
    let view = rotagate::actions::View {
        new: Some(&material),
        old: None,
        env: &env,
    };
    let started = std::time::Instant::now();
    action
        .execute(rotagate::actions::Op::Write(&view), &cx)
        .await
        .unwrap();
    started.elapsed()
}
