//! Leases: which run may write a credential's entry, and when another run's lease may be
//! taken over (expired, or held by a process on this host that is gone).

use time::OffsetDateTime;

use super::{Lease, StateError};

/// Who this run is, for leases.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub run_id: String,
    pub holder: String,
    pub host: String,
    pub pid: u32,
}

impl RunIdentity {
    pub fn current() -> RunIdentity {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let pid = std::process::id();
        let holder = match (std::env::var("GITHUB_RUN_ID"), std::env::var("GITHUB_RUN_ATTEMPT")) {
            (Ok(run), Ok(attempt)) => format!("actions run {run} attempt {attempt} on {host}"),
            _ => format!("{host}:{pid}"),
        };
        RunIdentity { run_id: uuid::Uuid::new_v4().to_string(), holder, host, pid }
    }
}

pub(super) fn check_lease(
    id: &str,
    lease: Option<&Lease>,
    run: &RunIdentity,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    let Some(lease) = lease else { return Ok(()) };
    if lease.run_id == run.run_id || lease.expires_at <= now || is_stale(lease, run) {
        return Ok(());
    }
    Err(StateError::LeaseHeld {
        credential: id.to_string(),
        run: lease.run_id.clone(),
        holder: lease.holder.clone(),
        until: lease
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
}

/// A lease from a process on this host that no longer exists (a crashed local run).
fn is_stale(lease: &Lease, run: &RunIdentity) -> bool {
    if lease.host != run.host {
        return false;
    }
    if lease.pid == run.pid {
        // This process took over the pid: the old holder is gone.
        return true;
    }
    cfg!(target_os = "linux") && !std::path::Path::new(&format!("/proc/{}", lease.pid)).exists()
}

#[cfg(test)]
mod tests {
    use crate::state::StateError;
    use crate::state::vault::tests::Fixture;
    use time::OffsetDateTime;

    #[tokio::test]
    async fn a_held_lease_refuses_another_live_run() {
        let state = Fixture::new();
        let now = OffsetDateTime::now_utc();
        // Our own pid is certainly alive; another host cannot be checked.
        let mut a = state.holding("one", now).await;
        let mut b = state.vault("h", 2).await;
        assert!(matches!(b.acquire(&["one".into()], now).await, Err(StateError::LeaseHeld { .. })));
        // Once expired, it can be taken.
        let later = now + time::Duration::minutes(11);
        b.acquire(&["one".into()], later).await.unwrap();
        // And the first run finds out it lost it instead of overwriting.
        a.doc.credentials.get_mut("one").unwrap().rotations = 1;
        assert!(matches!(a.save(later).await, Err(StateError::LeaseLost(_))));
    }

    #[tokio::test]
    async fn a_dead_local_holder_is_taken_over() {
        let state = Fixture::new();
        let now = OffsetDateTime::now_utc();
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let mut a = state.vault(&host, u32::MAX - 1).await;
        a.acquire(&["one".into()], now).await.unwrap();
        let mut b = state.vault(&host, std::process::id()).await;
        b.acquire(&["one".into()], now).await.unwrap();
    }
}
