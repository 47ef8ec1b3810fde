//! rotagate.yaml: strict parsing, every second-pass error at once with its location,
//! template checks at load time, and a fresh checked-in schema.

use std::path::Path;

use rotagate::config::{ConfigError, Diagnostic, parse};

use crate::support::Ws;

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn errors(yaml: &str) -> Vec<Diagnostic> {
    match parse(&yaml.replace("RECIPIENT", RECIPIENT), Path::new("rotagate.yaml")) {
        Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the config was accepted"),
    }
}

fn one(yaml: &str) -> Diagnostic {
    let mut all = errors(yaml);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

const HEAD: &str = "version: 1\nstate:\n  store: file:.rotagate/state.age\n  recipients: [RECIPIENT]\ncredentials:\n";

#[test]
fn the_local_example_of_design_md_loads_as_written() {
    let yaml = format!(
        "{HEAD}{}",
        r#"  - id: api-signing
    owner: platform
    bootstrap: true
    key: { type: rsa, bits: 2048, kid: { date: "prod-key-" } }
    publish:
      - jwks-file: { path: public/jwks.json }
    promote:
      - file: { path: .env, set: { SIGNING_KID: "{{ new.kid }}" } }
      - file: { path: secrets/signing.pem, content: "{{ new.private_pem }}" }
    verify:
      - command: { run: "./scripts/check-kid.sh", stdin: "{{ new.kid }}" }
    drain: 0s
    gate: none
"#
    );
    parse(&yaml.replace("RECIPIENT", RECIPIENT), Path::new("rotagate.yaml")).unwrap();
}

#[test]
fn an_unknown_field_inside_the_key_is_placed_on_the_field() {
    let d = one(&format!("{HEAD}  - id: a\n    key: {{ type: rsa, bitz: 2048 }}\n"));
    assert_eq!((d.line, d.column), (7, 23), "{d}");
    assert!(d.message.contains("unknown field `bitz`"), "{d}");
    assert_eq!(d.path, "credentials[0].key.bitz");
}

#[test]
fn unknown_variants_and_kinds_name_the_line() {
    let d = one(&format!(
        "{HEAD}  - id: a\n    key: {{ type: rsa }}\n    publish:\n      - jwks-fil: {{ path: x }}\n"
    ));
    assert_eq!(d.line, 9);
    assert!(d.message.contains("unknown variant `jwks-fil`"), "{d}");
    assert!(d.hint.is_some());
}

#[test]
fn the_second_pass_reports_every_error_at_once_with_locations() {
    let yaml = format!(
        "{HEAD}{}",
        r#"  - id: Bad Id
    key: { type: rsa, bits: 1024 }
    env: [DEPLOY_HOOK_URL, GITHUB_TOKEN]
    publish:
      - http: { url: "https://x.example/{{ new.kid }}" }
    promote:
      - http: { method: POST, url: "https://h.example/{{ new.private_pem }}" }
      - http: { url: "{{ env.UNDECLARED }}" }
      - http: { url: "https://h.example", headers: { Authorization: "Bearer {{ env.ROTAGATE_AGE_IDENTITY }}" } }
      - file: { path: .env, set: { KEY: "{{ new.value }}" } }
      - command: { run: ./x.sh, args: ["{{ new.private_pem }}"] }
    verify:
      - http: { url: "{{ env.DEPLOY_HOOK_URL }}", expect: { json: { status: "{{ new.kidd }}" } } }
"#
    );
    let all = errors(&yaml);
    let text: Vec<String> = all.iter().map(ToString::to_string).collect();
    let find = |needle: &str| {
        all.iter()
            .find(|d| d.to_string().contains(needle))
            .unwrap_or_else(|| panic!("no error mentions {needle:?} in:\n{}", text.join("\n")))
    };
    assert_eq!(find("not a valid credential id").line, 6);
    assert_eq!(find("1024-bit RSA").line, 7);
    assert_eq!(find("`GITHUB_TOKEN` cannot be read").line, 8);
    let publish = find("cannot be a publish step");
    assert_eq!(publish.line, 10);
    assert!(publish.hint.as_deref().unwrap().contains("promote, retire"));
    let private_url = find("{{ new.private_pem }} is a private value and cannot go in a URL");
    assert_eq!((private_url.line, private_url.column), (12, 36));
    assert_eq!(find("{{ env.UNDECLARED }} is not in this credential's env list").line, 13);
    assert_eq!(find("{{ env.ROTAGATE_AGE_IDENTITY }} is never readable").line, 14);
    assert_eq!(find("{{ new.value }} does not exist for `rsa` keys").line, 15);
    assert_eq!(find("cannot go in a command argument").line, 16);
    assert_eq!(find("unknown field `kidd`").line, 18);
    assert_eq!(find("is not a JSON pointer").line, 18);
    assert!(all.len() >= 11, "{}", text.join("\n"));
    assert!(
        all.windows(2).all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)),
        "sorted by position"
    );
}

#[test]
fn duplicates_and_weak_secrets_are_refused_and_ungated_manual_steps_warned() {
    let yaml = format!(
        "{HEAD}{}",
        r#"  - id: a
    key: { type: rsa }
    publish:
      - manual: "Upload {{ new.public_pem }} at the portal"
    gate: none
  - id: a
    key: { type: secret, length: 8 }
    manual_typo: 1
"#
    );
    let all = errors(&yaml);
    assert_eq!(all.len(), 1, "serde stops at the first structural error: {all:#?}");
    assert!(all[0].message.contains("unknown field `manual_typo`"));
    let yaml = format!(
        "{HEAD}{}",
        r#"  - id: a
    key: { type: rsa }
    publish:
      - manual: "Upload {{ new.public_pem }} at the portal"
    gate: none
  - id: a
    key: { type: secret, length: 8 }
"#
    );
    let all = errors(&yaml);
    let text = all.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(
        text.contains("rotagate.yaml:11:9: credentials[1].id: duplicate credential id `a`"),
        "{text}"
    );
    assert!(text.contains("8 characters from 62 give 48 bits"), "{text}");

    let ws = Ws::new();
    ws.config(&format!(
        "{HEAD}  - id: a\n    key: {{ type: rsa }}\n    publish:\n      - manual: \"Upload {{{{ new.public_pem }}}}\"\n    gate: none\n"
    ));
    let out = ws.run(&["plan"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("warning: rotagate.yaml:9:9: credentials[0].publish[0]: with `gate: none` this manual publish step is only listed"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_cli_prints_snippets_and_exits_2() {
    let ws = Ws::new();
    ws.config(&format!(
        "{HEAD}  - id: a\n    key: {{ type: rsa }}\n    promote:\n      - http: {{ url: \"https://h/{{{{ new.private_pem }}}}\" }}\n"
    ));
    let out = ws.run(&["plan"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("rotagate.yaml:9:22"), "{}", out.stderr);
    let carets = out.stderr.lines().find(|l| l.contains('^')).unwrap().matches('^').count();
    assert_eq!(
        carets,
        "\"https://h/{{ new.private_pem }}\"".len(),
        "the whole value is underlined: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("9 |       - http: { url:"),
        "a snippet of the line: {}",
        out.stderr
    );
    assert!(out.stderr.contains("help: private values may go into set: maps"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert!(!ws.exists(".rotagate/state.age"));
}

#[test]
fn the_checked_in_schema_is_fresh() {
    let fresh = rotagate::config::schema::schema_json();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/rotagate.schema.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != fresh && std::env::var_os("ROTAGATE_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    assert!(
        checked_in == fresh,
        "schema/rotagate.schema.json is stale: run `cargo run -- schema > schema/rotagate.schema.json` (or ROTAGATE_BLESS=1 cargo test)"
    );
}

#[test]
fn the_schema_command_prints_it() {
    let ws = Ws::new();
    let out = ws.run(&["schema"]);
    assert_eq!(out.code, 0);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(schema["title"], "rotagate.yaml");
    assert!(schema["$defs"]["ActionSpec"].is_object(), "{schema:#}");
}

#[test]
fn new_key_types_and_targets_are_checked_where_they_are_written() {
    // A mint request cannot use the value it is about to create.
    let d = one(&format!(
        "{HEAD}{}",
        r#"  - id: console-key
    key:
      type: minted
      http: { method: POST, url: "https://console.example/keys", body: "{{ new.value }}" }
      extract: /secret
    gate: none
"#
    ));
    assert_eq!((d.line, d.path.as_str()), (9, "credentials[0].key.http"));
    assert!(d.message.contains("cannot use {{ new.* }}"), "{}", d.message);

    // A postgres target without a role needs the alternating strategy; a connection
    // URL may not carry the new value; sensitive Vercel values have no development
    // target; a jwt probe needs an RSA key.
    let all = errors(&format!(
        "{HEAD}{}",
        r#"  - id: db
    key: { type: postgres-password }
    env: [PG_ADMIN_URL]
    promote:
      - postgres: { url: "postgres://app:{{ new.value }}@db/app" }
      - vercel-env: { project: apier, target: [development], set: { DB_PASSWORD: "{{ new.value }}" } }
    verify:
      - jwt: { url: "https://auth.example/.well-known/jwks.json" }
    gate: none
"#
    ));
    let messages: Vec<String> = all.iter().map(|d| format!("{}: {}", d.line, d.message)).collect();
    assert!(
        messages.iter().any(|m| m.starts_with("10:") && m.contains("name the `role`")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("10:") && m.contains("connection URL")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("11:") && m.contains("production and preview only")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("13:") && m.contains("RSA key")),
        "{messages:#?}"
    );
}
