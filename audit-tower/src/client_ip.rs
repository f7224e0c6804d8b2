//! Which address a request came from.
//!
//! In the flow request → **layer** → entry → sink → store → admin router, the layer records the
//! client address of every entry. The safe default is the TCP peer (axum's
//! [`ConnectInfo`](axum::extract::ConnectInfo)); forwarded headers are read only when a source is
//! configured, and then only past proxies you trust, because any client can send them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName};
use ipnet::IpNet;

/// Forwarded headers longer than this are treated as garbage: no real proxy chain is this long.
const MAX_HEADER_BYTES: usize = 4096;
/// Chains with more hops than this are treated as garbage.
const MAX_HOPS: usize = 32;

/// Where the client address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientIpSource {
    /// The TCP peer address from `ConnectInfo`. Serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` for it to be known.
    #[default]
    Peer,
    /// `X-Forwarded-For`, walked from the right past trusted proxies.
    XForwardedFor,
    /// RFC 7239 `Forwarded` (`for=`), walked from the right past trusted proxies.
    Forwarded,
}

/// How the layer finds the client address: a [`ClientIpSource`] and the proxies you trust.
///
/// With a forwarded-header source, the header is believed only when the peer itself is a trusted
/// proxy; then the chain is walked from the right (the hop nearest to you) and the first address
/// that is not a trusted proxy is the client. A header that is missing, malformed, oversized or
/// not UTF-8 falls back to the peer address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpConfig {
    source: ClientIpSource,
    trusted: Vec<IpNet>,
}

impl ClientIpConfig {
    /// The default: the peer address, no forwarded headers.
    pub fn peer() -> Self {
        Self::default()
    }

    /// Reads `source`, believing it only from the `trusted` proxy networks.
    ///
    /// # Warning
    /// Trusting a network that clients can send from (for example `0.0.0.0/0`) lets anyone
    /// choose the address recorded in the audit log.
    pub fn forwarded(source: ClientIpSource, trusted: impl IntoIterator<Item = IpNet>) -> Self {
        ClientIpConfig {
            source,
            trusted: trusted.into_iter().collect(),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request with these headers and extensions.
    pub fn client_ip(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical());
        let header = match self.source {
            ClientIpSource::Peer => return peer,
            ClientIpSource::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            ClientIpSource::Forwarded => http::header::FORWARDED,
        };
        let peer_ip = peer?;
        if !self.is_trusted(peer_ip) {
            return Some(peer_ip);
        }
        let hops = match joined(headers, &header).and_then(|text| match self.source {
            ClientIpSource::Forwarded => parse_forwarded(&text),
            _ => parse_x_forwarded_for(&text),
        }) {
            Some(hops) if !hops.is_empty() => hops,
            _ => return Some(peer_ip),
        };
        let client = hops
            .iter()
            .rev()
            .find(|ip| !self.is_trusted(**ip))
            .or(hops.first());
        Some(client.copied().unwrap_or(peer_ip))
    }
}

/// All lines of a header joined with commas, or `None` when absent, oversized or not UTF-8.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut text = String::new();
    for value in headers.get_all(name) {
        let part = value.to_str().ok()?;
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(part);
        if text.len() > MAX_HEADER_BYTES {
            return None;
        }
    }
    (!text.is_empty()).then_some(text)
}

fn parse_x_forwarded_for(text: &str) -> Option<Vec<IpAddr>> {
    let hops: Vec<&str> = text.split(',').map(str::trim).collect();
    if hops.len() > MAX_HOPS {
        return None;
    }
    hops.into_iter().map(parse_node).collect()
}

fn parse_forwarded(text: &str) -> Option<Vec<IpAddr>> {
    let elements: Vec<&str> = text.split(',').collect();
    if elements.len() > MAX_HOPS {
        return None;
    }
    elements
        .into_iter()
        .map(|element| {
            let value = element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then_some(value.trim())
            })?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            parse_node(value)
        })
        .collect()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`.
/// `unknown` and obfuscated identifiers are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ext(peer: &str) -> Extensions {
        let mut e = Extensions::new();
        e.insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        e
    }

    fn headers(name: &str, values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn proxies() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    }

    #[test]
    fn the_default_is_the_peer_and_ignores_forwarded_headers() {
        let h = headers("x-forwarded-for", &[b"6.6.6.6"]);
        assert_eq!(
            ClientIpConfig::peer().client_ip(&h, &ext("192.0.2.1:5000")),
            ip("192.0.2.1")
        );
        assert_eq!(
            ClientIpConfig::peer().client_ip(&h, &Extensions::new()),
            None
        );
    }

    #[test]
    fn a_spoofed_header_from_an_untrusted_peer_yields_the_peer() {
        let h = headers("x-forwarded-for", &[b"6.6.6.6"]);
        let no_trust = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, []);
        assert_eq!(
            no_trust.client_ip(&h, &ext("192.0.2.1:5000")),
            ip("192.0.2.1")
        );
        let trust = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        assert_eq!(trust.client_ip(&h, &ext("192.0.2.1:5000")), ip("192.0.2.1"));
    }

    #[test]
    fn the_chain_is_walked_from_the_right_past_trusted_proxies() {
        let cfg = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        // The client claims 6.6.6.6, the real client is 203.0.113.7, then two of our proxies.
        let h = headers("x-forwarded-for", &[b"6.6.6.6, 203.0.113.7", b"10.1.1.1"]);
        assert_eq!(cfg.client_ip(&h, &ext("10.9.9.9:443")), ip("203.0.113.7"));
        let all_trusted = headers("x-forwarded-for", &[b"10.2.2.2, 10.1.1.1"]);
        assert_eq!(
            cfg.client_ip(&all_trusted, &ext("10.9.9.9:443")),
            ip("10.2.2.2")
        );
        let ports = headers("x-forwarded-for", &[b"[2001:db8::5]:8080, 10.1.1.1:99"]);
        assert_eq!(
            cfg.client_ip(&ports, &ext("[fd00::1]:443")),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_understood() {
        let cfg = ClientIpConfig::forwarded(ClientIpSource::Forwarded, proxies());
        let h = headers("forwarded", &[b"for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.2;by=10.0.0.3"]);
        assert_eq!(
            cfg.client_ip(&h, &ext("10.0.0.1:1")),
            ip("2001:db8:cafe::17")
        );
        let unknown = headers("forwarded", &[b"for=unknown"]);
        assert_eq!(cfg.client_ip(&unknown, &ext("10.0.0.1:1")), ip("10.0.0.1"));
        let no_for = headers("forwarded", &[b"proto=https"]);
        assert_eq!(cfg.client_ip(&no_for, &ext("10.0.0.1:1")), ip("10.0.0.1"));
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        let cfg = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        let peer = ext("10.0.0.1:1");
        let long = "1.1.1.1,".repeat(1000);
        let many = vec!["1.1.1.1"; 40].join(",");
        let cases: Vec<Vec<u8>> = vec![
            b"not-an-ip".to_vec(),
            b"1.2.3.4, , 5.6.7.8".to_vec(),
            b"\xff\xfe".to_vec(),
            long.into_bytes(),
            many.into_bytes(),
            b"999.1.1.1".to_vec(),
            b"[::1".to_vec(),
            b",".to_vec(),
        ];
        for case in cases {
            let h = headers("x-forwarded-for", &[&case]);
            assert_eq!(
                cfg.client_ip(&h, &peer),
                ip("10.0.0.1"),
                "{:?}",
                String::from_utf8_lossy(&case)
            );
        }
        let v4_mapped = ext("[::ffff:192.0.2.9]:80");
        assert_eq!(
            ClientIpConfig::peer().client_ip(&HeaderMap::new(), &v4_mapped),
            ip("192.0.2.9")
        );
    }
}
