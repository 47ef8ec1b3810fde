//! Keys checked by tools that are not rotagate: openssl parses the PEMs, jsonwebtoken
//! (aws-lc-rs) and PyJWT verify tokens against the JWKs.

use std::process::Command;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::Jwk};
use rotagate::config::template::Field;
use rotagate::config::{KeySpec, KidSpec};
use rotagate::material::{self, Material};
use serde_json::json;

fn rsa(bits: u32) -> Material {
    let spec = KeySpec::Rsa { bits, kid: KidSpec::Uuid };
    material::generate(&spec, format!("kid-{bits}"), None, time::OffsetDateTime::now_utc()).unwrap()
}

fn openssl(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn openssl_parses_the_pems_and_they_match() {
    for bits in [2048, 3072, 4096] {
        let m = rsa(bits);
        let private = m.field(Field::PrivatePem).unwrap();
        assert!(private.expose().starts_with("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8");
        let public = m.field(Field::PublicPem).unwrap();
        assert!(public.expose().starts_with("-----BEGIN PUBLIC KEY-----\n"), "SPKI");
        openssl(&["rsa", "-check", "-noout"], private.expose());
        let text = openssl(&["pkey", "-noout", "-text"], private.expose());
        assert!(text.contains(&format!("Private-Key: ({bits} bit, 2 primes)")), "{text}");
        let derived = openssl(&["pkey", "-pubout"], private.expose());
        assert_eq!(derived, public.expose(), "the public PEM is the private key's");
        let pub_text = openssl(&["pkey", "-pubin", "-noout", "-text"], public.expose());
        assert!(pub_text.contains(&format!("Public-Key: ({bits} bit)")));
    }
}

#[test]
fn a_jwt_signed_with_the_key_verifies_with_the_jwk() {
    for bits in [2048, 3072, 4096] {
        let m = rsa(bits);
        let jwk_value = m.jwk.clone().unwrap();
        assert_eq!(jwk_value["alg"], "RS256");
        assert_eq!(jwk_value["use"], "sig");
        assert_eq!(jwk_value["kid"], format!("kid-{bits}"));
        let private = m.field(Field::PrivatePem).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(m.kid.clone());
        let claims = json!({ "sub": "rotagate", "exp": 4_000_000_000u64 });
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(private.expose().as_bytes()).unwrap(),
        )
        .unwrap();
        let jwk: Jwk = serde_json::from_value(jwk_value.clone()).unwrap();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &Validation::new(Algorithm::RS256),
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "rotagate");
        // A JWK of another key must not verify it.
        let other: Jwk = serde_json::from_value(rsa(2048).jwk.unwrap()).unwrap();
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(
                &token,
                &DecodingKey::from_jwk(&other).unwrap(),
                &Validation::new(Algorithm::RS256)
            )
            .is_err()
        );

        // PyJWT, independently: verifies with the public JWK, and signs with the
        // private JWK a token the public PEM verifies; it also recomputes the RFC 7638
        // thumbprint.
        let script = r#"
import json, sys, jwt, hashlib, base64
from jwt.algorithms import RSAAlgorithm
d = json.load(sys.stdin)
pub = RSAAlgorithm.from_jwk(json.dumps(d["jwk"]))
claims = jwt.decode(d["token"], pub, algorithms=["RS256"])
assert claims["sub"] == "rotagate", claims
priv = RSAAlgorithm.from_jwk(d["private_jwk"])
print(jwt.encode({"sub": "python", "exp": 4000000000}, priv, algorithm="RS256", headers={"kid": d["jwk"]["kid"]}))
k = d["jwk"]
canon = json.dumps({"e": k["e"], "kty": "RSA", "n": k["n"]}, separators=(",", ":"), sort_keys=True)
print(base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode())
"#;
        let input = json!({
            "jwk": jwk_value,
            "token": token,
            "private_jwk": m.field(Field::PrivateJwk).unwrap().expose(),
        });
        let out = python(script, &input.to_string());
        let mut lines = out.lines();
        let py_token = lines.next().unwrap();
        let thumbprint = lines.next().unwrap();
        let key = DecodingKey::from_rsa_pem(m.field(Field::PublicPem).unwrap().expose().as_bytes())
            .unwrap();
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            py_token,
            &key,
            &Validation::new(Algorithm::RS256),
        )
        .unwrap();
        assert_eq!(claims.claims["sub"], "python");
        assert_eq!(thumbprint, m.fingerprint, "RFC 7638 thumbprint");
    }
}

fn python(script: &str, stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn adopted_keys_keep_their_fingerprint_and_kid() {
    let m = rsa(2048);
    let pem = m.field(Field::PrivatePem).unwrap();
    let spec = KeySpec::Rsa { bits: 2048, kid: KidSpec::Uuid };
    let now = time::OffsetDateTime::now_utc();
    let adopted = material::adopt(&spec, &pem, Some("live-kid".into()), now).unwrap();
    assert_eq!(adopted.fingerprint, m.fingerprint);
    assert_eq!(adopted.kid, "live-kid");
    // A PKCS#1 PEM, as `openssl genrsa -traditional` writes, is accepted too.
    let pkcs1 = openssl(&["rsa", "-traditional"], pem.expose());
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let again = material::adopt(&spec, &rotagate::secret::Secret::new(pkcs1), None, now).unwrap();
    assert_eq!(again.fingerprint, m.fingerprint);
    assert_eq!(again.kid, m.fingerprint, "without a kid, the thumbprint names it");
}
