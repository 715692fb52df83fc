//! SQL implementation of `portcullis_core::store::Store` for SQLite and PostgreSQL.
//!
//! One implementation serves both backends through sqlx's `Any` driver: the schema keeps to
//! types both share (TEXT, BIGINT, BLOB/BYTEA), and every statement uses `$N` placeholders,
//! which both accept. Each backend has its own forward-only migrations, mirrored name for
//! name. Row structs stay private to this crate.

mod rows;
mod sql;

pub use sql::SqlStore;
