//! Per-credential shards: a credential no run is working on lives in a sealed file of its
//! own, so a save writes the entries that changed and a small head, not the whole fleet.
//!
//! A shard is a binary age file (encrypted to `state.recipients`, so `age -d` reads it) named
//! by its content. The head lists every shard with its SHA-256 inside the MACed body, so
//! shards stay in the MAC chain: one that was changed, swapped or replayed is refused.
//! Shards are never rewritten; a changed entry gets a new one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

#[derive(Serialize, Deserialize)]
struct Index {
    shards: BTreeMap<String, String>,
}

/// Seals the list of shards: the bytes to store and their SHA-256.
pub fn seal_index(
    shards: &BTreeMap<String, String>,
    recipients: &[age::x25519::Recipient],
) -> Result<(Vec<u8>, String), StateError> {
    let json = serde_json::to_vec(&Index {
        shards: shards.clone(),
    })
    .map_err(|e| StateError::Malformed(format!("serialising the shard index: {e}")))?;
    let bytes = envelope::encrypt_as(&json, recipients, age::armor::Format::Binary)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

/// Opens the shard index the head names, refusing any other bytes.
pub fn open_index(
    sha256: &str,
    bytes: &[u8],
    identity: &StateIdentity,
) -> Result<BTreeMap<String, String>, StateError> {
    if hex(&Sha256::digest(bytes)) != sha256 {
        return Err(StateError::Forged(format!(
            "the shard index {} is not the one the state names (changed or replaced)",
            index_name(sha256)
        )));
    }
    let plaintext = envelope::decrypt(bytes, identity)?;
    let index: Index = serde_json::from_slice(&plaintext).map_err(|e| {
        StateError::Malformed(format!(
            "the shard index {} does not parse ({e})",
            index_name(sha256)
        ))
    })?;
    Ok(index.shards)
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
    recipients: &[age::x25519::Recipient],
) -> Result<(Vec<u8>, String), StateError> {
    let json =
        zeroize::Zeroizing::new(serde_json::to_vec(&BodyOut { credential, entry }).map_err(
            |e| StateError::Malformed(format!("serialising the entry of {credential}: {e}")),
        )?);
    let bytes = envelope::encrypt_as(&json, recipients, age::armor::Format::Binary)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

/// [`seal`] for many entries, spread over the machine's cores.
pub fn seal_many(
    entries: &[(&str, &CredentialState)],
    recipients: &[age::x25519::Recipient],
) -> Result<Vec<(Vec<u8>, String)>, StateError> {
    on_cores(entries, |(id, entry)| seal(id, entry, recipients))
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
    identity: &StateIdentity,
) -> Result<CredentialState, StateError> {
    if hex(&Sha256::digest(bytes)) != sha256 {
        return Err(StateError::Forged(format!(
            "the shard of {credential} ({}) is not the one the state lists (changed or replaced)",
            name(sha256)
        )));
    }
    let plaintext = envelope::decrypt(bytes, identity)?;
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

/// [`open`] for many shards, spread over the machine's cores: an X25519 agreement each.
pub fn open_many(
    shards: Vec<(String, String, Vec<u8>)>,
    identity: &StateIdentity,
) -> Result<Vec<(String, CredentialState)>, StateError> {
    on_cores(&shards, |(id, sha, bytes)| {
        Ok((id.clone(), open(id, sha, bytes, identity)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_opens_only_as_listed_and_for_its_credential() {
        let identity = StateIdentity::generate();
        let recipients = envelope::parse_recipients(&[identity.recipient()]).unwrap();
        let entry = CredentialState {
            rotations: 3,
            ..CredentialState::default()
        };
        let (bytes, sha) = seal("api", &entry, &recipients).unwrap();
        assert_eq!(open("api", &sha, &bytes, &identity).unwrap().rotations, 3);
        assert!(matches!(
            open("other", &sha, &bytes, &identity),
            Err(StateError::Forged(m)) if m.contains("holds api")
        ));
        let (changed, _) = seal("api", &CredentialState::default(), &recipients).unwrap();
        assert!(matches!(
            open("api", &sha, &changed, &identity),
            Err(StateError::Forged(_))
        ));
        let many = vec![("api".to_string(), sha.clone(), bytes.clone()); 40];
        assert_eq!(open_many(many, &identity).unwrap().len(), 40);
        let sealed = seal_many(&vec![("api", &entry); 40], &recipients).unwrap();
        assert!(
            sealed
                .iter()
                .all(|(b, s)| open("api", s, b, &identity).is_ok())
        );
        assert_eq!(digest(&entry), digest(&entry.clone()));
        assert_ne!(digest(&entry), digest(&CredentialState::default()));
    }
}
