//! RSA signing keys: PKCS#8 private PEM, SPKI public PEM, JWKs and RFC 7638 thumbprints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::der::Encode;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::MaterialError;
use crate::secret::Secret;

/// The public parts derived from a private key.
pub struct RsaParts {
    pub private_pem: Secret,
    pub public_pem: String,
    /// `{kty, n, e}` only; kid/alg/use are added by [`public_jwk`].
    pub public_components: Value,
    pub thumbprint: String,
    pub bits: usize,
}

pub fn generate(bits: usize) -> Result<RsaParts, MaterialError> {
    let key = RsaPrivateKey::new(&mut getrandom::SysRng, bits)
        .map_err(|e| MaterialError::Generate(format!("RSA-{bits} key generation failed: {e}")))?;
    parts(&key)
}

/// Accepts a PKCS#8 or PKCS#1 PEM, or a private JWK.
pub fn parse_private(input: &str) -> Result<(RsaParts, Option<String>), MaterialError> {
    let text = input.trim();
    if text.starts_with('{') {
        let jwk: Value = serde_json::from_str(text).map_err(|_| {
            MaterialError::Parse("the input looks like JSON but is not a JWK".into())
        })?;
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_string);
        let key = from_private_jwk(&jwk)?;
        return Ok((parts(&key)?, kid));
    }
    let key = RsaPrivateKey::from_pkcs8_pem(text)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(text))
        .map_err(|_| {
            MaterialError::Parse(
                "not an RSA private key: expected a PKCS#8 (BEGIN PRIVATE KEY) or PKCS#1 (BEGIN RSA PRIVATE KEY) PEM, or a private JWK".into(),
            )
        })?;
    Ok((parts(&key)?, None))
}

fn parts(key: &RsaPrivateKey) -> Result<RsaParts, MaterialError> {
    let encode = |what: &str, e: &dyn std::fmt::Display| {
        MaterialError::Generate(format!("encoding the {what} failed: {e}"))
    };
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| encode("private key", &e))?;
    let public = RsaPublicKey::from(key);
    let public_pem =
        public.to_public_key_pem(LineEnding::LF).map_err(|e| encode("public key", &e))?;
    let n = URL_SAFE_NO_PAD.encode(public.n_bytes());
    let e = URL_SAFE_NO_PAD.encode(public.e_bytes());
    Ok(RsaParts {
        private_pem: Secret::new(private_pem.as_str()),
        public_pem,
        thumbprint: thumbprint(&n, &e),
        public_components: json!({ "kty": "RSA", "n": n, "e": e }),
        bits: public.size() * 8,
    })
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, no white space.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The public JWK as verifiers see it in a JWKS.
pub fn public_jwk(components: &Value, kid: &str) -> Value {
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": components["n"],
        "e": components["e"],
    })
}

/// The private JWK (RFC 7518 §6.3.2), derived from the PEM when a template asks for it.
pub fn private_jwk(private_pem: &Secret, kid: &str) -> Result<Secret, MaterialError> {
    let key = RsaPrivateKey::from_pkcs8_pem(private_pem.expose())
        .map_err(|_| MaterialError::Parse("stored private key does not parse".into()))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|e| MaterialError::Generate(format!("encoding the private key failed: {e}")))?;
    let k = rsa::pkcs1::RsaPrivateKey::<rsa::pkcs1::UintRef>::try_from(der.as_bytes())
        .map_err(|e| MaterialError::Generate(format!("decoding PKCS#1 failed: {e}")))?;
    let b64 = |u: &rsa::pkcs1::UintRef| URL_SAFE_NO_PAD.encode(u.as_bytes());
    let jwk = Zeroizing::new(
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": b64(&k.modulus),
            "e": b64(&k.public_exponent),
            "d": b64(&k.private_exponent),
            "p": b64(&k.prime1),
            "q": b64(&k.prime2),
            "dp": b64(&k.exponent1),
            "dq": b64(&k.exponent2),
            "qi": b64(&k.coefficient),
        })
        .to_string(),
    );
    Ok(Secret::new(jwk.as_str()))
}

fn from_private_jwk(jwk: &Value) -> Result<RsaPrivateKey, MaterialError> {
    let field = |name: &str| -> Result<Zeroizing<Vec<u8>>, MaterialError> {
        let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| {
            MaterialError::Parse(format!("the JWK has no `{name}`: a private RSA JWK is needed"))
        })?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map(Zeroizing::new)
            .map_err(|_| MaterialError::Parse(format!("JWK member `{name}` is not base64url")))
    };
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return Err(MaterialError::Parse("the JWK is not an RSA key (kty must be RSA)".into()));
    }
    let (n, e, d, p, q, dp, dq, qi) = (
        field("n")?,
        field("e")?,
        field("d")?,
        field("p")?,
        field("q")?,
        field("dp")?,
        field("dq")?,
        field("qi")?,
    );
    fn uint(b: &[u8]) -> Result<rsa::pkcs1::UintRef<'_>, MaterialError> {
        rsa::pkcs1::UintRef::new(b)
            .map_err(|_| MaterialError::Parse("JWK integer is malformed".into()))
    }
    let pkcs1 = rsa::pkcs1::RsaPrivateKey {
        modulus: uint(&n)?,
        public_exponent: uint(&e)?,
        private_exponent: uint(&d)?,
        prime1: uint(&p)?,
        prime2: uint(&q)?,
        exponent1: uint(&dp)?,
        exponent2: uint(&dq)?,
        coefficient: uint(&qi)?,
        other_prime_infos: None,
    };
    let der = Zeroizing::new(
        pkcs1.to_der().map_err(|_| MaterialError::Parse("JWK does not form an RSA key".into()))?,
    );
    RsaPrivateKey::from_pkcs1_der(&der)
        .map_err(|_| MaterialError::Parse("JWK does not form a valid RSA key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(thumbprint(n, "AQAB"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn private_jwk_round_trips_to_the_same_key() {
        let parts = generate(2048).unwrap();
        let jwk = private_jwk(&parts.private_pem, "k1").unwrap();
        let (again, kid) = parse_private(jwk.expose()).unwrap();
        assert_eq!(kid.as_deref(), Some("k1"));
        assert_eq!(again.thumbprint, parts.thumbprint);
        assert_eq!(again.private_pem, parts.private_pem);
        assert_eq!(again.bits, 2048);
    }

    #[test]
    fn rejects_non_keys() {
        assert!(parse_private("hello").is_err());
        assert!(parse_private("{\"kty\":\"EC\"}").is_err());
    }
}
