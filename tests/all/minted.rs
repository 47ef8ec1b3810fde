//! Minted secrets: the provider creates the value, the response is journaled before
//! anything else, a retire step revokes the old one, and a run killed right after the
//! mint never mints twice: the next run stops and names what to reconcile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use serde_json::json;

use crate::support::{Ws, server};

pub const ADMIN: &str = "admin-token-SECRET-5";

#[derive(Default)]
pub struct Console {
    /// id → (secret, live)
    keys: Mutex<Vec<(String, String, bool)>>,
    /// The next mint is made, then its answer never comes.
    hang: AtomicBool,
}

impl Console {
    pub fn minted(&self) -> usize {
        self.keys.lock().unwrap().len()
    }

    pub fn live(&self) -> Vec<String> {
        let keys = self.keys.lock().unwrap();
        keys.iter().filter(|k| k.2).map(|k| k.0.clone()).collect()
    }
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

/// A hosted console minting `sk_live_` project keys, as runbook 004 describes: rotating
/// creates a key shown once; the backend check accepts live keys only.
pub async fn console() -> (String, Arc<Console>) {
    let state = Arc::new(Console::default());
    let app = Router::new()
        .route(
            "/v1/projects/p1/secret-keys",
            post(|State(c): State<Arc<Console>>, headers: HeaderMap| async move {
                if bearer(&headers) != ADMIN {
                    return (StatusCode::UNAUTHORIZED, json!({ "error": { "message": "invalid admin token" } }).to_string());
                }
                let id = {
                    let mut keys = c.keys.lock().unwrap();
                    let id = format!("key_{}", keys.len() + 1);
                    let secret = format!("sk_live_{}", uuid::Uuid::new_v4().simple());
                    keys.push((id.clone(), secret, true));
                    id
                };
                if c.hang.swap(false, Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                }
                let keys = c.keys.lock().unwrap();
                let secret = keys.iter().find(|k| k.0 == id).unwrap().1.clone();
                (StatusCode::CREATED, json!({ "id": id, "secret": secret, "livemode": true, "expires_at": "2031-01-01T12:00:00Z" }).to_string())
            }),
        )
        .route(
            "/v1/projects/p1/secret-keys/{id}",
            delete(
                |State(c): State<Arc<Console>>, Path(id): Path<String>, headers: HeaderMap| async move {
                    if bearer(&headers) != ADMIN {
                        return StatusCode::UNAUTHORIZED;
                    }
                    let mut keys = c.keys.lock().unwrap();
                    match keys.iter_mut().find(|k| k.0 == id) {
                        Some(k) => {
                            k.2 = false;
                            StatusCode::OK
                        }
                        None => StatusCode::NOT_FOUND,
                    }
                },
            ),
        )
        .route(
            "/v1/backend/application",
            get(|State(c): State<Arc<Console>>, headers: HeaderMap| async move {
                let key = bearer(&headers);
                let keys = c.keys.lock().unwrap();
                if keys.iter().any(|k| k.1 == key && k.2) {
                    (StatusCode::OK, json!({ "application": "seqn" }).to_string())
                } else {
                    (StatusCode::UNAUTHORIZED, json!({ "error": "invalid_secret_key" }).to_string())
                }
            }),
        )
        .with_state(state.clone());
    (format!("http://127.0.0.1:{}", server::serve(app).await.port()), state)
}

pub const CONFIG: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: seqn-secret-key
    owner: app-backend
    bootstrap: true
    key:
      type: minted
      http: { method: POST, url: "CONSOLE/v1/projects/p1/secret-keys",
              headers: { Authorization: "Bearer {{ env.SEQN_ADMIN_TOKEN }}" } }
      extract: /secret
      kid_from: /id
    env: [SEQN_ADMIN_TOKEN]
    promote:
      - file: { path: backend.env, set: { SEQN_SECRET_KEY: "{{ new.value }}" } }
    verify:
      - http: { url: "CONSOLE/v1/backend/application",
                headers: { Authorization: "Bearer {{ new.value }}" } }
    retire:
      - http: { method: DELETE, url: "CONSOLE/v1/projects/p1/secret-keys/{{ old.kid }}",
                headers: { Authorization: "Bearer {{ env.SEQN_ADMIN_TOKEN }}" } }
    drain: 0s
    gate: none
"#;

/// With `expires_from`, the provider's expiry in the mint's answer is the key's hard
/// expiry, shown by `status` and counted by `check`.
#[tokio::test(flavor = "multi_thread")]
async fn a_minted_keys_expiry_comes_from_the_providers_answer() {
    let (url, _console) = console().await;
    let ws = Ws::new();
    ws.config(&CONFIG.replace("CONSOLE", &url).replace(
        "      kid_from: /id\n",
        "      kid_from: /id\n      expires_from: /expires_at\n",
    ));
    let run = |args: &[&str]| {
        let mut c = ws.cmd(args);
        c.env("SEQN_ADMIN_TOKEN", ADMIN);
        crate::support::Run::from(c.output().unwrap())
    };
    let first = run(&["run"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let status: serde_json::Value =
        serde_json::from_str(&run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status[0]["expires"], "2031-01-01T00:00:00Z");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minted_key_is_journaled_revoked_at_retire_and_never_minted_twice() {
    let (url, console) = console().await;
    let ws = Ws::new();
    ws.config(&CONFIG.replace("CONSOLE", &url));
    let run = |args: &[&str]| {
        let mut c = ws.cmd(args);
        c.env("SEQN_ADMIN_TOKEN", ADMIN);
        crate::support::Run::from(c.output().unwrap())
    };

    let first = run(&["run"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(console.live(), vec!["key_1"]);
    let live = ws.env_value("backend.env", "SEQN_SECRET_KEY").unwrap();
    assert!(live.starts_with("sk_live_"));
    assert!(!first.all().contains(&live), "the minted value never shows");

    let second = run(&["rotate", "seqn-secret-key", "--reason", "scheduled hygiene"]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(console.live(), vec!["key_2"], "the old key was revoked at retire");
    assert_ne!(ws.env_value("backend.env", "SEQN_SECRET_KEY").unwrap(), live);

    // The answer to the third mint never comes; the run is killed while it waits.
    console.hang.store(true, Ordering::SeqCst);
    let mut child = ws
        .cmd(&["rotate", "seqn-secret-key", "--reason", "exposed"])
        .env("SEQN_ADMIN_TOKEN", ADMIN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if console.minted() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(console.minted(), 3);
    child.kill().unwrap();
    child.wait().unwrap();

    let stopped = run(&["run"]);
    assert_eq!(stopped.code, 1, "{}", stopped.all());
    assert!(
        stopped.all().contains("must not be repeated") && stopped.all().contains("reconcile"),
        "{}",
        stopped.all()
    );
    assert_eq!(console.minted(), 3, "nothing minted twice");
    assert_eq!(run(&["run"]).code, 1, "it keeps stopping until someone decides");
    assert_eq!(console.minted(), 3);

    // The operator revokes the orphan by hand and abandons the rotation; the next one
    // mints afresh.
    let abandoned = run(&["rollback", "seqn-secret-key"]);
    assert_eq!(abandoned.code, 0, "{}", abandoned.all());
    assert_eq!(console.live(), vec!["key_2", "key_3"]);
    let again = run(&["rotate", "seqn-secret-key", "--reason", "exposed"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(console.minted(), 4);
    assert_eq!(console.live(), vec!["key_3", "key_4"]);
}
