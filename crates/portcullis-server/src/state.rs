//! Shared state handed to every handler.

use crate::pages::Pages;
use metrics_exporter_prometheus::PrometheusHandle;
use portcullis_core::service::Portcullis;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct AppState(pub Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub core: Arc<Portcullis>,
    pub pages: Pages,
    /// Cookies get `Secure` when the issuer is https.
    pub secure_cookies: bool,
    pub metrics: Option<PrometheusHandle>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limits: crate::ratelimit::RateLimits,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
