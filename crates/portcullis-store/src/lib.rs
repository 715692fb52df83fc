//! SQL implementation of `portcullis_core::store::Store` for SQLite and PostgreSQL.
//!
//! One implementation serves both backends through sqlx's `Any` driver: the schema keeps to
//! types both share (TEXT, BIGINT, BLOB/BYTEA), and every statement uses `$N` placeholders,
//! which both accept. Each backend has its own forward-only migrations, mirrored name for
//! name. Row structs stay private to this crate.

mod cascade;
mod logs;
mod roles;
mod rows;
mod security;
mod sql;
mod users;

pub use sql::SqlStore;

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
