//! The client's IP: the socket's peer, unless the peer is a configured trusted proxy (a
//! load balancer, Cloud Run's front end), in which case the nearest address in
//! `X-Forwarded-For` that is not itself a trusted proxy. A header a client can set is never
//! believed from anyone else.

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client of a request, put in its extensions by [`crate::audit::request_info`]: `0` is
/// the key limits and blocks count by (an IPv4 address, or an IPv6 /64 network, since one
/// host usually holds a whole /64), and the audit trail keeps the full address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIp(pub String);

/// The key an address is counted by: IPv4 as is, IPv6 by its /64 network.
#[must_use]
pub fn ip_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), 64)
            .map_or_else(|_| v6.to_string(), |n| n.trunc().to_string()),
    }
}

/// Parses `PORTCULLIS_TRUSTED_PROXIES`-style lists: IPs or CIDR ranges, comma-separated.
pub fn parse_proxies(list: &str) -> anyhow::Result<Vec<IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| anyhow::anyhow!("{s:?} is not an IP address or CIDR range"))
        })
        .collect()
}

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    proxies.iter().any(|net| net.contains(&ip))
}

/// Works out the client IP of `request` (see the module docs).
pub fn client_ip(request: &Request, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    Some(resolve(peer, request.headers(), proxies))
}

fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if !trusted(proxies, peer) {
        return canonical(peer);
    }
    // Walk from the nearest hop outwards and stop at the first one that is not a trusted
    // proxy. What lies further left was written by the client and is never read; a hop that
    // does not parse ends the walk at the last hop known good.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !trusted(proxies, ip) {
            break;
        }
    }
    canonical(client)
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// IPv4-mapped IPv6 addresses are written as IPv4, so one client has one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = parse_proxies("10.0.0.0/8, 192.0.2.7").unwrap();
        let spoofed = headers("203.0.113.9");
        // An untrusted peer: its header is ignored.
        assert_eq!(
            resolve("198.51.100.1".parse().unwrap(), &spoofed, &proxies),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        // A trusted proxy: the nearest untrusted hop, not a client-written prefix.
        let chain = headers("1.1.1.1, 203.0.113.9, 10.1.1.1");
        assert_eq!(
            resolve("192.0.2.7".parse().unwrap(), &chain, &proxies),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // No proxies configured: never believed.
        assert_eq!(
            resolve("10.0.0.1".parse().unwrap(), &spoofed, &[]),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        // Garbage written by the client does not turn the client into the proxy.
        let garbage = headers("x, 203.0.113.50:4711");
        assert_eq!(
            resolve("192.0.2.7".parse().unwrap(), &garbage, &proxies),
            "203.0.113.50".parse::<IpAddr>().unwrap()
        );
        let v6 = headers("[2001:db8::5]:443");
        assert_eq!(
            resolve("192.0.2.7".parse().unwrap(), &v6, &proxies),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        assert!(parse_proxies("nonsense").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// Whatever `X-Forwarded-For` holds, the client is the peer or one of the hops the
        /// header names, and an untrusted peer is always the client.
        #[test]
        fn any_forwarded_for_resolves_to_the_peer_or_a_named_hop(
            header_text in "[0-9a-f:.,\\[\\] ]{0,120}",
            peer_trusted in proptest::bool::ANY,
        ) {
            let proxies = parse_proxies("10.0.0.0/8").unwrap();
            let peer: IpAddr = if peer_trusted { "10.1.1.1" } else { "198.51.100.1" }.parse().unwrap();
            let mut h = HeaderMap::new();
            if let Ok(v) = header_text.parse() {
                h.insert("x-forwarded-for", v);
            }
            let client = resolve(peer, &h, &proxies);
            if !peer_trusted {
                proptest::prop_assert_eq!(client, peer);
            } else if client != peer {
                let named = header_text.split(',').filter_map(|hop| parse_hop(hop.trim())).map(canonical).any(|ip| ip == client);
                proptest::prop_assert!(named, "{client} is not in {header_text:?}");
            }
            // The key the limits count by is an address or a /64.
            let key = ip_key(client);
            proptest::prop_assert!(key.parse::<IpAddr>().is_ok() || key.ends_with("/64"));
        }
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(
            ip_key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(ip_key("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert_eq!(ip_key("192.0.2.1".parse().unwrap()), "192.0.2.1");
    }
}
