-- Account security: settings documents, throttles, brute-force counters, email tickets,
-- password history and log stream checkpoints. Forward-only; mirrored for PostgreSQL.

-- Tenant-wide settings kept as JSON documents with Auth0's names (attack protection, the
-- database connection's options, log streams).
CREATE TABLE tenant_settings (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Rate limits and suspicious-IP throttling as GCRA buckets: one "theoretical arrival time"
-- per key, in unix milliseconds, advanced by one statement per counted request.
CREATE TABLE throttles (
    tenant_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    tat_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, bucket)
);
CREATE INDEX throttles_tat ON throttles (tat_ms);

-- Brute-force protection: login attempts per account and IP (counted before the password
-- is checked, and forgotten after a success), and the block they lead to.
CREATE TABLE login_failures (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    failures BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    -- Set when the pair is refused (the block shield is on and the count passed the limit).
    blocked_at BIGINT,
    -- Set once the limit was passed and the user was told, so they are told once.
    notified_at BIGINT,
    PRIMARY KEY (tenant_id, user_id, ip),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);

-- Single-use links sent by email (verification, password change, unblock), stored hashed.
CREATE TABLE tickets (
    tenant_id TEXT NOT NULL,
    ticket_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (tenant_id, ticket_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX tickets_user ON tickets (tenant_id, user_id);
CREATE INDEX tickets_expires ON tickets (expires_at);

-- Earlier password hashes, newest first, for "no reuse of the last N".
CREATE TABLE password_history (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    id TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);

-- How far each log stream has delivered (the id of the last event posted).
CREATE TABLE log_stream_checkpoints (
    tenant_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    last_log_id TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
);
