//! One open state shared by credentials advancing side by side, saved by group commit.
//!
//! Each credential works on its own copy of its entry and hands it in when the journal
//! needs it durable. Whoever finds the state free writes everything handed in so far in
//! one save, so a batch of `started` records (or of `done` records) from steps running
//! at the same time costs one save, and every one of them returns only once that save is
//! done: a step's side effect still begins after its record is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::{CredentialState, StateError, Vault};
use crate::clock::Clock;

/// How often a run waiting for another run's lease re-reads the state.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

pub struct SharedVault<'v> {
    vault: tokio::sync::Mutex<&'v mut Vault>,
    queue: Mutex<Queue>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Queue {
    /// The batch changes handed in now join.
    open: u64,
    /// The last batch written.
    written: u64,
    changes: BTreeMap<String, Change>,
    /// A failed save ends the run: every later hand-in gets its error.
    failed: Option<StateError>,
}

enum Change {
    /// The credential's entry as its run has it now.
    Put(Box<CredentialState>),
    /// Only the lease changes (taken: the save writes it).
    Lease,
    Release,
}

impl<'v> SharedVault<'v> {
    pub fn new(vault: &'v mut Vault, clock: Arc<dyn Clock>) -> Self {
        SharedVault {
            vault: tokio::sync::Mutex::new(vault),
            queue: Mutex::new(Queue { open: 1, ..Queue::default() }),
            clock,
        }
    }

    /// The stored entry of `id` (empty when the state has none).
    pub async fn entry(&self, id: &str) -> Result<CredentialState, StateError> {
        let mut vault = self.vault.lock().await;
        vault.ensure_loaded(&[id.to_string()]).await?;
        Ok(vault.doc.credentials.get(id).cloned().unwrap_or_default())
    }

    /// Stores `entry` as `id`'s, returning once a save holding it is done.
    pub async fn put(&self, id: &str, entry: CredentialState) -> Result<(), StateError> {
        self.submit(id, Change::Put(Box::new(entry))).await
    }

    /// Takes the lease on `id`, waiting (re-reading the state) until `deadline` while
    /// another run holds it; then [`StateError::LeaseHeld`].
    pub async fn lease(&self, id: &str, deadline: OffsetDateTime) -> Result<(), StateError> {
        loop {
            let held = {
                let mut vault = self.vault.lock().await;
                vault.ensure_loaded(&[id.to_string()]).await?;
                match vault.hold(id, self.clock.now()) {
                    Err(e @ StateError::LeaseHeld { .. }) if self.clock.now() < deadline => Some(e),
                    other => {
                        other?;
                        None
                    }
                }
            };
            if held.is_none() {
                return self.submit(id, Change::Lease).await;
            }
            self.clock.sleep(LEASE_POLL).await;
            self.vault.lock().await.refresh().await?;
        }
    }

    /// Clears the lease on `id`.
    pub async fn release(&self, id: &str) -> Result<(), StateError> {
        self.submit(id, Change::Release).await
    }

    async fn submit(&self, id: &str, change: Change) -> Result<(), StateError> {
        let batch = {
            let mut queue = self.queue.lock().expect("queue lock");
            queue.changes.insert(id.to_string(), change);
            queue.open
        };
        // Credentials running beside this one hand in what their steps have ready.
        tokio::task::yield_now().await;
        let mut vault = self.vault.lock().await;
        let changes = {
            let mut queue = self.queue.lock().expect("queue lock");
            if let Some(e) = &queue.failed {
                return Err(e.clone());
            }
            if queue.written >= batch {
                return Ok(());
            }
            queue.open += 1;
            std::mem::take(&mut queue.changes)
        };
        let mut releasing = BTreeSet::new();
        for (id, change) in changes {
            match change {
                Change::Put(entry) => {
                    vault.doc.credentials.insert(id, *entry);
                }
                Change::Lease => {}
                Change::Release => {
                    releasing.insert(id);
                }
            }
        }
        let saved = vault.save_releasing(self.clock.now(), &releasing).await;
        let mut queue = self.queue.lock().expect("queue lock");
        match saved {
            Ok(()) => {
                queue.written = batch;
                Ok(())
            }
            Err(e) => {
                queue.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::state::vault::tests::Fixture;

    #[tokio::test]
    async fn credentials_saving_at_the_same_time_share_one_save() {
        let state = Fixture::new();
        let mut v = state.vault("h", 1).await;
        let shared = SharedVault::new(&mut v, Arc::new(SystemClock));
        let far = OffsetDateTime::now_utc() + time::Duration::MINUTE;
        futures::future::join_all((0..10u64).map(|i| {
            let shared = &shared;
            async move {
                let id = format!("c{i}");
                shared.lease(&id, far).await.unwrap();
                let mut entry = shared.entry(&id).await.unwrap();
                entry.rotations = i;
                shared.put(&id, entry).await.unwrap();
                shared.release(&id).await.unwrap();
            }
        }))
        .await;
        drop(shared);
        // Ten leases in one save, ten entries in the next, ten releases in the last.
        assert_eq!(v.generation(), 3);
        let reread = state.vault("h", 2).await;
        for i in 0..10u64 {
            let entry = &reread.doc.credentials[&format!("c{i}")];
            assert_eq!(entry.rotations, i);
            assert!(entry.lease.is_none());
        }
    }

    #[tokio::test]
    async fn a_held_lease_is_reported_once_its_wait_is_over() {
        let state = Fixture::new();
        let now = OffsetDateTime::now_utc();
        let _holder = state.holding("one", now).await;
        let mut v = state.vault("h", 2).await;
        let shared = SharedVault::new(&mut v, Arc::new(SystemClock));
        assert!(matches!(shared.lease("one", now).await, Err(StateError::LeaseHeld { .. })));
        // Another credential is still free to take.
        shared.lease("two", now).await.unwrap();
    }
}
