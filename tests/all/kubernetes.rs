//! `kubernetes-secret` against the fake API server, through the binary with a real
//! kubeconfig: the example rotates end to end (kid and key in one patch, other keys
//! kept, the Deployment restarted, a probe reading the Secret as pods see it), the
//! operator's rollback patches the old values back, a stale resourceVersion is caught,
//! missing RBAC stops the rotation before any key exists, an exec credential plugin
//! logs in, and a run killed anywhere converges with one write per rotation.

use std::process::Command;

use crate::examples::example;
use crate::support::kubernetes::{ADMIN_TOKEN, FakeKube, Fault};
use crate::support::{Run, Ws, kill_after_line};

const READER: &str = "k8s-reader-Token-payments-77de";
const NS: &str = "payments";
const NAME: &str = "signing-key";

fn kubeconfig(fake: &FakeKube, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: ci\nclusters:\n  - name: prod\n    cluster: {{ server: \"{}\" }}\ncontexts:\n  - name: ci\n    context: {{ cluster: prod, user: rotagate, namespace: payments }}\nusers:\n  - name: rotagate\n    user:\n{user}\n",
        fake.url()
    )
}

/// A workspace with the example, a kubeconfig for `user` and the fake's namespace set up.
fn workspace(fake: &FakeKube, user: &str) -> Ws {
    let ws = example("kubernetes-secret.yaml");
    ws.write("kubeconfig", &kubeconfig(fake, user));
    ws
}

fn cmd(ws: &Ws, fake: &FakeKube, args: &[&str]) -> Command {
    let mut c = ws.cmd(args);
    c.env("KUBECONFIG", ws.path("kubeconfig"))
        .env("KUBE_API", fake.url())
        .env("KUBE_READER_TOKEN", READER);
    c
}

async fn run(ws: &Ws, fake: &FakeKube, args: &[&str]) -> Run {
    tokio::process::Command::from(cmd(ws, fake, args)).output().await.unwrap().into()
}

fn admin() -> String {
    format!("      token: {ADMIN_TOKEN}")
}

fn setup(fake: &FakeKube) {
    fake.add_user(
        READER,
        "system:serviceaccount:payments:payments-api",
        &[(NS, "", "secrets", &["get"], &[NAME])],
    );
    fake.add_deployment(NS, "payments-api");
}

fn kid_in_state(ws: &Ws) -> String {
    ws.state()["body"]["doc"]["credentials"]["payments-api-signing"]["current"]["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_rotates_restarts_and_rollback_patches_the_old_values_back() {
    let fake = FakeKube::start().await;
    setup(&fake);
    fake.put_secret(NS, NAME, &[("DATABASE_URL", "postgres://payments@db/payments")]);
    let ws = workspace(&fake, &admin());

    // First issuance: one patch with kid and key, other keys kept, one restart; a 429
    // and a 500 on the patch are retried.
    fake.inject("PATCH /api/v1/namespaces/payments/secrets", Fault::TooManyRequests(1), 1);
    fake.inject("PATCH /api/v1/namespaces/payments/secrets", Fault::Status(500), 1);
    let out = run(&ws, &fake, &["run"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.pending_faults(), 0);
    let secret = fake.secret(NS, NAME).unwrap();
    let kid1 = secret.data["KID"].clone();
    assert_eq!(kid1, kid_in_state(&ws));
    assert!(secret.data["PRIVATE_KEY"].starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(secret.data["DATABASE_URL"], "postgres://payments@db/payments");
    assert_eq!(fake.writes(), vec!["patch payments/signing-key"]);
    assert_eq!(fake.restarts(NS, "payments-api").len(), 1);

    // The next rotation waits out a drain; the operator rolls it back: the old kid and
    // key are patched back and the pods restarted again.
    let config = ws.read("rotagate.yaml");
    ws.write("rotagate.yaml", &config.replace("drain: 0s", "drain: 1h"));
    let out = run(&ws, &fake, &["rotate", "payments-api-signing", "--reason", "test"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let kid2 = fake.secret(NS, NAME).unwrap().data["KID"].clone();
    assert_ne!(kid2, kid1);
    assert_eq!(fake.restarts(NS, "payments-api").len(), 2);
    let out = run(&ws, &fake, &["rollback", "payments-api-signing"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.secret(NS, NAME).unwrap().data, secret.data, "the old values are back");
    assert_eq!(fake.restarts(NS, "payments-api").len(), 3);
    assert_eq!(fake.writes().len(), 3);
    assert_eq!(kid_in_state(&ws), kid1);

    // No secret in a URL or the output.
    let line = secret.data["PRIVATE_KEY"].lines().nth(1).unwrap().to_string();
    for r in fake.requests() {
        assert!(!r.contains(&line), "{r}");
    }
    assert!(!out.all().contains(&line) && !out.all().contains(ADMIN_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_resource_version_is_caught_and_the_next_run_writes_on_top() {
    let fake = FakeKube::start().await;
    setup(&fake);
    fake.put_secret(NS, NAME, &[("DATABASE_URL", "postgres://old")]);
    let ws = workspace(&fake, &admin());
    fake.inject(
        "PATCH /api/v1/namespaces/payments/secrets",
        Fault::ConcurrentWrite([("DATABASE_URL".to_string(), "postgres://new".to_string())].into()),
        1,
    );
    let out = run(&ws, &fake, &["run"]).await;
    assert_ne!(out.code, 0);
    assert!(out.all().contains("write Secret payments/signing-key: the Secret changed after rotagate read it (resourceVersion 1)"), "{}", out.all());
    let out = run(&ws, &fake, &["run"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let secret = fake.secret(NS, NAME).unwrap();
    assert_eq!(secret.data["DATABASE_URL"], "postgres://new");
    assert_eq!(secret.data["KID"], kid_in_state(&ws));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_rbac_stops_the_rotation_before_any_key_exists() {
    let fake = FakeKube::start().await;
    setup(&fake);
    let token = "k8s-ci-Token-without-patch-31";
    fake.add_user(
        token,
        "system:serviceaccount:ci:rotagate",
        &[(NS, "", "secrets", &["get", "create"], &[])],
    );
    let ws = workspace(&fake, &format!("      token: {token}"));
    let out = run(&ws, &fake, &["run"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.all().contains("Kubernetes does not allow rotagate what kubernetes-secret payments/signing-key needs: add to a Role in namespace payments (bound to rotagate's user or service account) rules: [{ apiGroups: [\"\"], resources: [\"secrets\"], verbs: [\"patch\"] }, { apiGroups: [\"apps\"], resources: [\"deployments\"], verbs: [\"patch\"] }]"),
        "{}",
        out.all()
    );
    assert!(ws.state()["body"]["doc"]["credentials"]["payments-api-signing"]["current"].is_null());
    assert!(!ws.exists("public/jwks.json"));
    assert!(fake.writes().is_empty());
    assert!(!out.all().contains(token));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exec_credential_plugin_logs_in_and_a_bad_kubeconfig_names_the_fix() {
    let fake = FakeKube::start().await;
    setup(&fake);
    let ws = example("kubernetes-secret.yaml");
    ws.script(
        "get-token.sh",
        &format!("#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{ADMIN_TOKEN}\"}}}}'\n"),
    );
    let plugin = format!(
        "      exec:\n        apiVersion: client.authentication.k8s.io/v1\n        command: {}\n        args: []",
        ws.path("get-token.sh").display()
    );
    ws.write("kubeconfig", &kubeconfig(&fake, &plugin));
    let out = run(&ws, &fake, &["run"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.secret(NS, NAME).unwrap().data["KID"], kid_in_state(&ws));
    assert!(!out.all().contains(ADMIN_TOKEN));

    // A context that does not exist: the kubeconfig and what is missing.
    let mut c = cmd(&ws, &fake, &["rotate", "payments-api-signing", "--reason", "x"]);
    c.env("ROTAGATE_KUBE_CONTEXT", "staging");
    let out: Run = tokio::process::Command::from(c).output().await.unwrap().into();
    assert_ne!(out.code, 0);
    assert!(out.all().contains("no context named `staging` in `contexts`"), "{}", out.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_anywhere_converges_with_one_write() {
    let fake = FakeKube::start().await;
    setup(&fake);
    fake.add_user(
        READER,
        "system:serviceaccount:payments:payments-api",
        &[(NS, "", "secrets", &["get"], &[])],
    );
    let mut line = 1;
    loop {
        let name = format!("kill-{line}");
        let ws = workspace(&fake, &admin());
        let config = ws
            .read("rotagate.yaml")
            .replace("name: signing-key", &format!("name: {name}"))
            .replace("args: [payments, signing-key]", &format!("args: [payments, {name}]"));
        ws.write("rotagate.yaml", &config);
        let before = fake.writes().len();
        let killed =
            tokio::task::block_in_place(|| kill_after_line(cmd(&ws, &fake, &["run"]), line));
        let out = run(&ws, &fake, &["run"]).await;
        assert_eq!(out.code, 0, "killed after line {line}: {}", out.all());
        assert_eq!(fake.writes().len() - before, 1, "killed after line {line}: one write");
        assert_eq!(fake.secret(NS, &name).unwrap().data["KID"], kid_in_state(&ws));
        if !killed {
            break;
        }
        line += 1;
    }
    assert!(line > 5, "the sweep reached the promote ({line} lines)");
}

#[test]
fn a_bad_kubernetes_step_is_reported_at_its_line_and_column() {
    let ws = example("kubernetes-secret.yaml");
    let config = ws.read("rotagate.yaml");
    ws.write(
        "rotagate.yaml",
        &config
            .replace("namespace: payments", "namespace: Payments_NS")
            .replace("restart: [payments-api]", "restart: [payments-api, \"-bad\"]"),
    );
    let out = ws.run(&["plan"]);
    assert_eq!(out.code, 2, "{}", out.all());
    for message in [
        "kubernetes-secret.namespace: `Payments_NS` is not a namespace name\n  --> rotagate.yaml:28:22",
        "kubernetes-secret.restart[1]: `-bad` is not a Kubernetes object name",
    ] {
        assert!(out.all().contains(message), "{}", out.all());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_cluster_is_reached_with_its_ca_and_a_client_certificate() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let pki = crate::support::tls::Pki::new();
    let fake = FakeKube::start_tls(&pki).await;
    setup(&fake);
    let ws = example("kubernetes-secret.yaml");
    // The probe's script speaks plain urllib; this test is about rotagate's connection.
    let config = ws.read("rotagate.yaml");
    let start = config.find("    verify:\n").unwrap();
    let end = config.find("    drain:").unwrap();
    ws.write("rotagate.yaml", &format!("{}{}", &config[..start], &config[end..]));
    let kubeconfig = |ca: Option<&str>, client: bool| {
        let mut cluster = format!("    cluster:\n      server: \"{}\"\n", fake.url());
        if let Some(ca) = ca {
            cluster.push_str(&format!("      certificate-authority-data: {}\n", b64(ca)));
        }
        let mut user = format!("      token: {ADMIN_TOKEN}\n");
        if client {
            user.push_str(&format!(
                "      client-certificate-data: {}\n      client-key-data: {}\n",
                b64(&pki.client_cert_pem),
                b64(&pki.client_key_pem)
            ));
        }
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: ci\nclusters:\n  - name: prod\n{cluster}contexts:\n  - name: ci\n    context: {{ cluster: prod, user: rotagate }}\nusers:\n  - name: rotagate\n    user:\n{user}"
        )
    };

    ws.write("kubeconfig", &kubeconfig(Some(&pki.ca_pem), true));
    let out = run(&ws, &fake, &["run"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.secret(NS, NAME).unwrap().data["KID"], kid_in_state(&ws));

    // Without the cluster's CA the server is not trusted; without the client
    // certificate the server refuses the handshake. Nothing is written either way.
    let writes = fake.writes().len();
    // (The first attempt starts a rotation, which stops at its preflight; the second
    // run retries it.)
    let rotate: &[&str] = &["rotate", "payments-api-signing", "--reason", "tls"];
    for (ca, client, args) in
        [(None, true, rotate), (Some(pki.ca_pem.as_str()), false, &["run"][..])]
    {
        ws.write("kubeconfig", &kubeconfig(ca, client));
        let out = run(&ws, &fake, args).await;
        assert_ne!(out.code, 0, "{}", out.all());
        assert!(
            out.all().contains("ask whether rotagate may get secrets in payments"),
            "{}",
            out.all()
        );
        assert!(!out.all().contains("PRIVATE KEY"), "{}", out.all());
    }
    assert_eq!(fake.writes().len(), writes);
}
