//! GitHub through the fake server: App auth, sealed secrets, variables, workflows, a
//! JWKS file in a repository, the pull-request gate and its forgeries, notifications
//! and the branch state store.

use std::time::Duration;

use crate::support::github::{BOT, FakeGitHub, Fault, Pull};
use crate::support::{Run, Ws};

const HOME: &str = "acme/ops";

/// A signing key whose private half and kid go to repository secrets in one step, whose
/// public half goes to a JWKS file in another repository, behind a pull-request gate.
const SIGNING: &str = r#"version: 1
state: { store: "file:.rotagate/state.age", recipients: [RECIPIENT] }
credentials:
  - id: api-signing
    owner: "@acme/platform"
    bootstrap: true
    key: { type: rsa, kid: { date: "prod-key-" } }
    publish:
      - jwks-file: { repo: acme/site, path: public/jwks.json }
    promote:
      - github-secret: { repo: acme/api, set: { SIGNING_KEY: "{{ new.private_pem }}", SIGNING_KID: "{{ new.kid }}" } }
    drain: 0s
    gate: { pull_request: { approvals: 1 } }
"#;

async fn world() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    for repo in [HOME, "acme/api", "acme/site", "acme/worker"] {
        fake.add_repo(repo);
    }
    fake.add_org("acme");
    fake.install("acme");
    fake.set_permission(HOME, "alice", "write");
    fake.set_permission(HOME, "bob", "write");
    fake.set_permission(HOME, "carol", "admin");
    fake.set_permission(HOME, "rita", "read");
    fake
}

fn kids(fake: &FakeGitHub) -> Vec<String> {
    let text = fake.file("acme/site", "main", "public/jwks.json").unwrap_or_default();
    if text.is_empty() {
        return Vec::new();
    }
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.all());
}

/// A workspace with `config`, its first material issued, and a rotation waiting on its
/// retire gate; returns the gate's pull request.
async fn at_retire_gate(fake: &FakeGitHub, config: &str) -> (Ws, Pull) {
    let ws = Ws::new();
    ws.config(config);
    ok(&ws.gh(fake, HOME, &["run"]).await);
    let waiting = ws.gh(fake, HOME, &["rotate", "api-signing", "--reason", "scheduled"]).await;
    ok(&waiting);
    assert!(waiting.all().contains("awaits gate retire"), "{}", waiting.stderr);
    let pulls = fake.pulls(HOME);
    let pr = pulls.last().unwrap().clone();
    (ws, pr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signing_key_rotates_through_secrets_a_jwks_repo_and_an_approved_pull_request() {
    let fake = world().await;
    let ws = Ws::new();
    ws.config(SIGNING);
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    let kid1 = fake.secret("acme/api", "SIGNING_KID").unwrap();
    let pem1 = fake.secret("acme/api", "SIGNING_KEY").unwrap();
    assert!(pem1.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(kids(&fake), vec![kid1.clone()]);
    assert_eq!(
        fake.count("GET /repos/{owner}/{repo}/actions/secrets/public-key"),
        1,
        "one key fetch per scope"
    );
    assert_eq!(
        fake.count("POST /app/installations/{installation_id}/access_tokens"),
        1,
        "one installation token"
    );

    let waiting = ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "scheduled"]).await;
    ok(&waiting);
    assert!(
        waiting.all().contains("awaits gate retire: approve and merge pull request #"),
        "{}",
        waiting.stderr
    );
    let pulls = fake.pulls(HOME);
    assert_eq!(pulls.len(), 1);
    let pr = pulls[0].clone();
    assert_eq!(pr.user, BOT);
    assert!(
        pr.head.starts_with("rotagate/api-signing/") && pr.head.ends_with("/retire"),
        "{}",
        pr.head
    );
    let kid2 = fake.secret("acme/api", "SIGNING_KID").unwrap();
    let pem2 = fake.secret("acme/api", "SIGNING_KEY").unwrap();
    assert_ne!(kid1, kid2);
    assert_ne!(pem1, pem2);
    assert_eq!(
        kids(&fake),
        vec![kid1.clone(), kid2.clone()],
        "both kids served until the gate opens"
    );
    // The approval file and the body carry public facts only.
    let file = fake.file(HOME, &pr.head, ".rotagate/approvals/api-signing/retire.yaml").unwrap();
    assert!(file.contains(&kid1) && file.contains(&kid2), "{file}");
    for secret in [&pem1, &pem2] {
        for line in secret.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!pr.body.contains(line) && !file.contains(line));
        }
    }
    assert!(pr.body.contains("Merging lets rotagate remove the old material"), "{}", pr.body);

    ok(&ws.gh(&fake, HOME, &["run"]).await);
    assert_eq!(fake.pulls(HOME).len(), 1, "the pull request is found again, never opened twice");

    fake.approve(HOME, pr.number, "alice");
    fake.merge(HOME, pr.number, "bob");
    let done = ws.gh(&fake, HOME, &["run"]).await;
    ok(&done);
    assert!(done.all().contains("completed"), "{}", done.stderr);
    assert_eq!(kids(&fake), vec![kid2.clone()]);
    let audit = ws.run(&["audit", "api-signing"]);
    assert!(
        audit.stdout.contains(&format!(
            "retire: pull request #{} merged by bob, approved by alice",
            pr.number
        )),
        "{}",
        audit.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_and_organisation_secrets_and_a_pynacl_cross_check() {
    let fake = world().await;
    fake.add_environment("acme/api", "production");
    let ws = Ws::new();
    ws.config(
        r#"version: 1
state: { store: "file:.rotagate/state.age", recipients: [RECIPIENT] }
credentials:
  - id: webhook
    owner: o
    bootstrap: true
    key: { type: secret, length: 40, prefix: whsec_ }
    promote:
      - github-secret: { repo: acme/api, environment: production, set: { WEBHOOK_SECRET: "{{ new.value }}" } }
      - github-secret: { org: acme, visibility: selected, repositories: [api, worker], set: { WEBHOOK_SECRET: "{{ new.value }}" } }
      - github-secret: { repos: [acme/api, acme/worker, acme/site], set: { WEBHOOK_SECRET: "{{ new.value }}" } }
    gate: none
"#,
    );
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    let value = fake.env_secret("acme/api", "production", "WEBHOOK_SECRET").unwrap();
    assert!(value.starts_with("whsec_") && value.len() == 46);
    let (org_value, settings) = fake.org_secret("acme", "WEBHOOK_SECRET").unwrap();
    assert_eq!(org_value, value);
    assert_eq!(settings["visibility"], "selected");
    assert_eq!(settings["selected_repository_ids"].as_array().unwrap().len(), 2);
    for repo in ["acme/api", "acme/worker", "acme/site"] {
        assert_eq!(fake.secret(repo, "WEBHOOK_SECRET").unwrap(), value);
    }
    // One public-key fetch per scope, however many values each takes.
    let counts = fake.counts();
    assert_eq!(
        counts["GET /repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key"],
        1
    );
    assert_eq!(counts["GET /orgs/{org}/actions/secrets/public-key"], 1);
    assert_eq!(counts["GET /repos/{owner}/{repo}/actions/secrets/public-key"], 3);

    // PyNaCl opens what rotagate sealed, with the repository's private key.
    let (sealed, public, secret) = fake.sealed("acme/worker", "WEBHOOK_SECRET").unwrap();
    let script = "import sys, base64\nfrom nacl.public import PrivateKey, SealedBox\nsealed, public, secret = sys.argv[1:4]\nkey = PrivateKey(base64.b64decode(secret))\nassert base64.b64encode(bytes(key.public_key)).decode() == public\nprint(SealedBox(key).decrypt(base64.b64decode(sealed)).decode())\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &sealed, &public, &secret])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), value);
}

#[tokio::test(flavor = "multi_thread")]
async fn github_token_is_refused_before_any_step_for_secrets_and_403s_name_the_permission() {
    let fake = world().await;
    let ws = Ws::new();
    ws.config(SIGNING);
    let token = fake.workflow_token(HOME);
    let mut cmd = ws.cmd(&["run"]);
    cmd.env("GITHUB_API_URL", fake.url())
        .env("GITHUB_TOKEN", &token)
        .env("GITHUB_REPOSITORY", HOME);
    let out: Run = tokio::process::Command::from(cmd).output().await.unwrap().into();
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.all().contains("GITHUB_TOKEN, which cannot write Actions secrets"),
        "{}",
        out.stderr
    );
    assert_eq!(fake.total_requests(), 0, "rejected before anything was sent");
    assert!(!ws.exists(".rotagate/state.age"));

    fake.revoke("acme", "secrets");
    let out = ws.gh(&fake, HOME, &["run"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("answered 403"), "{}", out.stderr);
    assert!(
        out.all()
            .contains("the GitHub App needs the repository permission \"Secrets: Read and write\""),
        "{}",
        out.stderr
    );

    // An App not installed where it writes says so.
    let fake = world().await;
    let ws = Ws::new();
    ws.config(&SIGNING.replace("acme/api", "elsewhere/api"));
    fake.add_repo("elsewhere/api");
    let out = ws.gh(&fake, HOME, &["run"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("the GitHub App is not installed on elsewhere"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_are_retried_and_a_partial_write_is_put_back() {
    let fake = world().await;
    let ws = Ws::new();
    ws.config(&SIGNING.replace("gate: { pull_request: { approvals: 1 } }", "gate: none"));
    let put = "PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}";
    fake.inject(put, Fault::Status(500), 1);
    fake.inject(put, Fault::TooMany { retry_after: 1 }, 1);
    fake.inject(
        "GET /repos/{owner}/{repo}/actions/secrets/public-key",
        Fault::Secondary { retry_after: 1 },
        1,
    );
    fake.inject("PUT /repos/{owner}/{repo}/contents/{path}", Fault::Reset, 1);
    fake.inject("GET /repos/{owner}/{repo}", Fault::Slow(Duration::from_millis(300)), 1);
    let out = ws.gh(&fake, HOME, &["run"]).await;
    ok(&out);
    assert_eq!(fake.count(put), 4, "two writes, two retried");
    let kid1 = fake.secret("acme/api", "SIGNING_KID").unwrap();
    let pem1 = fake.secret("acme/api", "SIGNING_KEY").unwrap();

    // A rotation whose second secret write is refused: both go back to the old values.
    fake.inject(put, Fault::Status(422), 1);
    let out = ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "partial"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains("promote/0 failed") && out.all().contains("put back"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fake.secret("acme/api", "SIGNING_KID").unwrap(),
        kid1,
        "kid and key flip together, or not at all"
    );
    assert_eq!(fake.secret("acme/api", "SIGNING_KEY").unwrap(), pem1);
    let out = ws.gh(&fake, HOME, &["run"]).await;
    ok(&out);
    assert_ne!(fake.secret("acme/api", "SIGNING_KID").unwrap(), kid1);
}

#[tokio::test(flavor = "multi_thread")]
async fn variables_and_a_dispatched_redeploy_verified_by_its_run() {
    let fake = world().await;
    fake.set_variable("acme/api", "SIGNING_KID", "hand-made");
    let ws = Ws::new();
    ws.config(
        r#"version: 1
state: { store: "file:.rotagate/state.age", recipients: [RECIPIENT] }
credentials:
  - id: api-signing
    owner: o
    bootstrap: true
    key: { type: rsa }
    promote:
      - github-variable: { repo: acme/api, set: { SIGNING_KID: "{{ new.kid }}", SIGNING_ALG: RS256 } }
      - github-workflow: { repo: acme/api, workflow: deploy.yml, inputs: { kid: "{{ new.kid }}" } }
    verify:
      - github-workflow: { repo: acme/api, workflow: deploy.yml, retries: 3, interval: 1s }
    gate: none
"#,
    );
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    let kid = fake.variable("acme/api", "SIGNING_KID").unwrap();
    assert_ne!(kid, "hand-made");
    assert_eq!(fake.variable("acme/api", "SIGNING_ALG").unwrap(), "RS256");
    let runs = fake.runs("acme/api", "deploy.yml");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].inputs["kid"], kid.as_str());
    assert_eq!(runs[0].git_ref, "main");

    // A redeploy that fails for the new kid rolls the rotation back, variables and all;
    // the rollback's redeploy with the old kid succeeds and verifies.
    fake.accept_only_input("acme/api", "deploy.yml", "kid", &kid);
    let out = ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "bad deploy"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("deploy.yml run #2 concluded failure"), "{}", out.stderr);
    assert!(out.all().contains("rolled back"), "{}", out.stderr);
    assert_eq!(fake.variable("acme/api", "SIGNING_KID").unwrap(), kid);
    let runs = fake.runs("acme/api", "deploy.yml");
    assert_eq!(runs.len(), 3, "deploy, failed redeploy, rollback redeploy");
    assert_eq!(runs[2].inputs["kid"], kid.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwks_commit_that_loses_the_race_reads_again() {
    let fake = world().await;
    fake.push_file(
        "acme/site",
        "main",
        "public/jwks.json",
        "{\"keys\":[{\"kid\":\"someone-else\",\"kty\":\"RSA\"}]}\n",
    );
    let ws = Ws::new();
    ws.config(&SIGNING.replace("gate: { pull_request: { approvals: 1 } }", "gate: none"));
    fake.inject("PUT /repos/{owner}/{repo}/contents/{path}", Fault::Status(409), 1);
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    let served = kids(&fake);
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(served[0], "someone-else", "keys rotagate does not own are left alone");
    assert_eq!(
        fake.count("GET /repos/{owner}/{repo}/contents/{path}"),
        2,
        "read again after the 409"
    );
}

/// Each forgery leaves the gate rejected: the old key stays served, nothing retires.
async fn rejected(fake: &FakeGitHub, ws: &Ws, expected: &str) {
    let before = kids(fake);
    let out = ws.gh(fake, HOME, &["run"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("gate retire was rejected"), "{}", out.stderr);
    assert!(out.all().contains(expected), "expected {expected:?} in {}", out.stderr);
    assert_eq!(kids(fake), before, "nothing was retired");
    let check = ws.gh(fake, HOME, &["check"]).await;
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(check.stdout.contains("gate-rejected"), "{}", check.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_refuses_every_forgery() {
    let approval = ".rotagate/approvals/api-signing/retire.yaml";

    // Approval file edited on the branch: rotation id, gate name, fingerprint.
    for (field, edit) in [
        ("rotation", "rotation: \"other-rotation\""),
        ("gate", "gate: publish"),
        ("new fingerprint", "new: { kid: \"x\", fingerprint: \"forged\" }"),
    ] {
        let fake = world().await;
        let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
        let file = fake.file(HOME, &pr.head, approval).unwrap();
        let key = edit.split(':').next().unwrap();
        let forged: String =
            file.lines()
                .map(|l| {
                    if l.starts_with(&format!("{key}:")) { edit.to_string() } else { l.to_string() }
                })
                .collect::<Vec<_>>()
                .join("\n");
        fake.push_to_pull(HOME, pr.number, approval, &forged);
        fake.approve(HOME, pr.number, "alice");
        fake.merge(HOME, pr.number, "bob");
        rejected(&fake, &ws, &format!("names {field}")).await;
    }

    // Other files changed in the pull request.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.push_to_pull(HOME, pr.number, ".github/workflows/evil.yml", "on: push\n");
    fake.approve(HOME, pr.number, "alice");
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "instead of only .rotagate/approvals/api-signing/retire.yaml").await;

    // Approval by an account with read access only.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.approve(HOME, pr.number, "rita");
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "rita has read access, not write").await;

    // Self-approval by the account that opened it.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.approve(HOME, pr.number, BOT);
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "opened the pull request").await;

    // Approval dismissed.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    let review = fake.approve(HOME, pr.number, "alice");
    fake.dismiss(HOME, pr.number, review);
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "alice's latest review is dismissed").await;

    // Approval followed by "changes requested".
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.approve(HOME, pr.number, "alice");
    fake.review(HOME, pr.number, "alice", "CHANGES_REQUESTED");
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "alice's latest review is changes requested").await;

    // Approval followed by new commits.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.approve(HOME, pr.number, "alice");
    let file = fake.file(HOME, &pr.head, approval).unwrap();
    fake.push_to_pull(HOME, pr.number, approval, &format!("{file}# touched\n"));
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "alice approved an earlier commit").await;

    // Merged into another branch.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.create_branch(HOME, "staging", "main");
    fake.change_base(HOME, pr.number, "staging");
    fake.approve(HOME, pr.number, "alice");
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "merged into staging, not the default branch main").await;

    // Merged with no approval.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "merged with 0 qualifying approvals, 1 needed").await;

    // The merger as the only approver.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.approve(HOME, pr.number, "bob");
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "approved only by bob, who merged it").await;

    // Closed without merging; `gate reopen` opens a fresh pull request.
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.close(HOME, pr.number);
    rejected(&fake, &ws, "was closed without merging").await;
    let reopened = ws.gh(&fake, HOME, &["gate", "reopen", "api-signing"]).await;
    ok(&reopened);
    let fresh = fake.pulls(HOME).last().unwrap().clone();
    assert_ne!(fresh.number, pr.number);
    assert!(fresh.head.ends_with("/retire-2"), "{}", fresh.head);
    fake.approve(HOME, fresh.number, "alice");
    fake.merge(HOME, fresh.number, "carol");
    let done = ws.gh(&fake, HOME, &["run"]).await;
    ok(&done);
    assert!(done.all().contains("completed"), "{}", done.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn reviews_are_read_across_every_page() {
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.approve(HOME, pr.number, "alice");
    // Anyone can comment-review a public repository's pull request: 120 comments push
    // alice's later "changes requested" onto the second page of reviews.
    for i in 0..120 {
        fake.review(HOME, pr.number, &format!("passer-by-{i}"), "COMMENTED");
    }
    fake.review(HOME, pr.number, "alice", "CHANGES_REQUESTED");
    fake.merge(HOME, pr.number, "bob");
    rejected(&fake, &ws, "alice's latest review is changes requested").await;
    assert!(fake.count("GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews") >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_gate_stays_rejected_when_its_pull_request_is_reopened_and_merged() {
    let fake = world().await;
    let (ws, pr) = at_retire_gate(&fake, SIGNING).await;
    fake.close(HOME, pr.number);
    rejected(&fake, &ws, "was closed without merging").await;
    // On GitHub a closed pull request can be reopened, approved and merged; the
    // rejection was recorded and only `gate reopen` or `rollback` decides now.
    fake.reopen(HOME, pr.number);
    fake.approve(HOME, pr.number, "alice");
    fake.merge(HOME, pr.number, "carol");
    for _ in 0..2 {
        let out = ws.gh(&fake, HOME, &["run"]).await;
        assert_eq!(out.code, 1, "{}", out.all());
        assert!(out.all().contains("was closed without merging"), "{}", out.stderr);
    }
    assert_eq!(kids(&fake).len(), 2, "nothing was retired");
    let status = ws.gh(&fake, HOME, &["status"]).await;
    assert!(
        status.stdout.contains("gate      retire: rejected: pull request #"),
        "{}",
        status.all()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_opened_by_another_account_on_the_gates_branch_is_refused() {
    let fake = world().await;
    let ws = Ws::new();
    ws.config(SIGNING);
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    // The gate's first pull request is closed unmerged, which rejects the gate.
    let waiting = ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "r"]).await;
    ok(&waiting);
    let ours = fake.pulls(HOME).last().unwrap().clone();
    fake.close(HOME, ours.number);
    assert_eq!(ws.gh(&fake, HOME, &["run"]).await.code, 1);
    // Before it is reopened, someone opens a pull request from the branch its next
    // attempt will use.
    let branch = format!("{}-2", ours.head);
    let theirs = fake.open_pull_as(
        "mallory",
        HOME,
        &branch,
        &[(".rotagate/approvals/api-signing/retire.yaml", "forged: true\n")],
    );
    fake.approve(HOME, theirs, "alice");
    fake.merge(HOME, theirs, "bob");
    let out = ws.gh(&fake, HOME, &["gate", "reopen", "api-signing"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains(&format!(
            "pull request #{theirs} for this gate's branch was opened by mallory"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(kids(&fake).len(), 2, "nothing was retired");
}

#[tokio::test(flavor = "multi_thread")]
async fn reviewers_restrict_who_counts_and_two_gates_never_share_a_pull_request() {
    let fake = world().await;
    fake.add_team_member("acme", "security", "carol");
    let config = r#"version: 1
state: { store: "file:.rotagate/state.age", recipients: [RECIPIENT] }
credentials:
  - id: api-signing
    owner: o
    bootstrap: true
    key: { type: rsa }
    publish:
      - jwks-file: { repo: acme/site, path: public/jwks.json }
      - manual: "Upload the public key for kid {{ new.kid }} at the portal"
    promote:
      - github-secret: { repo: acme/api, set: { SIGNING_KEY: "{{ new.private_pem }}" } }
    gate: { pull_request: { approvals: 1, reviewers: ["@acme/security", dave] } }
"#;
    let ws = Ws::new();
    ws.config(config);
    // First issuance: the publish gate holds it; alice (not a listed reviewer) does not count.
    let out = ws.gh(&fake, HOME, &["run"]).await;
    ok(&out);
    assert!(out.all().contains("awaits gate publish"), "{}", out.stderr);
    let publish = fake.pulls(HOME).last().unwrap().clone();
    assert!(publish.body.contains("- [ ] Upload the public key for kid"), "{}", publish.body);
    fake.approve(HOME, publish.number, "alice");
    fake.merge(HOME, publish.number, "bob");
    let out = ws.gh(&fake, HOME, &["run"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.all().contains("alice is not among the reviewers @acme/security, dave"),
        "{}",
        out.stderr
    );

    // A member of the team counts.
    ok(&ws.gh(&fake, HOME, &["gate", "reopen", "api-signing"]).await);
    let publish = fake.pulls(HOME).last().unwrap().clone();
    fake.approve(HOME, publish.number, "carol");
    fake.merge(HOME, publish.number, "bob");
    ok(&ws.gh(&fake, HOME, &["run"]).await);

    // The next rotation's retire gate gets its own pull request; offering it the
    // publish gate's merged one (as a forged record would) is refused.
    let out = ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "r"]).await;
    assert!(out.all().contains("awaits gate publish"), "{}", out.stderr);
    let publish2 = fake.pulls(HOME).last().unwrap().clone();
    fake.approve(HOME, publish2.number, "carol");
    fake.merge(HOME, publish2.number, "bob");
    let out = ws.gh(&fake, HOME, &["run"]).await;
    assert!(out.all().contains("awaits gate retire"), "{}", out.stderr);
    let retire = fake.pulls(HOME).last().unwrap().clone();
    assert_ne!(retire.number, publish2.number);

    let gh = rotagate::github::GitHub::new(
        rotagate::github::Credentials::App {
            id: crate::support::github::APP_ID,
            key: rotagate::secret::Secret::new(fake.app_key_pem.clone()),
        },
        rotagate::github::Options::for_api(&fake.url(), Some(false), None),
    )
    .unwrap();
    let gate = rotagate::gate::pull_request::PullRequestGate::new(
        rotagate::config::PullRequestGate {
            approvals: 1,
            reviewers: vec!["@acme/security".into()],
            distinct_merger: true,
            timeout: None,
        },
        gh,
        HOME.into(),
    );
    let state = ws.state();
    let rotation = &state["body"]["doc"]["credentials"]["api-signing"]["rotation"];
    let new: rotagate::material::Material =
        serde_json::from_value(rotation["new"].clone()).unwrap();
    let old: rotagate::material::Material = serde_json::from_value(
        state["body"]["doc"]["credentials"]["api-signing"]["current"].clone(),
    )
    .unwrap();
    let request = rotagate::gate::GateRequest {
        credential: "api-signing",
        owner: None,
        rotation: rotation["id"].as_str().unwrap(),
        gate: "retire",
        old: Some(&old),
        new: Some(&new),
        checklist: &[],
        evidence: &[],
    };
    let mut forged = serde_json::json!({ "number": publish2.number });
    let status = rotagate::gate::Gate::check(&gate, &request, &mut forged).await.unwrap();
    match status {
        rotagate::gate::GateStatus::Rejected(why) => {
            assert!(why.contains("is not this gate's pull request"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_are_notified_once_and_the_issue_closes_when_it_clears() {
    let fake = world().await;
    let ws = Ws::new();
    ws.config(&SIGNING.replace("gate: { pull_request: { approvals: 1 } }", "gate: none"));
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    assert!(fake.issues(HOME).is_empty());
    fake.revoke("acme", "secrets");
    for _ in 0..2 {
        let out = ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "r"]).await;
        assert_eq!(out.code, 1, "{}", out.all());
    }
    let out = ws.gh(&fake, HOME, &["run"]).await;
    assert_eq!(out.code, 1);
    let issues = fake.issues(HOME);
    assert_eq!(issues.len(), 1, "updated, never duplicated: {issues:?}");
    let issue = &issues[0];
    assert_eq!(issue.state, "open");
    assert_eq!(issue.labels, vec!["rotagate", "api-signing"]);
    assert!(
        issue.body.starts_with("@acme/platform: credential **api-signing** needs attention"),
        "{}",
        issue.body
    );
    assert!(issue.body.contains("**failing**"), "{}", issue.body);
    fake.install("acme");
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    let issues = fake.issues(HOME);
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].state, "closed");
    assert!(issues[0].comments.last().unwrap().starts_with("Resolved"));

    // `check` raises a key inside its warning window the same way: one expiring in ten
    // days, whatever the day the suite runs.
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(10)).date();
    let ws = Ws::new();
    ws.config(&format!(
        r#"version: 1
state: {{ store: "file:.rotagate/state.age", recipients: [RECIPIENT] }}
credentials:
  - id: cert
    owner: "@acme/platform"
    key: {{ type: secret }}
    schedule: {{ every: 365d, warn: 30d, expires: {expires} }}
    gate: none
"#
    ));
    let out = ws
        .cmd(&["adopt", "cert", "--from-env", "LIVE"])
        .env("LIVE", "live-secret-value-0123456789")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check = ws.gh(&fake, HOME, &["check"]).await;
    assert_eq!(check.code, 1, "{}", check.all());
    let cert =
        fake.issues(HOME).into_iter().find(|i| i.labels.contains(&"cert".to_string())).unwrap();
    assert!(
        cert.body.contains("**due**") && cert.body.contains(&format!("hard expiry {expires}")),
        "{}",
        cert.body
    );
}

/// The signing credential, ungated, with its state on the `rotagate-state` branch.
fn on_state_branch() -> Ws {
    let ws = Ws::new();
    ws.config(
        &SIGNING
            .replace("file:.rotagate/state.age", "github-branch:rotagate-state")
            .replace("gate: { pull_request: { approvals: 1 } }", "gate: none"),
    );
    ws
}

#[tokio::test(flavor = "multi_thread")]
async fn state_on_a_branch_refuses_a_replayed_state_and_a_concurrent_writer() {
    let fake = world().await;
    let ws = on_state_branch();
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    assert!(!ws.exists(".rotagate/state.age"));
    assert!(fake.file(HOME, "rotagate-state", "README.md").unwrap().contains("Protect the branch"));
    let first = fake.file(HOME, "rotagate-state", "state.age").unwrap();
    assert!(first.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    ok(&ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "r"]).await);
    let status = ws.gh(&fake, HOME, &["status", "--json"]).await;
    ok(&status);

    // Someone with push access puts an old state back as a new commit.
    fake.push_file(HOME, "rotagate-state", "state.age", &first);
    let out = ws.gh(&fake, HOME, &["status"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains("refusing a replayed state")
            && out.all().contains("does not follow its parent commit's state"),
        "{}",
        out.stderr
    );
}

/// On the branch store the audit log's older events go to `audit/` on the branch, and
/// `audit` reads them back from there.
#[tokio::test(flavor = "multi_thread")]
async fn archived_audit_segments_live_on_the_state_branch() {
    let fake = world().await;
    let ws = on_state_branch();
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    let rotations = 12;
    for _ in 1..rotations {
        ok(&ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "r"]).await);
    }
    let out = ws.gh(&fake, HOME, &["audit", "api-signing", "--json"]).await;
    ok(&out);
    let lines: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let completed = lines.iter().filter(|l| l["event"] == "completed").count();
    assert_eq!(completed, rotations, "{}", out.stdout);
    let segments: Vec<String> = fake
        .files(HOME, "rotagate-state")
        .into_iter()
        .filter(|p| p.starts_with("audit/"))
        .collect();
    assert!(!segments.is_empty(), "no segment on the branch");
    assert!(
        fake.file(HOME, "rotagate-state", &segments[0])
            .unwrap()
            .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
    );
}

/// A force push of the state branch back to an earlier, perfectly chained state (from
/// before a rotation) is refused by the anchor kept in a repository variable; the
/// newest state is put back with `state restore`, and only that one.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_branch_reset_to_an_older_state_is_refused_and_restored() {
    let fake = world().await;
    let ws = on_state_branch();
    let out = ws.gh(&fake, HOME, &["run"]).await;
    ok(&out);
    assert!(
        out.all().contains("is not protected")
            && out.all().contains("Block force pushes and Restrict deletions"),
        "{}",
        out.stderr
    );
    let anchor = fake
        .variable(HOME, "ROTAGATE_ANCHOR_ROTAGATE_STATE")
        .expect("the anchor is recorded with each save");
    let before_rotation = fake.branch_head(HOME, "rotagate-state").unwrap();
    let old_copy = ws.path("old.age");
    std::fs::write(&old_copy, fake.file(HOME, "rotagate-state", "state.age").unwrap()).unwrap();
    let copy = ws.path("artifact.age");
    let copy_arg = copy.display().to_string();
    ok(&ws
        .gh(&fake, HOME, &["rotate", "api-signing", "--reason", "r", "--state-copy", &copy_arg])
        .await);
    assert_ne!(fake.variable(HOME, "ROTAGATE_ANCHOR_ROTAGATE_STATE").unwrap(), anchor);

    // `git push --force origin <old commit>:rotagate-state`: the head now follows its
    // parent perfectly, and is still refused.
    fake.force_push(HOME, "rotagate-state", &before_rotation);
    let out = ws.gh(&fake, HOME, &["run"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains("refusing a replayed state")
            && out.all().contains("rotagate last saved generation")
            && out.all().contains("rotagate state restore"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fake.branch_head(HOME, "rotagate-state").unwrap(),
        before_rotation,
        "nothing was written"
    );

    // Only the newest state can be put back.
    let old_arg = old_copy.display().to_string();
    let refused = ws.gh(&fake, HOME, &["state", "restore", "--from-file", &old_arg]).await;
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(refused.all().contains("restore that one"), "{}", refused.stderr);
    ok(&ws.gh(&fake, HOME, &["state", "restore", "--from-file", &copy_arg]).await);
    ok(&ws.gh(&fake, HOME, &["status"]).await);

    // Protected by a ruleset: no warning, and the next rotation goes on from the
    // restored state.
    fake.protect_branch(HOME, "rotagate-state", &["deletion", "non_fast_forward"]);
    let out = ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "again"]).await;
    ok(&out);
    assert!(!out.all().contains("is not protected"), "{}", out.stderr);
    assert!(out.all().contains("completed"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn github_enterprise_server_paths_work() {
    let fake = world().await;
    let ws = Ws::new();
    ws.config(&SIGNING.replace("gate: { pull_request: { approvals: 1 } }", "gate: none"));
    let mut cmd = ws.gh_cmd(&fake, HOME, &["run"]);
    cmd.env("GITHUB_API_URL", format!("{}/api/v3", fake.url()));
    let out: Run = tokio::process::Command::from(cmd).output().await.unwrap().into();
    ok(&out);
    assert!(fake.secret("acme/api", "SIGNING_KID").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn pacing_keeps_to_the_secondary_limits_without_a_single_limit_answer() {
    // github.com's limits with the minute scaled to 2s: 100 points per endpoint (20
    // secret writes), 80 content-creating requests, 100 in flight.
    let scaled = |window| crate::support::github::SimLimits {
        window,
        points_per_endpoint: 100,
        content_per_window: 80,
        concurrency: 100,
    };
    let window = Duration::from_secs(2);
    let repos = ["acme/api", "acme/worker", "acme/site"];

    let fake = world().await;
    fake.enforce_limits(Some(scaled(window)));
    let paced = rotagate::github::Limits {
        window,
        points_per_endpoint: 100,
        content_per_window: 80,
        concurrency: 100,
    };
    let started = std::time::Instant::now();
    crate::support::github::write_secrets(fake.client(Some(paced)), &repos, 20).await;
    let elapsed = started.elapsed();
    assert_eq!(fake.limit_responses(), 0, "paced requests never meet the limit");
    assert!(
        elapsed >= Duration::from_secs(4),
        "60 writes at 20 per window start at 0, 2.1s and 4.2s: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(9), "{elapsed:?}");
    for repo in repos {
        assert!(fake.secret(repo, "S_19").is_some());
    }

    // Unpaced, the same writes meet the limit (and recover through Retry-After).
    let fake = world().await;
    fake.enforce_limits(Some(scaled(window)));
    crate::support::github::write_secrets(fake.client(None), &repos, 20).await;
    assert!(fake.limit_responses() > 0, "the fake enforces the limits it advertises");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_writers_on_the_state_branch_merge_or_meet_a_clear_lease() {
    use rotagate::state::{
        GithubBranchStore, RunIdentity, StateError, StateIdentity, Vault, parse_recipients,
    };
    let fake = world().await;
    let identity = StateIdentity::generate();
    let secret = identity.to_secret();
    let open = |run: &str| {
        let gh = fake.client(None);
        let identity = StateIdentity::parse(&secret).unwrap();
        let recipients = parse_recipients(&[identity.recipient()]).unwrap();
        let run = RunIdentity {
            run_id: run.into(),
            holder: run.into(),
            host: format!("host-{run}"),
            pid: 1,
        };
        async move {
            Vault::open(
                Box::new(GithubBranchStore::new(gh, HOME.into(), "rotagate-state".into())),
                identity,
                recipients,
                run,
                Duration::from_secs(600),
            )
            .await
            .unwrap()
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let mut a = open("a").await;
    a.acquire(&["one".into()], now).await.unwrap();
    let mut b = open("b").await;
    let mut c = open("c").await;
    b.acquire(&["two".into()], now).await.unwrap();
    // c read the state before b wrote: its write is refused (409), it re-reads, and it
    // keeps b's entry.
    c.acquire(&["three".into()], now).await.unwrap();
    let check = open("d").await;
    assert_eq!(check.doc.credentials.len(), 3);
    assert!(fake.count("PUT /repos/{owner}/{repo}/contents/{path}") >= 4);
    let mut d = open("d").await;
    match d.acquire(&["one".into()], now).await {
        Err(StateError::LeaseHeld { credential, run, .. }) => {
            assert_eq!((credential.as_str(), run.as_str()), ("one", "a"))
        }
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_waiting_past_its_timeout_fails_check_and_pages_the_owner() {
    let fake = world().await;
    let ws = Ws::new();
    ws.config(&SIGNING.replace(
        "gate: { pull_request: { approvals: 1 } }",
        "gate: { pull_request: { approvals: 1, timeout: 1s } }",
    ));
    ok(&ws.gh(&fake, HOME, &["run"]).await);
    ok(&ws.gh(&fake, HOME, &["rotate", "api-signing", "--reason", "r"]).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let check = ws.gh(&fake, HOME, &["check"]).await;
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(
        check.stdout.contains("gate-timeout") && check.stdout.contains("longer than 1s"),
        "{}",
        check.stdout
    );
    let issue = fake.issues(HOME).into_iter().next().unwrap();
    assert!(issue.body.contains("**gate-timeout**"), "{}", issue.body);
}

/// A step that prints its parent's environment (as a hostile or careless script can):
/// rotagate's own secrets reach no log line, error, state field or issue body.
#[tokio::test(flavor = "multi_thread")]
async fn rotagates_own_secrets_never_leave_through_a_steps_output() {
    let fake = world().await;
    let ws = Ws::new();
    ws.config(
        r#"version: 1
state: { store: "file:.rotagate/state.age", recipients: [RECIPIENT] }
credentials:
  - id: api-token
    owner: "@acme/platform"
    bootstrap: true
    key: { type: secret, length: 40 }
    promote:
      - file: { path: app.env, set: { API_TOKEN: "{{ new.value }}" } }
    verify:
      - command: { run: ./leak.sh }
    on_verify_failure: hold
    gate: none
"#,
    );
    ws.script(
        "leak.sh",
        "#!/bin/sh\ntr '\\0' '\\n' </proc/$PPID/environ | grep -E 'ROTAGATE|GITHUB|ACTIONS' >&2\ncat app.env >&2\nexit 1\n",
    );
    let own = [
        ("ROTAGATE_GITHUB_TOKEN", "ghp_operatorTokenNeverShown0123456789"),
        ("GITHUB_TOKEN", "ghs_workflowTokenNeverShown0123456789"),
        ("ACTIONS_RUNTIME_TOKEN", "runtimeTokenNeverShown0123456789abcdef"),
    ];
    let out = ws.gh_env(&fake, HOME, &["run"], &own).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let shown = out.all();
    if shown.contains("ROTAGATE_AGE_IDENTITY=") {
        // Readable here (root may read any process's environment): read, and cut out.
        assert!(shown.contains("ROTAGATE_AGE_IDENTITY=<redacted>"), "{shown}");
    }
    let mut secrets: Vec<String> = own.iter().map(|(_, v)| v.to_string()).collect();
    secrets.push(ws.identity.clone());
    secrets.extend(
        fake.app_key_pem
            .lines()
            .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
            .map(str::to_string),
    );
    let token = ws.env_value("app.env", "API_TOKEN");
    let state = ws.state().to_string();
    let bodies: Vec<String> = fake.issues(HOME).into_iter().map(|i| i.body).collect();
    assert!(!bodies.is_empty(), "the owner was told: {shown}");
    for secret in &secrets {
        assert!(!shown.contains(secret.as_str()), "leaked to the output: {shown}");
        assert!(!state.contains(secret.as_str()), "leaked into the state");
        for body in &bodies {
            assert!(!body.contains(secret.as_str()), "leaked into an issue: {body}");
        }
    }
    // The step's own value is a secret as well: gone from output and issues, while the
    // state keeps it (encrypted) only as material.
    if let Some(token) = token {
        assert!(!shown.contains(&token), "{shown}");
        for body in &bodies {
            assert!(!body.contains(&token), "{body}");
        }
    }
}
