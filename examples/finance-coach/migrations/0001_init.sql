-- Logins in flight: the PKCE verifier and nonce of each authorization request, by the hash
-- of its state (which the browser also holds in a cookie).
CREATE TABLE login_requests (
    state_hash TEXT PRIMARY KEY,
    verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Server-side sessions, by the SHA-256 of the cookie's secret.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    sub TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    roles TEXT NOT NULL,
    access_token TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sub TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    balance_cents INTEGER NOT NULL
);
CREATE INDEX accounts_sub ON accounts (sub);

CREATE TABLE transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sub TEXT NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    day TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    amount_cents INTEGER NOT NULL
);
CREATE INDEX transactions_sub_day ON transactions (sub, day);

CREATE TABLE budgets (
    sub TEXT NOT NULL,
    category TEXT NOT NULL,
    limit_cents INTEGER NOT NULL,
    PRIMARY KEY (sub, category)
);
