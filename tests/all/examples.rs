//! Every config in examples/ loads, and runs its lifecycle here.

use std::path::Path;

use crate::support::Ws;

const EXAMPLE_RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn examples_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
}

/// A workspace holding `name` (with this workspace's recipient) and the example scripts.
pub fn example(name: &str) -> Ws {
    let ws = Ws::new();
    let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
    ws.write(
        "rotagate.yaml",
        &text.replace(EXAMPLE_RECIPIENT, &ws.recipient),
    );
    for entry in std::fs::read_dir(examples_dir().join("scripts")).unwrap() {
        let entry = entry.unwrap();
        let rel = format!("scripts/{}", entry.file_name().to_string_lossy());
        ws.script(&rel, &std::fs::read_to_string(entry.path()).unwrap());
    }
    ws
}

#[test]
fn every_example_loads_and_is_exercised_below() {
    let exercised = ["01-local-jwks.yaml"];
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let loaded = rotagate::config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
            assert!(
                exercised.contains(&name.as_str()),
                "{name} has no lifecycle test"
            );
        }
    }
}

#[test]
fn local_jwks_rotates_and_rolls_back() {
    let ws = example("01-local-jwks.yaml");
    let out = ws.run(&["run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let first = ws.env_value(".env", "SIGNING_KID").unwrap();
    let pem = ws.read("secrets/signing.pem");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let out = ws.run(&["rotate", "api-signing", "--reason", "scheduled"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let second = ws.env_value(".env", "SIGNING_KID").unwrap();
    assert_ne!(first, second);
    assert_eq!(ws.kids_served("public/jwks.json"), vec![second.clone()]);
    assert_ne!(ws.read("secrets/signing.pem"), pem);

    // A rotation whose check fails (the env file is pinned back) rolls back by itself.
    ws.script(
        "scripts/check-kid.sh",
        &format!("#!/bin/sh\n[ \"$(cat)\" = \"{second}\" ]\n"),
    );
    let out = ws.run(&["rotate", "api-signing", "--reason", "bad"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert_eq!(ws.env_value(".env", "SIGNING_KID").unwrap(), second);
    assert_eq!(ws.kids_served("public/jwks.json"), vec![second]);
}
