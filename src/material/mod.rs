//! What generators make (or adopt): keys and secrets, with their public faces.

mod kid;
mod minted;
pub mod rsa;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use kid::{KidContext, check_kid_template, is_kid_text, next_kid};
pub use minted::mint;

use crate::config::template::Field;
use crate::config::{Alphabet, KeySpec};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaterialKind {
    Rsa,
    Secret,
    Age,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Made by rotagate.
    Generated,
    /// Recorded by `rotagate adopt` from what was live.
    Adopted,
    /// Created by the provider and returned to rotagate.
    Minted,
}

/// One key or secret. The private half lives only here, only inside the encrypted
/// state, and only until the material is retired.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Material {
    pub kind: MaterialKind,
    pub kid: String,
    /// RFC 7638 thumbprint for RSA keys; a kid-salted SHA-256 for secrets.
    pub fingerprint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub source: Source,
    pub role: Option<String>,
    pub public_pem: Option<String>,
    /// The public JWK as served (kid, alg RS256, use sig).
    pub jwk: Option<serde_json::Value>,
    /// The private PEM (RSA) or the secret value; `None` once retired.
    pub secret: Option<Secret>,
    /// A hard expiry carried over from the config when the material was adopted or
    /// bootstrapped.
    pub expires: Option<time::Date>,
    /// An age identity's public recipient (age1...).
    pub recipient: Option<String>,
    /// A replaced age identity is kept (private half included) until then.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub retain_until: Option<OffsetDateTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("{0}")]
    Generate(String),
    #[error("{0}")]
    Parse(String),
    /// The provider may or may not have acted (no answer came back).
    #[error("{0}")]
    Uncertain(String),
    #[error("{what} is not available: {why}")]
    Unavailable { what: String, why: String },
}

impl Material {
    /// The value a template field stands for.
    pub fn field(&self, field: Field) -> Result<Secret, MaterialError> {
        let unavailable = |why: &str| MaterialError::Unavailable {
            what: field.name().to_string(),
            why: why.to_string(),
        };
        let private = || {
            self.secret.as_ref().ok_or_else(|| {
                unavailable("the private half was dropped when this material was retired")
            })
        };
        match field {
            Field::Kid => Ok(Secret::public(self.kid.as_str())),
            Field::Fingerprint => Ok(Secret::public(self.fingerprint.as_str())),
            Field::Role => self
                .role
                .as_deref()
                .map(Secret::public)
                .ok_or_else(|| unavailable("only alternating credentials have roles")),
            Field::PublicPem => self
                .public_pem
                .as_deref()
                .map(Secret::public)
                .ok_or_else(|| unavailable("only RSA keys have a public PEM")),
            Field::Jwk => self
                .jwk
                .as_ref()
                .map(|j| Secret::public(j.to_string()))
                .ok_or_else(|| unavailable("only RSA keys have a JWK")),
            Field::PrivatePem if self.kind == MaterialKind::Rsa => private().cloned(),
            Field::PrivateJwk if self.kind == MaterialKind::Rsa => {
                rsa::private_jwk(private()?, &self.kid)
            }
            Field::Value if self.kind != MaterialKind::Rsa => private().cloned(),
            Field::Recipient => self
                .recipient
                .as_deref()
                .map(Secret::public)
                .ok_or_else(|| unavailable("only age identities have a recipient")),
            Field::PrivatePem | Field::PrivateJwk | Field::Value => {
                Err(unavailable("this key type does not have it"))
            }
        }
    }

    pub fn has_private(&self) -> bool {
        self.secret.is_some()
    }

    /// Drops the private half (zeroized); the kid and fingerprint remain.
    pub fn drop_private(&mut self) {
        self.secret = None;
    }

    /// Public facts, safe for logs, audit and pull requests.
    pub fn summary(&self) -> String {
        match &self.role {
            Some(role) => {
                format!("kid {} (role {role}, fingerprint {})", self.kid, self.fingerprint)
            }
            None => format!("kid {} (fingerprint {})", self.kid, self.fingerprint),
        }
    }
}

/// Makes new material for `spec`. RSA keygen is CPU-bound: call from a blocking task.
pub fn generate(
    spec: &KeySpec,
    kid: String,
    role: Option<String>,
    now: OffsetDateTime,
) -> Result<Material, MaterialError> {
    let stamp = || Stamp { kid, role, at: now, source: Source::Generated };
    match spec {
        KeySpec::Rsa { bits, .. } => {
            let parts = rsa::generate(*bits as usize)?;
            Ok(rsa_material(parts, stamp()))
        }
        KeySpec::Secret { length, alphabet, prefix, .. } => {
            let value = random_string(*length, &alphabet_chars(alphabet), prefix);
            Ok(secret_material(value, stamp()))
        }
        KeySpec::PostgresPassword { length, .. } => {
            let value = random_string(*length, &alphabet_chars(&Alphabet::Alphanumeric), "");
            Ok(secret_material(value, stamp()))
        }
        KeySpec::Age { .. } => {
            let identity = age::x25519::Identity::generate();
            Ok(age_material(identity, stamp()))
        }
        KeySpec::Minted { .. } => Err(MaterialError::Generate(
            "a minted key is created by its provider (material::mint), not generated".into(),
        )),
    }
}

/// Records live material (read by `rotagate adopt`) as rotagate's current material.
pub fn adopt(
    spec: &KeySpec,
    input: &Secret,
    kid: Option<String>,
    now: OffsetDateTime,
) -> Result<Material, MaterialError> {
    match spec {
        KeySpec::Rsa { .. } => {
            let (parts, jwk_kid) = rsa::parse_private(input.expose())?;
            let kid = kid.or(jwk_kid).unwrap_or_else(|| parts.thumbprint.clone());
            Ok(rsa_material(parts, Stamp::adopted(kid, now)))
        }
        KeySpec::Age { .. } => {
            let text = input.expose().trim();
            let identity = text
                .lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
                .and_then(|l| l.parse::<age::x25519::Identity>().ok())
                .ok_or_else(|| {
                    MaterialError::Parse(
                        "not an age identity (a line AGE-SECRET-KEY-1..., as age-keygen writes)"
                            .into(),
                    )
                })?;
            let kid = kid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            Ok(age_material(identity, Stamp::adopted(kid, now)))
        }
        KeySpec::Secret { .. } | KeySpec::Minted { .. } | KeySpec::PostgresPassword { .. } => {
            let value = input.expose().trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                return Err(MaterialError::Parse("the secret is empty".into()));
            }
            let kid = kid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            Ok(secret_material(Secret::new(value), Stamp::adopted(kid, now)))
        }
    }
}

/// What every new piece of material records of its making.
pub(crate) struct Stamp {
    pub kid: String,
    pub role: Option<String>,
    pub at: OffsetDateTime,
    pub source: Source,
}

impl Stamp {
    fn adopted(kid: String, at: OffsetDateTime) -> Stamp {
        Stamp { kid, role: None, at, source: Source::Adopted }
    }
}

fn age_material(identity: age::x25519::Identity, stamp: Stamp) -> Material {
    use age::secrecy::ExposeSecret;
    let recipient = identity.to_public().to_string();
    let mut h = Sha256::new();
    h.update(b"rotagate-age-recipient\0");
    h.update(recipient.as_bytes());
    let fingerprint = URL_SAFE_NO_PAD.encode(h.finalize());
    let secret = Secret::new(identity.to_string().expose_secret());
    Material { recipient: Some(recipient), ..issued(MaterialKind::Age, fingerprint, secret, stamp) }
}

fn rsa_material(parts: rsa::RsaParts, stamp: Stamp) -> Material {
    Material {
        jwk: Some(rsa::public_jwk(&parts.public_components, &stamp.kid)),
        public_pem: Some(parts.public_pem),
        ..issued(MaterialKind::Rsa, parts.thumbprint, parts.private_pem, stamp)
    }
}

pub(crate) fn secret_material(value: Secret, stamp: Stamp) -> Material {
    let fingerprint = secret_fingerprint(&stamp.kid, &value);
    issued(MaterialKind::Secret, fingerprint, value, stamp)
}

/// New material holding its private half, with nothing of a kind's own.
fn issued(kind: MaterialKind, fingerprint: String, secret: Secret, stamp: Stamp) -> Material {
    Material {
        kind,
        kid: stamp.kid,
        fingerprint,
        created_at: stamp.at,
        source: stamp.source,
        role: stamp.role,
        public_pem: None,
        jwk: None,
        secret: Some(secret),
        expires: None,
        recipient: None,
        retain_until: None,
    }
}

/// Salted with the kid so equal secrets under different kids do not share a fingerprint.
fn secret_fingerprint(kid: &str, value: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(b"rotagate-secret-fingerprint\0");
    h.update(kid.as_bytes());
    h.update(b"\0");
    h.update(value.expose().as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

pub fn alphabet_chars(alphabet: &Alphabet) -> Vec<char> {
    const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
    const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const DIGITS: &str = "0123456789";
    match alphabet {
        Alphabet::Alphanumeric => format!("{UPPER}{LOWER}{DIGITS}").chars().collect(),
        Alphabet::Hex => "0123456789abcdef".chars().collect(),
        Alphabet::Base64url => format!("{UPPER}{LOWER}{DIGITS}-_").chars().collect(),
        Alphabet::Chars(chars) => chars.chars().collect(),
    }
}

/// Uniform over `alphabet` (rand's range sampling rejects, so no modulo bias), from the
/// OS-seeded CSPRNG.
fn random_string(length: usize, alphabet: &[char], prefix: &str) -> Secret {
    let mut rng = rand::rng();
    let mut out = zeroize::Zeroizing::new(String::with_capacity(prefix.len() + length));
    out.push_str(prefix);
    for _ in 0..length {
        out.push(alphabet[rng.random_range(0..alphabet.len())]);
    }
    Secret::new(out.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KidSpec;

    #[test]
    fn secrets_honour_length_alphabet_and_prefix() {
        let spec = KeySpec::Secret {
            length: 40,
            alphabet: Alphabet::Hex,
            prefix: "whsec_".into(),
            kid: KidSpec::Uuid,
        };
        let m = generate(&spec, "k".into(), None, OffsetDateTime::now_utc()).unwrap();
        let v = m.field(Field::Value).unwrap();
        let rest = v.expose().strip_prefix("whsec_").unwrap();
        assert_eq!(rest.len(), 40);
        assert!(rest.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let again = generate(&spec, "k".into(), None, OffsetDateTime::now_utc()).unwrap();
        assert_ne!(again.field(Field::Value).unwrap(), v);
        assert_ne!(again.fingerprint, m.fingerprint);
    }

    #[test]
    fn every_alphabet_character_shows_up() {
        let chars = alphabet_chars(&Alphabet::Base64url);
        let s = random_string(4000, &chars, "");
        for c in &chars {
            assert!(s.expose().contains(*c), "{c} never drawn");
        }
    }

    #[test]
    fn retired_material_has_no_private_half() {
        let spec = KeySpec::Secret {
            length: 32,
            alphabet: Alphabet::Alphanumeric,
            prefix: String::new(),
            kid: KidSpec::Uuid,
        };
        let mut m = generate(&spec, "k".into(), None, OffsetDateTime::now_utc()).unwrap();
        m.drop_private();
        assert!(m.field(Field::Value).is_err());
        assert!(m.field(Field::Kid).is_ok());
        assert!(!serde_json::to_string(&m).unwrap().contains("\"secret\":"));
    }
}
