//! `aws-secret` and `aws-parameter` through the binary and the AWS SDK against moto's
//! server mode (a real AWS API emulator): Secrets Manager's labels follow the stages
//! (AWSPENDING at publish, AWSCURRENT at promote, AWSPREVIOUS for the old one, moved
//! back on rollback), the KMS key is passed through, SSM gets one new version per
//! value, AccessDenied names the IAM action to grant, throttling and 500s are retried,
//! and a run killed anywhere converges with one version per material.

use std::process::Command;

use serde_json::Value;

use crate::examples::example;
use crate::support::aws::{Fault, Moto};
use crate::support::{Run, Ws, kill_after_line};

const SECRET: &str = "payments/signing";
const PARAMETER: &str = "/payments/webhook-secret";

fn cmd(ws: &Ws, moto: &Moto, args: &[&str]) -> Command {
    let mut c = ws.cmd(args);
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.url()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIAROTAGATETESTING".into()),
        ("AWS_SECRET_ACCESS_KEY", "rotagate-Secret-Access-Key-3f9a".into()),
        ("READER_AWS_ACCESS_KEY_ID", "AKIAREADERTESTING".into()),
        ("READER_AWS_SECRET_ACCESS_KEY", "reader-Secret-Access-Key-7b21".into()),
    ] {
        c.env(k, v);
    }
    c
}

async fn run(ws: &Ws, moto: &Moto, args: &[&str]) -> Run {
    tokio::process::Command::from(cmd(ws, moto, args)).output().await.unwrap().into()
}

/// Asks moto with boto3 (installed with it), bypassing the proxy.
fn boto(moto: &Moto, expression: &str) -> Value {
    let out = Command::new("python3")
        .args(["-c", &format!(
            "import boto3, json, sys\nsm = boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')\nssm = boto3.client('ssm', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')\nprint(json.dumps({expression}, default=str))"
        ), &moto.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// version id → labels
fn stages(moto: &Moto) -> serde_json::Map<String, Value> {
    boto(moto, &format!("sm.describe_secret(SecretId='{SECRET}')['VersionIdsToStages']"))
        .as_object()
        .unwrap()
        .clone()
}

fn holder(moto: &Moto, label: &str) -> Option<String> {
    stages(moto)
        .into_iter()
        .find(|(_, l)| l.as_array().unwrap().iter().any(|x| x == label))
        .map(|(id, _)| id)
}

/// The kid a consumer reading by label gets (moto's default version does not follow
/// label moves, so the label is named, as the example's probe does).
fn current_kid(moto: &Moto) -> String {
    let v = boto(
        moto,
        &format!(
            "sm.get_secret_value(SecretId='{SECRET}', VersionStage='AWSCURRENT')['SecretString']"
        ),
    );
    let doc: Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
    doc["KID"].as_str().unwrap().to_string()
}

fn kid_in_state(ws: &Ws) -> String {
    ws.state()["body"]["doc"]["credentials"]["payments-signing"]["current"]["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn parameter(moto: &Moto) -> (String, i64) {
    let p = boto(
        moto,
        &format!("ssm.get_parameter(Name='{PARAMETER}', WithDecryption=True)['Parameter']"),
    );
    (p["Value"].as_str().unwrap().into(), p["Version"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_follow_the_stages_and_rollback_moves_awscurrent_back() {
    let moto = Moto::start().await;
    let ws = example("aws.yaml");
    let plan = run(&ws, &moto, &["plan"]).await;
    for step in [
        "  publish/1: aws-secret payments/signing (KID, PRIVATE_KEY)\n",
        "  promote/0: aws-parameter /payments/webhook-secret (value)\n",
    ] {
        assert!(plan.stdout.contains(step), "{}", plan.all());
    }

    // First issuance: the secret is created (KMS key passed through) holding kid and key
    // as AWSCURRENT; the parameter gets version 1. A throttle and a 500 are retried.
    moto.inject("secretsmanager.CreateSecret", Fault::Throttled, 1);
    moto.inject("AmazonSSM.PutParameter", Fault::Internal, 1);
    let out = run(&ws, &moto, &["run"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(moto.pending_faults(), 0);
    let kid1 = current_kid(&moto);
    assert_eq!(kid1, kid_in_state(&ws));
    let v1 = holder(&moto, "AWSCURRENT").unwrap();
    assert_eq!(stages(&moto).len(), 1);
    let kms = boto(&moto, &format!("sm.describe_secret(SecretId='{SECRET}').get('KmsKeyId')"));
    assert_eq!(kms, "alias/payments");
    let (webhook1, version) = parameter(&moto);
    assert!(webhook1.starts_with("whsec_"));
    assert_eq!(version, 1);
    let p = boto(&moto, &format!("ssm.get_parameter(Name='{PARAMETER}')['Parameter']['Type']"));
    assert_eq!(p, "SecureString");

    // The next rotation stops in its drain: the new version went in as AWSPENDING and
    // now holds AWSCURRENT; the old one is AWSPREVIOUS. One new version, no more.
    let config = ws.read("rotagate.yaml");
    ws.write("rotagate.yaml", &config.replace("drain: 0s", "drain: 1h"));
    let out = run(&ws, &moto, &["rotate", "payments-signing", "--reason", "test"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(stages(&moto).len(), 2);
    let v2 = holder(&moto, "AWSCURRENT").unwrap();
    assert_ne!(v2, v1);
    assert_eq!(holder(&moto, "AWSPREVIOUS").as_deref(), Some(v1.as_str()));
    assert_eq!(holder(&moto, "AWSPENDING"), None);
    assert!(moto.count("secretsmanager.PutSecretValue") == 1, "{:?}", moto.calls());
    assert_ne!(current_kid(&moto), kid1);

    // The operator rolls back: AWSCURRENT moves back to the old version (no new one).
    let out = run(&ws, &moto, &["rollback", "payments-signing"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(holder(&moto, "AWSCURRENT").as_deref(), Some(v1.as_str()));
    assert_eq!(stages(&moto).len(), 2);
    assert_eq!(current_kid(&moto), kid1);
    assert_eq!(kid_in_state(&ws), kid1);

    // The webhook secret: a rotation writes version 2; a rollback of a rotation writes
    // the old value back as version 3.
    let out = run(&ws, &moto, &["rotate", "payments-webhook-secret", "--reason", "test"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let (webhook2, version) = parameter(&moto);
    assert_ne!(webhook2, webhook1);
    assert_eq!(version, 2);
    let out = run(&ws, &moto, &["rollback", "payments-webhook-secret"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(parameter(&moto), (webhook1.clone(), 3));

    // Secrets never reach the output.
    assert!(!out.all().contains(&webhook1) && !out.all().contains("rotagate-Secret-Access-Key"));
}

#[tokio::test(flavor = "multi_thread")]
async fn access_denied_names_the_iam_action_to_grant() {
    let moto = Moto::start().await;
    let ws = example("aws.yaml");
    moto.inject("AmazonSSM.PutParameter", Fault::Denied, 1);
    let out = run(&ws, &moto, &["rotate", "payments-webhook-secret", "--reason", "test"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.all().contains("ssm:PutParameter on /payments/webhook-secret: AWS denied it (AccessDeniedException): grant `ssm:PutParameter` on /payments/webhook-secret to the role rotagate runs as"),
        "{}",
        out.all()
    );
    // Throttling that outlasts the SDK's retries says so.
    moto.inject("secretsmanager.DescribeSecret", Fault::Throttled, 10);
    let out = run(&ws, &moto, &["rotate", "payments-signing", "--reason", "test"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.all().contains("secretsmanager:DescribeSecret on payments/signing: AWS kept throttling after the SDK's retries (ThrottlingException)"),
        "{}",
        out.all()
    );
    assert!(!out.all().contains("rotagate-Secret-Access-Key"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_anywhere_converges_with_one_version_per_material() {
    let moto = Moto::start().await;
    let mut line = 1;
    loop {
        let ws = example("aws.yaml");
        let name = format!("payments/kill-{line}");
        let parameter = format!("/payments/kill-{line}");
        let config = ws.read("rotagate.yaml").replace(SECRET, &name).replace(PARAMETER, &parameter);
        ws.write("rotagate.yaml", &config);
        let killed =
            tokio::task::block_in_place(|| kill_after_line(cmd(&ws, &moto, &["run"]), line));
        let out = run(&ws, &moto, &["run"]).await;
        assert_eq!(out.code, 0, "killed after line {line}: {}", out.all());
        let versions =
            boto(&moto, &format!("sm.describe_secret(SecretId='{name}')['VersionIdsToStages']"));
        assert_eq!(versions.as_object().unwrap().len(), 1, "killed after line {line}");
        let p =
            boto(&moto, &format!("ssm.get_parameter(Name='{parameter}')['Parameter']['Version']"));
        assert_eq!(p, 1, "killed after line {line}");
        if !killed {
            break;
        }
        line += 1;
    }
    assert!(line > 8, "the sweep reached both credentials' promotes ({line} lines)");
}

#[test]
fn a_bad_aws_step_is_reported_at_its_line_and_column() {
    let ws = example("aws.yaml");
    let config = ws.read("rotagate.yaml");
    ws.write(
        "rotagate.yaml",
        &config
            .replace("name: /payments/webhook-secret", "name: \"payments webhook\"")
            .replace(
                "          value: \"{{ new.value }}\"",
                "          value: \"{{ new.value }}\"\n          set: { A: b }",
            )
            .replacen(
                "secret: payments/signing",
                "secret: payments/signing\n          region: EU West",
                1,
            ),
    );
    let out = ws.run(&["plan"]);
    assert_eq!(out.code, 2, "{}", out.all());
    for message in [
        "aws-secret.region: `EU West` is not an AWS region\n  --> rotagate.yaml:29:19",
        "aws-parameter.name: `payments webhook` is not a parameter name",
        "aws-parameter: give exactly one of `set` (a JSON object of keys) or `value` (one string)",
    ] {
        assert!(out.all().contains(message), "{}", out.all());
    }
}
