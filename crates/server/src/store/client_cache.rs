//! The SQLite store's client cache: a client read once is served from memory until
//! the database changes, and "the database changed" is read from SQLite's own
//! change signal, so a change committed by any process is seen by the next request.
//!
//! # Why a cache, and why this signal
//!
//! Reading the client is the only store access of a token request. On SQLite it
//! costs a read transaction: two `fcntl` locks on the WAL index, a statement step and
//! the decoding of ten columns into fresh strings, about 3 µs of the ~33 µs a token
//! request costs (`bench/load.sh`, README "Performance"). A plain time-to-live cache
//! would break the contract that a `client disable` made with the CLI, or by another
//! replica, applies to the very next request (INTERFACE.md).
//!
//! In WAL mode every commit, by any connection of any process, rewrites the
//! *wal-index header* at the start of the `-shm` file before the commit returns
//! (its change counter, last frame, checksums and salts; "WAL-mode file format",
//! <https://www.sqlite.org/walformat.html>, §2.1). SQLite's own readers compare that
//! header to decide whether their page cache is stale; this cache does the same with
//! one `pread` of the header's two copies (96 bytes, no lock, no SQLite call): an
//! entry is served only while the header is byte-for-byte the one seen before the
//! entry was read from the database. A commit that has returned to its caller (the
//! CLI printing "disabled") has already changed the header, so the next request
//! misses and reads the row. A read that races a commit sees either header; the
//! entry is tagged with the header read *before* the row, so it can only be too new,
//! never stale.
//!
//! Unknown ids are cached too (as `None`): a known id must not be answered faster
//! than an unknown one (see `Store::get_client_for_auth`). The cache is bounded and
//! emptied when full, so a flood of made-up ids costs memory of at most
//! [`CAPACITY`] entries and makes requests no slower than without a cache.
//!
//! When the header cannot be read (no `-shm` file: an in-memory or non-WAL database,
//! or a platform without positioned reads) there is no cache and every request reads
//! the database, as before.
//!
//! # On PostgreSQL
//!
//! The same cache, with another change signal: an [`Epoch`] that a listener task
//! (`postgres::listen_for_changes`) raises on every `NOTIFY auth_broker_clients`,
//! which a trigger on the `clients` table sends inside every transaction that changes
//! it (PostgreSQL delivers it at commit, to every listening session). While the
//! listener's connection is down the epoch is not *live* and the cache is off: every
//! request reads the database until the listener has reconnected and listens again,
//! and then every entry from before is dropped. So a change is never missed; it is
//! seen once its notification has arrived (the time of one message on an open
//! connection, measured in the tests) rather than by the very next statement.
//!
//! A notification names the client that changed (its payload, migration 8), and the
//! epoch keeps the latest [`CHANGE_LOG`] changes by id: a cache that is behind drops
//! only the entries of the clients changed since, so a change to one client costs the
//! other replicas one read of that client, not of every client they serve. An empty
//! payload (a `TRUNCATE`, an id too long for a payload, an older trigger), a lost
//! connection, or a cache further behind than the log drops everything, as before.

use super::ClientRecord;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// At most this many client ids (known or not) are kept; a full cache is emptied.
pub const CAPACITY: usize = 10_000;

/// How many of the latest changes an [`Epoch`] remembers by client id.
pub const CHANGE_LOG: usize = 1024;

/// Both copies of the wal-index header (`WalIndexHdr`, 48 bytes each; walformat §2.1).
const HEADER_BYTES: usize = 96;

/// What an entry is valid for: a wal-index header (SQLite) or a change epoch
/// (PostgreSQL).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Wal([u8; HEADER_BYTES]),
    Epoch(u64),
}

/// The change count of a PostgreSQL store, raised by its notification listener, and
/// whether that listener is connected and listening (only then may entries be kept).
///
/// Listening is a lease: each answered heartbeat of the listener's connection renews
/// it for [`LEASE`]. A connection that closes ends it at once; one that goes silent
/// (a network that drops packets instead of refusing them) ends it when the lease
/// runs out, since then nothing tells a lost notification from no change.
#[derive(Debug)]
pub struct Epoch {
    value: AtomicU64,
    live: AtomicBool,
    /// When the lease was last renewed, in ms since `origin`.
    renewed_ms: AtomicU64,
    origin: std::time::Instant,
    /// The latest changes, oldest first: the value each raised `value` to, and the
    /// client it concerned (`None`: any client). Values are consecutive: each is
    /// raised and logged under this lock.
    changes: Mutex<VecDeque<(u64, Option<Box<str>>)>>,
}

/// How long an answered heartbeat keeps the cache on (see [`Epoch`]).
pub const LEASE: std::time::Duration = std::time::Duration::from_millis(1500);

impl Default for Epoch {
    fn default() -> Self {
        Self {
            value: AtomicU64::new(0),
            live: AtomicBool::new(false),
            renewed_ms: AtomicU64::new(0),
            origin: std::time::Instant::now(),
            changes: Mutex::new(VecDeque::with_capacity(CHANGE_LOG)),
        }
    }
}

impl Epoch {
    /// Something changed: every entry read before is dropped.
    pub fn bump(&self) {
        self.changed(None);
    }

    /// The client `id` changed (`None`: any client may have): its entry, read before,
    /// is dropped.
    pub fn changed(&self, id: Option<&str>) {
        let mut log = lock(&self.changes);
        // Raised under the lock: whoever reads the new value and then takes the lock
        // finds its entry.
        let value = self.value.fetch_add(1, Ordering::SeqCst) + 1;
        if log.len() == CHANGE_LOG {
            log.pop_front();
        }
        log.push_back((value, id.map(Box::from)));
    }

    /// The ids changed after `from`, up to and including `to`; `None` when that is
    /// not known client by client (a change of any client among them, or changes
    /// older than the log).
    fn changed_between(&self, from: u64, to: u64) -> Option<Vec<Box<str>>> {
        let log = lock(&self.changes);
        let oldest = log.front().map_or(u64::MAX, |c| c.0);
        if oldest > from.saturating_add(1) && from < to {
            return None;
        }
        log.iter()
            .filter(|(value, _)| *value > from && *value <= to)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The listener listens (again): entries from before are dropped, new ones kept.
    pub fn go_live(&self) {
        self.bump();
        self.renew();
        self.live.store(true, Ordering::SeqCst);
    }

    /// The listener's connection answered: entries may be kept for another [`LEASE`].
    pub fn renew(&self) {
        self.renewed_ms.store(self.elapsed_ms(), Ordering::SeqCst);
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The listener lost its connection: from now on every read goes to the database.
    pub fn go_dead(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.bump();
    }

    /// Whether changes are being heard: listening, and the lease not run out.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
            && self
                .elapsed_ms()
                .saturating_sub(self.renewed_ms.load(Ordering::SeqCst))
                < LEASE.as_millis() as u64
    }

    fn read(&self) -> Option<u64> {
        // `live` first: a value read after a live `live` is at least the one
        // `go_live` set, and a later `go_dead` raises it again.
        self.is_live().then(|| self.value.load(Ordering::SeqCst))
    }
}

/// Every update in this module leaves what it locks consistent, so a poisoned lock
/// is usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A cached lookup: the client, or `None` for an id that is not in the store.
pub type Cached = Option<Arc<ClientRecord>>;

/// The change signal: the `-shm` file of a WAL database, read with `pread`, or the
/// change epoch of a PostgreSQL store.
#[derive(Debug)]
enum ChangeSignal {
    Wal(File),
    Notify(std::sync::Arc<Epoch>),
}

impl ChangeSignal {
    /// `None` when `db` has no wal-index file to read (then there is no cache).
    fn open(db: &Path) -> Option<Self> {
        let mut name = db.as_os_str().to_owned();
        name.push("-shm");
        let shm = File::open(name).ok()?;
        let signal = Self::Wal(shm);
        signal.read().map(|_| signal)
    }

    /// The current version; `None` when changes cannot be told now (no cache).
    fn read(&self) -> Option<Version> {
        match self {
            Self::Wal(shm) => Self::read_wal(shm).map(Version::Wal),
            Self::Notify(epoch) => epoch.read().map(Version::Epoch),
        }
    }

    #[cfg(unix)]
    fn read_wal(shm: &File) -> Option<[u8; HEADER_BYTES]> {
        use std::os::unix::fs::FileExt;
        let mut v = [0u8; HEADER_BYTES];
        shm.read_exact_at(&mut v, 0).ok()?;
        Some(v)
    }

    #[cfg(not(unix))]
    fn read_wal(_: &File) -> Option<[u8; HEADER_BYTES]> {
        None
    }
}

struct State {
    version: Option<Version>,
    clients: HashMap<String, Cached>,
}

/// Clients by id, valid for one version of the database.
pub struct ClientCache {
    signal: Option<ChangeSignal>,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
}

/// What the client cache did since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Whether entries are kept now (SQLite: a wal-index to watch; PostgreSQL: the
    /// change listener listens and its lease has not run out).
    pub on: bool,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups, with the cache on, that found no valid entry and read the row.
    pub misses: u64,
    /// Lookups that read the row because the cache was off: on PostgreSQL, while the
    /// listener reconnects or its heartbeat is late (see `LEASE`). Counted apart
    /// from misses so that an operator sees how often the cache could not be trusted.
    pub bypassed: u64,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("enabled", &self.signal.is_some())
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .field("misses", &self.misses.load(Ordering::Relaxed))
            .field("bypassed", &self.bypassed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What [`ClientCache::lookup`] found.
pub enum Lookup {
    /// The entry, valid for the database as it is now.
    Hit(Cached),
    /// Read the row, then hand it to [`ClientCache::fill`] with this ticket.
    Miss(Ticket),
}

/// The database version seen before a miss read its row.
pub struct Ticket(Option<Version>);

impl ClientCache {
    /// A cache for the SQLite database at `db` (already open in WAL mode).
    pub fn new(db: &Path) -> Self {
        let signal = ChangeSignal::open(db);
        if signal.is_none() {
            tracing::debug!(path = %db.display(), "no wal-index to watch: client cache off");
        }
        Self::with_signal(signal)
    }

    /// A cache for a PostgreSQL store, kept while `epoch` is live and unchanged.
    pub fn notified(epoch: std::sync::Arc<Epoch>) -> Self {
        Self::with_signal(Some(ChangeSignal::Notify(epoch)))
    }

    fn with_signal(signal: Option<ChangeSignal>) -> Self {
        Self {
            signal,
            state: Mutex::new(State {
                version: None,
                clients: HashMap::new(),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The ids changed between two versions, when the signal can tell them.
    fn changed_between(&self, from: Version, to: Version) -> Option<Vec<Box<str>>> {
        match (&self.signal, from, to) {
            (Some(ChangeSignal::Notify(epoch)), Version::Epoch(from), Version::Epoch(to))
                if from <= to =>
            {
                epoch.changed_between(from, to)
            }
            _ => None,
        }
    }

    /// The cached entry for `id` if the client has not changed since it was read.
    pub fn lookup(&self, id: &str) -> Lookup {
        let Some(version) = self.signal.as_ref().and_then(ChangeSignal::read) else {
            self.bypassed.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss(Ticket(None));
        };
        let mut state = self.state();
        // A lookup that read the epoch just before another one caught the cache up
        // finds it newer than what it read: the entries are valid for it as they are.
        let overtaken = matches!(
            (state.version, version),
            (Some(Version::Epoch(seen)), Version::Epoch(read)) if read < seen
        );
        if !overtaken && state.version != Some(version) {
            // Catch up: drop what changed since, everything if that is not known.
            let changed = state
                .version
                .and_then(|seen| self.changed_between(seen, version));
            match changed {
                Some(ids) => {
                    for changed in ids {
                        state.clients.remove(&*changed);
                    }
                }
                None => state.clients.clear(),
            }
            state.version = Some(version);
        }
        if let Some(entry) = state.clients.get(id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(entry.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss(Ticket(Some(version)))
    }

    /// Keeps what a miss read, unless that client changed in the meantime, or it
    /// cannot be told whether it did (then the next lookup reads again).
    pub fn fill(&self, ticket: Ticket, id: &str, entry: &Cached) {
        let Ticket(Some(read_at)) = ticket else {
            return;
        };
        let mut state = self.state();
        let Some(now) = state.version else {
            return;
        };
        // Entries stand for the version the cache has caught up to: one read before
        // it is good only if its client did not change in between.
        let unchanged = now == read_at
            || self
                .changed_between(read_at, now)
                .is_some_and(|ids| ids.iter().all(|changed| &**changed != id));
        if !unchanged {
            return;
        }
        if state.clients.len() >= CAPACITY {
            state.clients.clear();
        }
        state.clients.insert(id.to_owned(), entry.clone());
    }

    /// Whether changes can be detected (and so entries are kept at all).
    pub fn enabled(&self) -> bool {
        match &self.signal {
            Some(ChangeSignal::Wal(_)) => true,
            Some(ChangeSignal::Notify(epoch)) => epoch.is_live(),
            None => false,
        }
    }

    /// What the cache did since the store was opened, and whether it is on now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            on: self.enabled(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cache() -> (Arc<Epoch>, ClientCache) {
        let epoch = Arc::new(Epoch::default());
        epoch.go_live();
        (epoch.clone(), ClientCache::notified(epoch))
    }

    fn client(id: &str) -> Cached {
        Some(Arc::new(ClientRecord::new(
            id.to_owned(),
            id.to_owned(),
            String::new(),
            0,
        )))
    }

    /// Reads `id` through the cache: `true` for a hit; a miss is filled at once.
    fn read(cache: &ClientCache, id: &str) -> bool {
        match cache.lookup(id) {
            Lookup::Hit(_) => true,
            Lookup::Miss(ticket) => {
                cache.fill(ticket, id, &client(id));
                false
            }
        }
    }

    #[test]
    fn a_change_drops_that_client_only() {
        let (epoch, cache) = cache();
        assert!(!read(&cache, "a") && !read(&cache, "b"));
        assert!(read(&cache, "a") && read(&cache, "b"));
        epoch.changed(Some("a"));
        assert!(read(&cache, "b"), "b did not change");
        assert!(!read(&cache, "a"), "a changed");
        assert!(read(&cache, "a"));
    }

    #[test]
    fn a_change_of_any_client_or_beyond_the_log_drops_everything() {
        let (epoch, cache) = cache();
        assert!(!read(&cache, "a") && !read(&cache, "b"));
        epoch.changed(None);
        assert!(!read(&cache, "a") && !read(&cache, "b"));
        for i in 0..=CHANGE_LOG {
            epoch.changed(Some(&format!("other{i}")));
        }
        assert!(!read(&cache, "a"), "the log no longer covers the gap");
        assert!(!read(&cache, "b"));
        let before = cache.stats();
        assert!(before.on && before.bypassed == 0, "{before:?}");
        epoch.go_dead();
        assert!(!read(&cache, "a") && !read(&cache, "a"), "off while dead");
        let dead = cache.stats();
        assert_eq!(
            (dead.on, dead.misses, dead.bypassed),
            (false, before.misses, 2),
            "reads while off are counted as bypassed, not as misses"
        );
        epoch.go_live();
        assert!(
            !read(&cache, "a"),
            "nothing from before the listener was back"
        );
        assert!(read(&cache, "a"));
        let live = cache.stats();
        assert_eq!(
            (live.on, live.hits, live.misses, live.bypassed),
            (true, dead.hits + 1, dead.misses + 1, 2)
        );
    }

    /// A read that started before a change of its client and ends after the change
    /// was heard is not kept (it may hold the row as it was); one whose client did not
    /// change is.
    #[test]
    fn a_read_overtaken_by_a_change_of_its_client_is_not_kept() {
        let (epoch, cache) = cache();
        let Lookup::Miss(for_a) = cache.lookup("a") else {
            panic!("empty cache")
        };
        let Lookup::Miss(for_b) = cache.lookup("b") else {
            panic!("empty cache")
        };
        epoch.changed(Some("a"));
        // Another request catches the cache up before the reads are handed in.
        assert!(!read(&cache, "c"));
        cache.fill(for_a, "a", &client("a"));
        cache.fill(for_b, "b", &client("b"));
        assert!(!read(&cache, "a"), "a stale read of a was kept");
        assert!(read(&cache, "b"));
        // The same when nobody caught up in between: the change is applied first.
        let Lookup::Miss(for_d) = cache.lookup("d") else {
            panic!("d was never read")
        };
        epoch.changed(Some("d"));
        cache.fill(for_d, "d", &client("d"));
        assert!(!read(&cache, "d"), "a stale read of d was served");
        assert!(read(&cache, "d"));
    }
}
