//! The coach's own SQLite database: logins in flight, sessions, and each user's accounts,
//! transactions and budgets. Every query about money is filtered by the user's `sub`.

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, migrate::Migrator};
use std::str::FromStr;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub balance_cents: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Transaction {
    pub id: i64,
    pub account: String,
    pub day: String,
    pub description: String,
    pub category: String,
    pub amount_cents: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Budget {
    pub category: String,
    pub limit_cents: i64,
}

/// A signed-in user, read from the session table.
#[derive(Clone, Debug)]
pub struct Session {
    pub sub: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub access_token: String,
    pub csrf: String,
}

/// A login in flight.
#[derive(Clone, Debug)]
pub struct LoginRequest {
    pub verifier: String,
    pub nonce: String,
}

impl Db {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    pub async fn save_login_request(
        &self,
        state_hash: &str,
        req: &LoginRequest,
        now: i64,
    ) -> sqlx::Result<()> {
        // Requests older than ten minutes are of no use any more.
        sqlx::query("DELETE FROM login_requests WHERE created_at < ?")
            .bind(now - 600)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO login_requests (state_hash, verifier, nonce, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(state_hash)
        .bind(&req.verifier)
        .bind(&req.nonce)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Takes a login request out (single use); `None` if unknown or older than ten minutes.
    pub async fn take_login_request(
        &self,
        state_hash: &str,
        now: i64,
    ) -> sqlx::Result<Option<LoginRequest>> {
        let row = sqlx::query(
            "DELETE FROM login_requests WHERE state_hash = ? AND created_at >= ? \
             RETURNING verifier, nonce",
        )
        .bind(state_hash)
        .bind(now - 600)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| LoginRequest {
            verifier: r.get("verifier"),
            nonce: r.get("nonce"),
        }))
    }

    pub async fn create_session(
        &self,
        id_hash: &str,
        session: &Session,
        expires_at: i64,
    ) -> sqlx::Result<()> {
        // Ended sessions (and their access tokens) go as new ones come.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(expires_at - 8 * 3600)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, sub, name, email, roles, access_token, csrf, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(&session.sub)
        .bind(&session.name)
        .bind(&session.email)
        .bind(serde_json::to_string(&session.roles).unwrap_or_default())
        .bind(&session.access_token)
        .bind(&session.csrf)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn find_session(&self, id_hash: &str, now: i64) -> sqlx::Result<Option<Session>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id_hash = ? AND expires_at > ?")
            .bind(id_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Session {
            sub: r.get("sub"),
            name: r.get("name"),
            email: r.get("email"),
            roles: serde_json::from_str(r.get::<&str, _>("roles")).unwrap_or_default(),
            access_token: r.get("access_token"),
            csrf: r.get("csrf"),
        }))
    }

    pub async fn delete_session(&self, id_hash: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn accounts(&self, sub: &str) -> sqlx::Result<Vec<Account>> {
        let rows = sqlx::query("SELECT * FROM accounts WHERE sub = ? ORDER BY id")
            .bind(sub)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Account {
                id: r.get("id"),
                name: r.get("name"),
                kind: r.get("kind"),
                balance_cents: r.get("balance_cents"),
            })
            .collect())
    }

    /// The user's transactions from `since` (an ISO date), newest first.
    pub async fn transactions(&self, sub: &str, since: &str) -> sqlx::Result<Vec<Transaction>> {
        let rows = sqlx::query(
            "SELECT t.id, a.name AS account, t.day, t.description, t.category, t.amount_cents \
             FROM transactions t JOIN accounts a ON a.id = t.account_id \
             WHERE t.sub = ? AND t.day >= ? ORDER BY t.day DESC, t.id DESC",
        )
        .bind(sub)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Transaction {
                id: r.get("id"),
                account: r.get("account"),
                day: r.get("day"),
                description: r.get("description"),
                category: r.get("category"),
                amount_cents: r.get("amount_cents"),
            })
            .collect())
    }

    pub async fn budgets(&self, sub: &str) -> sqlx::Result<Vec<Budget>> {
        let rows = sqlx::query("SELECT * FROM budgets WHERE sub = ? ORDER BY category")
            .bind(sub)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Budget {
                category: r.get("category"),
                limit_cents: r.get("limit_cents"),
            })
            .collect())
    }

    /// Counts for the admin page: users with data, accounts and transactions.
    pub async fn overview(&self) -> sqlx::Result<(i64, i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(DISTINCT sub) FROM accounts) AS users, \
             (SELECT COUNT(*) FROM accounts) AS accounts, \
             (SELECT COUNT(*) FROM transactions) AS transactions",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((
            row.get("users"),
            row.get("accounts"),
            row.get("transactions"),
        ))
    }

    /// Gives a new user sample accounts, this month's transactions and budgets (once).
    pub async fn seed_if_new(&self, sub: &str, month: &str) -> sqlx::Result<bool> {
        // IMMEDIATE takes the write lock first, so two first logins at once do not both seed.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists = sqlx::query("SELECT 1 FROM accounts WHERE sub = ? LIMIT 1")
            .bind(sub)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            return Ok(false);
        }
        let mut ids = Vec::new();
        for (name, kind, balance) in [
            ("Everyday checking", "checking", 245_000),
            ("Rainy-day savings", "savings", 820_000),
            ("Credit card", "credit", -32_040),
        ] {
            let id: i64 = sqlx::query(
                "INSERT INTO accounts (sub, name, kind, balance_cents) VALUES (?, ?, ?, ?) RETURNING id",
            )
            .bind(sub)
            .bind(name)
            .bind(kind)
            .bind(balance)
            .fetch_one(&mut *tx)
            .await?
            .get("id");
            ids.push(id);
        }
        let (checking, card) = (ids[0], ids[2]);
        let sample: &[(i64, &str, &str, &str, i64)] = &[
            (checking, "01", "Salary", "Income", 420_000),
            (checking, "01", "Rent", "Housing", -120_000),
            (checking, "02", "Electricity and water", "Utilities", -9_650),
            (card, "03", "Supermarket", "Groceries", -8_734),
            (card, "04", "Dinner with friends", "Dining", -6_420),
            (card, "05", "Metro pass", "Transport", -7_500),
            (card, "06", "Cinema", "Entertainment", -2_800),
            (card, "07", "Supermarket", "Groceries", -11_205),
            (card, "08", "Lunch", "Dining", -1_850),
            (card, "09", "Takeaway", "Dining", -3_290),
            (card, "10", "Concert tickets", "Entertainment", -8_900),
            (checking, "11", "Internet", "Utilities", -4_500),
            (card, "12", "Brunch", "Dining", -4_760),
            (card, "13", "Farmers market", "Groceries", -4_320),
            (card, "14", "Taxi", "Transport", -2_640),
            (card, "15", "Coffee beans", "Dining", -1_990),
        ];
        for (account, day, description, category, amount) in sample {
            sqlx::query(
                "INSERT INTO transactions (sub, account_id, day, description, category, amount_cents) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(sub)
            .bind(account)
            .bind(format!("{month}-{day}"))
            .bind(description)
            .bind(category)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
        }
        for (category, limit) in [
            ("Dining", 15_000),
            ("Entertainment", 10_000),
            ("Groceries", 40_000),
            ("Housing", 120_000),
            ("Transport", 12_000),
            ("Utilities", 18_000),
        ] {
            sqlx::query("INSERT INTO budgets (sub, category, limit_cents) VALUES (?, ?, ?)")
                .bind(sub)
                .bind(category)
                .bind(limit)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
