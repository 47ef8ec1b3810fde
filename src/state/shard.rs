//! Per-credential shards: a credential no run is working on lives in a sealed file of its
//! own, so a save writes the entries that changed and a small head, not the whole fleet.
//!
//! A shard is a binary age file (encrypted to `state.recipients`, so `age -d` reads it) named
//! by its content. The head lists every shard with its SHA-256 inside the MACed body, so
//! shards stay in the MAC chain: one that was changed, swapped or replayed is refused.
//! Shards are never rewritten; a changed entry gets a new one.
//!
//! Each shard's file key is also wrapped to the state's shard key, a random key kept in
//! the sealed index: reading a fleet's shards then costs one X25519 agreement (the
//! index's), not one per shard. The recipients' stanzas stay, so `age -d` still reads
//! every shard, and anyone the shard key reaches could already read the index.

use std::collections::{BTreeMap, HashSet};

use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use age_core::primitives::{aead_decrypt, aead_encrypt, hkdf};
use age_core::secrecy::ExposeSecret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::envelope::{self, StateIdentity, hex};
use super::{CredentialState, StateError};

/// `cred-<sha256 prefix>`: where the store keeps the shard with this SHA-256.
pub fn name(sha256: &str) -> String {
    format!("cred-{}", &sha256[..16])
}

/// `cred-index-<sha256 prefix>`: where the store keeps the shard index with this SHA-256.
pub fn index_name(sha256: &str) -> String {
    format!("cred-index-{}", &sha256[..16])
}

/// The key every shard's file key is also wrapped to (see the module's notes). Made
/// anew when the state changes recipients, so one removed cannot read later shards.
#[derive(Clone)]
pub struct ShardKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShardKey(redacted)")
    }
}

const STANZA_TAG: &str = "rotagate-shard";
const STANZA_LABEL: &[u8] = b"rotagate-shard-key";

impl ShardKey {
    pub fn generate() -> ShardKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut *key);
        ShardKey(key)
    }

    fn wrapping_key(&self, salt: &[u8]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hkdf(salt, STANZA_LABEL, &*self.0))
    }
}

impl age::Recipient for ShardKey {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        let stanza = Stanza {
            tag: STANZA_TAG.into(),
            args: vec![STANDARD_NO_PAD.encode(salt)],
            body: aead_encrypt(&self.wrapping_key(&salt), file_key.expose_secret()),
        };
        Ok((vec![stanza], HashSet::new()))
    }
}

impl age::Identity for ShardKey {
    /// A stanza this key does not open (another state's key, or one from before a
    /// rekey) is passed over, so the state identity's stanza is tried next.
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        let [salt] = stanza.args.as_slice() else {
            return None;
        };
        if stanza.tag != STANZA_TAG {
            return None;
        }
        let salt = STANDARD_NO_PAD.decode(salt).ok()?;
        let opened = Zeroizing::new(
            aead_decrypt(&self.wrapping_key(&salt), FILE_KEY_BYTES, &stanza.body).ok()?,
        );
        Some(Ok(FileKey::init_with_mut(|k| k.copy_from_slice(&opened))))
    }
}

#[derive(Serialize)]
struct IndexOut<'a> {
    shards: &'a BTreeMap<String, String>,
    key: &'a str,
}

#[derive(Deserialize)]
struct Index {
    shards: BTreeMap<String, String>,
    key: String,
}

/// Seals the list of shards and the shard key: the bytes to store and their SHA-256.
pub fn seal_index(
    shards: &BTreeMap<String, String>,
    key: &ShardKey,
    recipients: &[age::x25519::Recipient],
) -> Result<(Vec<u8>, String), StateError> {
    let key = Zeroizing::new(STANDARD_NO_PAD.encode(*key.0));
    let json = Zeroizing::new(
        serde_json::to_vec(&IndexOut { shards, key: &key })
            .map_err(|e| StateError::Malformed(format!("serialising the shard index: {e}")))?,
    );
    let bytes = envelope::encrypt_as(&json, recipients, None, age::armor::Format::Binary)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

/// Opens the shard index the head names, refusing any other bytes.
pub fn open_index(
    sha256: &str,
    bytes: &[u8],
    identity: &StateIdentity,
) -> Result<(BTreeMap<String, String>, ShardKey), StateError> {
    if hex(&Sha256::digest(bytes)) != sha256 {
        return Err(StateError::Forged(format!(
            "the shard index {} is not the one the state names (changed or replaced)",
            index_name(sha256)
        )));
    }
    let plaintext = envelope::decrypt(bytes, identity)?;
    let malformed = |what: String| {
        StateError::Malformed(format!("the shard index {} {what}", index_name(sha256)))
    };
    let mut index: Index = serde_json::from_slice(&plaintext)
        .map_err(|e| malformed(format!("does not parse ({e})")))?;
    let decoded = Zeroizing::new(STANDARD_NO_PAD.decode(&index.key).unwrap_or_default());
    index.key.zeroize();
    let key: [u8; 32] =
        decoded.as_slice().try_into().map_err(|_| malformed("holds no valid shard key".into()))?;
    Ok((index.shards, ShardKey(Zeroizing::new(key))))
}

#[derive(Serialize)]
struct BodyOut<'a> {
    credential: &'a str,
    entry: &'a CredentialState,
}

#[derive(Deserialize)]
struct Body {
    credential: String,
    entry: CredentialState,
}

/// A digest of `entry` as this build serialises it: equal digests, equal entries.
pub fn digest(entry: &CredentialState) -> [u8; 32] {
    let json = serde_json::to_vec(entry).expect("a credential entry serialises");
    Sha256::digest(&json).into()
}

/// Seals `entry` of `credential`: the bytes to store and their SHA-256.
pub fn seal(
    credential: &str,
    entry: &CredentialState,
    key: &ShardKey,
    recipients: &[age::x25519::Recipient],
) -> Result<(Vec<u8>, String), StateError> {
    let json =
        zeroize::Zeroizing::new(serde_json::to_vec(&BodyOut { credential, entry }).map_err(
            |e| StateError::Malformed(format!("serialising the entry of {credential}: {e}")),
        )?);
    let bytes = envelope::encrypt_as(&json, recipients, Some(key), age::armor::Format::Binary)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

/// [`seal`] for many entries, spread over the machine's cores.
pub fn seal_many(
    entries: &[(&str, &CredentialState)],
    key: &ShardKey,
    recipients: &[age::x25519::Recipient],
) -> Result<Vec<(Vec<u8>, String)>, StateError> {
    on_cores(entries, |(id, entry)| seal(id, entry, key, recipients))
}

/// `f` over `items`, in order, split across the machine's cores.
fn on_cores<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, StateError> + Sync,
) -> Result<Vec<R>, StateError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(16);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Result<Vec<R>, _>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for worker in workers {
            out.extend(worker.join().expect("a shard worker panicked")?);
        }
        Ok(out)
    })
}

/// Opens the shard the head lists for `credential`, refusing any other bytes.
pub fn open(
    credential: &str,
    sha256: &str,
    bytes: &[u8],
    key: Option<&ShardKey>,
    identity: &StateIdentity,
) -> Result<CredentialState, StateError> {
    if hex(&Sha256::digest(bytes)) != sha256 {
        return Err(StateError::Forged(format!(
            "the shard of {credential} ({}) is not the one the state lists (changed or replaced)",
            name(sha256)
        )));
    }
    let plaintext =
        envelope::decrypt_trying(bytes, key.map(|k| k as &dyn age::Identity), identity)?;
    let body: Body = serde_json::from_slice(&plaintext).map_err(|e| {
        StateError::Malformed(format!(
            "the shard of {credential} ({}) does not parse ({e})",
            name(sha256)
        ))
    })?;
    if body.credential != credential {
        return Err(StateError::Forged(format!(
            "the shard listed for {credential} holds {}",
            body.credential
        )));
    }
    Ok(body.entry)
}

/// [`open`] for many shards, spread over the machine's cores.
pub fn open_many(
    shards: Vec<(String, String, Vec<u8>)>,
    key: Option<&ShardKey>,
    identity: &StateIdentity,
) -> Result<Vec<(String, CredentialState)>, StateError> {
    on_cores(&shards, |(id, sha, bytes)| Ok((id.clone(), open(id, sha, bytes, key, identity)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_opens_only_as_listed_and_for_its_credential() {
        let identity = StateIdentity::generate();
        let recipients = envelope::parse_recipients(&[identity.recipient()]).unwrap();
        let key = ShardKey::generate();
        let entry = CredentialState { rotations: 3, ..CredentialState::default() };
        let (bytes, sha) = seal("api", &entry, &key, &recipients).unwrap();
        assert_eq!(open("api", &sha, &bytes, Some(&key), &identity).unwrap().rotations, 3);
        assert!(matches!(
            open("other", &sha, &bytes, Some(&key), &identity),
            Err(StateError::Forged(m)) if m.contains("holds api")
        ));
        let (changed, _) = seal("api", &CredentialState::default(), &key, &recipients).unwrap();
        assert!(matches!(
            open("api", &sha, &changed, Some(&key), &identity),
            Err(StateError::Forged(_))
        ));
        let many = vec![("api".to_string(), sha.clone(), bytes.clone()); 40];
        assert_eq!(open_many(many, Some(&key), &identity).unwrap().len(), 40);
        let sealed = seal_many(&vec![("api", &entry); 40], &key, &recipients).unwrap();
        assert!(sealed.iter().all(|(b, s)| open("api", s, b, Some(&key), &identity).is_ok()));
        assert_eq!(digest(&entry), digest(&entry.clone()));
        assert_ne!(digest(&entry), digest(&CredentialState::default()));
    }

    #[test]
    fn the_shard_key_opens_a_shard_alone_and_the_recipients_without_it() {
        let identity = StateIdentity::generate();
        let recipients = envelope::parse_recipients(&[identity.recipient()]).unwrap();
        let (key, other_key) = (ShardKey::generate(), ShardKey::generate());
        let (bytes, sha) = seal("api", &CredentialState::default(), &key, &recipients).unwrap();
        // The key alone: an identity the shard was not encrypted to still reads it.
        let stranger = StateIdentity::generate();
        assert!(open("api", &sha, &bytes, Some(&key), &stranger).is_ok());
        // Another key (a shard from before a rekey): the recipients' stanza opens it.
        assert!(open("api", &sha, &bytes, Some(&other_key), &identity).is_ok());
        assert!(open("api", &sha, &bytes, None, &identity).is_ok());
        assert!(matches!(
            open("api", &sha, &bytes, Some(&other_key), &stranger),
            Err(StateError::Decrypt(_))
        ));
        assert_eq!(format!("{key:?}"), "ShardKey(redacted)");
    }

    #[test]
    fn the_index_carries_the_shard_key() {
        let identity = StateIdentity::generate();
        let recipients = envelope::parse_recipients(&[identity.recipient()]).unwrap();
        let key = ShardKey::generate();
        let shards = BTreeMap::from([("api".to_string(), "ab".repeat(32))]);
        let (bytes, sha) = seal_index(&shards, &key, &recipients).unwrap();
        let (listed, read_key) = open_index(&sha, &bytes, &identity).unwrap();
        assert_eq!(listed, shards);
        assert_eq!(*read_key.0, *key.0);
    }
}
