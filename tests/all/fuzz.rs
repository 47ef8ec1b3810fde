//! Bad input: arbitrary YAML and bytes into the config loader and the state decoder
//! never panic and always come back as a clear error.

use std::path::Path;

use proptest::prelude::*;
use rotagate::config::{ConfigError, parse};
use rotagate::secret::Secret;
use rotagate::state::{StateError, StateIdentity, open, parse_recipients, seal};

use crate::support::LOCAL;

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn config_err(text: &str) {
    match parse(text, Path::new("rotagate.yaml")) {
        Ok(_) => {}
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            assert!(!diagnostics.is_empty());
            for d in diagnostics {
                assert!(d.line >= 1 && d.column >= 1, "{d}");
                assert!(!d.message.is_empty());
            }
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

/// YAML-ish text: the tokens configs are made of, in any order.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("version: 1\n".to_string()),
        Just("state:\n  store: file:s.age\n".to_string()),
        Just("credentials:\n".to_string()),
        Just("  - id: a\n".to_string()),
        Just("    key: { type: rsa }\n".to_string()),
        Just("    promote: [ { file: { path: x, set: { K: \"{{ new.kid }}\" } } } ]\n".to_string()),
        Just("{{".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!tag ".to_string()),
        Just("\t".to_string()),
        Just("\n".to_string()),
        "[a-z_]{1,8}".prop_map(|s| s),
        "[\\[\\]{}:,\"'#|>-]{1,3}".prop_map(|s| s),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_config_loader_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        config_err(&text);
    }

    #[test]
    fn the_config_loader_never_panics_on_yamlish_text(text in yamlish()) {
        config_err(&text);
    }

    #[test]
    fn the_config_loader_never_panics_on_a_mutated_config(
        at in 0usize..2000, len in 0usize..20, insert in "\\PC{0,12}"
    ) {
        let good = LOCAL.replace("RECIPIENT", RECIPIENT);
        let mut chars: Vec<char> = good.chars().collect();
        let at = at % chars.len();
        let end = (at + len).min(chars.len());
        chars.splice(at..end, insert.chars());
        config_err(&chars.into_iter().collect::<String>());
    }

    #[test]
    fn the_state_decoder_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let id = StateIdentity::generate();
        prop_assert!(open(&bytes, &id).is_err());
        let mut armored = b"-----BEGIN AGE ENCRYPTED FILE-----\n".to_vec();
        armored.extend(&bytes);
        prop_assert!(open(&armored, &id).is_err());
    }
}

#[test]
fn deeply_nested_yaml_is_an_error_not_a_crash() {
    let deep =
        parse(&format!("version: {}{}", "[".repeat(500), "]".repeat(500)), Path::new("r.yaml"))
            .unwrap_err();
    assert!(
        deep.to_string().contains("r.yaml:1:110: collections nest deeper than 100 levels"),
        "{deep}"
    );
    for depth in [120, 5_000, 200_000] {
        config_err(&format!("version: {}{}", "[".repeat(depth), "]".repeat(depth)));
        config_err(&format!("credentials: {}", "- ".repeat(depth)));
        config_err(&format!("a: {}", "{b: ".repeat(depth)));
    }
}

#[test]
fn every_single_byte_change_to_a_sealed_state_is_refused() {
    let id =
        StateIdentity::parse(&Secret::new(StateIdentity::generate().to_secret().expose())).unwrap();
    let recipients = parse_recipients(&[id.recipient()]).unwrap();
    let (good, _) =
        seal(&Default::default(), None, &id, &recipients, time::OffsetDateTime::now_utc()).unwrap();
    assert!(open(&good, &id).is_ok());
    let mut refused = 0;
    for i in (0..good.len()).step_by(3) {
        let mut bad = good.clone();
        bad[i] ^= 0x41;
        match open(&bad, &id) {
            Err(StateError::Malformed(_) | StateError::Decrypt(_) | StateError::Forged(_)) => {
                refused += 1
            }
            // A flip in armor whitespace or line structure can decode to the same bytes.
            Ok(_) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(refused > good.len() / 4, "{refused} of {} flips refused", good.len() / 3);
}
