//! The pull-request gate: a pull request that adds
//! `.rotagate/approvals/<credential>/<gate>.yaml`, found by its branch before one is
//! opened, opens the gate only once it is merged into the default branch having changed
//! nothing else, with enough approving reviews on its final commit from accounts with
//! write access (not the opener; not only the merger), and the approval file on the
//! default branch names this rotation, gate and fingerprints.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Checked, Gate, GateError, GateRequest, GateStatus};
use crate::config::PullRequestGate as Spec;
use crate::github::{Call, GitHub, GithubError, encode};
use crate::material::Material;

pub struct PullRequestGate {
    spec: Spec,
    gh: GitHub,
    repo: String,
}

impl PullRequestGate {
    pub fn new(spec: Spec, gh: GitHub, repo: String) -> Self {
        PullRequestGate { spec, gh, repo }
    }
}

fn err(e: GithubError) -> GateError {
    GateError(e.to_string())
}

/// Where a gate's approval file lives.
pub fn approval_path(credential: &str, gate: &str) -> String {
    format!(".rotagate/approvals/{credential}/{gate}.yaml")
}

/// The branch a gate's pull request comes from; a reopened gate gets a fresh one.
pub fn branch_name(credential: &str, rotation: &str, gate: &str, attempt: u64) -> String {
    let base = format!("rotagate/{credential}/{rotation}/{gate}");
    if attempt > 1 { format!("{base}-{attempt}") } else { base }
}

fn material_line(m: Option<&Material>) -> String {
    match m {
        Some(m) => format!("{{ kid: \"{}\", fingerprint: \"{}\" }}", m.kid, m.fingerprint),
        None => "null".into(),
    }
}

/// The approval file: only public facts, so merging it reveals nothing. The attempt
/// makes a reopened gate's file differ from the one already merged.
pub fn approval_file(req: &GateRequest, attempt: u64) -> String {
    format!(
        "# Merging the pull request that adds this file approves gate `{gate}` of rotation\n# {rotation} of credential {credential}. rotagate checks it on the default branch;\n# do not edit it.\ncredential: {credential}\nrotation: \"{rotation}\"\ngate: {gate}\nattempt: {attempt}\nold: {old}\nnew: {new}\n",
        gate = req.gate,
        rotation = req.rotation,
        credential = req.credential,
        old = material_line(req.old),
        new = material_line(req.new),
    )
}

/// The pull request's description: what merging does, the checklist, the evidence.
pub fn body(req: &GateRequest, spec: &Spec) -> String {
    let mut out = format!(
        "rotagate asks for approval to pass gate **{gate}** of rotation `{rotation}` of credential **{credential}**.\n\n",
        gate = req.gate,
        rotation = req.rotation,
        credential = req.credential
    );
    let next = match req.gate {
        "publish" => {
            "Merging confirms the steps below were done; the rotation then propagates and promotes the new material."
        }
        "promote" => {
            "Merging opens the maintenance window: consumers switch to the new material with no overlap."
        }
        _ => {
            "Merging lets rotagate remove the old material. This is irreversible: rollback ends here."
        }
    };
    out.push_str(next);
    out.push_str("\n\n");
    if !req.checklist.is_empty() {
        out.push_str("### Do before merging\n\n");
        for line in req.checklist {
            out.push_str(&format!("- [ ] {line}\n"));
        }
        out.push('\n');
    }
    out.push_str("### Material\n\n| | kid | fingerprint |\n|---|---|---|\n");
    for (label, m) in [("old", req.old), ("new", req.new)] {
        if let Some(m) = m {
            out.push_str(&format!("| {label} | `{}` | `{}` |\n", m.kid, m.fingerprint));
        }
    }
    if !req.evidence.is_empty() {
        out.push_str("\n### Evidence\n\n");
        for line in req.evidence {
            out.push_str(&format!("- {line}\n"));
        }
    }
    if let Some(owner) = req.owner {
        out.push_str(&format!("\nOwner: {owner}\n"));
    }
    out.push_str(&format!(
        "\n### What counts\n\nThe gate opens when this pull request is merged into the default branch, changing only `{}`, with {} approving review{} on its final commit from accounts with write access{}{}.\n",
        approval_path(req.credential, req.gate),
        spec.approvals,
        if spec.approvals == 1 { "" } else { "s" },
        if spec.reviewers.is_empty() { String::new() } else { format!(" among {}", spec.reviewers.join(", ")) },
        if spec.distinct_merger { ", at least one of them not the account that merges" } else { "" },
    ));
    // Evidence quotes probe output: nothing known to be secret goes into a public body.
    crate::secret::redact(&out)
}

impl PullRequestGate {
    fn owner(&self) -> &str {
        self.repo.split_once('/').map_or(self.repo.as_str(), |(o, _)| o)
    }

    /// A GET of the API, its answer decoded.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: String,
    ) -> Result<T, GateError> {
        self.gh.get(endpoint, path).await.map_err(err)
    }

    async fn find_by_branch(&self, branch: &str) -> Result<Option<Value>, GateError> {
        let pulls: Value = self
            .gh
            .get(
                "GET /repos/{owner}/{repo}/pulls",
                format!(
                    "/repos/{}/pulls?head={}&state=all&per_page=10",
                    self.repo,
                    encode(&format!("{}:{branch}", self.owner()))
                ),
            )
            .await
            .map_err(err)?;
        Ok(pulls.as_array().and_then(|p| p.first()).cloned())
    }

    async fn open(
        &self,
        req: &GateRequest<'_>,
        branch: &str,
        default: &str,
        attempt: u64,
    ) -> Result<Value, GateError> {
        let repo = &self.repo;
        let path = approval_path(req.credential, req.gate);
        // Branch from the default branch's head; a 422 means an interrupted run made the
        // branch already.
        let base: Value = self
            .get(
                "GET /repos/{owner}/{repo}/branches/{branch}",
                format!("/repos/{repo}/branches/{}", encode(default)),
            )
            .await?;
        let new_ref =
            json!({ "ref": format!("refs/heads/{branch}"), "sha": base["commit"]["sha"] });
        self.gh
            .expect(
                &Call::create(
                    "POST /repos/{owner}/{repo}/git/refs",
                    format!("/repos/{repo}/git/refs"),
                    &new_ref,
                ),
                &[422],
            )
            .await
            .map_err(err)?;
        let existing = self
            .gh
            .expect(
                &Call::read(
                    "GET /repos/{owner}/{repo}/contents/{path}",
                    format!("/repos/{repo}/contents/{path}?ref={}", encode(branch)),
                ),
                &[404],
            )
            .await
            .map_err(err)?;
        let mut put = json!({
            "message": format!("rotagate: approve gate {} of {} ({})", req.gate, req.credential, req.rotation),
            "content": STANDARD.encode(approval_file(req, attempt)),
            "branch": branch,
        });
        if existing.ok() {
            put["sha"] = existing.json::<Value>().map_err(err)?["sha"].clone();
        }
        self.gh
            .expect(
                &Call::create(
                    "PUT /repos/{owner}/{repo}/contents/{path}",
                    format!("/repos/{repo}/contents/{path}"),
                    &put,
                ),
                &[],
            )
            .await
            .map_err(err)?;
        let pr = json!({
            "title": format!("rotagate: approve {} gate of {}", req.gate, req.credential),
            "head": branch,
            "base": default,
            "body": body(req, &self.spec),
        });
        let created = self
            .gh
            .expect(
                &Call::create(
                    "POST /repos/{owner}/{repo}/pulls",
                    format!("/repos/{repo}/pulls"),
                    &pr,
                ),
                &[422],
            )
            .await
            .map_err(err)?;
        if created.status == 422 {
            // Opened meanwhile (a run killed after opening it): use that one.
            return self.find_by_branch(branch).await?.ok_or_else(|| {
                GateError(format!("GitHub refused to open the pull request: {}", created.message()))
            });
        }
        created.json().map_err(err)
    }

    /// Every check a merged pull request must pass; the first that fails rejects.
    async fn verify_merged(
        &self,
        req: &GateRequest<'_>,
        pull: &Value,
        me: &str,
        default: &str,
        attempt: u64,
    ) -> Checked {
        let repo = &self.repo;
        let number = pull["number"].as_u64().unwrap_or_default();
        let base = pull["base"]["ref"].as_str().unwrap_or_default();
        if base != default {
            return Ok(GateStatus::Rejected(format!(
                "pull request #{number} was merged into {base}, not the default branch {default}"
            )));
        }
        let path = approval_path(req.credential, req.gate);
        let files = self
            .gh
            .list(
                "GET /repos/{owner}/{repo}/pulls/{pull_number}/files",
                &format!("/repos/{repo}/pulls/{number}/files"),
                None,
            )
            .await
            .map_err(err)?;
        let names: Vec<&str> = files.iter().filter_map(|x| x["filename"].as_str()).collect();
        if names != [path.as_str()] {
            return Ok(GateStatus::Rejected(format!(
                "pull request #{number} changed {} instead of only {path}",
                if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
            )));
        }
        if let Some(problem) = self.approval_file_problem(req, &path, default, attempt).await? {
            return Ok(GateStatus::Rejected(format!("the approval file on {default} {problem}")));
        }
        let (approvers, notes) = self.approvers(pull, me).await?;
        let needed = self.spec.approvals as usize;
        if approvers.len() < needed {
            let why =
                if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
            return Ok(GateStatus::Rejected(format!(
                "pull request #{number} was merged with {} qualifying approval{}, {needed} needed{why}",
                approvers.len(),
                if approvers.len() == 1 { "" } else { "s" }
            )));
        }
        let merger = pull["merged_by"]["login"].as_str().unwrap_or_default();
        if self.spec.distinct_merger && approvers.iter().all(|a| a == merger) {
            return Ok(GateStatus::Rejected(format!(
                "pull request #{number} was approved only by {merger}, who merged it; another account must approve"
            )));
        }
        Ok(GateStatus::Open(format!(
            "pull request #{number} merged by {merger}, approved by {}",
            approvers.join(", ")
        )))
    }

    /// `None` when the approval file on the default branch matches this request.
    async fn approval_file_problem(
        &self,
        req: &GateRequest<'_>,
        path: &str,
        default: &str,
        attempt: u64,
    ) -> Result<Option<String>, GateError> {
        let reply = self
            .gh
            .expect(
                &Call::read(
                    "GET /repos/{owner}/{repo}/contents/{path}",
                    format!("/repos/{}/contents/{path}?ref={}", self.repo, encode(default)),
                ),
                &[404],
            )
            .await
            .map_err(err)?;
        if reply.status == 404 {
            return Ok(Some(format!("has no {path}")));
        }
        let v: Value = reply.json().map_err(err)?;
        let b64: String = v["content"].as_str().unwrap_or_default().split_whitespace().collect();
        let text =
            STANDARD.decode(b64).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
        let Ok(doc) = crate::config::parse_yaml_value(&text) else {
            return Ok(Some("is not YAML".into()));
        };
        let field = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let fp = |k: &str| {
            doc.get(k)
                .and_then(|m| m.get("fingerprint"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let checks = [
            ("credential", field("credential"), req.credential.to_string()),
            ("rotation", field("rotation"), req.rotation.to_string()),
            ("gate", field("gate"), req.gate.to_string()),
            (
                "attempt",
                doc.get("attempt")
                    .and_then(Value::as_u64)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                attempt.to_string(),
            ),
            (
                "old fingerprint",
                fp("old").unwrap_or_default(),
                req.old.map(|m| m.fingerprint.clone()).unwrap_or_default(),
            ),
            (
                "new fingerprint",
                fp("new").unwrap_or_default(),
                req.new.map(|m| m.fingerprint.clone()).unwrap_or_default(),
            ),
        ];
        Ok(checks
            .into_iter()
            .find(|(_, found, expected)| found != expected)
            .map(|(what, found, expected)| format!("names {what} `{found}`, not `{expected}`")))
    }

    /// Accounts whose latest state-setting review approves the final commit, and why
    /// others do not count.
    async fn approvers(
        &self,
        pull: &Value,
        me: &str,
    ) -> Result<(Vec<String>, Vec<String>), GateError> {
        let repo = &self.repo;
        let number = pull["number"].as_u64().unwrap_or_default();
        let head = pull["head"]["sha"].as_str().unwrap_or_default();
        let opener = pull["user"]["login"].as_str().unwrap_or(me);
        let reviews = self
            .gh
            .list(
                "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
                &format!("/repos/{repo}/pulls/{number}/reviews"),
                None,
            )
            .await
            .map_err(err)?;
        // Reviews come oldest first, across every page; a COMMENTED review does not
        // change a reviewer's verdict, a DISMISSED one withdraws it.
        let mut latest: BTreeMap<String, &Value> = BTreeMap::new();
        for r in &reviews {
            let state = r["state"].as_str().unwrap_or_default();
            if matches!(state, "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED")
                && let Some(login) = r["user"]["login"].as_str()
            {
                latest.insert(login.to_string(), r);
            }
        }
        let mut approvers = Vec::new();
        let mut notes = Vec::new();
        for (login, review) in latest {
            let state = review["state"].as_str().unwrap_or_default();
            if state != "APPROVED" {
                notes.push(format!(
                    "{login}'s latest review is {}",
                    state.to_lowercase().replace('_', " ")
                ));
                continue;
            }
            if review["commit_id"].as_str() != Some(head) {
                notes.push(format!("{login} approved an earlier commit"));
                continue;
            }
            if login == opener || login == me {
                notes.push(format!("{login} opened the pull request"));
                continue;
            }
            let permission: Value = self
                .get(
                    "GET /repos/{owner}/{repo}/collaborators/{username}/permission",
                    format!("/repos/{repo}/collaborators/{login}/permission"),
                )
                .await?;
            let level = permission["permission"].as_str().unwrap_or("none");
            if !matches!(level, "admin" | "write" | "maintain") {
                notes.push(format!("{login} has {level} access, not write"));
                continue;
            }
            if !self.spec.reviewers.is_empty() && !self.listed(&login).await? {
                notes.push(format!(
                    "{login} is not among the reviewers {}",
                    self.spec.reviewers.join(", ")
                ));
                continue;
            }
            approvers.push(login);
        }
        Ok((approvers, notes))
    }

    async fn listed(&self, login: &str) -> Result<bool, GateError> {
        for r in &self.spec.reviewers {
            match r.strip_prefix('@').and_then(|t| t.split_once('/')) {
                None if r == login => return Ok(true),
                None => {}
                Some((org, team)) => {
                    let reply = self
                        .gh
                        .expect(
                            &Call::read(
                                "GET /orgs/{org}/teams/{team_slug}/memberships/{username}",
                                format!("/orgs/{org}/teams/{team}/memberships/{login}"),
                            ),
                            &[404],
                        )
                        .await
                        .map_err(err)?;
                    if reply.ok() && reply.json::<Value>().map_err(err)?["state"] == "active" {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }
}

#[async_trait]
impl Gate for PullRequestGate {
    async fn check(&self, req: &GateRequest<'_>, record: &mut Value) -> Checked {
        let attempt = record.get("attempt").and_then(Value::as_u64).unwrap_or(1);
        let branch = branch_name(req.credential, req.rotation, req.gate, attempt);
        let me = self.gh.login().await.map_err(err)?;
        let default = self.gh.default_branch(&self.repo).await.map_err(err)?;
        let number = match record.get("number").and_then(Value::as_u64) {
            Some(n) => n,
            None => {
                let found = match self.find_by_branch(&branch).await? {
                    Some(found) => found,
                    None => self.open(req, &branch, &default, attempt).await?,
                };
                found["number"]
                    .as_u64()
                    .ok_or_else(|| GateError("a pull request without a number".into()))?
            }
        };
        // The list answer lacks merge details: always read the pull request itself.
        let pull: Value = self
            .get(
                "GET /repos/{owner}/{repo}/pulls/{pull_number}",
                format!("/repos/{}/pulls/{number}", self.repo),
            )
            .await?;
        let link = pull["html_url"].as_str().map(str::to_string);
        *record = json!({ "attempt": attempt, "number": number, "branch": branch });
        let opener = pull["user"]["login"].as_str().unwrap_or_default();
        if opener != me {
            return Ok(GateStatus::Rejected(format!(
                "pull request #{number} for this gate's branch was opened by {opener}, not by rotagate ({me}); close it, then `rotagate gate reopen {}`",
                req.credential
            )));
        }
        if pull["head"]["ref"].as_str() != Some(branch.as_str()) {
            return Ok(GateStatus::Rejected(format!(
                "pull request #{number} is not this gate's pull request (its branch is not {branch})"
            )));
        }
        match (
            pull["state"].as_str(),
            pull["merged"].as_bool().unwrap_or(false) || pull["merged_at"].is_string(),
        ) {
            (Some("open"), _) => Ok(GateStatus::Waiting {
                detail: format!("approve and merge pull request #{number}"),
                link,
            }),
            (_, false) => Ok(GateStatus::Rejected(format!(
                "pull request #{number} was closed without merging"
            ))),
            (_, true) => self.verify_merged(req, &pull, &me, &default, attempt).await,
        }
    }
}
