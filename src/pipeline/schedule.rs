//! When a credential is due: `every` after its material was issued, or `warn` before a
//! hard `expires`.

use time::{OffsetDateTime, Time};

use crate::config::Credential;
use crate::material::Material;
use crate::state::CredentialState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// When the next rotation should start.
    pub due_at: Option<OffsetDateTime>,
    /// When warnings start.
    pub warn_at: Option<OffsetDateTime>,
    /// The current material's hard expiry.
    pub expires_at: Option<OffsetDateTime>,
}

impl Schedule {
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        self.due_at.is_some_and(|d| now >= d)
    }

    pub fn in_warning(&self, now: OffsetDateTime) -> bool {
        self.warn_at.is_some_and(|w| now >= w)
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }
}

/// The schedule of `current` (or of the live, not yet adopted material when there is no
/// state: then only the config's `expires` is known).
pub fn schedule(credential: &Credential, current: Option<&Material>) -> Schedule {
    let spec = credential.schedule.as_ref();
    let warn = spec.and_then(|s| s.warn).map(|w| w.signed()).unwrap_or(time::Duration::ZERO);
    // The material's own expiry (adopted with `expires`, or the provider's), else the
    // lifetime consumers enforce, counted from issue.
    let lifetime = spec.and_then(|s| s.lifetime).map(|l| l.signed());
    let expires_at = match current {
        Some(m) => m
            .expires
            .map(|d| d.with_time(Time::MIDNIGHT).assume_utc())
            .or_else(|| lifetime.map(|l| m.created_at + l)),
        None => credential.expires().map(|d| d.with_time(Time::MIDNIGHT).assume_utc()),
    };
    let every_due = match (current, spec.and_then(|s| s.every)) {
        (Some(m), Some(every)) => Some(m.created_at + every.signed()),
        _ => None,
    };
    let expiry_due = expires_at.map(|e| e - warn);
    let due_at = match (every_due, expiry_due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let warn_at = match (every_due.map(|d| d - warn), expiry_due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Schedule { due_at, warn_at, expires_at }
}

/// What a run would do with a credential that has no rotation in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// No material in the state.
    NoKey {
        bootstrap: bool,
    },
    Due {
        since: OffsetDateTime,
    },
    Idle {
        next_due: Option<OffsetDateTime>,
    },
}

pub fn next(
    credential: &Credential,
    state: Option<&CredentialState>,
    now: OffsetDateTime,
    bootstrap_flag: bool,
) -> Next {
    let current = state.and_then(|s| s.current.as_ref());
    let Some(current) = current else {
        return Next::NoKey { bootstrap: credential.bootstrap || bootstrap_flag };
    };
    let s = schedule(credential, Some(current));
    match s.due_at {
        Some(due) if now >= due => Next::Due { since: due },
        other => Next::Idle { next_due: other },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dur, KeySpec, KidSpec, Schedule as Spec};
    use crate::material::{MaterialKind, Source};
    use time::macros::{date, datetime};

    fn cred(every: Option<u64>, warn: Option<u64>, expires: Option<&str>) -> Credential {
        let yaml = "id: c\nkey: { type: rsa }\n";
        let mut c: Credential = serde_yaml::from_str(yaml).unwrap();
        c.key = KeySpec::Rsa { bits: 2048, kid: KidSpec::Uuid };
        c.schedule = Some(Spec {
            every: every.map(|d| Dur::from_secs(d * 86400)),
            warn: warn.map(|d| Dur::from_secs(d * 86400)),
            expires: expires.map(str::to_string),
            lifetime: None,
        });
        c
    }

    fn material(created: OffsetDateTime, expires: Option<time::Date>) -> Material {
        Material {
            kind: MaterialKind::Rsa,
            kid: "k".into(),
            fingerprint: "f".into(),
            created_at: created,
            source: Source::Generated,
            role: None,
            public_pem: None,
            jwk: None,
            secret: None,
            expires,
            recipient: None,
            retain_until: None,
        }
    }

    #[test]
    fn every_and_warn() {
        let c = cred(Some(90), Some(14), None);
        let m = material(datetime!(2026-01-01 0:00 UTC), None);
        let s = schedule(&c, Some(&m));
        assert_eq!(s.due_at, Some(datetime!(2026-04-01 0:00 UTC)));
        assert_eq!(s.warn_at, Some(datetime!(2026-03-18 0:00 UTC)));
        assert!(!s.is_due(datetime!(2026-03-20 0:00 UTC)));
        assert!(s.in_warning(datetime!(2026-03-20 0:00 UTC)));
        assert!(s.is_due(datetime!(2026-04-01 0:00 UTC)));
    }

    #[test]
    fn a_hard_expiry_makes_the_key_due_a_warning_ahead() {
        let c = cred(Some(365), Some(14), Some("2027-04-16"));
        // Adopted material carries the config's expiry.
        let m = material(datetime!(2026-11-01 0:00 UTC), Some(date!(2027 - 04 - 16)));
        let s = schedule(&c, Some(&m));
        assert_eq!(s.due_at, Some(datetime!(2027-04-02 0:00 UTC)));
        assert!(s.is_expired(datetime!(2027-04-16 0:00 UTC)));
        // Material rotagate generated afterwards is bound by `every` only.
        let fresh = material(datetime!(2027-04-03 0:00 UTC), None);
        assert_eq!(schedule(&c, Some(&fresh)).expires_at, None);
    }

    #[test]
    fn without_state_only_the_config_expiry_is_known() {
        let c = cred(Some(90), Some(14), Some("2027-04-16"));
        let s = schedule(&c, None);
        assert_eq!(s.expires_at, Some(datetime!(2027-04-16 0:00 UTC)));
        assert_eq!(
            next(&c, None, datetime!(2026-11-23 0:00 UTC), false),
            Next::NoKey { bootstrap: false }
        );
    }
}
