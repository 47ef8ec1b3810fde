//! `vercel-env` against the fake Vercel: kid and private key flip together in one
//! request, a partial write is put back, retries on 500 and 429, rollback restores the
//! previous values, and the deploy hook runs after each write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use rotagate::http::{HttpClient, RetryPolicy};
use rotagate::pipeline::{self, Outcome, RunOptions};
use rotagate::secret::Secret;
use rotagate::step::Providers;
use rotagate::vercel::Vercel;
use serde_json::json;

use crate::support::vercel::{FakeVercel, Fault, TOKEN};
use crate::support::{Ws, clock, runtime, server};

pub fn vercel_client(fake: &FakeVercel, token: &str) -> Vercel {
    let http = HttpClient::new(RetryPolicy {
        attempts: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_server_wait: Duration::from_secs(5),
    })
    .unwrap();
    Vercel::new(http, &fake.url(), Secret::new(token)).unwrap()
}

/// The readiness endpoint of runbook 000, answering for the newest deployment: ready
/// with its kid, or 503 naming the field boot validation rejected. With `only_kid` set,
/// a deployment of any other kid fails boot validation.
pub async fn readiness(
    fake: FakeVercel,
    project: &'static str,
    only_kid: Arc<Mutex<Option<String>>>,
) -> String {
    let app = Router::new().route(
        "/api/v1/_internal/maskinporten/readiness",
        get(move |headers: HeaderMap| {
            let (fake, only_kid) = (fake.clone(), only_kid.clone());
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Bearer internal-SECRET-1")
                {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                let Some(env) = fake.deployments(project).pop() else {
                    return (StatusCode::SERVICE_UNAVAILABLE, "{}".into());
                };
                let pem_ok = env
                    .get("MASKINPORTEN_PRIVATE_KEY")
                    .is_some_and(|k| k.starts_with("-----BEGIN PRIVATE KEY-----"));
                let kid = env.get("MASKINPORTEN_KID").cloned();
                let refused =
                    only_kid.lock().unwrap().as_ref().is_some_and(|k| Some(k) != kid.as_ref());
                if refused || !pem_ok {
                    let body = json!({ "status": "not_ready",
                        "failures": [{ "field": "MASKINPORTEN_PRIVATE_KEY" }] });
                    return (StatusCode::SERVICE_UNAVAILABLE, body.to_string());
                }
                let body = json!({ "status": "ready",
                    "maskinporten": { "kid": kid } });
                (StatusCode::OK, body.to_string())
            }
        }),
    );
    format!("http://127.0.0.1:{}", server::serve(app).await.port())
}

const CONFIG: &str = r#"version: 1
state:
  store: file:.rotagate/state.age
  recipients: [RECIPIENT]
credentials:
  - id: maskinporten-signing
    owner: "@acme/platform-oncall"
    bootstrap: true
    key: { type: rsa, bits: 2048, kid: uuid }
    schedule: { every: 90d }
    env: [DEPLOY_HOOK_URL, INTERNAL_API_SECRET]
    promote:
      - vercel-env: { project: apier, team: team_apier, target: [production, preview],
                      set: { MASKINPORTEN_KID: "{{ new.kid }}",
                             MASKINPORTEN_PRIVATE_KEY: "{{ new.private_pem }}" } }
      - http: { method: POST, url: "{{ env.DEPLOY_HOOK_URL }}" }
    verify:
      - http: { url: "READINESS/api/v1/_internal/maskinporten/readiness",
                headers: { Authorization: "Bearer {{ env.INTERNAL_API_SECRET }}" },
                expect: { status: 200, json: { /status: ready, /maskinporten/kid: "{{ new.kid }}" } } }
    drain: 0s
    gate: none
"#;

#[tokio::test(flavor = "multi_thread")]
async fn kid_and_key_flip_together_a_partial_write_is_put_back_and_rollback_restores() {
    let fake = FakeVercel::start().await;
    fake.add_project("apier", Some("team_apier"));
    fake.set("apier", "MASKINPORTEN_MODE", "live", "encrypted", &["production"]);
    let only_kid = Arc::new(Mutex::new(None));
    let origin = readiness(fake.clone(), "apier", only_kid.clone()).await;
    let ws = Ws::new();
    ws.config(&CONFIG.replace("READINESS", &origin));
    let hook = fake.deploy_hook("apier");
    let clock = clock();
    let mut rt = runtime(
        clock.clone(),
        &[("DEPLOY_HOOK_URL", &hook), ("INTERNAL_API_SECRET", "internal-SECRET-1")],
    );
    rt.providers = Providers { vercel: Some(vercel_client(&fake, TOKEN)), ..Default::default() };
    let run = async || {
        let mut vault = ws.vault().await;
        let opts = RunOptions { max_wait: Duration::ZERO, ..RunOptions::default() };
        pipeline::run(&ws.loaded(), &mut vault, &rt, &opts).await.unwrap().credentials[0]
            .outcome
            .clone()
    };
    let pair = || {
        (
            fake.value("apier", "MASKINPORTEN_KID").unwrap(),
            fake.value("apier", "MASKINPORTEN_PRIVATE_KEY").unwrap(),
        )
    };

    // First issuance: both written as sensitive, for both targets, in one request.
    let outcome = run().await;
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let (kid1, key1) = pair();
    let var = fake.var("apier", "MASKINPORTEN_PRIVATE_KEY").unwrap();
    assert_eq!(var.kind, "sensitive");
    assert_eq!(var.target, vec!["production", "preview"]);
    let upserts: Vec<String> =
        fake.requests().into_iter().filter(|r| r.starts_with("POST /v10/")).collect();
    assert_eq!(upserts, vec!["POST /v10/projects/apier/env?teamId=team_apier&upsert=true"]);
    assert_eq!(fake.deployments("apier").len(), 1);
    assert_eq!(fake.value("apier", "MASKINPORTEN_MODE").unwrap(), "live");

    // Due again; Vercel writes the kid but fails the key: the kid is put back at once,
    // so the two never disagree, and the deploy hook runs again on the restored pair.
    clock.advance(Duration::from_secs(91 * 86_400));
    fake.inject("create", Fault::FailKey("MASKINPORTEN_PRIVATE_KEY".into()), 1);
    let outcome = run().await;
    assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome:?}");
    assert_eq!(pair(), (kid1.clone(), key1.clone()));
    let last = fake.deployments("apier").pop().unwrap();
    assert_eq!(last.get("MASKINPORTEN_KID"), Some(&kid1));

    // Transient 500 and 429 (with X-RateLimit-Reset) are retried; then the readiness
    // probe fails and the rollback writes both old values back and redeploys.
    fake.inject("create", Fault::Status(500), 1);
    fake.inject("create", Fault::RateLimited { reset_in: 1 }, 1);
    *only_kid.lock().unwrap() = Some(kid1.clone());
    let outcome = run().await;
    let outcome = match outcome {
        Outcome::Failed { .. } => run().await,
        o => o,
    };
    assert!(matches!(outcome, Outcome::RolledBack { .. }), "{outcome:?}");
    assert_eq!(fake.pending_faults(), 0, "the 500 and the 429 were met and retried");
    assert_eq!(pair(), (kid1.clone(), key1.clone()));
    assert_eq!(fake.deployments("apier").pop().unwrap().get("MASKINPORTEN_KID"), Some(&kid1));

    // Healthy again: the next rotation flips both.
    *only_kid.lock().unwrap() = None;
    let outcome = run().await;
    let outcome = match outcome {
        Outcome::Idle { .. } => {
            clock.advance(Duration::from_secs(91 * 86_400));
            run().await
        }
        o => o,
    };
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let (kid2, key2) = pair();
    assert_ne!(kid2, kid1);
    assert_ne!(key2, key1);
    assert_eq!(fake.value("apier", "MASKINPORTEN_MODE").unwrap(), "live");

    // No secret ever went into a URL.
    for r in fake.requests() {
        assert!(!r.contains("PRIVATE KEY") && !r.contains(&kid2), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_token_or_team_names_what_to_fix_and_encrypted_values_are_restored_exactly() {
    use rotagate::step::{EnvValues, StepContext, View};
    let fake = FakeVercel::start().await;
    fake.add_project("apier", Some("team_apier"));
    fake.set("apier", "SESSION_SECRET", "previous-value-abc", "encrypted", &["production"]);
    let spec = |team: &str, kind: &str| -> rotagate::config::ActionSpec {
        let yaml = format!(
            "vercel-env: {{ project: apier, team: {team}, type: {kind}, set: {{ SESSION_SECRET: \"{{{{ new.value }}}}\", SESSION_KID: \"{{{{ new.kid }}}}\" }} }}"
        );
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            &yaml,
        ))
        .unwrap()
    };
    let material = rotagate::material::generate(
        &rotagate::config::KeySpec::Secret {
            length: 32,
            alphabet: Default::default(),
            prefix: String::new(),
            kid: Default::default(),
        },
        "k1".into(),
        None,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let env = EnvValues::default();
    let http = HttpClient::new(RetryPolicy::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cx = StepContext {
        credential: "session",
        step: "promote/0",
        base_dir: dir.path(),
        http: &http,
        env: &env,
        produced: &[],
    };
    let view = View { new: Some(&material), old: None, env: &env };
    let build = |spec: &rotagate::config::ActionSpec, token: &str| {
        let providers =
            Providers { vercel: Some(vercel_client(&fake, token)), ..Default::default() };
        rotagate::actions::build(spec, &providers).unwrap().unwrap()
    };

    let err = build(&spec("team_apier", "encrypted"), "wrong-token")
        .execute(rotagate::actions::Op::Write(&view), &cx)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("403 forbidden") && err.contains("ROTAGATE_VERCEL_TOKEN"), "{err}");
    let err = build(&spec("team_other", "encrypted"), TOKEN)
        .execute(rotagate::actions::Op::Write(&view), &cx)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404 not_found") && err.contains("`team`"), "{err}");
    assert!(
        !err.contains(material.field(rotagate::config::template::Field::Value).unwrap().expose())
    );

    // First issuance over a live encrypted value: captured, written, then restored
    // exactly; the variable that did not exist before is removed again.
    let action = build(&spec("team_apier", "encrypted"), TOKEN);
    let before = action.capture(&view, &cx).await.unwrap().unwrap();
    action.execute(rotagate::actions::Op::Write(&view), &cx).await.unwrap();
    assert_ne!(fake.value("apier", "SESSION_SECRET").unwrap(), "previous-value-abc");
    assert_eq!(fake.value("apier", "SESSION_KID").unwrap(), "k1");
    action.execute(rotagate::actions::Op::Restore(&before), &cx).await.unwrap();
    assert_eq!(fake.value("apier", "SESSION_SECRET").unwrap(), "previous-value-abc");
    assert_eq!(fake.value("apier", "SESSION_KID"), None);

    // A sensitive value cannot be read back: restoring says so instead of guessing.
    fake.set("apier", "SESSION_KID", "kid-0", "sensitive", &["production"]);
    let action = build(&spec("team_apier", "sensitive"), TOKEN);
    let before = action.capture(&view, &cx).await.unwrap().unwrap();
    let err =
        action.execute(rotagate::actions::Op::Restore(&before), &cx).await.unwrap_err().to_string();
    assert!(err.contains("SESSION_KID") && err.contains("adopt"), "{err}");
}
