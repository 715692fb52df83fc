//! SQL implementation of `portcullis_core::store::Store` for SQLite and PostgreSQL.
//!
//! One implementation serves both backends through sqlx's `Any` driver: the schema keeps to
//! types both share (TEXT, BIGINT, BLOB/BYTEA), and every statement uses `$N` placeholders,
//! which both accept. Each backend has its own forward-only migrations, mirrored name for
//! name. Row structs stay private to this crate.
//!
//! `sql.rs` connects, keeps the pools and runs the migrations. Each capability trait of
//! `portcullis_core::store` is implemented in a file of its own, next to its statements:
//! `settings`, `clients` (with `apply`, a tenant file in one transaction), `roles`, `users`
//! (with `user_search`), `logins`, `sessions`, `grants`, `logs`,
//! `throttles` and `tickets`.

mod apply;
mod cascade;
mod clients;
mod grants;
mod logins;
mod logs;
mod roles;
mod rows;
mod sessions;
mod settings;
mod sql;
mod throttles;
mod tickets;
mod user_search;
mod users;

pub use sql::{Backend, SqlStore};

#[cfg(test)]
mod tests {
    /// Both backends' migrations carry the same file names, so every schema change lands
    /// on both.
    #[test]
    fn migrations_are_mirrored_name_for_name() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(root.join(dir))
                .expect("migrations directory")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let sqlite = names("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, names("postgres"));
    }
}
