//! Replay refusal: the stored state must be the one rotagate last saved or newer (the
//! anchor), or on the branch store the direct successor of its parent commit's state.

use super::envelope::{self, Chain, StateIdentity};
use super::{Anchor, StateError, StateStore};

/// The anchor check: the stored state is the anchored one or newer.
pub(super) fn check_anchor(head: &Chain, anchor: &Anchor, store: &str) -> Result<(), StateError> {
    let older = head.generation < anchor.generation;
    let other = head.generation == anchor.generation && head.hash != anchor.hash;
    if older || other {
        return Err(StateError::Replayed(format!(
            "{store} holds generation {} but rotagate last saved generation {} ({}): the state was reset or replaced. Put the newest state back with `rotagate state restore --from-file STATE.age` (the state artifact of the last run, or `state.age` from the commit that saved generation {}); see README, \"The state\"",
            head.generation, anchor.generation, anchor.hash, anchor.generation
        )));
    }
    Ok(())
}

/// `state restore`: writes `bytes` (a sealed state, such as a run's artifact) over what
/// the store holds, only when it opens with `identity` and is exactly the state the
/// store's anchor names, so only the newest state can be put back. Returns its
/// generation.
pub async fn restore(
    store: &dyn StateStore,
    identity: &StateIdentity,
    bytes: &[u8],
) -> Result<u64, StateError> {
    let opened = envelope::open(bytes, identity)?;
    let Some(anchor) = store.anchor().await? else {
        return Err(StateError::Identity(format!(
            "{} keeps no replay anchor, so there is no newest state to check the file against; nothing was changed",
            store.describe()
        )));
    };
    if opened.chain.generation != anchor.generation || opened.chain.hash != anchor.hash {
        return Err(StateError::Replayed(format!(
            "the file holds generation {} ({}), but the newest saved state is generation {} ({}): restore that one",
            opened.chain.generation, opened.chain.hash, anchor.generation, anchor.hash
        )));
    }
    let current = store.load().await?.map(|s| s.version);
    store.save(bytes, current.as_ref()).await?;
    Ok(opened.chain.generation)
}

/// The branch store's replay check: the head must be the parent's direct successor.
pub(super) fn check_follows(head: &Chain, parent: &Chain) -> Result<(), StateError> {
    if head.generation != parent.generation + 1
        || head.previous.as_deref() != Some(parent.hash.as_str())
    {
        return Err(StateError::Replayed(format!(
            "the stored state (generation {}) does not follow its parent commit's state (generation {}): an old state was put back",
            head.generation, parent.generation
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_is_detected_by_generation_and_hash() {
        let parent =
            Chain { generation: 4, hash: "sha256:aa".into(), previous: None, writer: "w".into() };
        let good = Chain {
            generation: 5,
            hash: "sha256:bb".into(),
            previous: Some("sha256:aa".into()),
            writer: "w".into(),
        };
        assert!(check_follows(&good, &parent).is_ok());
        let replayed = Chain {
            generation: 3,
            hash: "sha256:cc".into(),
            previous: Some("sha256:dd".into()),
            writer: "w".into(),
        };
        assert!(matches!(check_follows(&replayed, &parent), Err(StateError::Replayed(_))));
    }
}
