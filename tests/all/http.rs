//! The HTTP action and probes against a local server: expectations, redirects that
//! carry credentials only to trusted hosts, retries, Retry-After, timeouts, and errors
//! that never show a rendered URL.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rotagate::config::{KeySpec, ProbeSpec};
use rotagate::http::{HttpClient, RetryPolicy};
use rotagate::material::{self, Material};
use rotagate::probes;
use rotagate::secret::Secret;
use rotagate::step::{EnvValues, StepContext, View};

use crate::support::server::serve;

#[derive(Default)]
struct Seen {
    auth: Mutex<Vec<(String, Option<String>)>>,
    hits: AtomicUsize,
    www_port: Mutex<u16>,
}

fn material(kid: &str) -> Material {
    let spec = KeySpec::Secret {
        length: 32,
        alphabet: Default::default(),
        prefix: String::new(),
        kid: Default::default(),
    };
    material::generate(&spec, kid.into(), None, time::OffsetDateTime::now_utc()).unwrap()
}

fn client() -> HttpClient {
    HttpClient::new(RetryPolicy {
        attempts: 3,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_server_wait: Duration::from_secs(3),
    })
    .unwrap()
}

async fn probe(yaml: &str, kid: &str, env: &[(&str, &str)]) -> Result<String, String> {
    probe_with(yaml, &material(kid), env).await
}

async fn probe_with(yaml: &str, m: &Material, env: &[(&str, &str)]) -> Result<String, String> {
    let spec: ProbeSpec = {
        let de = serde_yaml::Deserializer::from_str(yaml);
        serde_yaml::with::singleton_map_recursive::deserialize(de).unwrap()
    };
    let env = EnvValues::new(
        env.iter().map(|(k, v)| (k.to_string(), Secret::new(*v))).collect::<BTreeMap<_, _>>(),
    );
    let http = client();
    let dir = tempfile::tempdir().unwrap();
    let cx = StepContext {
        credential: "c",
        step: "verify/0",
        base_dir: dir.path(),
        http: &http,
        env: &env,
        produced: &[],
    };
    let view = View { new: Some(m), old: None, env: &env };
    probes::build(&spec, &Default::default())
        .unwrap()
        .check(&view, &cx)
        .await
        .map_err(|e| e.to_string())
}

fn record(seen: &Seen, who: &str, headers: &HeaderMap) {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
    seen.auth.lock().unwrap().push((who.to_string(), auth));
}

/// Runbook 000's readiness probe: the apex 308-redirects to www, which checks the
/// bearer token and answers with the live kid.
async fn apex_and_www() -> (u16, u16, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let www = Router::new()
        .route(
            "/api/v1/_internal/maskinporten/readiness",
            get(|State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
                record(&seen, "www", &headers);
                if headers.get("authorization").map(|v| v.to_str().unwrap())
                    != Some("Bearer internal-secret-1234")
                {
                    return (StatusCode::UNAUTHORIZED, "{\"status\":\"unauthorized\"}")
                        .into_response();
                }
                (
                    [("content-type", "application/json")],
                    "{\"status\":\"ready\",\"maskinporten\":{\"kid\":\"kid-7\"}}",
                )
                    .into_response()
            }),
        )
        .with_state(seen.clone());
    let www_port = serve(www).await.port();
    // "localhost" and "127.0.0.1" are different hosts to the redirect policy.
    let target = format!("http://localhost:{www_port}");
    let apex = Router::new()
        .fallback(move |State(seen): State<Arc<Seen>>, headers: HeaderMap, uri: axum::http::Uri| {
            let target = target.clone();
            async move {
                record(&seen, "apex", &headers);
                (StatusCode::PERMANENT_REDIRECT, [("location", format!("{target}{}", uri.path()))])
                    .into_response()
            }
        })
        .with_state(seen.clone());
    (serve(apex).await.port(), www_port, seen)
}

#[tokio::test]
async fn the_readiness_probe_follows_the_308_with_its_token_only_to_trusted_hosts() {
    let (port, www, seen) = apex_and_www().await;
    let yaml = format!(
        r#"http:
  url: "http://127.0.0.1:{port}/api/v1/_internal/maskinporten/readiness"
  follow_redirects_to: ["localhost:{www}"]
  headers: {{ Authorization: "Bearer {{{{ env.INTERNAL_API_SECRET }}}}" }}
  expect: {{ status: 200, json: {{ /status: ready, /maskinporten/kid: "{{{{ new.kid }}}}" }} }}
"#
    );
    let ok =
        probe(&yaml, "kid-7", &[("INTERNAL_API_SECRET", "internal-secret-1234")]).await.unwrap();
    assert!(ok.contains("/maskinporten/kid = kid-7"), "{ok}");
    let wrong_kid = probe(&yaml, "kid-8", &[("INTERNAL_API_SECRET", "internal-secret-1234")])
        .await
        .unwrap_err();
    assert!(
        wrong_kid.contains("/maskinporten/kid is \"kid-7\", expected \"kid-8\""),
        "{wrong_kid}"
    );
    let auth = seen.auth.lock().unwrap().clone();
    assert_eq!(auth[0], ("apex".into(), Some("Bearer internal-secret-1234".into())));
    assert_eq!(auth[1], ("www".into(), Some("Bearer internal-secret-1234".into())));

    // Without www in follow_redirects_to, the token does not travel to it.
    seen.auth.lock().unwrap().clear();
    let untrusted = yaml.replace(&format!("  follow_redirects_to: [\"localhost:{www}\"]\n"), "");
    let err = probe(&untrusted, "kid-7", &[("INTERNAL_API_SECRET", "internal-secret-1234")])
        .await
        .unwrap_err();
    assert!(err.contains("answered 401, expected 200"), "{err}");
    assert_eq!(
        seen.auth.lock().unwrap()[1],
        ("www".into(), None),
        "credentials stay with the trusted host"
    );
    assert!(!err.contains("internal-secret-1234"));
}

/// A 308 from 127.0.0.1:A to 127.0.0.1:B: same host, another origin. Credentials and
/// a private header go along only when `follow_redirects_to` names B's port.
#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_port_of_the_same_host() {
    let seen = Arc::new(Seen::default());
    let other = Router::new()
        .fallback(|State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
            record(&seen, "other-port", &headers);
            let custom = headers.get("x-private").map(|v| v.to_str().unwrap().to_string());
            seen.auth.lock().unwrap().push(("other-port x-private".into(), custom));
            ([("content-type", "application/json")], "{\"status\":\"ready\"}")
        })
        .with_state(seen.clone());
    let other_port = serve(other).await.port();
    let apex = Router::new().fallback(move |uri: axum::http::Uri| async move {
        (
            StatusCode::PERMANENT_REDIRECT,
            [("location", format!("http://127.0.0.1:{other_port}{}", uri.path()))],
        )
            .into_response()
    });
    let port = serve(apex).await.port();
    let yaml = |trusted: &str| {
        format!(
            r#"http:
  url: "http://127.0.0.1:{port}/ready"
  {trusted}
  headers: {{ Authorization: "Bearer {{{{ env.TOKEN }}}}", X-Private: "{{{{ new.value }}}}" }}
  expect: {{ status: 200 }}
"#
        )
    };
    let env = [("TOKEN", "port-token-SECRET")];
    let m = material("k");
    probe_with(&yaml(""), &m, &env).await.unwrap();
    probe_with(&yaml("follow_redirects_to: [\"127.0.0.1\"]"), &m, &env).await.unwrap();
    let leaked: Vec<_> = seen.auth.lock().unwrap().drain(..).collect();
    assert!(
        leaked.iter().all(|(_, v)| v.is_none()),
        "credentials crossed to another port: {leaked:?}"
    );
    probe_with(&yaml(&format!("follow_redirects_to: [\"127.0.0.1:{other_port}\"]")), &m, &env)
        .await
        .unwrap();
    let sent = seen.auth.lock().unwrap().clone();
    assert_eq!(sent[0], ("other-port".to_string(), Some("Bearer port-token-SECRET".to_string())));
    assert_eq!(
        sent[1].1.as_deref(),
        m.secret.as_ref().map(Secret::expose),
        "a listed host:port gets the private header"
    );
}

/// A probe attempt is one request: the probe's own `retries` are the only retries, so
/// `retries: 3` facing a 503 makes 4 requests, not 4 × the transport's attempts.
#[tokio::test]
async fn a_probe_attempt_makes_one_request_however_the_server_fails() {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .fallback(|State(seen): State<Arc<Seen>>| async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "busy")
        })
        .with_state(seen.clone());
    let port = serve(app).await.port();
    let yaml =
        format!("http: {{ url: \"http://127.0.0.1:{port}/ready\", retries: 3, interval: 1s }}");
    let err = probe(&yaml, "k", &[]).await.unwrap_err();
    assert!(err.contains("503"), "{err}");
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1);
}

/// End to end: `retries: 3, interval: 1s` against a 503 is 4 requests in all.
#[tokio::test(flavor = "multi_thread")]
async fn a_verify_probe_makes_exactly_its_configured_attempts() {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .fallback(|State(seen): State<Arc<Seen>>| async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        })
        .with_state(seen.clone());
    let port = serve(app).await.port();
    let ws = crate::support::Ws::new();
    ws.config(&format!(
        r#"version: 1
state: {{ store: "file:.rotagate/state.age", recipients: [RECIPIENT] }}
credentials:
  - id: api-token
    owner: o
    bootstrap: true
    key: {{ type: secret }}
    promote:
      - file: {{ path: app.env, set: {{ TOKEN: "{{{{ new.value }}}}" }} }}
    verify:
      - http: {{ url: "http://127.0.0.1:{port}/ready", retries: 3, interval: 1s }}
    gate: none
"#
    ));
    let out =
        tokio::task::spawn_blocking(move || ws.run(&["run", "--max-wait", "1m"])).await.unwrap();
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(seen.hits.load(Ordering::SeqCst), 4, "{}", out.all());
    assert!(out.all().contains("answered 503"), "{}", out.all());
}

#[tokio::test]
async fn retries_honour_retry_after_and_errors_never_show_the_rendered_url() {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/flaky",
            get(|State(hits): State<Arc<AtomicUsize>>| async move {
                match hits.fetch_add(1, Ordering::SeqCst) {
                    0 => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                    1 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down")
                        .into_response(),
                    _ => ([("content-type", "application/json")], "{\"ok\":true}").into_response(),
                }
            }),
        )
        .route("/down", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down").into_response() }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .with_state(hits.clone());
    let port = serve(app).await.port();
    // The transport retries (steps that change things use them; probes do not).
    let started = Instant::now();
    let request = rotagate::http::Request {
        method: reqwest::Method::GET,
        url: format!("http://127.0.0.1:{port}/flaky").parse().unwrap(),
        shown: "GET /flaky".into(),
        headers: Vec::new(),
        body: None,
        content_type: None,
        timeout: Duration::from_secs(5),
        trusted_hosts: Vec::new(),
    };
    let ok = client().send(&request).await.unwrap();
    assert_eq!(ok.status.as_u16(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");

    let secret_url = format!("http://127.0.0.1:{port}/down?token={{{{ env.HOOK_TOKEN }}}}");
    let err = probe(
        &format!("http: {{ url: \"{secret_url}\" }}"),
        "k",
        &[("HOOK_TOKEN", "tok-SECRET-99")],
    )
    .await
    .unwrap_err();
    assert!(err.contains("answered 503"), "{err}");
    assert!(err.contains("{{ env.HOOK_TOKEN }}") && !err.contains("tok-SECRET-99"), "{err}");

    let err = probe(&format!("http: {{ url: \"http://127.0.0.1:{port}/slow?t={{{{ env.HOOK_TOKEN }}}}\", timeout: 1s }}"), "k", &[("HOOK_TOKEN", "tok-SECRET-99")])
        .await
        .unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    assert!(!err.contains("tok-SECRET-99"), "{err}");

    let err = probe(
        "http: { url: \"http://127.0.0.1:1/x?t={{ env.HOOK_TOKEN }}\" }",
        "k",
        &[("HOOK_TOKEN", "tok-SECRET-99")],
    )
    .await
    .unwrap_err();
    assert!(err.contains("could not connect"), "{err}");
    assert!(!err.contains("tok-SECRET-99"), "{err}");
}

#[tokio::test]
async fn a_jwks_probe_selects_by_kid() {
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(|| async {
            ([("content-type", "application/json")], "{\"keys\":[{\"kid\":\"a\"},{\"kid\":\"b\"}]}")
        }),
    );
    let port = serve(app).await.port();
    let yaml = format!("jwks: {{ url: \"http://127.0.0.1:{port}/.well-known/jwks.json\" }}");
    assert!(probe(&yaml, "b", &[]).await.is_ok());
    let err = probe(&yaml, "c", &[]).await.unwrap_err();
    assert!(err.contains("does not serve kid c (it serves: a, b)"), "{err}");
}

fn rsa(kid: &str) -> Material {
    let spec = KeySpec::Rsa { bits: 2048, kid: Default::default() };
    material::generate(&spec, kid.into(), None, time::OffsetDateTime::now_utc()).unwrap()
}

/// Serves `keys` as a JWKS on www (localhost), behind a 308 from the apex (127.0.0.1)
/// that keeps the Authorization header only because www is trusted.
async fn jwks_behind_redirect(keys: Vec<serde_json::Value>) -> (u16, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let doc = serde_json::json!({ "keys": keys }).to_string();
    let www = Router::new()
        .route(
            "/.well-known/jwks.json",
            get(move |State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
                record(&seen, "www", &headers);
                ([("content-type", "application/json")], doc)
            }),
        )
        .with_state(seen.clone());
    let www_port = serve(www).await.port();
    let apex = Router::new().fallback(move || async move {
        Response::builder()
            .status(StatusCode::PERMANENT_REDIRECT)
            .header("location", format!("http://localhost:{www_port}/.well-known/jwks.json"))
            .body(axum::body::Body::empty())
            .unwrap()
    });
    *seen.www_port.lock().unwrap() = www_port;
    (serve(apex).await.port(), seen)
}

#[tokio::test]
async fn a_jwt_probe_verifies_a_token_against_the_served_key_picked_by_kid() {
    let new = rsa("new-kid");
    let old = rsa("old-kid");
    let impostor = rsa("new-kid");
    let yaml = |(port, seen): &(u16, Arc<Seen>)| {
        let www = *seen.www_port.lock().unwrap();
        format!(
            "jwt: {{ url: \"http://127.0.0.1:{port}/.well-known/jwks.json\", follow_redirects_to: [\"localhost:{www}\"], headers: {{ Authorization: \"Bearer {{{{ env.TOKEN }}}}\" }} }}"
        )
    };
    let env = [("TOKEN", "jwks-token-SECRET")];

    let served =
        jwks_behind_redirect(vec![old.jwk.clone().unwrap(), new.jwk.clone().unwrap()]).await;
    let evidence = probe_with(&yaml(&served), &new, &env).await.unwrap();
    let seen = served.1;
    assert!(evidence.contains("verifies"), "{evidence}");
    assert_eq!(
        seen.auth.lock().unwrap().clone(),
        vec![("www".to_string(), Some("Bearer jwks-token-SECRET".to_string()))]
    );

    let served = jwks_behind_redirect(vec![old.jwk.clone().unwrap()]).await;
    let err = probe_with(&yaml(&served), &new, &env).await.unwrap_err();
    assert!(err.contains("has no key with kid new-kid (it serves: old-kid)"), "{err}");

    // The right kid, the wrong key: the flip the runbooks warn of.
    let served = jwks_behind_redirect(vec![impostor.jwk.clone().unwrap()]).await;
    let err = probe_with(&yaml(&served), &new, &env).await.unwrap_err();
    assert!(err.contains("are not a pair"), "{err}");
    assert!(!err.contains("jwks-token-SECRET"), "{err}");

    // Without trusting www, the redirect is not followed with the token.
    let (port, seen) = jwks_behind_redirect(vec![new.jwk.clone().unwrap()]).await;
    let untrusted = format!(
        "jwt: {{ url: \"http://127.0.0.1:{port}/.well-known/jwks.json\", headers: {{ Authorization: \"Bearer {{{{ env.TOKEN }}}}\" }} }}"
    );
    let result = probe_with(&untrusted, &new, &env).await;
    assert!(seen.auth.lock().unwrap().iter().all(|(_, auth)| auth.is_none()), "{result:?}");
}

#[tokio::test]
async fn a_body_is_never_resent_to_an_untrusted_host() {
    let seen = Arc::new(Seen::default());
    let other = Router::new()
        .fallback(|State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
            record(&seen, "other", &headers);
            "ok"
        })
        .with_state(seen.clone());
    let other_port = serve(other).await.port();
    let hook = Router::new().route(
        "/deploy",
        post(move || async move {
            Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", format!("http://localhost:{other_port}/deploy"))
                .body(axum::body::Body::empty())
                .unwrap()
        }),
    );
    let port = serve(hook).await.port();
    let action: rotagate::config::ActionSpec = {
        let yaml = format!(
            "http: {{ method: POST, url: \"http://127.0.0.1:{port}/deploy\", json: {{ key: \"{{{{ new.value }}}}\" }} }}"
        );
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            &yaml,
        ))
        .unwrap()
    };
    let m = material("k");
    let env = EnvValues::default();
    let http = client();
    let dir = tempfile::tempdir().unwrap();
    let cx = StepContext {
        credential: "c",
        step: "promote/0",
        base_dir: dir.path(),
        http: &http,
        env: &env,
        produced: &[],
    };
    let view = View { new: Some(&m), old: None, env: &env };
    let err = rotagate::actions::build(&action, &Default::default())
        .unwrap()
        .unwrap()
        .execute(rotagate::actions::Op::Run(&view), &cx)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not in follow_redirects_to, with a body to re-send"),
        "{err}"
    );
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0, "the secret body never reached the other host");
}
