//! User writes and the user search. The search turns parsed terms into SQL with every
//! value bound as a parameter; only the JSON path syntax differs between backends.

use crate::rows::{self, backend_err, to_json};
use portcullis_core::management::query::{Field, Match, SortField, Term, UserSearch};
use portcullis_core::model::{Timestamp, User, normalize_email};
use portcullis_core::store::StoreError;
use sqlx::{AnyPool, Row};

/// How the two backends read a path inside a JSON document kept as TEXT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The JSON text of the value at a path (`"gold"`, `5`, `true`), or NULL.
    fn json_at(self, column: &str, path: &str) -> String {
        match self {
            Self::Sqlite => format!("({column} -> {path})"),
            Self::Postgres => format!("(({column})::jsonb #> ({path})::text[])::text"),
        }
    }

    /// The value at a path as plain text, or NULL.
    fn text_at(self, column: &str, path: &str) -> String {
        match self {
            Self::Sqlite => format!("({column} ->> {path})"),
            Self::Postgres => format!("(({column})::jsonb #>> ({path})::text[])"),
        }
    }

    fn path_param(self, path: &[String]) -> String {
        match self {
            Self::Sqlite => format!("$.{}", path.join(".")),
            Self::Postgres => format!("{{{}}}", path.join(",")),
        }
    }
}

fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

struct Sql {
    text: String,
    binds: Vec<String>,
}

impl Sql {
    fn bind(&mut self, value: String) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }
}

fn condition(sql: &mut Sql, dialect: Dialect, term: &Term) -> String {
    match term {
        Term::Field { field, value } => {
            let column = match field {
                Field::Email => "email_normalized",
                Field::Name => "LOWER(name)",
                Field::Nickname => "LOWER(nickname)",
                Field::UserId => "user_id",
                Field::EmailVerified => "email_verified",
                Field::Blocked => "blocked",
            };
            match (field, value) {
                (Field::EmailVerified | Field::Blocked, Match::Exact(v)) => {
                    format!("{column} = {}", if v == "true" { 1 } else { 0 })
                }
                (Field::UserId, Match::Exact(v)) => format!("{column} = {}", sql.bind(v.clone())),
                (Field::UserId, Match::Prefix(p)) => {
                    format!("{column} LIKE {} ESCAPE '\\'", sql.bind(like_prefix(p)))
                }
                (_, Match::Exact(v)) => {
                    let v = if *field == Field::Email {
                        normalize_email(v)
                    } else {
                        v.to_lowercase()
                    };
                    format!("{column} = {}", sql.bind(v))
                }
                (_, Match::Prefix(p)) => {
                    format!("{column} LIKE {} ESCAPE '\\'", sql.bind(like_prefix(p)))
                }
                (_, Match::Present) => "1 = 1".to_owned(),
            }
        }
        Term::Metadata {
            column,
            path,
            value,
        } => {
            let path = sql.bind(dialect.path_param(path));
            let column = column.as_str();
            match value {
                Match::Exact(v) => {
                    let quoted = sql.bind(serde_json::Value::String(v.clone()).to_string());
                    let raw = sql.bind(v.clone());
                    format!("{} IN ({quoted}, {raw})", dialect.json_at(column, &path))
                }
                Match::Prefix(p) => format!(
                    "LOWER({}) LIKE {} ESCAPE '\\'",
                    dialect.text_at(column, &path),
                    sql.bind(like_prefix(p))
                ),
                Match::Present => format!("{} IS NOT NULL", dialect.json_at(column, &path)),
            }
        }
        Term::Any(value) => {
            let p = match value {
                Match::Exact(v) | Match::Prefix(v) => like_prefix(v),
                Match::Present => "%".to_owned(),
            };
            let p = sql.bind(p);
            format!("(email_normalized LIKE {p} ESCAPE '\\' OR LOWER(name) LIKE {p} ESCAPE '\\')")
        }
    }
}

pub(crate) async fn search(
    pool: &AnyPool,
    dialect: Dialect,
    tenant_id: &str,
    search: &UserSearch,
) -> Result<(Vec<User>, i64), StoreError> {
    let mut sql = Sql {
        text: String::new(),
        binds: Vec::new(),
    };
    let tenant = sql.bind(tenant_id.to_owned());
    let mut conditions = vec![format!("tenant_id = {tenant}")];
    for term in &search.terms {
        conditions.push(condition(&mut sql, dialect, term));
    }
    let filter = conditions.join(" AND ");
    let (column, desc) = search.sort;
    let order = match column {
        SortField::Email => "email_normalized",
        SortField::Name => "name",
        SortField::CreatedAt => "created_at",
        SortField::UpdatedAt => "updated_at",
        SortField::LastLogin => "last_login",
        SortField::LoginsCount => "logins_count",
        SortField::UserId => "user_id",
    };
    let dir = if desc { "DESC" } else { "ASC" };
    sql.text = format!(
        "SELECT * FROM users WHERE {filter} ORDER BY {order} {dir}, user_id ASC LIMIT {} OFFSET {}",
        search.limit.clamp(1, 1000),
        search.offset.max(0)
    );
    let count_text = format!("SELECT COUNT(*) AS n FROM users WHERE {filter}");

    // Every value is a bound parameter; the text holds only fixed fragments and $N markers.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.text.clone()));
    let mut count = sqlx::query(sqlx::AssertSqlSafe(count_text));
    for b in &sql.binds {
        query = query.bind(b.clone());
        count = count.bind(b.clone());
    }
    let users = query
        .fetch_all(pool)
        .await
        .map_err(backend_err)?
        .iter()
        .map(rows::user)
        .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = count
        .fetch_one(pool)
        .await
        .map_err(backend_err)?
        .try_get("n")
        .map_err(backend_err)?;
    Ok((users, total))
}

pub(crate) async fn insert(pool: &AnyPool, u: &User) -> Result<(), StoreError> {
    insert_rows(pool, std::slice::from_ref(u), crate::rows::is_sqlite(pool)).await
}

/// Rows per `INSERT` of a bulk import (17 parameters each, under both backends' limits).
const ROWS_PER_INSERT: usize = 64;

pub(crate) async fn insert_many(pool: &AnyPool, users: &[User]) -> Result<(), StoreError> {
    let sqlite = crate::rows::is_sqlite(pool);
    let mut tx = crate::rows::begin_write(pool).await?;
    for chunk in users.chunks(ROWS_PER_INSERT) {
        insert_rows(&mut *tx, chunk, sqlite).await?;
    }
    tx.commit().await.map_err(backend_err)
}

/// One `INSERT` of every user of `chunk`.
async fn insert_rows<'e, E>(executor: E, chunk: &[User], sqlite: bool) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "INSERT INTO users (tenant_id, user_id, connection, email, email_normalized, \
         email_verified, name, nickname, picture, password_hash, user_metadata, app_metadata, \
         blocked, created_at, updated_at, last_login, logins_count) VALUES {}",
        crate::rows::values_list(chunk.len(), 17, sqlite)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for u in chunk {
        query = bind_profile(
            query
                .bind(&u.tenant_id)
                .bind(&u.user_id)
                .bind(&u.connection),
            u,
        )
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.last_login)
        .bind(u.logins_count);
    }
    query
        .execute(executor)
        .await
        .map(|_| ())
        .map_err(backend_err)
}

pub(crate) async fn update(pool: &AnyPool, u: &User) -> Result<(), StoreError> {
    let query = sqlx::query(
        "UPDATE users SET email = $3, email_normalized = $4, email_verified = $5, name = $6, \
         nickname = $7, picture = $8, password_hash = $9, user_metadata = $10, \
         app_metadata = $11, blocked = $12, updated_at = $13 \
         WHERE tenant_id = $1 AND user_id = $2",
    );
    bind_profile(query.bind(&u.tenant_id).bind(&u.user_id), u)
        .bind(u.updated_at)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(backend_err)
}

pub(crate) async fn delete(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
) -> Result<bool, StoreError> {
    crate::cascade::delete_cascade(
        pool,
        tenant_id,
        user_id,
        &[
            "DELETE FROM access_tokens WHERE tenant_id = $1 AND grant_id IN \
             (SELECT id FROM grants WHERE tenant_id = $1 AND user_id = $2)",
            "DELETE FROM authorization_codes WHERE tenant_id = $1 AND grant_id IN \
             (SELECT id FROM grants WHERE tenant_id = $1 AND user_id = $2)",
            "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM grants WHERE tenant_id = $1 AND user_id = $2",
            // A login transaction's id stays recorded, finished, until it expires, so the
            // sealed login page it came from stays spent; what named the user goes.
            "UPDATE login_transactions SET user_id = NULL, session_id = NULL, request = '{}', \
             completed_at = COALESCE(completed_at, created_at) \
             WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM consents WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM user_permissions WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM users WHERE tenant_id = $1 AND user_id = $2",
        ],
    )
    .await
}

pub(crate) async fn end_sessions(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut tx = crate::rows::begin_write(pool).await?;
    for statement in [
        "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        "UPDATE grants SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    ] {
        sqlx::query(statement)
            .bind(tenant_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
    }
    tx.commit().await.map_err(backend_err)
}

/// Binds the ten columns a user's profile fills, in this order: `email`,
/// `email_normalized`, `email_verified`, `name`, `nickname`, `picture`, `password_hash`,
/// `user_metadata`, `app_metadata`, `blocked`. Inserts, updates and the tenant file's
/// upserts all write them.
pub(crate) fn bind_profile<'q>(
    query: crate::rows::AnyQuery<'q>,
    u: &'q User,
) -> crate::rows::AnyQuery<'q> {
    query
        .bind(&u.email)
        .bind(normalize_email(&u.email))
        .bind(i64::from(u.email_verified))
        .bind(&u.name)
        .bind(&u.nickname)
        .bind(&u.picture)
        .bind(u.password_hash.as_deref())
        .bind(to_json(&u.user_metadata))
        .bind(to_json(&u.app_metadata))
        .bind(i64::from(u.blocked))
}
