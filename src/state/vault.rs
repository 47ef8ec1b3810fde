//! The open state: decrypted, verified, leased, and saved after every step.
//!
//! Leases are per credential, so runs that work on different credentials (a matrix of
//! jobs) can share one state: a save that loses the compare-and-swap reloads, keeps the
//! other runs' entries, re-applies only the entries this run holds leases on, and tries
//! again.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use time::OffsetDateTime;

use super::envelope::{self, Chain, StateIdentity};
use super::lease::{RunIdentity, check_lease};
use super::replay::{check_anchor, check_follows};
use super::{Anchor, CredentialState, Lease, StateDoc, StateError, StateStore, Version};
use super::{archive, shard};

pub struct Vault {
    store: Box<dyn StateStore>,
    identity: StateIdentity,
    recipients: Vec<age::x25519::Recipient>,
    head: Option<(Chain, Version)>,
    pub doc: StateDoc,
    /// The credentials whose shards are read (all when `None`): an incident `rotate`
    /// reads its own.
    scope: Option<BTreeSet<String>>,
    /// For each entry as its shard holds it, the entry's digest: an entry whose digest
    /// still matches is written as its shard's hash, not again.
    settled: BTreeMap<String, [u8; 32]>,
    run: RunIdentity,
    owned: BTreeSet<String>,
    lease_ttl: time::Duration,
    /// The encrypted state as last read or written.
    sealed: Option<Vec<u8>>,
    /// Where a copy of the encrypted state is kept after every write (a CI artifact).
    copy: Option<std::path::PathBuf>,
    /// Set once a failure to record the replay anchor has been reported this run.
    anchor_warned: bool,
}

/// Delays between saves that keep losing the compare-and-swap to other runs (jobs of a
/// matrix writing one state): jittered so writers that collided do not collide again.
fn save_backoff() -> impl Iterator<Item = std::time::Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(50))
        .with_max_delay(std::time::Duration::from_secs(4))
        .with_max_times(SAVE_RETRIES)
        .with_jitter()
        .build()
}
const SAVE_RETRIES: usize = 15;

/// A verified load: the document (the shards in scope read), its chain head, the sealed
/// bytes, and the digests of the entries read from shards.
struct Loaded {
    doc: StateDoc,
    head: (Chain, Version),
    sealed: Vec<u8>,
    settled: BTreeMap<String, [u8; 32]>,
}

/// The head as stored: the entries in flight whole, every other one in the shards the
/// shard index lists.
#[serde_with::skip_serializing_none]
#[derive(Serialize)]
struct Head<'a> {
    credentials: BTreeMap<&'a str, &'a CredentialState>,
    shard_index: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    archive: &'a [archive::Segment],
}

impl Vault {
    /// Loads, decrypts and verifies the state (an empty document if there is none yet).
    pub async fn open(
        store: Box<dyn StateStore>,
        identity: StateIdentity,
        recipients: Vec<age::x25519::Recipient>,
        run: RunIdentity,
        lease_ttl: std::time::Duration,
    ) -> Result<Vault, StateError> {
        Self::open_scoped(store, identity, recipients, run, lease_ttl, None).await
    }

    /// [`Vault::open`] reading only the entries of `scope` (all when `None`); others
    /// are read when a lease or an entry of theirs is asked for.
    pub async fn open_scoped(
        store: Box<dyn StateStore>,
        identity: StateIdentity,
        recipients: Vec<age::x25519::Recipient>,
        run: RunIdentity,
        lease_ttl: std::time::Duration,
        scope: Option<BTreeSet<String>>,
    ) -> Result<Vault, StateError> {
        if !lists(&recipients, &identity) {
            return Err(StateError::Identity(format!(
                "the state identity's recipient {} is not in state.recipients: the state would be written so that its own writer cannot read it",
                identity.recipient()
            )));
        }
        let mut vault = Vault {
            store,
            identity,
            recipients,
            head: None,
            doc: StateDoc::default(),
            scope,
            settled: BTreeMap::new(),
            run,
            owned: BTreeSet::new(),
            lease_ttl: time::Duration::try_from(lease_ttl).unwrap_or(time::Duration::MINUTE * 30),
            sealed: None,
            copy: None,
            anchor_warned: false,
        };
        for warning in vault.store.setup_warnings().await {
            tracing::warn!("{warning}");
        }
        if let Some(loaded) = vault.load_verified().await? {
            vault.doc = loaded.doc;
            vault.head = Some(loaded.head);
            vault.sealed = Some(loaded.sealed);
            vault.settled = loaded.settled;
        }
        Ok(vault)
    }

    /// Keeps a copy of the encrypted state at `path`, now and after every write. It is
    /// as safe to keep as the state itself: encrypted and authenticated.
    pub fn keep_copy(&mut self, path: std::path::PathBuf) -> Result<(), StateError> {
        self.copy = Some(path);
        self.write_copy()
    }

    fn write_copy(&self) -> Result<(), StateError> {
        let (Some(path), Some(bytes)) = (&self.copy, &self.sealed) else {
            return Ok(());
        };
        let fail = |e: std::io::Error| StateError::Store {
            store: format!("copy {}", path.display()),
            message: e.to_string(),
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(fail)?;
        tmp.persist(path).map_err(|e| fail(e.error))?;
        Ok(())
    }

    pub fn store_name(&self) -> String {
        self.store.describe()
    }

    pub fn generation(&self) -> u64 {
        self.head.as_ref().map_or(0, |(c, _)| c.generation)
    }

    pub fn run(&self) -> &RunIdentity {
        &self.run
    }

    async fn load_verified(&self) -> Result<Option<Loaded>, StateError> {
        // The anchor is read before the state: it is recorded after each save, so a
        // state read after it is at least as new, even while other runs write.
        let anchor = self.store.anchor().await?;
        let Some(stored) = self.store.load().await? else {
            tracing::debug!("{} holds no state yet", self.store.describe());
            return Ok(None);
        };
        let opened = envelope::open(&stored.bytes, &self.identity)?;
        // A head that is the anchored state itself (put back by `state restore`) need
        // not follow the commit below it, which is what was put back over.
        let anchored = anchor.as_ref().is_some_and(|a| a.generation == opened.chain.generation);
        if !anchored && let Some(parent) = self.store.load_parent(&stored.version).await? {
            let parent = envelope::open(&parent, &self.identity)?;
            check_follows(&opened.chain, &parent.chain)?;
        }
        if let Some(anchor) = &anchor {
            check_anchor(&opened.chain, anchor, &self.store.describe())?;
        }
        tracing::debug!(
            "state loaded from {}: generation {}, written by {}",
            self.store.describe(),
            opened.chain.generation,
            opened.chain.writer
        );
        let mut doc = opened.doc;
        if let Some(sha) = &doc.shard_index {
            let name = shard::index_name(sha);
            let bytes = self.store.get_segment(&name).await?.ok_or_else(|| {
                StateError::Forged(format!(
                    "the shard index {name} that the state names is missing from {}",
                    self.store.describe()
                ))
            })?;
            let (shards, key) = shard::open_index(sha, &bytes, &self.identity)?;
            doc.shards = shards;
            doc.shard_key = Some(key);
        }
        let wanted: Vec<String> = doc
            .shards
            .keys()
            .filter(|id| !doc.credentials.contains_key(*id))
            .filter(|id| self.scope.as_ref().is_none_or(|s| s.contains(*id)))
            .cloned()
            .collect();
        let settled = self.read_shards(&mut doc, &wanted).await?;
        Ok(Some(Loaded {
            doc,
            head: (opened.chain, stored.version),
            sealed: stored.bytes,
            settled,
        }))
    }

    /// Reads the shards of `ids` into `doc`, returning their entries' digests.
    async fn read_shards(
        &self,
        doc: &mut StateDoc,
        ids: &[String],
    ) -> Result<BTreeMap<String, [u8; 32]>, StateError> {
        let mut sealed = Vec::with_capacity(ids.len());
        for id in ids {
            let sha = doc.shards[id].clone();
            let bytes = self.store.get_segment(&shard::name(&sha)).await?.ok_or_else(|| {
                StateError::Forged(format!(
                    "the shard of {id} ({}) that the state lists is missing from {}",
                    shard::name(&sha),
                    self.store.describe()
                ))
            })?;
            sealed.push((id.clone(), sha, bytes));
        }
        let mut settled = BTreeMap::new();
        for (id, entry) in shard::open_many(sealed, doc.shard_key.as_ref(), &self.identity)? {
            settled.insert(id.clone(), shard::digest(&entry));
            doc.credentials.insert(id, entry);
        }
        Ok(settled)
    }

    /// Reads the entries of `ids` that live in shards not read yet, and keeps them in
    /// scope for later reloads.
    pub async fn ensure_loaded(&mut self, ids: &[String]) -> Result<(), StateError> {
        if let Some(scope) = &mut self.scope {
            scope.extend(ids.iter().cloned());
        }
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| {
                !self.doc.credentials.contains_key(*id) && self.doc.shards.contains_key(*id)
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut doc = std::mem::take(&mut self.doc);
        let read = self.read_shards(&mut doc, &missing).await;
        self.doc = doc;
        self.settled.extend(read?);
        Ok(())
    }

    /// Whether the state holds an entry for `id` (read or still in its shard).
    pub fn knows(&self, id: &str) -> bool {
        self.doc.credentials.contains_key(id) || self.doc.shards.contains_key(id)
    }

    /// Takes leases on `ids` (all or nothing) and saves. Fails with
    /// [`StateError::LeaseHeld`] when another live run holds one.
    pub async fn acquire(&mut self, ids: &[String], now: OffsetDateTime) -> Result<(), StateError> {
        self.ensure_loaded(ids).await?;
        for id in ids {
            self.check_free(id, now)?;
        }
        self.owned.extend(ids.iter().cloned());
        match self.save(now).await {
            Ok(()) => {
                tracing::debug!("lease taken on {} by run {}", ids.join(", "), self.run.run_id);
                Ok(())
            }
            Err(e) => {
                for id in ids {
                    self.owned.remove(id);
                }
                Err(e)
            }
        }
    }

    /// Marks `id` as this run's without saving: the next save writes the lease. Fails
    /// with [`StateError::LeaseHeld`] when another live run holds it.
    pub fn hold(&mut self, id: &str, now: OffsetDateTime) -> Result<(), StateError> {
        self.check_free(id, now)?;
        self.owned.insert(id.to_string());
        Ok(())
    }

    /// Whether this run may take `id`: no other live run holds its lease.
    fn check_free(&mut self, id: &str, now: OffsetDateTime) -> Result<(), StateError> {
        if !self.doc.credentials.contains_key(id) && self.doc.shards.contains_key(id) {
            // An empty entry here would replace the shard's on the next save.
            return Err(StateError::Refused(format!(
                "the entry of {id} was not read from its shard before its lease was asked for; this is a rotagate bug, nothing was changed"
            )));
        }
        let entry = self.doc.credentials.entry(id.to_string()).or_default();
        check_lease(id, entry.lease.as_ref(), &self.run, now)
    }

    /// Re-reads the stored state, keeping this run's own entries.
    pub async fn refresh(&mut self) -> Result<(), StateError> {
        if let Some(loaded) = self.load_verified().await? {
            self.merge_from(loaded)?;
        }
        Ok(())
    }

    /// Writes the document as the next generation, renewing this run's leases. On a
    /// compare-and-swap conflict the newer state is reloaded and only this run's entries
    /// are re-applied.
    pub async fn save(&mut self, now: OffsetDateTime) -> Result<(), StateError> {
        self.save_releasing(now, &BTreeSet::new()).await
    }

    /// Saves, clearing the leases on `releasing` (which this run then no longer holds)
    /// and renewing the others.
    pub async fn save_releasing(
        &mut self,
        now: OffsetDateTime,
        releasing: &BTreeSet<String>,
    ) -> Result<(), StateError> {
        for id in &self.owned {
            if let Some(entry) = self.doc.credentials.get_mut(id) {
                entry.lease = (!releasing.contains(id)).then(|| Lease {
                    run_id: self.run.run_id.clone(),
                    holder: self.run.holder.clone(),
                    host: self.run.host.clone(),
                    pid: self.run.pid,
                    expires_at: now + self.lease_ttl,
                });
            }
        }
        // Released entries stay owned during the write, so a conflict re-applies them.
        let written = self.write(now, releasing).await;
        self.owned.retain(|id| !releasing.contains(id));
        written
    }

    /// Seals and stores the document, first archiving the older audit events of
    /// `finished`: entries no one holds a working copy of any more.
    async fn write(
        &mut self,
        now: OffsetDateTime,
        finished: &BTreeSet<String>,
    ) -> Result<(), StateError> {
        let mut backoff = save_backoff();
        loop {
            self.archive_old_events(finished).await?;
            let in_flight = self.shard_settled(finished).await?;
            let head = Head {
                credentials: self
                    .doc
                    .credentials
                    .iter()
                    .filter(|(id, _)| in_flight.contains(id.as_str()))
                    .map(|(id, entry)| (id.as_str(), entry))
                    .collect(),
                shard_index: self.doc.shard_index.as_deref(),
                archive: &self.doc.archive,
            };
            let previous = self.head.as_ref().map(|(c, _)| c);
            let (bytes, chain) =
                envelope::seal_view(&head, previous, &self.identity, &self.recipients, now)?;
            match self.store.save(&bytes, self.head.as_ref().map(|(_, v)| v)).await {
                Ok(version) => {
                    tracing::debug!(
                        "state saved to {}: generation {}",
                        self.store.describe(),
                        chain.generation
                    );
                    let anchor = Anchor { generation: chain.generation, hash: chain.hash.clone() };
                    if let Err(e) = self.store.record_anchor(&anchor).await
                        && !self.anchor_warned
                    {
                        self.anchor_warned = true;
                        tracing::warn!(
                            "the state was saved, but its replay anchor was not recorded ({e}): until it is, a reset of {} to an older state cannot be detected",
                            self.store.describe()
                        );
                    }
                    self.head = Some((chain, version));
                    self.sealed = Some(bytes);
                    return self.write_copy();
                }
                Err(StateError::Conflict(_)) => {
                    tracing::debug!(
                        "another run wrote the state first; merging this run's entries"
                    );
                    let Some(loaded) = self.load_verified().await? else {
                        return Err(StateError::Conflict(
                            "the state disappeared while this run was writing it".into(),
                        ));
                    };
                    self.merge_from(loaded)?;
                    let Some(delay) = backoff.next() else {
                        return Err(StateError::Conflict(format!(
                            "{} attempts lost the compare-and-swap to other runs; run again",
                            SAVE_RETRIES + 1
                        )));
                    };
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Seals every changed entry no run of this process is still working on into a
    /// shard, stored before the head that lists it. Returns the credentials the head
    /// holds whole: those in flight here, or every one where the store keeps no shards.
    async fn shard_settled(
        &mut self,
        finished: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, StateError> {
        if !self.store.keeps_shards() {
            return Ok(self.doc.credentials.keys().cloned().collect());
        }
        let mut in_flight = BTreeSet::new();
        let mut changed = Vec::new();
        for (id, entry) in &self.doc.credentials {
            if self.owned.contains(id) && !finished.contains(id) {
                in_flight.insert(id.clone());
                continue;
            }
            let digest = shard::digest(entry);
            if !self.doc.shards.contains_key(id) || self.settled.get(id) != Some(&digest) {
                changed.push((id.as_str(), entry, digest));
            }
        }
        if changed.is_empty() {
            return Ok(in_flight);
        }
        let entries: Vec<(&str, &CredentialState)> =
            changed.iter().map(|(id, entry, _)| (*id, *entry)).collect();
        let key = self.doc.shard_key.get_or_insert_with(shard::ShardKey::generate).clone();
        let (mut named, shas): (Vec<(String, Vec<u8>)>, Vec<String>) =
            shard::seal_many(&entries, &key, &self.recipients)?
                .into_iter()
                .map(|(bytes, sha)| ((shard::name(&sha), bytes), sha))
                .unzip();
        let settled: Vec<(String, [u8; 32])> =
            changed.iter().map(|(id, _, digest)| (id.to_string(), *digest)).collect();
        let mut shards = self.doc.shards.clone();
        shards.extend(settled.iter().map(|(id, _)| id.clone()).zip(shas));
        let (index, index_sha) = shard::seal_index(&shards, &key, &self.recipients)?;
        named.push((shard::index_name(&index_sha), index));
        self.store.put_segments(&named).await?;
        tracing::debug!("{} credential shards written", named.len() - 1);
        self.doc.shards = shards;
        self.doc.shard_index = Some(index_sha);
        self.settled.extend(settled);
        Ok(in_flight)
    }

    /// Moves the older audit events of `finished` into a sealed segment, stored before
    /// the state that lists it.
    async fn archive_old_events(&mut self, finished: &BTreeSet<String>) -> Result<(), StateError> {
        let events = archive::take_old_events(&mut self.doc, finished);
        if events.is_empty() {
            return Ok(());
        }
        let (bytes, segment) = archive::seal(events, &self.recipients)?;
        self.store.put_segment(&segment.name(), &bytes).await?;
        tracing::debug!("{} audit events archived to segment {}", segment.events, segment.name());
        self.doc.archive.push(segment);
        Ok(())
    }

    /// Every archived audit event, read from the store and checked against the state.
    pub async fn archived_audit(&self) -> Result<Vec<archive::ArchivedEvent>, StateError> {
        let mut events = Vec::new();
        for segment in &self.doc.archive {
            events.extend(self.segment_events(segment).await?);
        }
        Ok(events)
    }

    async fn segment_events(
        &self,
        segment: &archive::Segment,
    ) -> Result<Vec<archive::ArchivedEvent>, StateError> {
        let bytes = self.store.get_segment(&segment.name()).await?.ok_or_else(|| {
            StateError::Forged(format!(
                "audit segment {} that the state lists is missing from {}",
                segment.name(),
                self.store.describe()
            ))
        })?;
        archive::open(&bytes, segment, &self.identity)
    }

    /// Adopts a newer stored state, keeping this run's own entries.
    fn merge_from(&mut self, loaded: Loaded) -> Result<(), StateError> {
        let Loaded { doc: mut fresh, head, sealed, settled } = loaded;
        for id in &self.owned {
            let theirs = fresh.credentials.get(id).and_then(|c| c.lease.as_ref());
            if theirs.is_some_and(|l| l.run_id != self.run.run_id) {
                return Err(StateError::LeaseLost(id.clone()));
            }
            if let Some(ours) = self.doc.credentials.get(id) {
                fresh.credentials.insert(id.clone(), ours.clone());
            }
        }
        // Segments are append-only: keep the ones this run archived to.
        for segment in &self.doc.archive {
            if !fresh.archive.contains(segment) {
                fresh.archive.push(segment.clone());
            }
        }
        self.doc = fresh;
        self.head = Some(head);
        self.sealed = Some(sealed);
        self.settled = settled;
        Ok(())
    }

    /// Clears this run's leases and saves.
    pub async fn release(&mut self, now: OffsetDateTime) -> Result<(), StateError> {
        if self.owned.is_empty() {
            return Ok(());
        }
        let owned = self.owned.clone();
        self.save_releasing(now, &owned).await
    }

    /// Re-encrypts the state to new recipients with a new writer identity, keeping the
    /// chain (the new state follows the old one).
    pub async fn rekey(
        &mut self,
        identity: StateIdentity,
        recipients: Vec<age::x25519::Recipient>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        if !lists(&recipients, &identity) {
            return Err(StateError::Identity(format!(
                "the new identity's recipient {} must be in state.recipients",
                identity.recipient()
            )));
        }
        // Every entry is sealed anew for the new recipients.
        let sharded: Vec<String> = self.doc.shards.keys().cloned().collect();
        self.ensure_loaded(&sharded).await?;
        self.settled.clear();
        // A recipient removed may have kept the old key: later shards must not open with it.
        self.doc.shard_key = None;
        // A round trip first: the new identity must open and verify what it will write.
        let previous = self.head.as_ref().map(|(c, _)| c);
        let (trial, _) = envelope::seal(&self.doc, previous, &identity, &recipients, now)?;
        envelope::open(&trial, &identity).map_err(|e| {
            StateError::Identity(format!(
                "the state sealed for the new identity does not open with it ({e}); nothing was changed"
            ))
        })?;
        // Archived segments follow the state to its new recipients (sealed anew, so
        // under new names); the old ones stay for older copies of the state.
        let mut archive = Vec::new();
        for segment in &self.doc.archive {
            let events = self.segment_events(segment).await?;
            let (bytes, resealed) = archive::seal(events, &recipients)?;
            self.store.put_segment(&resealed.name(), &bytes).await?;
            archive.push(resealed);
        }
        self.doc.archive = archive;
        self.identity = identity;
        self.recipients = recipients;
        self.write(now, &BTreeSet::new()).await
    }
}

/// Whether the state would be sealed so that `identity` can read it back.
fn lists(recipients: &[age::x25519::Recipient], identity: &StateIdentity) -> bool {
    let own = identity.recipient();
    recipients.iter().any(|r| r.to_string() == own)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::state::FileStore;

    /// A state directory and the identity every vault on it opens with.
    pub(crate) struct Fixture {
        dir: tempfile::TempDir,
        id: crate::secret::Secret,
    }

    impl Fixture {
        pub(crate) fn new() -> Fixture {
            Fixture { dir: tempfile::tempdir().unwrap(), id: StateIdentity::generate().to_secret() }
        }

        /// The state, opened on another host, holding the lease on `id`.
        pub(crate) async fn holding(&self, id: &str, now: OffsetDateTime) -> Vault {
            let mut holder = self.vault("other-host", 1).await;
            holder.acquire(&[id.into()], now).await.unwrap();
            holder
        }

        /// The state, opened by the process `pid` on `host`.
        pub(crate) async fn vault(&self, host: &str, pid: u32) -> Vault {
            let run = RunIdentity {
                run_id: uuid::Uuid::new_v4().to_string(),
                holder: format!("{host}:{pid}"),
                host: host.into(),
                pid,
            };
            let identity = StateIdentity::parse(&self.id).unwrap();
            let recipients = envelope::parse_recipients(&[identity.recipient()]).unwrap();
            let store = FileStore::new(self.dir.path().join("state.age"), "file:state.age");
            let lease_ttl = std::time::Duration::from_secs(600);
            Vault::open(Box::new(store), identity, recipients, run, lease_ttl).await.unwrap()
        }
    }

    #[tokio::test]
    async fn two_runs_on_different_credentials_keep_each_others_writes() {
        let state = Fixture::new();
        let now = OffsetDateTime::now_utc();
        let mut a = state.vault("h", 1).await;
        let mut b = state.vault("h", 2).await;
        a.acquire(&["one".into()], now).await.unwrap();
        // b opened before a's save: its save must merge, not overwrite.
        b.acquire(&["two".into()], now).await.unwrap();
        a.doc.credentials.get_mut("one").unwrap().rotations = 7;
        a.save(now).await.unwrap();
        b.doc.credentials.get_mut("two").unwrap().rotations = 9;
        b.save(now).await.unwrap();
        let check = state.vault("h", 3).await;
        assert_eq!(check.doc.credentials["one"].rotations, 7);
        assert_eq!(check.doc.credentials["two"].rotations, 9);
        // Four saves, two of them after merging the other run's write.
        assert_eq!(check.generation(), 4);
    }
}
