//! Account security settings with Auth0's names: attack protection (brute force,
//! suspicious-IP throttling, breached passwords) and the database connection's password
//! policy. Each is one JSON document per tenant, written by `portcullis apply` and the
//! Management API, read per request.

pub mod admission;
pub mod breached;
pub mod policy;
pub mod throttle;

use crate::service::Portcullis;
use crate::store::StoreError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The settings document holding [`AttackProtection`].
pub const ATTACK_PROTECTION: &str = "attack_protection";
/// The settings document holding the database connection's [`policy::ConnectionOptions`].
pub const DATABASE_CONNECTION: &str = "database_connection";

/// Auth0's `attackProtection` (tenant.yaml) and `/api/v2/attack-protection/*`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AttackProtection {
    #[serde(rename = "bruteForceProtection")]
    pub brute_force: BruteForceProtection,
    #[serde(rename = "suspiciousIpThrottling")]
    pub suspicious_ip: SuspiciousIpThrottling,
    #[serde(rename = "breachedPasswordDetection")]
    pub breached_password: BreachedPasswordDetection,
}

impl AttackProtection {
    /// Checks the ranges Auth0 allows (the types cannot express them).
    pub fn validate(&self) -> Result<(), String> {
        let bf = self.brute_force.max_attempts;
        if !(1..=100).contains(&bf) {
            return Err("bruteForceProtection.max_attempts must be 1 to 100".to_owned());
        }
        let login = self.suspicious_ip.stage.pre_login;
        if !(1..=2_500).contains(&login.max_attempts)
            || !(34_560..=86_400_000).contains(&login.rate)
        {
            return Err(
                "suspiciousIpThrottling.stage.pre-login needs max_attempts 1 to 2500 and rate 34560 to 86400000 ms"
                    .to_owned(),
            );
        }
        let signup = self.suspicious_ip.stage.pre_user_registration;
        if !(1..=72_000).contains(&signup.max_attempts)
            || !(1_200..=86_400_000).contains(&signup.rate)
        {
            return Err(
                "suspiciousIpThrottling.stage.pre-user-registration needs max_attempts 1 to 72000 and rate 1200 to 86400000 ms"
                    .to_owned(),
            );
        }
        if self.brute_force.allowlist.len() > 100 || self.suspicious_ip.allowlist.len() > 100 {
            return Err("an allowlist holds at most 100 entries".to_owned());
        }
        if self.breached_password.method != "standard" {
            return Err("breachedPasswordDetection.method must be standard".to_owned());
        }
        for shield in &self.suspicious_ip.shields {
            if *shield == Shield::UserNotification {
                return Err(
                    "suspiciousIpThrottling.shields takes block and admin_notification".to_owned(),
                );
            }
        }
        for shield in &self.brute_force.shields {
            if *shield == Shield::AdminNotification {
                return Err(
                    "bruteForceProtection.shields takes block and user_notification".to_owned(),
                );
            }
        }
        Ok(())
    }
}

/// Blocks one IP from one account after `max_attempts` failed logins in a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BruteForceProtection {
    pub enabled: bool,
    /// `block` and/or `user_notification`.
    pub shields: Vec<Shield>,
    /// IPs and CIDR ranges never counted.
    pub allowlist: Vec<IpRange>,
    /// Always `count_per_identifier_and_ip` (Auth0's default mode).
    pub mode: BruteForceMode,
    pub max_attempts: u32,
}

impl Default for BruteForceProtection {
    fn default() -> Self {
        Self {
            enabled: true,
            shields: vec![Shield::Block, Shield::UserNotification],
            allowlist: Vec::new(),
            mode: BruteForceMode::CountPerIdentifierAndIp,
            max_attempts: 10,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BruteForceMode {
    CountPerIdentifierAndIp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shield {
    Block,
    UserNotification,
    AdminNotification,
}

/// Slows, then blocks, an IP that fails many logins across accounts or signs up too often.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SuspiciousIpThrottling {
    pub enabled: bool,
    /// `block` and/or `admin_notification`.
    pub shields: Vec<Shield>,
    pub allowlist: Vec<IpRange>,
    pub stage: IpStages,
}

impl Default for SuspiciousIpThrottling {
    fn default() -> Self {
        Self {
            enabled: true,
            shields: vec![Shield::AdminNotification, Shield::Block],
            allowlist: Vec::new(),
            stage: IpStages::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IpStages {
    /// Failed logins from one IP: `max_attempts` at once, one more every `rate` ms.
    #[serde(rename = "pre-login")]
    pub pre_login: StageLimit,
    /// Signups from one IP.
    #[serde(rename = "pre-user-registration")]
    pub pre_user_registration: StageLimit,
}

impl Default for IpStages {
    fn default() -> Self {
        Self {
            pre_login: StageLimit {
                max_attempts: 100,
                rate: 864_000,
            },
            pre_user_registration: StageLimit {
                max_attempts: 50,
                rate: 1_200,
            },
        }
    }
}

/// A bucket of `max_attempts` that refills one attempt every `rate` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageLimit {
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    #[schemars(range(min = 1))]
    pub rate: u64,
}

/// Checks logins and signups against the offline list of breached passwords.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BreachedPasswordDetection {
    pub enabled: bool,
    /// At login: `block` refuses the password until it is reset; `user_notification` emails
    /// the user a reset link; `admin_notification` is accepted and recorded only.
    pub shields: Vec<Shield>,
    pub admin_notification_frequency: Vec<String>,
    /// Always `standard` (the offline list).
    pub method: String,
    pub stage: BreachedStages,
}

impl Default for BreachedPasswordDetection {
    fn default() -> Self {
        Self {
            enabled: true,
            shields: vec![Shield::UserNotification],
            admin_notification_frequency: Vec::new(),
            method: "standard".to_owned(),
            stage: BreachedStages::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BreachedStages {
    /// At signup: `block` refuses a breached password.
    #[serde(rename = "pre-user-registration")]
    pub pre_user_registration: StageShields,
    /// At password change and reset: `block` refuses a breached password.
    #[serde(rename = "pre-change-password")]
    pub pre_change_password: StageShields,
}

impl Default for BreachedStages {
    fn default() -> Self {
        Self {
            pre_user_registration: StageShields {
                shields: vec![Shield::Block],
            },
            pre_change_password: StageShields {
                shields: vec![Shield::Block],
            },
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StageShields {
    pub shields: Vec<Shield>,
}

/// An IP address or CIDR range of an allow-list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct IpRange(ipnet::IpNet);

impl TryFrom<String> for IpRange {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        let v = v.trim();
        if let Ok(net) = v.parse::<ipnet::IpNet>() {
            return Ok(Self(net.trunc()));
        }
        v.parse::<std::net::IpAddr>()
            .map(|ip| Self(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("{v:?} is not an IP address or CIDR range"))
    }
}

impl From<IpRange> for String {
    fn from(v: IpRange) -> Self {
        if v.0.prefix_len() == v.0.max_prefix_len() {
            v.0.addr().to_string()
        } else {
            v.0.to_string()
        }
    }
}

/// Whether the client counted as `key` is on `allowlist`. `key` is what the limits count
/// by: an IPv4 address, or an IPv6 client's /64 network (`2001:db8:1:2::/64`), since one
/// host usually holds a whole /64. An entry matches when it and the client's network
/// overlap: a range that holds the /64, or an address or narrower range inside it. A key
/// that does not parse never matches.
#[must_use]
pub fn allowed(allowlist: &[IpRange], key: &str) -> bool {
    let network = key
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| key.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from));
    network.is_some_and(|net| {
        allowlist
            .iter()
            .any(|r| r.0.contains(&net) || net.contains(&r.0))
    })
}

impl Portcullis {
    /// The tenant's attack protection settings (Auth0's defaults until set).
    pub async fn attack_protection(&self) -> Result<AttackProtection, StoreError> {
        self.setting(ATTACK_PROTECTION).await
    }

    /// The database connection's options (Auth0's defaults until set).
    pub async fn connection_options(&self) -> Result<policy::ConnectionOptions, StoreError> {
        self.setting(DATABASE_CONNECTION).await
    }

    /// A settings document, or its default when none is stored.
    pub async fn setting<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, StoreError> {
        match self.cached_setting(name).await? {
            Some(value) => serde_json::from_value(value)
                .map_err(|e| StoreError::Corrupt(format!("setting {name}: {e}"))),
            None => Ok(T::default()),
        }
    }

    /// Stores a settings document.
    pub async fn save_setting<T: Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_value(value)
            .map_err(|e| StoreError::Corrupt(format!("setting {name}: {e}")))?;
        self.store
            .save_setting(self.tenant_id(), name, &value, self.now())
            .await?;
        self.config_changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_auth0() {
        let v = serde_json::to_value(AttackProtection::default()).unwrap();
        assert_eq!(v["bruteForceProtection"]["max_attempts"], 10);
        assert_eq!(
            v["bruteForceProtection"]["mode"],
            "count_per_identifier_and_ip"
        );
        assert_eq!(
            v["suspiciousIpThrottling"]["stage"]["pre-login"]["rate"],
            864_000
        );
        assert_eq!(
            v["suspiciousIpThrottling"]["stage"]["pre-user-registration"]["max_attempts"],
            50
        );
    }

    #[test]
    fn allowlist_takes_addresses_and_ranges() {
        let list: Vec<IpRange> =
            serde_json::from_value(serde_json::json!(["10.0.0.0/8", "2001:db8::1"])).unwrap();
        assert!(allowed(&list, "10.1.2.3"));
        assert!(allowed(&list, "2001:db8::1"));
        assert!(!allowed(&list, "192.0.2.1"));
        assert!(!allowed(&list, "not-an-ip"));
        // IPv6 clients are keyed by their /64: an entry inside it, or a range holding it,
        // allows the client.
        assert!(allowed(&list, "2001:db8::/64"));
        let wide: Vec<IpRange> =
            serde_json::from_value(serde_json::json!(["2001:db8:5::/48"])).unwrap();
        assert!(allowed(&wide, "2001:db8:5:1::/64"));
        assert!(!allowed(&wide, "2001:db8:6:1::/64"));
        assert!(!allowed(&list, "2001:db8:0:1::/64"));
        assert!(serde_json::from_value::<IpRange>(serde_json::json!("10.0.0.0/33")).is_err());
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            serde_json::json!(["10.0.0.0/8", "2001:db8::1"])
        );
    }
}
