//! Versioned schema migrations, applied in order on start.
//!
//! A migration is never edited once released; a change is a new entry. Each keeps
//! what older versions read working (a rolling upgrade runs both for a while): new
//! columns have defaults, and none is dropped or renamed. Each backend
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
    (
        4,
        "per-client settings, versions, the audit trail and usage",
        "ALTER TABLE clients ADD COLUMN audiences TEXT NOT NULL DEFAULT '';
    UPDATE clients SET audiences = COALESCE(audience, '');
    ALTER TABLE clients ADD COLUMN access_token_ttl INTEGER;
    ALTER TABLE clients ADD COLUMN extra_claims TEXT;
    ALTER TABLE clients ADD COLUMN tokens_per_minute INTEGER;
    ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic';
    ALTER TABLE clients ADD COLUMN client_secret_expires_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE clients ADD COLUMN secret_issued_at INTEGER NOT NULL DEFAULT 0;
    UPDATE clients SET secret_issued_at = created_at;
    ALTER TABLE clients ADD COLUMN contacts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE clients ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE clients ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE clients ADD COLUMN tokens_revoked_before INTEGER;
    CREATE INDEX clients_by_creation ON clients (created_at, id);
    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        changes TEXT NOT NULL,
        request_id TEXT,
        peer TEXT
    );
    CREATE INDEX audit_events_by_target ON audit_events (target, id);
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
    CREATE TABLE usage (
        client_id TEXT NOT NULL,
        minute INTEGER NOT NULL,
        issued INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        limited INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (client_id, minute)
    );
    CREATE INDEX usage_by_minute ON usage (minute);",
    ),
    (
        5,
        "key-bound clients: jwks, jwks_uri, certificate subject, DPoP; assertion ids; bound opaque tokens",
        "ALTER TABLE clients ADD COLUMN jwks TEXT;
    ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
    ALTER TABLE clients ADD COLUMN tls_client_auth_subject_dn TEXT;
    ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE client_assertions (
        client_id TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (client_id, jti)
    );
    CREATE INDEX client_assertions_expiry ON client_assertions (expires_at);
    ALTER TABLE opaque_tokens ADD COLUMN cnf TEXT;",
    ),
    (
        6,
        "client change notifications (PostgreSQL only; SQLite's signal is its wal-index)",
        "-- nothing to do on SQLite",
    ),
    (
        7,
        "signing key change notifications (PostgreSQL only)",
        "-- nothing to do on SQLite",
    ),
    (
        8,
        "client change notifications name the client (PostgreSQL only)",
        "-- nothing to do on SQLite",
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
    (
        4,
        "per-client settings, versions, the audit trail and usage",
        "ALTER TABLE clients ADD COLUMN audiences TEXT NOT NULL DEFAULT '';
    UPDATE clients SET audiences = COALESCE(audience, '');
    ALTER TABLE clients ADD COLUMN access_token_ttl BIGINT;
    ALTER TABLE clients ADD COLUMN extra_claims TEXT;
    ALTER TABLE clients ADD COLUMN tokens_per_minute BIGINT;
    ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic';
    ALTER TABLE clients ADD COLUMN client_secret_expires_at BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE clients ADD COLUMN secret_issued_at BIGINT NOT NULL DEFAULT 0;
    UPDATE clients SET secret_issued_at = created_at;
    ALTER TABLE clients ADD COLUMN contacts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE clients ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE clients ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
    ALTER TABLE clients ADD COLUMN tokens_revoked_before BIGINT;
    CREATE INDEX clients_by_creation ON clients (created_at, id);
    CREATE TABLE audit_events (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        changes TEXT NOT NULL,
        request_id TEXT,
        peer TEXT
    );
    CREATE INDEX audit_events_by_target ON audit_events (target, id);
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$;
    CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
    CREATE TABLE usage (
        client_id TEXT NOT NULL,
        minute BIGINT NOT NULL,
        issued BIGINT NOT NULL DEFAULT 0,
        failed BIGINT NOT NULL DEFAULT 0,
        limited BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (client_id, minute)
    );
    CREATE INDEX usage_by_minute ON usage (minute);",
    ),
    (
        5,
        "key-bound clients: jwks, jwks_uri, certificate subject, DPoP; assertion ids; bound opaque tokens",
        "ALTER TABLE clients ADD COLUMN jwks TEXT;
    ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
    ALTER TABLE clients ADD COLUMN tls_client_auth_subject_dn TEXT;
    ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
    CREATE TABLE client_assertions (
        client_id TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (client_id, jti)
    );
    CREATE INDEX client_assertions_expiry ON client_assertions (expires_at);
    ALTER TABLE opaque_tokens ADD COLUMN cnf TEXT;",
    ),
    (
        6,
        "client change notifications: NOTIFY auth_broker_clients on every change",
        "CREATE OR REPLACE FUNCTION auth_broker_clients_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('auth_broker_clients', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON clients
        FOR EACH STATEMENT EXECUTE FUNCTION auth_broker_clients_changed();",
    ),
    (
        7,
        "signing key change notifications: NOTIFY auth_broker_keys on every change",
        "CREATE OR REPLACE FUNCTION auth_broker_keys_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('auth_broker_keys', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER signing_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON signing_keys
        FOR EACH STATEMENT EXECUTE FUNCTION auth_broker_keys_changed();",
    ),
    (
        8,
        "client change notifications name the client: one NOTIFY auth_broker_clients per changed row, its id as payload",
        "CREATE OR REPLACE FUNCTION auth_broker_client_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
    BEGIN
        -- A payload must stay under 8000 bytes; an id too long for one is sent as ''
        -- (any client), which every listener also understands.
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('auth_broker_clients',
                CASE WHEN octet_length(OLD.id) <= 1000 THEN OLD.id ELSE '' END);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('auth_broker_clients',
                CASE WHEN octet_length(NEW.id) <= 1000 THEN NEW.id ELSE '' END);
        END IF;
        RETURN NULL;
    END $$;
    DROP TRIGGER clients_changed ON clients;
    CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
        FOR EACH ROW EXECUTE FUNCTION auth_broker_client_changed();
    CREATE TRIGGER clients_truncated AFTER TRUNCATE ON clients
        FOR EACH STATEMENT EXECUTE FUNCTION auth_broker_clients_changed();",
    ),
];

/// The table that records applied versions (same SQL on both backends).
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";
