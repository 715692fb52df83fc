//! The user search. It turns parsed terms into SQL with every value bound as a parameter;
//! only the JSON path syntax differs between backends.

use crate::rows::{self, backend_err};
use portcullis_core::management::query::{Field, Match, SortField, Term, UserSearch};
use portcullis_core::model::{User, normalize_email};
use portcullis_core::store::{Page, StoreError};
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
) -> Result<Page<User>, StoreError> {
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
    Ok(Page {
        items: users,
        total,
    })
}
