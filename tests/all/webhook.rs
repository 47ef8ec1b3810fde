//! A webhook secret with a pending slot: publish fills the receiver's idle slot, promote
//! switches the sender, retire clears the old slot. A sender signs events the whole
//! time (HMAC-SHA256 over `timestamp.body`, Stripe-style) and the receiver, checking
//! either slot, rejects none.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::support::{Ws, server};

pub const CONFIG: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: webhook-signing
    owner: webhook-receiver
    bootstrap: true
    key: { type: secret, length: 32, prefix: whsec_ }
    strategy: alternating
    roles: [A, B]
    env: [RECEIVER_URL]
    publish:
      - file: { path: receiver.env, set: { "WEBHOOK_SECRET_{{ new.role }}": "{{ new.value }}" } }
    promote:
      - file: { path: sender.env, set: { WEBHOOK_SECRET: "{{ new.value }}" } }
    verify:
      - command: { run: ./scripts/send-test-event.py, stdin: "{{ new.value }}", env: [RECEIVER_URL] }
    drain: 0s
    gate: none
"#;

fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// `KEY=value` lines (whsec_ values are plain, so written bare).
fn env_file(ws_dir: &std::path::Path, name: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(ws_dir.join(name))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[derive(Default)]
pub struct Tally {
    pub accepted: AtomicUsize,
    pub rejected: AtomicUsize,
    /// A slot this receiver does not read (one that cannot take a second secret).
    pub ignored_slot: std::sync::Mutex<Option<String>>,
}

/// The receiver: reads its slots from receiver.env on every event, accepts a signature
/// made with any of them.
pub async fn receiver(dir: std::path::PathBuf, tally: Arc<Tally>) -> String {
    let app = Router::new()
        .route(
            "/webhook",
            post(
                |State((dir, tally)): State<(std::path::PathBuf, Arc<Tally>)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let header = headers
                        .get("x-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let (t, v1) = header
                        .split_once(",v1=")
                        .map(|(t, v)| (t.trim_start_matches("t=").to_string(), v.to_string()))
                        .unwrap_or_default();
                    let slots = env_file(&dir, "receiver.env");
                    let ignored = tally.ignored_slot.lock().unwrap().clone();
                    if slots.iter().any(|(k, secret)| {
                        k.starts_with("WEBHOOK_SECRET_")
                            && Some(k) != ignored.as_ref()
                            && sign(secret, &t, &body) == v1
                    }) {
                        tally.accepted.fetch_add(1, Ordering::SeqCst);
                        StatusCode::OK
                    } else {
                        tally.rejected.fetch_add(1, Ordering::SeqCst);
                        StatusCode::UNAUTHORIZED
                    }
                },
            ),
        )
        .with_state((dir, tally));
    format!("http://127.0.0.1:{}/webhook", server::serve(app).await.port())
}

async fn send(url: &str, secret: &str, n: usize) -> StatusCode {
    let body = format!("{{\"id\":\"evt_{n}\",\"type\":\"ping\"}}");
    let t = n.to_string();
    let status = reqwest::Client::new()
        .post(url)
        .header("x-signature", format!("t={t},v1={}", sign(secret, &t, body.as_bytes())))
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    StatusCode::from_u16(status.as_u16()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_signed_throughout_the_rotation_are_never_rejected() {
    let ws = Ws::new();
    ws.config(CONFIG);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/scripts/send-test-event.py"
    ))
    .unwrap();
    ws.script("scripts/send-test-event.py", &text);
    let tally = Arc::new(Tally::default());
    let url = receiver(ws.dir.path().to_path_buf(), tally.clone()).await;
    let run = |args: &[&str]| {
        let mut c = ws.cmd(args);
        c.env("RECEIVER_URL", &url);
        crate::support::Run::from(c.output().unwrap())
    };
    let first = run(&["run"]);
    assert_eq!(first.code, 0, "{}", first.all());

    // The receiver is not accept-all.
    assert_eq!(send(&url, "whsec_wrong", 0).await, StatusCode::UNAUTHORIZED);
    tally.rejected.store(0, Ordering::SeqCst);

    // The sender signs with whatever sender.env holds, as fast as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (dir, url, stop) = (ws.dir.path().to_path_buf(), url.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 1;
            while !stop.load(Ordering::SeqCst) {
                let secret = env_file(&dir, "sender.env")
                    .into_iter()
                    .find(|(k, _)| k == "WEBHOOK_SECRET")
                    .unwrap()
                    .1;
                send(&url, &secret, n).await;
                n += 1;
            }
        })
    };
    let mut slots_seen = Vec::new();
    for round in 0..4 {
        let out = run(&["rotate", "webhook-signing", "--reason", &format!("round {round}")]);
        assert_eq!(out.code, 0, "{}", out.all());
        let keys: Vec<String> =
            env_file(ws.dir.path(), "receiver.env").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 1, "the old slot was cleared at retire: {keys:?}");
        slots_seen.push(keys[0].clone());
    }
    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    assert_eq!(
        slots_seen,
        ["WEBHOOK_SECRET_B", "WEBHOOK_SECRET_A", "WEBHOOK_SECRET_B", "WEBHOOK_SECRET_A"]
    );
    let accepted = tally.accepted.load(Ordering::SeqCst);
    assert!(accepted > 20, "the sender kept sending ({accepted} events)");
    assert_eq!(tally.rejected.load(Ordering::SeqCst), 0, "no event was rejected");
}
