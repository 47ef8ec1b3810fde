//! The sealed state: age for secrecy, an HMAC chain for authorship.
//!
//! age alone proves nothing about who wrote a file: anyone can encrypt to the public
//! recipients. So the plaintext carries a MAC keyed from the writer's identity (HKDF over
//! its secret) over the exact body bytes, and the body carries a generation counter and
//! the hash of the body it replaced.
//!
//! Plaintext layout (pretty JSON so `age -d` is readable at break-glass):
//! `{ "body": { "format", "generation", "previous", "written_at", "writer", "doc" }, "mac" }`

use std::io::{Read, Write};
use std::iter;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{STATE_FORMAT, StateDoc, StateError};
use crate::secret::Secret;

/// The identity that decrypts the state and keys its MAC.
pub struct StateIdentity {
    identity: age::x25519::Identity,
    mac_key: Zeroizing<[u8; 32]>,
    writer_id: String,
}

impl StateIdentity {
    /// Reads `AGE-SECRET-KEY-1...` from identity-file text (comments allowed).
    pub fn parse(text: &Secret) -> Result<StateIdentity, StateError> {
        let line = text
            .expose()
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .ok_or_else(|| {
                StateError::Identity(
                    "no AGE-SECRET-KEY-1... line found; give the state identity made by `rotagate init` or age-keygen".into(),
                )
            })?;
        let identity = age::x25519::Identity::from_str(line).map_err(|e| {
            StateError::Identity(format!("the AGE-SECRET-KEY line does not parse: {e}"))
        })?;
        Ok(Self::from_identity(identity))
    }

    pub fn generate() -> StateIdentity {
        Self::from_identity(age::x25519::Identity::generate())
    }

    fn from_identity(identity: age::x25519::Identity) -> StateIdentity {
        let secret = identity.to_string();
        crate::ci::mask(secret.expose_secret());
        let hk = hkdf::Hkdf::<Sha256>::new(
            Some(b"rotagate/state-mac/v1"),
            secret.expose_secret().as_bytes(),
        );
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(b"hmac-sha256", key.as_mut()).expect("32 bytes is a valid HKDF-SHA256 length");
        let writer_id =
            hex(&Sha256::digest([b"rotagate/writer-id/v1".as_slice(), key.as_ref()].concat())[..8]);
        StateIdentity { identity, mac_key: key, writer_id }
    }

    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// The identity file text, to hand to the operator once (by `init`).
    pub fn to_secret(&self) -> Secret {
        Secret::new(self.identity.to_string().expose_secret())
    }

    /// A public name for the MAC key, recorded in the state so a mismatch can be explained.
    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.mac_key.as_ref())
            .expect("HMAC takes any key length");
        mac.update(body);
        mac
    }
}

/// Chain facts of one sealed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub generation: u64,
    /// `sha256:<hex>` of this state's body.
    pub hash: String,
    /// The hash of the body this one replaced.
    pub previous: Option<String>,
    pub writer: String,
}

#[derive(Serialize)]
struct BodyOut<'a, D: Serialize> {
    format: u32,
    generation: u64,
    previous: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    written_at: OffsetDateTime,
    writer: &'a str,
    doc: &'a D,
}

#[derive(Deserialize)]
struct BodyHeader {
    format: u32,
    generation: u64,
    previous: Option<String>,
    writer: String,
}

#[derive(Deserialize)]
struct BodyDoc {
    doc: StateDoc,
}

#[derive(Deserialize)]
struct Sealed<'a> {
    #[serde(borrow)]
    body: &'a RawValue,
    mac: String,
}

pub struct Opened {
    pub doc: StateDoc,
    pub chain: Chain,
}

/// Decrypts, checks the format and the MAC, and parses.
pub fn open(armored: &[u8], identity: &StateIdentity) -> Result<Opened, StateError> {
    let plaintext = decrypt(armored, identity)?;
    let sealed: Sealed = serde_json::from_slice(&plaintext).map_err(|e| {
        StateError::Malformed(format!("the decrypted state is not a rotagate state ({e})"))
    })?;
    let body = sealed.body.get().as_bytes();
    let header: BodyHeader = serde_json::from_slice(body).map_err(|e| {
        StateError::Malformed(format!("the state body has no readable header ({e})"))
    })?;
    if header.format > STATE_FORMAT {
        return Err(StateError::NewerFormat { found: header.format, supported: STATE_FORMAT });
    }
    let tag = STANDARD
        .decode(&sealed.mac)
        .map_err(|_| StateError::Forged("its MAC is not base64".into()))?;
    if identity.mac(body).verify_slice(&tag).is_err() {
        return Err(if header.writer != identity.writer_id {
            StateError::Forged(format!(
                "it claims writer {} but this identity is writer {}: it was written with another identity, or forged",
                header.writer, identity.writer_id
            ))
        } else {
            StateError::Forged(
                "its MAC does not match its content: it was edited outside rotagate".into(),
            )
        });
    }
    let parsed: BodyDoc = serde_json::from_slice(body)
        .map_err(|e| StateError::Malformed(format!("the state document does not parse ({e})")))?;
    Ok(Opened {
        doc: parsed.doc,
        chain: Chain {
            generation: header.generation,
            hash: body_hash(body),
            previous: header.previous,
            writer: header.writer,
        },
    })
}

/// Serialises, MACs and encrypts `doc` as the successor of `previous`.
pub fn seal(
    doc: &StateDoc,
    previous: Option<&Chain>,
    identity: &StateIdentity,
    recipients: &[age::x25519::Recipient],
    now: OffsetDateTime,
) -> Result<(Vec<u8>, Chain), StateError> {
    seal_view(doc, previous, identity, recipients, now)
}

/// [`seal`] for a view of a document that serialises as a [`StateDoc`] does (the head,
/// whose settled entries are listed by shard).
pub(super) fn seal_view<D: Serialize>(
    doc: &D,
    previous: Option<&Chain>,
    identity: &StateIdentity,
    recipients: &[age::x25519::Recipient],
    now: OffsetDateTime,
) -> Result<(Vec<u8>, Chain), StateError> {
    let generation = previous.map_or(1, |c| c.generation + 1);
    let body = BodyOut {
        format: STATE_FORMAT,
        generation,
        previous: previous.map(|c| c.hash.as_str()),
        written_at: now,
        writer: &identity.writer_id,
        doc,
    };
    let body_json = Zeroizing::new(
        serde_json::to_string(&body)
            .map_err(|e| StateError::Malformed(format!("serialising the state: {e}")))?,
    );
    let mac = STANDARD.encode(identity.mac(body_json.as_bytes()).finalize().into_bytes());
    // Assembled by hand so the MACed body bytes are exactly what is stored.
    let plaintext =
        Zeroizing::new(format!("{{\n\"body\": {},\n\"mac\": \"{mac}\"\n}}\n", body_json.as_str()));
    let armored = encrypt(plaintext.as_bytes(), recipients)?;
    Ok((
        armored,
        Chain {
            generation,
            hash: body_hash(body_json.as_bytes()),
            previous: previous.map(|c| c.hash.clone()),
            writer: identity.writer_id.clone(),
        },
    ))
}

pub(super) fn decrypt(
    armored: &[u8],
    identity: &StateIdentity,
) -> Result<Zeroizing<Vec<u8>>, StateError> {
    decrypt_trying(armored, None, identity)
}

/// [`decrypt`], trying `first` before the state identity (a shard key, which spares
/// an X25519 agreement per file).
pub(super) fn decrypt_trying(
    armored: &[u8],
    first: Option<&dyn age::Identity>,
    identity: &StateIdentity,
) -> Result<Zeroizing<Vec<u8>>, StateError> {
    let reader = age::armor::ArmoredReader::new(armored);
    let decryptor = age::Decryptor::new_buffered(reader).map_err(damaged)?;
    let mut stream = decryptor
        .decrypt(first.into_iter().chain(iter::once(&identity.identity as &dyn age::Identity)))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => StateError::Decrypt(format!(
                "this identity (recipient {}) is not one the state was encrypted to; set ROTAGATE_AGE_IDENTITY or --identity-file to the state identity",
                identity.recipient()
            )),
            other => damaged(other),
        })?;
    let mut out = Zeroizing::new(Vec::new());
    stream.read_to_end(&mut out).map_err(|_| {
        StateError::Malformed(
            "the state file is damaged: its encrypted body does not verify (truncated or changed)"
                .into(),
        )
    })?;
    Ok(out)
}

/// What age found wrong, said as what happened to the file (age's own messages suggest
/// upgrading age, which is never the fix for a damaged state).
fn damaged(e: age::DecryptError) -> StateError {
    let what = match e {
        age::DecryptError::UnknownFormat | age::DecryptError::InvalidHeader => {
            "its header is not a valid age header (changed, truncated, or not a rotagate state)"
        }
        age::DecryptError::InvalidMac => "its header's MAC does not verify (the file was changed)",
        age::DecryptError::Io(_) => "its armor does not decode (the file was changed or truncated)",
        _ => "it does not decrypt (the file was changed or truncated)",
    };
    StateError::Malformed(format!("the state file is damaged: {what}"))
}

pub(super) fn encrypt(
    plaintext: &[u8],
    recipients: &[age::x25519::Recipient],
) -> Result<Vec<u8>, StateError> {
    encrypt_as(plaintext, recipients, None, age::armor::Format::AsciiArmor)
}

/// [`encrypt`] in `format`, also to `also` when given (a shard key): shards are binary
/// age files, a third smaller and quicker to read in bulk (`age -d` reads both).
pub(super) fn encrypt_as(
    plaintext: &[u8],
    recipients: &[age::x25519::Recipient],
    also: Option<&dyn age::Recipient>,
    format: age::armor::Format,
) -> Result<Vec<u8>, StateError> {
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r as &dyn age::Recipient).chain(also),
    )
    .map_err(|e| StateError::Malformed(format!("cannot encrypt the state: {e}")))?;
    let io = |e: std::io::Error| StateError::Malformed(format!("cannot encrypt the state: {e}"));
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, format).map_err(io)?;
    let mut writer = encryptor.wrap_output(armor).map_err(io)?;
    writer.write_all(plaintext).map_err(io)?;
    writer.finish().and_then(|armor| armor.finish()).map_err(io)?;
    Ok(out)
}

fn body_hash(body: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(body)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_recipients(recipients: &[String]) -> Result<Vec<age::x25519::Recipient>, StateError> {
    recipients
        .iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r)
                .map_err(|e| StateError::Identity(format!("recipient `{r}` does not parse: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateDoc {
        StateDoc::default()
    }

    #[test]
    fn seal_then_open_round_trips_and_chains() {
        let id = StateIdentity::generate();
        let recipients = parse_recipients(&[id.recipient()]).unwrap();
        let now = OffsetDateTime::now_utc();
        let (bytes, first) = seal(&sample(), None, &id, &recipients, now).unwrap();
        assert!(String::from_utf8_lossy(&bytes).starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        let opened = open(&bytes, &id).unwrap();
        assert_eq!(opened.chain, first);
        assert_eq!(first.generation, 1);
        let (bytes2, second) = seal(&sample(), Some(&first), &id, &recipients, now).unwrap();
        assert_eq!(second.generation, 2);
        assert_eq!(second.previous.as_deref(), Some(first.hash.as_str()));
        assert_eq!(open(&bytes2, &id).unwrap().chain, second);
    }

    /// A first state, sealed now by `writer`.
    fn first_seal(writer: &StateIdentity, recipients: &[age::x25519::Recipient]) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        seal(&sample(), None, writer, recipients, now).unwrap().0
    }

    #[test]
    fn another_writer_is_refused() {
        let writer = StateIdentity::generate();
        let other = StateIdentity::generate();
        // Encrypted to both, written by `writer`: `other` can decrypt but not verify.
        let recipients = parse_recipients(&[writer.recipient(), other.recipient()]).unwrap();
        let bytes = first_seal(&writer, &recipients);
        assert!(
            matches!(open(&bytes, &other), Err(StateError::Forged(m)) if m.contains("another identity"))
        );
    }

    #[test]
    fn wrong_identity_cannot_decrypt() {
        let writer = StateIdentity::generate();
        let stranger = StateIdentity::generate();
        let recipients = parse_recipients(&[writer.recipient()]).unwrap();
        let bytes = first_seal(&writer, &recipients);
        assert!(matches!(open(&bytes, &stranger), Err(StateError::Decrypt(_))));
    }

    #[test]
    fn identity_parse_accepts_identity_files() {
        let id = StateIdentity::generate();
        let file = format!(
            "# created: now\n# public key: {}\n{}\n",
            id.recipient(),
            id.to_secret().expose()
        );
        let parsed = StateIdentity::parse(&Secret::new(file)).unwrap();
        assert_eq!(parsed.recipient(), id.recipient());
        assert_eq!(parsed.writer_id(), id.writer_id());
        assert!(StateIdentity::parse(&Secret::new("nothing here")).is_err());
    }
}
