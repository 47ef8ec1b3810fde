//! `postgres` action and probe against a real PostgreSQL: the alternating strategy over
//! two roles, the single-role immediate variant, rollbacks, and a server log that never
//! holds a password (only SCRAM verifiers reach the server).

use crate::support::Ws;
use crate::support::postgres::{ADMIN_PASSWORD, Cluster};

const ALTERNATING: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: app-db
    owner: vps-ops
    bootstrap: true
    key: { type: postgres-password }
    strategy: alternating
    roles: [app_a, app_b]
    env: [PG_ADMIN_URL]
    publish:
      - postgres: { url: "{{ env.PG_ADMIN_URL }}" }
    promote:
      - file: { path: app.env, set: { DB_USER: "{{ new.role }}", DB_PASSWORD: "{{ new.value }}" } }
    verify:
      - postgres: { url: "{{ env.PG_ADMIN_URL }}" }
      - command: { run: ./scripts/fail-once.sh }
    drain: 0s
    gate: none
"#;

const SINGLE: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: silver-db
    owner: vps-ops
    bootstrap: true
    key: { type: postgres-password }
    strategy: immediate
    env: [PG_ADMIN_URL]
    promote:
      - postgres: { url: "{{ env.PG_ADMIN_URL }}", role: silver }
      - file: { path: silver.env, set: { SILVER_POSTGRES_PASSWORD: "{{ new.value }}" } }
    verify:
      - postgres: { url: "{{ env.PG_ADMIN_URL }}", role: silver }
      - command: { run: ./scripts/fail-once.sh }
    gate: none
"#;

/// Fails one probe when `fail-once` exists (and removes it).
const FAIL_ONCE: &str = "#!/bin/sh\nif [ -e fail-once ]; then rm fail-once; exit 1; fi\n";

fn workspace(config: &str, cluster: &Cluster) -> (Ws, impl Fn(&[&str]) -> crate::support::Run) {
    let ws = Ws::new();
    ws.config(config);
    ws.script("scripts/fail-once.sh", FAIL_ONCE);
    let url = cluster.admin_url();
    let dir = ws.dir.path().to_path_buf();
    let identity = ws.identity.clone();
    let run = move |args: &[&str]| {
        let mut c = std::process::Command::new(crate::support::BIN);
        c.args(args)
            .current_dir(&dir)
            .env("ROTAGATE_AGE_IDENTITY", &identity)
            .env("PG_ADMIN_URL", &url)
            .env_remove("GITHUB_ACTIONS");
        crate::support::Run::from(c.output().unwrap())
    };
    (ws, run)
}

async fn password_is_null(cluster: &Cluster, role: &str) -> bool {
    let admin = cluster.admin().await;
    let row = admin
        .query_one("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = $1", &[&role])
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn alternating_roles_rotate_verify_by_login_retire_the_old_and_roll_back() {
    let cluster = Cluster::start();
    cluster
        .admin()
        .await
        .batch_execute("CREATE ROLE app_a LOGIN; CREATE ROLE app_b LOGIN;")
        .await
        .unwrap();
    let (ws, run) = workspace(ALTERNATING, &cluster);
    let creds = || {
        (
            ws.env_value("app.env", "DB_USER").unwrap(),
            ws.env_value("app.env", "DB_PASSWORD").unwrap(),
        )
    };

    let first = run(&["run"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let (user1, pw1) = creds();
    assert_eq!(user1, "app_a");
    assert!(cluster.can_login("app_a", &pw1).await);
    assert!(password_is_null(&cluster, "app_b").await);

    let second = run(&["rotate", "app-db", "--reason", "quarterly"]);
    assert_eq!(second.code, 0, "{}", second.all());
    let (user2, pw2) = creds();
    assert_eq!(user2, "app_b", "the idle role got the new password");
    assert!(cluster.can_login("app_b", &pw2).await);
    assert!(!cluster.can_login("app_a", &pw1).await, "retire invalidated the old role's password");
    assert!(password_is_null(&cluster, "app_a").await);

    // A failing verification rolls back: consumers get app_b again, and app_a's new
    // password is cleared.
    ws.write("fail-once", "");
    let third = run(&["rotate", "app-db", "--reason", "test rollback"]);
    assert_eq!(third.code, 1, "{}", third.all());
    assert!(third.all().contains("rolled back"), "{}", third.all());
    assert_eq!(creds(), (user2.clone(), pw2.clone()));
    assert!(cluster.can_login("app_b", &pw2).await);
    assert!(password_is_null(&cluster, "app_a").await);

    // The server saw verifiers only: no password is in its statement log, nor in ours.
    let log = cluster.log();
    assert!(log.contains("ALTER ROLE \"app_b\" PASSWORD 'SCRAM-SHA-256$4096:"), "{log}");
    for pw in [&pw1, &pw2] {
        assert!(!log.contains(pw.as_str()), "a password reached the server log");
        for out in [&first, &second, &third] {
            assert!(!out.all().contains(pw.as_str()));
        }
    }
    assert!(!third.all().contains(ADMIN_PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_role_immediate_rotates_and_a_failed_verify_puts_the_old_password_back() {
    let cluster = Cluster::start();
    cluster.admin().await.batch_execute("CREATE ROLE silver LOGIN").await.unwrap();
    let (ws, run) = workspace(SINGLE, &cluster);
    let pw = || ws.env_value("silver.env", "SILVER_POSTGRES_PASSWORD").unwrap();

    assert_eq!(run(&["run"]).code, 0);
    let pw1 = pw();
    assert!(cluster.can_login("silver", &pw1).await);
    let rotated = run(&["rotate", "silver-db", "--reason", "hygiene"]);
    assert_eq!(rotated.code, 0, "{}", rotated.all());
    let pw2 = pw();
    assert_ne!(pw1, pw2);
    assert!(cluster.can_login("silver", &pw2).await);
    assert!(!cluster.can_login("silver", &pw1).await);

    ws.write("fail-once", "");
    let failed = run(&["rotate", "silver-db", "--reason", "test rollback"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert_eq!(pw(), pw2, "the env file holds the old password again");
    assert!(cluster.can_login("silver", &pw2).await, "the old password was set back");

    // A role that does not exist is the server's own words, without the password.
    cluster.admin().await.batch_execute("DROP ROLE silver").await.unwrap();
    let missing = run(&["rotate", "silver-db", "--reason", "gone"]);
    assert_eq!(missing.code, 1);
    assert!(missing.all().contains("role \"silver\" does not exist"), "{}", missing.all());
    assert!(!missing.all().contains(ADMIN_PASSWORD));
}
