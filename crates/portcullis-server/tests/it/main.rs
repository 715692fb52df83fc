//! Integration tests, laid out like the URL tree. Each runs against SQLite and PostgreSQL.

mod harness;

mod apply;
mod apps;
mod attacks;
mod authorize;
mod binary;
mod consent;
mod discovery;
mod durability;
mod keys;
mod logout;
mod logs;
mod management;
mod oidc_client;
mod openapi;
mod panics;
mod rbac;
mod security;
mod token;
mod userinfo;
