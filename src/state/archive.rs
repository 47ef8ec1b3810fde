//! The audit log's older events, moved out of the live state into sealed, append-only
//! segments so a save writes what changed rather than every event ever recorded.
//!
//! A segment is an age file of its own (encrypted to `state.recipients`, so `age -d`
//! still reads it) named by its content. The state lists every segment with its
//! SHA-256, inside the MACed body, so segments stay in the MAC chain: one that was
//! changed, swapped or removed is refused when read.

use std::collections::BTreeSet;

use super::envelope::{self, StateIdentity, hex};
use super::{AuditEvent, StateDoc, StateError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Events a credential keeps in the live state after its older ones are archived.
pub const AUDIT_TAIL: usize = 50;
/// A credential's live events are archived once there are this many.
const ARCHIVE_AT: usize = 2 * AUDIT_TAIL;

/// A sealed segment, as the state lists it: kept small, since the list grows by one
/// entry every few rotations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    /// SHA-256 of the sealed bytes.
    pub sha256: String,
    pub events: usize,
}

impl Segment {
    /// `audit-<sha256 prefix>`: where the store keeps it.
    pub fn name(&self) -> String {
        format!("audit-{}", &self.sha256[..16])
    }
}

/// One archived event with the credential it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedEvent {
    pub credential: String,
    #[serde(flatten)]
    pub event: AuditEvent,
}

#[derive(Serialize, Deserialize)]
struct SegmentBody {
    events: Vec<ArchivedEvent>,
}

/// Takes the older events of the credentials in `finished` whose live log has reached
/// [`ARCHIVE_AT`], leaving each its last [`AUDIT_TAIL`]. Only entries whose lease this
/// run is giving up are trimmed: a copy still being worked on (by this run or another)
/// would bring the events back with its next save.
pub fn take_old_events(doc: &mut StateDoc, finished: &BTreeSet<String>) -> Vec<ArchivedEvent> {
    let mut taken = Vec::new();
    for id in finished {
        let Some(entry) = doc.credentials.get_mut(id) else {
            continue;
        };
        if entry.audit.len() < ARCHIVE_AT {
            continue;
        }
        let keep_from = entry.audit.len() - AUDIT_TAIL;
        taken.extend(
            entry
                .audit
                .drain(..keep_from)
                .map(|event| ArchivedEvent { credential: id.clone(), event }),
        );
    }
    taken
}

/// Seals `events` for `recipients`: the bytes to store and the entry to list.
pub fn seal(
    events: Vec<ArchivedEvent>,
    recipients: &[age::x25519::Recipient],
) -> Result<(Vec<u8>, Segment), StateError> {
    let count = events.len();
    let json = serde_json::to_vec(&SegmentBody { events })
        .map_err(|e| StateError::Malformed(format!("serialising an audit segment: {e}")))?;
    let bytes = envelope::encrypt(&json, recipients)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok((bytes, Segment { sha256, events: count }))
}

/// Opens a stored segment, refusing bytes that are not the ones the state lists.
pub fn open(
    bytes: &[u8],
    segment: &Segment,
    identity: &StateIdentity,
) -> Result<Vec<ArchivedEvent>, StateError> {
    if hex(&Sha256::digest(bytes)) != segment.sha256 {
        return Err(StateError::Forged(format!(
            "audit segment {} is not the one the state lists (changed or replaced)",
            segment.name()
        )));
    }
    let plaintext = envelope::decrypt(bytes, identity)?;
    let body: SegmentBody = serde_json::from_slice(&plaintext).map_err(|e| {
        StateError::Malformed(format!("audit segment {} does not parse ({e})", segment.name()))
    })?;
    Ok(body.events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::CredentialState;
    use time::OffsetDateTime;

    fn doc_with(events: usize) -> StateDoc {
        let mut entry = CredentialState::default();
        let at = OffsetDateTime::UNIX_EPOCH;
        for i in 0..events {
            entry.audit(at + time::Duration::seconds(i as i64), None, "e", format!("{i}"));
        }
        let mut doc = StateDoc::default();
        doc.credentials.insert("a".into(), entry.clone());
        doc.credentials.insert("b".into(), entry);
        doc
    }

    #[test]
    fn only_finished_logs_past_the_threshold_are_trimmed_to_their_tail() {
        let finished: BTreeSet<String> = ["a".to_string()].into();
        let mut doc = doc_with(ARCHIVE_AT - 1);
        assert!(take_old_events(&mut doc, &finished).is_empty());
        let mut doc = doc_with(ARCHIVE_AT + 7);
        let taken = take_old_events(&mut doc, &finished);
        assert_eq!(taken.len(), ARCHIVE_AT + 7 - AUDIT_TAIL);
        assert_eq!(doc.credentials["a"].audit.len(), AUDIT_TAIL);
        assert_eq!(doc.credentials["a"].audit[0].detail, taken.len().to_string());
        assert_eq!(doc.credentials["b"].audit.len(), ARCHIVE_AT + 7);
    }

    #[test]
    fn a_segment_opens_only_as_listed() {
        let identity = StateIdentity::generate();
        let recipients = envelope::parse_recipients(&[identity.recipient()]).unwrap();
        let mut doc = doc_with(ARCHIVE_AT);
        let taken = take_old_events(&mut doc, &["a".to_string()].into());
        let (bytes, segment) = seal(taken, &recipients).unwrap();
        let events = open(&bytes, &segment, &identity).unwrap();
        assert_eq!(events.len(), ARCHIVE_AT - AUDIT_TAIL);
        let (other, _) = seal(events, &recipients).unwrap();
        assert!(matches!(open(&other, &segment, &identity), Err(StateError::Forged(_))));
    }
}
