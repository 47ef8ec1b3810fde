//! `github-branch:BRANCH`: the sealed state committed to `state.age` on a branch through
//! the contents API, compare-and-swap on the blob sha. The branch starts as an orphan
//! holding only the state and a README. Its history lets a load check the head against
//! the state before it, so an old state put back as a new commit is refused.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Anchor, StateError, StateStore, Stored, Version};
use crate::github::{Call, GitHub, GithubError, encode};

const FILE: &str = "state.age";
/// Where archived audit segments live on the branch.
const SEGMENTS: &str = "audit";
const README: &str = "This branch holds rotagate's state: `state.age`, age-encrypted and MAC-chained.\nOnly rotagate writes it. Protect the branch against force pushes and deletion.\nBreak-glass: `age -d -i identity.txt state.age`.\n";

pub struct GithubBranchStore {
    gh: GitHub,
    repo: String,
    branch: String,
    /// The last load: the state's blob sha and the commit that wrote the state before
    /// it. Head and parent are read from one listing of commits, so another run's
    /// write in between cannot make them disagree.
    last_load: std::sync::Mutex<Option<(String, Option<String>)>>,
    /// Whether the anchor variable exists (it was read, or written by this run), so a
    /// save updates it rather than creating it.
    anchor_exists: std::sync::atomic::AtomicBool,
}

impl GithubBranchStore {
    pub fn new(gh: GitHub, repo: String, branch: String) -> Self {
        GithubBranchStore {
            gh,
            repo,
            branch,
            last_load: std::sync::Mutex::new(None),
            anchor_exists: Default::default(),
        }
    }

    /// The newest two commits of the branch that changed the state, newest first.
    async fn state_commits(&self) -> Result<Vec<String>, StateError> {
        let reply = self
            .gh
            .expect(
                &Call::read(
                    "GET /repos/{owner}/{repo}/commits",
                    format!(
                        "/repos/{}/commits?sha={}&path={FILE}&per_page=2",
                        self.repo,
                        encode(&self.branch)
                    ),
                ),
                // No such branch yet; 409: the repository is empty.
                &[404, 409],
            )
            .await
            .map_err(|e| self.err(e))?;
        if matches!(reply.status, 404 | 409) {
            return Ok(Vec::new());
        }
        let commits: Value = reply.json().map_err(|e| self.err(e))?;
        Ok(commits
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["sha"].as_str().map(str::to_string))
            .collect())
    }

    fn err(&self, e: GithubError) -> StateError {
        StateError::Store { store: self.describe(), message: e.to_string() }
    }

    /// `state.age` as of `git_ref` (a branch or a commit), with its blob sha.
    async fn read_at(&self, git_ref: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        self.read_file(FILE, git_ref).await
    }

    /// A file of the branch as of `git_ref`, with its blob sha.
    async fn read_file(
        &self,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let reply = self
            .request(
                &Call::read(
                    "GET /repos/{owner}/{repo}/contents/{path}",
                    format!("/repos/{}/contents/{path}?ref={}", self.repo, encode(git_ref)),
                ),
                &[404],
            )
            .await?;
        if reply.status == 404 {
            return Ok(None);
        }
        let v: Value = reply.json().map_err(|e| self.err(e))?;
        let sha = v["sha"].as_str().unwrap_or_default().to_string();
        let mut content: String =
            v["content"].as_str().unwrap_or_default().split_whitespace().collect();
        if content.is_empty() {
            // Over 1 MB the contents API leaves the content out; the blob has it.
            let blob: Value = self
                .gh
                .get(
                    "GET /repos/{owner}/{repo}/git/blobs/{file_sha}",
                    format!("/repos/{}/git/blobs/{sha}", self.repo),
                )
                .await
                .map_err(|e| self.err(e))?;
            content = blob["content"].as_str().unwrap_or_default().split_whitespace().collect();
        }
        let bytes = STANDARD.decode(content).map_err(|_| {
            StateError::Malformed(format!("{} holds content that is not base64", self.describe()))
        })?;
        Ok(Some((bytes, sha)))
    }

    /// Creates the branch as an orphan commit holding a README.
    async fn create_branch(&self) -> Result<(), StateError> {
        let repo = &self.repo;
        let post = |endpoint: &'static str, path: String, body: Value| async move {
            self.gh
                .expect(&Call::create(endpoint, path, &body), &[])
                .await
                .and_then(|r| r.json::<Value>())
                .map_err(|e| self.err(e))
        };
        let tree = post(
            "POST /repos/{owner}/{repo}/git/trees",
            format!("/repos/{repo}/git/trees"),
            json!({ "tree": [{ "path": "README.md", "mode": "100644", "type": "blob", "content": README }] }),
        )
        .await?;
        let commit = post(
            "POST /repos/{owner}/{repo}/git/commits",
            format!("/repos/{repo}/git/commits"),
            json!({ "message": "rotagate: start the state branch", "tree": tree["sha"], "parents": [] }),
        )
        .await?;
        self.gh
            .expect(
                &Call::create(
                    "POST /repos/{owner}/{repo}/git/refs",
                    format!("/repos/{repo}/git/refs"),
                    &json!({ "ref": format!("refs/heads/{}", self.branch), "sha": commit["sha"] }),
                ),
                &[422],
            )
            .await
            .map_err(|e| self.err(e))?;
        // A 422 means another run created it first, which is as good.
        Ok(())
    }
}

impl GithubBranchStore {
    /// The repository variable holding the newest generation and hash this store saved:
    /// a push to the branch cannot rewrite it, so a branch reset to an older state is
    /// seen. One per state branch.
    pub fn anchor_variable(&self) -> String {
        let branch: String = self
            .branch
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
            .collect();
        format!("ROTAGATE_ANCHOR_{branch}")
    }

    async fn request(
        &self,
        call: &Call<'_>,
        allow: &[u16],
    ) -> Result<crate::github::Reply, StateError> {
        self.gh.expect(call, allow).await.map_err(|e| self.err(e))
    }
}

#[async_trait]
impl StateStore for GithubBranchStore {
    fn describe(&self) -> String {
        format!("github-branch:{} of {}", self.branch, self.repo)
    }

    async fn load(&self) -> Result<Option<Stored>, StateError> {
        let commits = self.state_commits().await?;
        let Some(head) = commits.first() else {
            return Ok(None);
        };
        let Some((bytes, sha)) = self.read_at(head).await? else {
            // Starting over would reissue every key: a deleted state is put back by hand.
            return Err(StateError::Malformed(format!(
                "commit {head} deleted {FILE} from {}: restore it (git revert {head}); rotagate does not start over on a branch that held a state",
                self.describe()
            )));
        };
        *self.last_load.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((sha.clone(), commits.get(1).cloned()));
        Ok(Some(Stored { bytes, version: Version(sha) }))
    }

    async fn load_parent(&self, head: &Version) -> Result<Option<Vec<u8>>, StateError> {
        let last = self.last_load.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match last {
            Some((sha, Some(parent))) if sha == head.0 => {
                Ok(self.read_at(&parent).await?.map(|(bytes, _)| bytes))
            }
            Some((sha, None)) if sha == head.0 => Ok(None),
            _ => Err(StateError::Conflict(format!("{} moved while it was read", self.describe()))),
        }
    }

    async fn anchor(&self) -> Result<Option<Anchor>, StateError> {
        let name = self.anchor_variable();
        // Read from the documented list route: a missing variable is simply not listed.
        let listed = self
            .gh
            .list(
                "GET /repos/{owner}/{repo}/actions/variables",
                &format!("/repos/{}/actions/variables", self.repo),
                Some("variables"),
            )
            .await
            .map_err(|e| self.err(e))?;
        let Some(text) = listed
            .iter()
            .find(|v| v["name"].as_str() == Some(name.as_str()))
            .map(|v| v["value"].as_str().unwrap_or_default().to_string())
        else {
            return Ok(None);
        };
        self.anchor_exists.store(true, std::sync::atomic::Ordering::Relaxed);
        Anchor::decode(&text).map(Some).ok_or_else(|| {
            StateError::Malformed(format!(
                "the repository variable {name} of {} holds `{text}`, not rotagate's `generation:hash`: it is rotagate's replay anchor; delete it only to accept the state branch as it is (see README, \"The state\")",
                self.repo
            ))
        })
    }

    async fn record_anchor(&self, anchor: &Anchor) -> Result<(), StateError> {
        use std::sync::atomic::Ordering;
        let name = self.anchor_variable();
        let body = json!({ "name": name, "value": anchor.encode() });
        let call = if self.anchor_exists.load(Ordering::Relaxed) {
            Call::write(
                "PATCH /repos/{owner}/{repo}/actions/variables/{name}",
                format!("/repos/{}/actions/variables/{name}", self.repo),
                Some(&body),
            )
        } else {
            Call::write(
                "POST /repos/{owner}/{repo}/actions/variables",
                format!("/repos/{}/actions/variables", self.repo),
                Some(&body),
            )
        };
        self.request(&call, &[]).await?;
        self.anchor_exists.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn setup_warnings(&self) -> Vec<String> {
        let rules = self
            .gh
            .list(
                "GET /repos/{owner}/{repo}/rules/branches/{branch}",
                &format!("/repos/{}/rules/branches/{}", self.repo, encode(&self.branch)),
                None,
            )
            .await;
        let kinds: Vec<String> = match rules {
            Ok(rules) => {
                rules.iter().filter_map(|r| r["type"].as_str().map(str::to_string)).collect()
            }
            Err(e) => {
                return vec![format!("cannot read the rules protecting {}: {e}", self.describe())];
            }
        };
        let missing: Vec<&str> =
            [("non_fast_forward", "Block force pushes"), ("deletion", "Restrict deletions")]
                .into_iter()
                .filter(|(kind, _)| !kinds.iter().any(|k| k == kind))
                .map(|(_, setting)| setting)
                .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "the state branch {branch} of {repo} is not protected: anyone who can push to it can reset it. In {repo}: Settings → Rules → Rulesets → New branch ruleset, target the branch `{branch}`, enable {}; the replay anchor ({var}) still refuses an older state, but only protection keeps the branch whole",
            missing.join(" and "),
            branch = self.branch,
            repo = self.repo,
            var = self.anchor_variable(),
        )]
    }

    async fn put_segment(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let body = json!({
            "message": "rotagate: archive audit events",
            "content": STANDARD.encode(bytes),
            "branch": self.branch,
        });
        // 422: the path exists already, and a segment's name is its content.
        self.gh
            .expect(
                &Call::create(
                    "PUT /repos/{owner}/{repo}/contents/{path}",
                    format!("/repos/{}/contents/{SEGMENTS}/{name}.age", self.repo),
                    &body,
                ),
                &[422],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn get_segment(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let path = format!("{SEGMENTS}/{name}.age");
        Ok(self.read_file(&path, &self.branch).await?.map(|(bytes, _)| bytes))
    }

    async fn save(&self, bytes: &[u8], expected: Option<&Version>) -> Result<Version, StateError> {
        match self.put(bytes, expected).await? {
            Some(version) => Ok(version),
            // The first write finds no branch: start it, then write.
            None => {
                self.create_branch().await?;
                self.put(bytes, expected).await?.ok_or_else(|| StateError::Store {
                    store: self.describe(),
                    message: "the branch is still missing after creating it".into(),
                })
            }
        }
    }
}

impl GithubBranchStore {
    /// One compare-and-swap write; `None` when the branch does not exist.
    async fn put(
        &self,
        bytes: &[u8],
        expected: Option<&Version>,
    ) -> Result<Option<Version>, StateError> {
        let mut body = json!({
            "message": "rotagate: save state",
            "content": STANDARD.encode(bytes),
            "branch": self.branch,
        });
        if let Some(Version(sha)) = expected {
            body["sha"] = sha.clone().into();
        }
        let reply = self
            .gh
            .expect(
                &Call::create(
                    "PUT /repos/{owner}/{repo}/contents/{path}",
                    format!("/repos/{}/contents/{FILE}", self.repo),
                    &body,
                ),
                &[404, 409, 422],
            )
            .await
            .map_err(|e| self.err(e))?;
        if reply.status == 404 && expected.is_none() {
            return Ok(None);
        }
        if matches!(reply.status, 404 | 409 | 422) {
            return Err(StateError::Conflict(format!(
                "{} moved on ({}): another run wrote it",
                self.describe(),
                reply.message()
            )));
        }
        let v: Value = reply.json().map_err(|e| self.err(e))?;
        v["content"]["sha"].as_str().map(|s| Some(Version(s.to_string()))).ok_or_else(|| {
            StateError::Store {
                store: self.describe(),
                message: "the contents API answered without a blob sha".into(),
            }
        })
    }
}
