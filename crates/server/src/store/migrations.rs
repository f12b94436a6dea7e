//! Versioned schema migrations, applied in order on start.
//!
//! A migration is never edited once released; a change is a new entry. Each backend
//! has its own list because the SQL dialects differ, and the two lists keep the same
//! version numbers so a schema version means the same thing on both.
//! (A crate such as `refinery` would do the same bookkeeping; it is a few lines here
//! and spares the build another dependency tree.)

/// `(version, description, SQL)`.
pub type Migration = (i64, &'static str, &'static str);

pub const SQLITE: &[Migration] = &[
    (
        1,
        "clients and signing keys",
        "CREATE TABLE clients (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        secret_hash TEXT NOT NULL,
        previous_secret_hash TEXT,
        previous_secret_expires_at INTEGER,
        scopes TEXT NOT NULL DEFAULT '',
        audience TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_key BLOB NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER
    );
    CREATE INDEX signing_keys_active ON signing_keys (alg, retired_at, created_at);",
    ),
    (
        2,
        "revocations and opaque tokens",
        "CREATE TABLE revocations (
        jti TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER NOT NULL
    );
    CREATE INDEX revocations_expiry ON revocations (expires_at);
    CREATE TABLE opaque_tokens (
        token_hash TEXT PRIMARY KEY,
        jti TEXT NOT NULL,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX opaque_tokens_expiry ON opaque_tokens (expires_at);",
    ),
    (
        3,
        "the longest token lifetime each signing key has signed for",
        "ALTER TABLE signing_keys ADD COLUMN max_token_ttl INTEGER;",
    ),
];

pub const POSTGRES: &[Migration] = &[
    (
        1,
        "clients and signing keys",
        "CREATE TABLE clients (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        secret_hash TEXT NOT NULL,
        previous_secret_hash TEXT,
        previous_secret_expires_at BIGINT,
        scopes TEXT NOT NULL DEFAULT '',
        audience TEXT,
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_key BYTEA NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        retired_at BIGINT
    );
    CREATE INDEX signing_keys_active ON signing_keys (alg, retired_at, created_at);",
    ),
    (
        2,
        "revocations and opaque tokens",
        "CREATE TABLE revocations (
        jti TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT NOT NULL
    );
    CREATE INDEX revocations_expiry ON revocations (expires_at);
    CREATE TABLE opaque_tokens (
        token_hash TEXT PRIMARY KEY,
        jti TEXT NOT NULL,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX opaque_tokens_expiry ON opaque_tokens (expires_at);",
    ),
    (
        3,
        "the longest token lifetime each signing key has signed for",
        "ALTER TABLE signing_keys ADD COLUMN max_token_ttl BIGINT;",
    ),
];

/// The table that records applied versions (same SQL on both backends).
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";
