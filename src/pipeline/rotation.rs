//! The record of one rotation in flight, as the state stores it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::journal::Journal;
use crate::material::Material;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Due,
    Generated,
    Published,
    Propagated,
    Promoted,
    Verified,
    Drained,
    Retired,
    Completed,
    RolledBack,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Due => "due",
            Stage::Generated => "generated",
            Stage::Published => "published",
            Stage::Propagated => "propagated",
            Stage::Promoted => "promoted",
            Stage::Verified => "verified",
            Stage::Drained => "drained",
            Stage::Retired => "retired",
            Stage::Completed => "completed",
            Stage::RolledBack => "rolled-back",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// First issuance.
    Bootstrap,
    /// The schedule said so.
    Schedule,
    /// `rotagate rotate` (workflow_dispatch).
    Dispatch,
    /// `rotagate rotate --emergency`: the old material is compromised.
    Emergency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackStage {
    Requested,
    Restored,
    VerifiedOld,
    Drained,
    Unpublished,
}

impl RollbackStage {
    pub fn name(self) -> &'static str {
        match self {
            RollbackStage::Requested => "requested",
            RollbackStage::Restored => "old values restored",
            RollbackStage::VerifiedOld => "old material verified",
            RollbackStage::Drained => "drained",
            RollbackStage::Unpublished => "new public half removed",
        }
    }
}

/// An instant, serialised as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct At(#[serde(with = "time::serde::rfc3339")] pub OffsetDateTime);

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rotation {
    pub id: String,
    pub trigger: Trigger,
    pub reason: String,
    pub stage: Stage,
    /// When each stage was reached.
    #[serde(default)]
    pub times: BTreeMap<Stage, At>,
    /// SHA-256 of the credential's resolved config when the rotation started.
    pub config_hash: String,
    /// That config itself: retire and rollback act on it, so an edit mid-rotation cannot
    /// orphan a key.
    pub snapshot: serde_json::Value,
    /// The pending material.
    pub new: Option<Material>,
    /// Material an emergency superseded mid-rotation (public halves), removed at retire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abandoned: Vec<Material>,
    #[serde(default)]
    pub journal: Journal,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gates: BTreeMap<String, GateRecord>,
    /// When a probe first saw the origin serve the new public half.
    pub origin_seen_at: Option<At>,
    pub rollback: Option<RollbackState>,
    /// The last failure, until the rotation moves on.
    pub error: Option<Failure>,
    /// A partly failed promote being put back; resumed first by the next run.
    pub compensating: Option<Failure>,
}

impl Rotation {
    pub fn emergency(&self) -> bool {
        self.trigger == Trigger::Emergency
    }

    pub fn reached(&self, stage: Stage) -> Option<OffsetDateTime> {
        self.times.get(&stage).map(|a| a.0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackState {
    pub reason: String,
    pub stage: RollbackStage,
    #[serde(default)]
    pub times: BTreeMap<RollbackStage, At>,
    /// Whether consumers may hold the new values (promote started), so they must be
    /// put back, verified and drained.
    pub undo_promote: bool,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateRecord {
    /// `waiting`, `open` or `rejected`.
    pub status: String,
    pub detail: String,
    pub link: Option<String>,
    pub since: At,
    /// The gate's own data (a pull-request number).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub step: String,
    pub message: String,
    pub at: At,
}

impl Failure {
    /// A failure as the state records it: the message with every known secret removed.
    pub fn new(step: &str, message: &str, at: time::OffsetDateTime) -> Failure {
        Failure { step: step.to_string(), message: crate::secret::redact(message), at: At(at) }
    }
}
