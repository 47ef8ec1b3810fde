//! Where the sealed state bytes live. Stores know bytes and versions, not documents.

use async_trait::async_trait;

use super::StateError;

/// An opaque token naming one stored version (a content hash, a blob sha), used for
/// compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

pub struct Stored {
    pub bytes: Vec<u8>,
    pub version: Version,
}

#[async_trait]
pub trait StateStore: Send + Sync {
    /// e.g. `file:.rotagate/state.age`
    fn describe(&self) -> String;

    async fn load(&self) -> Result<Option<Stored>, StateError>;

    /// Writes `bytes` only if the stored version is still `expected` (`None`: nothing
    /// stored yet); otherwise fails with [`StateError::Conflict`] and writes nothing.
    async fn save(&self, bytes: &[u8], expected: Option<&Version>) -> Result<Version, StateError>;

    /// Stores a sealed audit segment under `name` (content-addressed: a segment already
    /// there is the same one).
    async fn put_segment(&self, name: &str, bytes: &[u8]) -> Result<(), StateError>;

    /// Stores several segments, every one durable before this returns (credential
    /// shards written before the head that lists them).
    async fn put_segments(&self, segments: &[(String, Vec<u8>)]) -> Result<(), StateError> {
        for (name, bytes) in segments {
            self.put_segment(name, bytes).await?;
        }
        Ok(())
    }

    /// Whether settled credentials go to shards of their own. A store where every file
    /// written costs a commit keeps them in the head.
    fn keeps_shards(&self) -> bool {
        false
    }

    /// A sealed audit segment, `None` when the store has no segment `name`.
    async fn get_segment(&self, name: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// The state the head replaced, when the store keeps history, so the chain can be
    /// checked against it.
    async fn load_parent(&self, _head: &Version) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }

    /// The newest chain head recorded where rewriting the stored state cannot reach
    /// (for the branch store, a repository variable), when the store keeps one.
    async fn anchor(&self) -> Result<Option<Anchor>, StateError> {
        Ok(None)
    }

    /// Records the chain head after a save.
    async fn record_anchor(&self, _anchor: &Anchor) -> Result<(), StateError> {
        Ok(())
    }

    /// What the operator should change in how the store is set up (an unprotected
    /// branch), with the exact setting.
    async fn setup_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A chain head: the generation and the body hash of one saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub generation: u64,
    pub hash: String,
}

impl Anchor {
    /// `generation:hash`, as stored.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.generation, self.hash)
    }

    pub fn decode(text: &str) -> Option<Anchor> {
        let (generation, hash) = text.trim().split_once(':')?;
        Some(Anchor { generation: generation.parse().ok()?, hash: hash.to_string() })
    }
}
