//! Owner notifications: one GitHub issue per credential, labelled `rotagate` and the
//! credential id, mentioning its owner. It is opened (or updated, never duplicated)
//! while something needs a person, and closed when that clears.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::github::{Call, GitHub, GithubError};
use crate::inventory::Finding;

/// The findings that page an owner; configuration hygiene (no owner, no schedule) is
/// for `check` alone.
const NOTIFY: &[&str] = &["failing", "gate-rejected", "gate-timeout", "expiring", "due", "expired"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notified {
    Opened(u64),
    Updated(u64),
    Unchanged(u64),
    Closed(u64),
}

pub struct GithubIssues {
    gh: GitHub,
    repo: String,
}

impl GithubIssues {
    pub fn new(gh: GitHub, repo: String) -> Self {
        GithubIssues { gh, repo }
    }

    /// Brings every credential's issue in line with `findings`; `credentials` are those
    /// whose issues may be closed (their findings are complete).
    pub async fn sync(
        &self,
        credentials: &[(String, Option<String>)],
        findings: &[Finding],
    ) -> Result<Vec<(String, Notified)>, GithubError> {
        let open = self.open_issues().await?;
        let mut done = Vec::new();
        for (id, owner) in credentials {
            let problems: Vec<&Finding> = findings
                .iter()
                .filter(|f| &f.credential == id && NOTIFY.contains(&f.code.as_str()))
                .collect();
            let existing = open.get(id);
            let outcome = match (problems.is_empty(), existing) {
                (true, None) => continue,
                (true, Some(issue)) => self.close(issue).await?,
                (false, Some(issue)) => {
                    self.update(issue, &body(id, owner.as_deref(), &problems)).await?
                }
                (false, None) => self.open(id, &body(id, owner.as_deref(), &problems)).await?,
            };
            tracing::info!("{id}: notification issue {outcome:?}");
            done.push((id.clone(), outcome));
        }
        Ok(done)
    }

    /// Open issues labelled `rotagate`, by credential label.
    async fn open_issues(&self) -> Result<BTreeMap<String, Value>, GithubError> {
        let issues = self
            .gh
            .list(
                "GET /repos/{owner}/{repo}/issues",
                &format!("/repos/{}/issues?labels=rotagate&state=open", self.repo),
                None,
            )
            .await?;
        let mut by_credential = BTreeMap::new();
        for issue in &issues {
            // The issues API lists pull requests too.
            if issue.get("pull_request").is_some() {
                continue;
            }
            for label in issue["labels"].as_array().into_iter().flatten() {
                if let Some(name) = label["name"].as_str().filter(|n| *n != "rotagate") {
                    by_credential.entry(name.to_string()).or_insert_with(|| issue.clone());
                }
            }
        }
        Ok(by_credential)
    }

    async fn open(&self, id: &str, body: &str) -> Result<Notified, GithubError> {
        for label in ["rotagate", id] {
            // 422: the label exists already.
            self.gh
                .expect(
                    &Call::create(
                        "POST /repos/{owner}/{repo}/labels",
                        format!("/repos/{}/labels", self.repo),
                        &json!({ "name": label, "color": "d93f0b" }),
                    ),
                    &[422],
                )
                .await?;
        }
        let issue = json!({ "title": format!("rotagate: {id} needs attention"), "body": body, "labels": ["rotagate", id] });
        let created: Value = self
            .gh
            .expect(
                &Call::create(
                    "POST /repos/{owner}/{repo}/issues",
                    format!("/repos/{}/issues", self.repo),
                    &issue,
                ),
                &[],
            )
            .await?
            .json()?;
        Ok(Notified::Opened(created["number"].as_u64().unwrap_or_default()))
    }

    async fn update(&self, issue: &Value, body: &str) -> Result<Notified, GithubError> {
        let number = issue["number"].as_u64().unwrap_or_default();
        if issue["body"].as_str() == Some(body) {
            return Ok(Notified::Unchanged(number));
        }
        self.patch(number, &json!({ "body": body })).await?;
        Ok(Notified::Updated(number))
    }

    async fn close(&self, issue: &Value) -> Result<Notified, GithubError> {
        let number = issue["number"].as_u64().unwrap_or_default();
        self.gh
            .expect(
                &Call::create("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", format!("/repos/{}/issues/{number}/comments", self.repo), &json!({ "body": "Resolved: rotagate no longer finds anything that needs a person here." })),
                &[],
            )
            .await?;
        self.patch(number, &json!({ "state": "closed", "state_reason": "completed" })).await?;
        Ok(Notified::Closed(number))
    }

    async fn patch(&self, number: u64, body: &Value) -> Result<(), GithubError> {
        self.gh
            .expect(
                &Call::write(
                    "PATCH /repos/{owner}/{repo}/issues/{issue_number}",
                    format!("/repos/{}/issues/{number}", self.repo),
                    Some(body),
                ),
                &[],
            )
            .await
            .map(|_| ())
    }
}

/// The issue text: who, what, and what to do. Findings quote step errors, so the text
/// goes through the redactor.
pub fn body(id: &str, owner: Option<&str>, problems: &[&Finding]) -> String {
    let who = match owner {
        Some(o) if o.starts_with('@') => format!("{o}: "),
        Some(o) => format!("Owner {o}: "),
        None => "This credential has no owner: set `owner:` so someone is told. ".into(),
    };
    let mut out = format!("{who}credential **{id}** needs attention.\n\n");
    for p in problems {
        out.push_str(&format!("- **{}**: {}\n", p.code, p.message));
    }
    out.push_str(&format!(
        "\nrotagate updates this issue on every run and closes it when these clear. `rotagate status` and `rotagate audit {id}` show more.\n"
    ));
    crate::secret::redact(&out)
}
