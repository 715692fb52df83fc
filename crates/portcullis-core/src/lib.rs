//! Portcullis's domain: records, the storage contract, and the services that hold the rules
//! of OAuth 2, OpenID Connect and tenant configuration. Nothing here names HTTP, SQL or a
//! template engine.

pub mod accounts;
pub mod apply;
pub mod audit;
pub mod clock;
pub mod config_cache;
pub mod error;
pub mod keys;
pub mod log_stream;
pub mod management;
pub mod model;
pub mod oauth;
pub mod passwords;
pub mod protection;
pub mod service;
pub mod store;
pub mod tenant_file;
