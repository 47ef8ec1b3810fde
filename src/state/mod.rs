//! The state: one age-encrypted, MAC-chained document; stores; leases.

pub mod archive;
mod envelope;
mod file;
mod github_branch;
mod lease;
mod replay;
mod shard;
mod shared;
mod store;
mod vault;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use envelope::{Chain, Opened, StateIdentity, open, parse_recipients, seal};

/// Lower-case hex of a digest.
pub fn hex_digest(bytes: &[u8]) -> String {
    envelope::hex(bytes)
}
pub use file::FileStore;
pub use github_branch::GithubBranchStore;
pub use lease::RunIdentity;
pub use replay::restore;
pub use shared::SharedVault;
pub use store::{Anchor, StateStore, Stored, Version};
pub use vault::Vault;

use crate::material::Material;
use crate::pipeline::Rotation;

/// A kid's digest, as [`CredentialState::used_kids`] keeps it: 96 bits of SHA-256.
fn kid_digest(kid: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&Sha256::digest(kid.as_bytes())[..12])
}

/// The state document format this build writes and the newest it reads.
/// Format 2 moved settled credentials into shards; a format-1 build would read a
/// sharded head as a fleet without them, so it must refuse it.
pub const STATE_FORMAT: u32 = 2;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateDoc {
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialState>,
    /// Credentials whose entry lives in a shard, with the shard's SHA-256, as the shard
    /// index lists them. An entry read from its shard is in `credentials` too, and an
    /// entry the head holds whole is newer than its shard.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shards: BTreeMap<String, String>,
    /// The SHA-256 of the sealed shard index listing `shards`: the head names it, so a
    /// step's save writes the entries in flight and this one hash, not the fleet's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_index: Option<String>,
    /// The key the shards listed are also sealed to, as the shard index holds it.
    #[serde(skip)]
    pub shard_key: Option<shard::ShardKey>,
    /// Sealed segments holding the audit log's older events, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archive: Vec<archive::Segment>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CredentialState {
    /// What consumers use (the old material while a rotation is in flight).
    pub current: Option<Material>,
    /// The last retired material, public half only.
    pub previous: Option<Material>,
    /// Replaced material kept whole until its `retain_until` (age identities that old
    /// backups were encrypted to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<Material>,
    pub rotation: Option<Rotation>,
    /// Fingerprints of compromised material: never restored, never adopted again.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub revoked: BTreeSet<String>,
    /// The kids of material this credential still holds or serves (current, previous,
    /// pending, retained), with their fingerprints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kids: BTreeMap<String, String>,
    /// Digests of every other kid this credential has had: enough that none is handed
    /// out or adopted again, at a fixed size per kid.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub used_kids: BTreeSet<String>,
    /// How many rotations have been started.
    #[serde(default)]
    pub rotations: u64,
    pub last: Option<Finished>,
    pub lease: Option<Lease>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditEvent>,
}

/// How the last rotation ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished {
    pub rotation: String,
    pub outcome: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A run's claim on a credential, taken by compare-and-swap before any side effect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    pub run_id: String,
    /// Who holds it: `host:pid`, or the Actions run.
    pub holder: String,
    pub host: String,
    pub pid: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// One line of the append-only audit log. Never holds a secret.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub rotation: Option<String>,
    pub event: String,
    pub detail: String,
}

impl CredentialState {
    /// Whether `kid` has named material of this credential.
    pub fn kid_used(&self, kid: &str) -> bool {
        self.kids.contains_key(kid) || self.used_kids.contains(&kid_digest(kid))
    }

    /// Records `kid` as naming the material with `fingerprint`; the kids of material no
    /// longer held keep only their digest.
    pub fn record_kid(&mut self, kid: &str, fingerprint: &str) {
        self.kids.insert(kid.to_string(), fingerprint.to_string());
        let rotation = self.rotation.as_ref();
        let held: BTreeSet<&str> = self
            .current
            .iter()
            .chain(&self.previous)
            .chain(&self.retained)
            .chain(rotation.and_then(|r| r.new.as_ref()))
            .chain(rotation.into_iter().flat_map(|r| &r.abandoned))
            .map(|m| m.kid.as_str())
            .chain([kid])
            .collect();
        let gone: Vec<String> =
            self.kids.keys().filter(|k| !held.contains(k.as_str())).cloned().collect();
        for old in gone {
            self.kids.remove(&old);
            self.used_kids.insert(kid_digest(&old));
        }
    }

    pub fn audit(
        &mut self,
        at: OffsetDateTime,
        rotation: Option<&str>,
        event: &str,
        detail: impl Into<String>,
    ) {
        self.audit.push(AuditEvent {
            at,
            rotation: rotation.map(str::to_string),
            event: event.to_string(),
            detail: crate::secret::redact(&detail.into()),
        });
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    #[error("state identity: {0}")]
    Identity(String),
    #[error("cannot decrypt the state: {0}")]
    Decrypt(String),
    #[error(
        "the state is unreadable: {0}. Nothing was changed; restore the last good state (the workflow artifact or the store's history)"
    )]
    Malformed(String),
    #[error(
        "refusing the state: {0}. Nothing was changed; restore the last good state (the workflow artifact or the store's history)"
    )]
    Forged(String),
    #[error("refusing a replayed state: {0}. Nothing was changed")]
    Replayed(String),
    #[error(
        "the state was written by a newer rotagate (state format {found}; this build reads up to {supported}); upgrade rotagate"
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error(
        "the state changed while this run was writing it ({0}); nothing was overwritten, run again"
    )]
    Conflict(String),
    #[error(
        "credential {credential} is leased by run {run} ({holder}) until {until}; wait for it to finish, or for the lease to expire if that run crashed"
    )]
    LeaseHeld { credential: String, run: String, holder: String, until: String },
    #[error(
        "this run lost its lease on {0} (it expired and another run took it); stopping without writing"
    )]
    LeaseLost(String),
    #[error("state store {store}: {message}")]
    Store { store: String, message: String },
    #[error("{0}")]
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySpec;

    fn material(kid: &str) -> Material {
        let spec = KeySpec::Secret {
            length: 32,
            alphabet: Default::default(),
            prefix: String::new(),
            kid: Default::default(),
        };
        crate::material::generate(&spec, kid.into(), None, OffsetDateTime::UNIX_EPOCH).unwrap()
    }

    #[test]
    fn kids_of_material_no_longer_held_keep_only_their_digest() {
        let mut entry = CredentialState::default();
        for kid in ["k1", "k2", "k3", "k4"] {
            let m = material(kid);
            entry.record_kid(kid, &m.fingerprint);
            entry.previous = entry.current.replace(m);
        }
        // When k4 was recorded, k3 was current and k2 previous: k1 keeps only a digest.
        assert_eq!(
            entry.kids.keys().collect::<Vec<_>>(),
            ["k2", "k3", "k4"].iter().collect::<Vec<_>>()
        );
        assert_eq!(entry.used_kids.len(), 1);
        assert!(["k1", "k2", "k3", "k4"].iter().all(|k| entry.kid_used(k)));
        assert!(!entry.kid_used("k5"));
    }
}
