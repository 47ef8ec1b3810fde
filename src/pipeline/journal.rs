//! The journal: every step is recorded as started before it runs and done (with what it
//! produced) after, so a run killed at any point knows what to do again.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::rotation::At;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Started,
    Done,
    Failed,
    /// Put back (a compensated promote) or reset (probe attempts after a hold); the
    /// step runs again.
    Undone,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub step: String,
    pub attempt: u32,
    pub status: Status,
    /// Not safe to repeat: a run that finds it started and not done stops.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
    pub started_at: At,
    pub finished_at: Option<At>,
    /// What was there before a write, captured before it ran.
    pub before: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Journal {
    pub entries: Vec<Entry>,
}

impl Journal {
    fn live(&self, step: &str) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.step == step && e.status != Status::Undone)
    }

    pub fn latest(&self, step: &str) -> Option<&Entry> {
        self.live(step).last()
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.latest(step).is_some_and(|e| e.status == Status::Done)
    }

    /// Whether the step has run at all (started, done or failed) since it was last undone.
    pub fn touched(&self, step: &str) -> bool {
        self.latest(step).is_some()
    }

    /// Failed attempts since the step was last undone.
    pub fn failures(&self, step: &str) -> u32 {
        self.live(step).filter(|e| e.status == Status::Failed).count() as u32
    }

    /// The `before` recorded by the first attempt.
    pub fn before(&self, step: &str) -> Option<&Value> {
        self.live(step).find_map(|e| e.before.as_ref())
    }

    /// Records the start of an attempt; returns its number.
    pub fn begin(
        &mut self,
        step: &str,
        once: bool,
        before: Option<Value>,
        now: OffsetDateTime,
    ) -> u32 {
        let attempt = self.entries.iter().filter(|e| e.step == step).count() as u32 + 1;
        self.entries.push(Entry {
            step: step.to_string(),
            attempt,
            status: Status::Started,
            once,
            started_at: At(now),
            finished_at: None,
            before,
            output: None,
            error: None,
        });
        attempt
    }

    fn last_started(&mut self, step: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().rev().find(|e| e.step == step && e.status == Status::Started)
    }

    pub fn finish(&mut self, step: &str, output: Value, now: OffsetDateTime) {
        if let Some(e) = self.last_started(step) {
            e.status = Status::Done;
            e.finished_at = Some(At(now));
            e.output = Some(output);
        }
    }

    pub fn fail(&mut self, step: &str, error: &str, now: OffsetDateTime) {
        if let Some(e) = self.last_started(step) {
            e.status = Status::Failed;
            e.finished_at = Some(At(now));
            e.error = Some(crate::secret::redact(error));
        }
    }

    /// Marks every entry of steps starting with `prefix` undone, so they run again.
    pub fn undo(&mut self, prefix: &str) {
        for e in self.entries.iter_mut().filter(|e| e.step.starts_with(prefix)) {
            e.status = Status::Undone;
        }
    }

    /// A step that must not be repeated and whose outcome is unknown.
    pub fn interrupted_once(&self) -> Option<&Entry> {
        self.entries.iter().find(|e| e.once && e.status == Status::Started)
    }

    /// Outputs of finished steps starting with `prefix`, in order.
    pub fn outputs(&self, prefix: &str) -> Vec<(&str, &Value)> {
        self.entries
            .iter()
            .filter(|e| e.step.starts_with(prefix) && e.status == Status::Done)
            .filter_map(|e| e.output.as_ref().map(|o| (e.step.as_str(), o)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attempts_failures_and_undo() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut j = Journal::default();
        assert_eq!(j.begin("verify/0", false, None, now), 1);
        j.fail("verify/0", "no", now);
        assert_eq!(j.begin("verify/0", false, None, now), 2);
        assert!(!j.is_done("verify/0"));
        assert_eq!(j.failures("verify/0"), 1);
        j.finish("verify/0", json!({"ok": true}), now);
        assert!(j.is_done("verify/0"));
        j.undo("verify/");
        assert!(!j.touched("verify/0"));
        assert_eq!(j.failures("verify/0"), 0);
        assert_eq!(j.begin("verify/0", false, None, now), 3);
    }

    #[test]
    fn before_comes_from_the_first_attempt() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut j = Journal::default();
        j.begin("promote/0", false, Some(json!({"keys": {"K": "old"}})), now);
        // Killed mid-write: the next attempt must not capture the half-written value.
        j.begin("promote/0", false, None, now);
        assert_eq!(j.before("promote/0"), Some(&json!({"keys": {"K": "old"}})));
    }

    #[test]
    fn an_unfinished_once_step_is_reported() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut j = Journal::default();
        j.begin("generate", true, None, now);
        assert_eq!(j.interrupted_once().map(|e| e.step.as_str()), Some("generate"));
        j.finish("generate", json!({}), now);
        assert!(j.interrupted_once().is_none());
    }
}
