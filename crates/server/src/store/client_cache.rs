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

use super::ClientRecord;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// At most this many client ids (known or not) are kept; a full cache is emptied.
pub const CAPACITY: usize = 10_000;

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
        }
    }
}

impl Epoch {
    /// Something changed: every entry read before is dropped.
    pub fn bump(&self) {
        self.value.fetch_add(1, Ordering::SeqCst);
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
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("enabled", &self.signal.is_some())
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .field("misses", &self.misses.load(Ordering::Relaxed))
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
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update below leaves the map consistent, so a poisoned lock is usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached entry for `id` if the database has not changed since it was read.
    pub fn lookup(&self, id: &str) -> Lookup {
        let Some(version) = self.signal.as_ref().and_then(ChangeSignal::read) else {
            return Lookup::Miss(Ticket(None));
        };
        let mut state = self.state();
        if state.version != Some(version) {
            state.clients.clear();
            state.version = Some(version);
        } else if let Some(entry) = state.clients.get(id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(entry.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss(Ticket(Some(version)))
    }

    /// Keeps what a miss read, unless the database changed in the meantime (then the
    /// next lookup reads again).
    pub fn fill(&self, ticket: Ticket, id: &str, entry: &Cached) {
        let Ticket(Some(version)) = ticket else {
            return;
        };
        let mut state = self.state();
        if state.version != Some(version) {
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

    /// (hits, misses) since the store was opened.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}
