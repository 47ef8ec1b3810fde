//! `vault-kv` against the fake Vault, through the binary: the example rotates end to
//! end (kid and key in one version, the secret's other keys kept, a probe reading back
//! what the service reads), rollback writes the old values back as a new version, a
//! concurrent writer is caught by check-and-set, a token without the grant is stopped
//! before any key exists, AppRole and JWT (GitHub OIDC) logins in a namespace, 429 and
//! 500 retried, and a run killed anywhere converges without a second version.

use std::process::Command;

use serde_json::{Value, json};

use crate::examples::example;
use crate::support::vault::{FakeVault, Fault, OIDC_REQUEST_TOKEN, ROOT_TOKEN};
use crate::support::{Run, Ws, kill_after_line};

const READER: &str = "hvs.reader-Token-payments-41c2";
const PATH: &str = "payments/signing";

fn payments_reader(fake: &FakeVault) {
    fake.add_token(READER, "", &[("secret/data/payments/*", &["read"])]);
}

/// The binary in `ws` with the Vault login and the probe's variables in its environment.
fn cmd(ws: &Ws, fake: &FakeVault, login: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = ws.cmd(args);
    c.env("ROTAGATE_VAULT_ADDR", fake.url())
        .env("VAULT_ADDR", fake.url())
        .env("VAULT_READER_TOKEN", READER);
    for (k, v) in login {
        c.env(k, v);
    }
    c
}

async fn run(ws: &Ws, fake: &FakeVault, login: &[(&str, &str)], args: &[&str]) -> Run {
    tokio::process::Command::from(cmd(ws, fake, login, args)).output().await.unwrap().into()
}

const ROOT: &[(&str, &str)] = &[("ROTAGATE_VAULT_TOKEN", ROOT_TOKEN)];

fn kid_in_state(ws: &Ws) -> String {
    ws.state()["body"]["doc"]["credentials"]["payments-signing"]["current"]["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn field(data: &Option<Value>, key: &str) -> String {
    data.as_ref().unwrap()[key].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_rotates_and_rollback_writes_the_old_values_back_as_a_new_version() {
    let fake = FakeVault::start().await;
    payments_reader(&fake);
    fake.put("", "secret", PATH, json!({ "WEBHOOK_URL": "https://partner.example/hook" }));
    let ws = example("vault-kv.yaml");
    let plan = run(&ws, &fake, ROOT, &["plan"]).await;
    assert!(
        plan.stdout.contains("  promote/0: vault-kv secret/payments/signing (KID, PRIVATE_KEY)\n"),
        "{}",
        plan.all()
    );

    // First issuance: kid and key in one new version on top of the one there; the
    // secret's other key stays; 429 and 500 on the write are retried.
    fake.inject("POST /v1/secret/data/", Fault::RateLimited(1), 1);
    fake.inject("POST /v1/secret/data/", Fault::Status(500), 1);
    let out = run(&ws, &fake, ROOT, &["run"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.pending_faults(), 0, "the 429 and the 500 were met");
    let versions = fake.versions("", "secret", PATH);
    assert_eq!(versions.len(), 2, "one version written");
    let v2 = fake.current("", "secret", PATH);
    let kid1 = field(&v2, "KID");
    assert_eq!(kid1, kid_in_state(&ws));
    assert!(field(&v2, "PRIVATE_KEY").starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(field(&v2, "WEBHOOK_URL"), "https://partner.example/hook");
    assert_eq!(ws.kids_served("public/jwks.json"), vec![kid1.clone()]);

    // A scheduled rotation: one more version.
    let out = run(&ws, &fake, ROOT, &["rotate", "payments-signing", "--reason", "scheduled"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let v3 = fake.current("", "secret", PATH);
    let kid2 = field(&v3, "KID");
    assert_ne!(kid2, kid1);
    assert_eq!(fake.versions("", "secret", PATH).len(), 3);

    // The next rotation waits out a drain; the operator rolls it back: kid2 and its
    // key are written back as version 5, on top of the promote's version 4, and no
    // version is deleted.
    let config = ws.read("rotagate.yaml");
    ws.write("rotagate.yaml", &config.replace("drain: 0s", "drain: 1h"));
    let out = run(&ws, &fake, ROOT, &["rotate", "payments-signing", "--reason", "test"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.versions("", "secret", PATH).len(), 4);
    let out = run(&ws, &fake, ROOT, &["rollback", "payments-signing"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let versions = fake.versions("", "secret", PATH);
    assert_eq!(versions.len(), 5, "promote wrote v4, rollback v5");
    assert_ne!(versions[3].data["KID"], versions[2].data["KID"]);
    assert_eq!(versions[4].data, versions[2].data, "v5 is v3 again");
    assert!(versions.iter().all(|v| !v.deleted));
    assert_eq!(kid_in_state(&ws), kid2);
    // The new kid stays in the JWKS through the rollback drain (tokens it signed).
    assert!(ws.kids_served("public/jwks.json").contains(&kid2));

    // Nothing secret in a URL, a log line or the output.
    let pem = field(&v3, "PRIVATE_KEY");
    let line = pem.lines().nth(1).unwrap();
    for r in fake.requests() {
        assert!(!r.contains(line) && !r.contains(ROOT_TOKEN), "{r}");
    }
    assert!(!out.all().contains(line) && !out.all().contains(ROOT_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_writer_is_caught_by_check_and_set_and_the_next_run_writes_on_top() {
    let fake = FakeVault::start().await;
    payments_reader(&fake);
    let ws = example("vault-kv.yaml");
    fake.inject(
        "POST /v1/secret/data/",
        Fault::ConcurrentWrite(json!({ "WEBHOOK_URL": "https://other.example/hook" })),
        1,
    );
    let out = run(&ws, &fake, ROOT, &["run"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.all().contains("the secret changed after rotagate read version 0 (check-and-set)"),
        "{}",
        out.all()
    );
    assert_eq!(fake.versions("", "secret", PATH).len(), 1, "only the other writer's");
    let out = run(&ws, &fake, ROOT, &["run"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let current = fake.current("", "secret", PATH);
    assert_eq!(field(&current, "WEBHOOK_URL"), "https://other.example/hook");
    assert_eq!(field(&current, "KID"), kid_in_state(&ws));
    assert_eq!(fake.versions("", "secret", PATH).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_grant_is_stopped_before_any_key_exists() {
    let fake = FakeVault::start().await;
    payments_reader(&fake);
    let weak = "hvs.weak-Token-only-reads-88aa";
    fake.add_token(weak, "", &[("secret/data/payments/*", &["read"])]);
    let ws = example("vault-kv.yaml");
    let out = run(&ws, &fake, &[("ROTAGATE_VAULT_TOKEN", weak)], &["run"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.all().contains("the Vault token cannot update, create `secret/data/payments/signing` (it holds: read): add to its policy path \"secret/data/payments/signing\" { capabilities = [\"create\", \"read\", \"update\"] }"),
        "{}",
        out.all()
    );
    let entry = &ws.state()["body"]["doc"]["credentials"]["payments-signing"];
    assert!(entry["current"].is_null(), "no key was made: {entry}");
    assert!(entry["rotation"]["new"].is_null(), "{entry}");
    assert!(!ws.exists("public/jwks.json"), "nothing was published");
    assert!(fake.versions("", "secret", PATH).is_empty());
    assert!(!out.all().contains(weak));
}

#[tokio::test(flavor = "multi_thread")]
async fn approle_and_jwt_logins_work_in_a_namespace_and_a_bad_login_names_the_fix() {
    let fake = FakeVault::start().await;
    let grant: &[(&str, &[&str])] = &[("secret/data/payments/*", &["create", "read", "update"])];
    fake.add_approle("rotagate-role-id", "approle-Secret-Id-5521", grant);
    fake.add_jwt_role("rotagate", "vault", grant);
    let ws = example("vault-kv.yaml");
    // The service reads in its namespace too.
    fake.add_token(READER, "team-payments", &[("secret/data/payments/*", &["read"])]);
    let config = ws.read("rotagate.yaml");
    ws.write(
        "rotagate.yaml",
        &config.replace(
            "headers: { X-Vault-Token: \"{{ env.VAULT_READER_TOKEN }}\" }",
            "headers: { X-Vault-Token: \"{{ env.VAULT_READER_TOKEN }}\", X-Vault-Namespace: team-payments }",
        ),
    );
    let approle: &[(&str, &str)] = &[
        ("ROTAGATE_VAULT_NAMESPACE", "team-payments"),
        ("ROTAGATE_VAULT_ROLE_ID", "rotagate-role-id"),
        ("ROTAGATE_VAULT_SECRET_ID", "approle-Secret-Id-5521"),
    ];
    let out = run(&ws, &fake, approle, &["run"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let kid1 = field(&fake.current("team-payments", "secret", PATH), "KID");
    assert_eq!(kid1, kid_in_state(&ws));
    assert!(fake.versions("", "secret", PATH).is_empty(), "nothing outside the namespace");
    let logins = |fake: &FakeVault, mount: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with(&format!("POST /v1/auth/{mount}/login")))
            .count()
    };
    assert_eq!(logins(&fake, "approle"), 1, "one login per run");

    // JWT: the runner's OIDC token for audience `vault`, no stored secret.
    let jwt: &[(&str, &str)] = &[
        ("ROTAGATE_VAULT_NAMESPACE", "team-payments"),
        ("ROTAGATE_VAULT_JWT_ROLE", "rotagate"),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", &fake.oidc_url()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", OIDC_REQUEST_TOKEN),
    ];
    let out = run(&ws, &fake, jwt, &["rotate", "payments-signing", "--reason", "jwt"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(logins(&fake, "jwt"), 1);
    assert_ne!(field(&fake.current("team-payments", "secret", PATH), "KID"), kid1);

    // A wrong audience: Vault's refusal, with what to check.
    let wrong: Vec<(&str, &str)> =
        jwt.iter().copied().chain([("ROTAGATE_VAULT_JWT_AUDIENCE", "sigstore")]).collect();
    let out = run(&ws, &fake, &wrong, &["rotate", "payments-signing", "--reason", "jwt"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.all().contains("log in to Vault with JWT at auth/jwt: Vault answered 400: error validating token: invalid audience (aud) claim"),
        "{}",
        out.all()
    );
    assert!(
        !out.all().contains(OIDC_REQUEST_TOKEN) && !out.all().contains("approle-Secret-Id-5521")
    );

    // No login configured at all: the variables to set.
    let mut c = ws.cmd(&["run"]);
    c.env("ROTAGATE_VAULT_ADDR", fake.url());
    let out: Run = c.output().unwrap().into();
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.all().contains("set ROTAGATE_VAULT_TOKEN, or ROTAGATE_VAULT_ROLE_ID"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_anywhere_converges_without_a_second_version() {
    let fake = FakeVault::start().await;
    payments_reader(&fake);
    let mut line = 1;
    loop {
        let path = format!("payments/kill-{line}");
        let ws = example("vault-kv.yaml");
        let config = ws.read("rotagate.yaml").replace(PATH, &path);
        ws.write("rotagate.yaml", &config);
        let killed =
            tokio::task::block_in_place(|| kill_after_line(cmd(&ws, &fake, ROOT, &["run"]), line));
        let out = run(&ws, &fake, ROOT, &["run"]).await;
        assert_eq!(out.code, 0, "killed after line {line}: {}", out.all());
        let versions = fake.versions("", "secret", &path);
        assert_eq!(versions.len(), 1, "killed after line {line}: one version");
        assert_eq!(
            versions[0].data["KID"].as_str().unwrap(),
            kid_in_state(&ws),
            "killed after line {line}"
        );
        if !killed {
            break;
        }
        line += 1;
    }
    assert!(line > 5, "the sweep reached the promote ({line} lines)");
}

#[test]
fn a_bad_vault_kv_step_is_reported_at_its_line_and_column() {
    let ws = example("vault-kv.yaml");
    let config = ws.read("rotagate.yaml");
    ws.write(
        "rotagate.yaml",
        &config
            .replace("path: payments/signing", "path: data/payments/signing/")
            .replace("KID: \"{{ new.kid }}\"", "\"K I D\": \"{{ new.kid }}\""),
    );
    let out = ws.run(&["plan"]);
    assert_eq!(out.code, 2, "{}", out.all());
    for message in [
        "vault-kv.path: `data/payments/signing/` is not a Vault path\n  --> rotagate.yaml:28:17",
        "vault-kv.path: `data/payments/signing/` includes the API's `data/` prefix\n  --> rotagate.yaml:28:17",
    ] {
        assert!(out.all().contains(message), "{}", out.all());
    }
    assert!(out.all().contains("`K I D` is not a key name"), "{}", out.all());
}
