-- Consent of users to third-party applications, and the session a paused login
-- transaction belongs to once the user has authenticated.
ALTER TABLE login_transactions ADD COLUMN session_id TEXT;

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
