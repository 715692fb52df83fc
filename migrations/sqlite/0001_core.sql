-- Core schema: every table is scoped by tenant_id from the start.
-- Times are unix seconds; JSON documents are TEXT; booleans are 0/1 integers.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    friendly_name TEXT NOT NULL,
    session_lifetime_hours BIGINT NOT NULL,
    idle_session_lifetime_hours BIGINT NOT NULL,
    roles_claim TEXT,
    log_retention_days BIGINT NOT NULL DEFAULT 30,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kid TEXT NOT NULL,
    alg TEXT NOT NULL,
    private_key_sealed BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    active_from BIGINT NOT NULL,
    retired_at BIGINT,
    expires_at BIGINT,
    PRIMARY KEY (tenant_id, kid)
);

CREATE TABLE clients (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    client_id TEXT NOT NULL,
    name TEXT NOT NULL,
    app_type TEXT NOT NULL,
    secret_sealed BLOB,
    token_endpoint_auth_method TEXT NOT NULL,
    callbacks TEXT NOT NULL,
    allowed_logout_urls TEXT NOT NULL,
    web_origins TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    is_first_party BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, client_id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE resource_servers (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    identifier TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    enforce_policies BIGINT NOT NULL,
    token_dialect TEXT NOT NULL,
    token_lifetime BIGINT NOT NULL,
    signing_alg TEXT NOT NULL,
    allow_offline_access BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, identifier)
);

CREATE TABLE client_grants (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    audience TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, client_id, audience),
    FOREIGN KEY (tenant_id, client_id) REFERENCES clients(tenant_id, client_id) ON DELETE CASCADE
);

CREATE TABLE roles (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE role_permissions (
    tenant_id TEXT NOT NULL,
    role_id TEXT NOT NULL,
    resource_server_identifier TEXT NOT NULL,
    permission_name TEXT NOT NULL,
    PRIMARY KEY (tenant_id, role_id, resource_server_identifier, permission_name),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles(tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE users (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    connection TEXT NOT NULL,
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    email_verified BIGINT NOT NULL,
    name TEXT NOT NULL,
    nickname TEXT NOT NULL,
    picture TEXT NOT NULL,
    password_hash TEXT,
    user_metadata TEXT NOT NULL,
    app_metadata TEXT NOT NULL,
    blocked BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login BIGINT,
    logins_count BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    UNIQUE (tenant_id, connection, email_normalized)
);

CREATE TABLE user_roles (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles(tenant_id, id) ON DELETE CASCADE
);

-- Permissions given to a user directly, beside those of their roles.
CREATE TABLE user_permissions (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    resource_server_identifier TEXT NOT NULL,
    permission_name TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, resource_server_identifier, permission_name),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);

-- SSO sessions: `id` is the public sid; the cookie carries a secret stored only as a hash.
CREATE TABLE sessions (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);

-- A login in progress: the validated /authorize request, waiting for the user (and later
-- for a second factor or an upstream provider).
CREATE TABLE login_transactions (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    csrf_hash TEXT NOT NULL,
    request TEXT NOT NULL,
    -- Set once the user has authenticated and the login waits for another step.
    user_id TEXT,
    session_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (tenant_id, id)
);

-- One grant per code exchange or client login: codes, refresh tokens and recorded access
-- tokens hang off it, so revoking the grant revokes all it issued.
CREATE TABLE grants (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE authorization_codes (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    code_hash TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (tenant_id, code_hash)
);

CREATE TABLE refresh_tokens (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    token_hash TEXT NOT NULL,
    id TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    idle_expires_at BIGINT,
    used_at BIGINT,
    revoked_at BIGINT,
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (tenant_id, grant_id);

CREATE TABLE access_tokens (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    jti TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, jti)
);
CREATE INDEX access_tokens_grant ON access_tokens (tenant_id, grant_id);

-- Consent of users to third-party applications, per audience ('' for none).
CREATE TABLE consents (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    audience TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, client_id, audience),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);

-- The audit trail: Auth0-style log events. They outlive the users and clients they name
-- (no foreign keys), and are purged after the tenant's retention.
CREATE TABLE log_events (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    date BIGINT NOT NULL,
    type TEXT NOT NULL,
    description TEXT NOT NULL,
    client_id TEXT,
    client_name TEXT,
    user_id TEXT,
    user_name TEXT,
    ip TEXT,
    user_agent TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX log_events_date ON log_events (tenant_id, date);
CREATE INDEX log_events_user ON log_events (tenant_id, user_id, date);
