//! Which address a request came from. The safe default is the TCP peer (axum's
//! [`ConnectInfo`](axum::extract::ConnectInfo)); forwarded headers are read only when a source is
//! configured, and then only past proxies you trust, because any client can send them.
//!
//! `Forwarded` (RFC 7239) is parsed here rather than with a crate: the ones published split the
//! header on commas inside quoted strings and parse it whole from the left, where a client
//! writes what it likes (see `docs/decisions`).

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName};
use ipnet::IpNet;

/// A hop longer than this is garbage: no address, even with a port or RFC 7239 parameters,
/// comes near it.
const MAX_HOP_BYTES: usize = 256;
/// How many hops are read from the right before giving up: no real chain of trusted proxies is
/// this long.
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
/// that is not a trusted proxy is the client. When the walk meets a hop that is missing,
/// malformed, oversized or not UTF-8 before it finds that address, or has read 32 trusted hops,
/// the peer address is recorded. Whatever lies left of the client's address is never read:
/// only the client wrote it, so junk there cannot hide the address your proxies saw.
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
        let forwarded = self.source == ClientIpSource::Forwarded;
        // Hops from the right: the last line's last element first.
        let mut hops = headers
            .get_all(&header)
            .iter()
            .rev()
            .flat_map(|line| HopsFromRight {
                rest: Some(line.as_bytes()),
                quoted: forwarded,
            });
        let mut farthest_trusted = None;
        for _ in 0..MAX_HOPS {
            let Some(hop) = hops.next() else {
                // Every hop is a trusted proxy: the farthest one is as near the client as the
                // chain goes.
                return Some(farthest_trusted.unwrap_or(peer_ip));
            };
            let Some(ip) = parse_hop(hop, forwarded) else {
                return Some(peer_ip);
            };
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            farthest_trusted = Some(ip);
        }
        Some(peer_ip)
    }
}

/// The comma-separated elements of one header line, right to left. With `quoted`, a comma
/// inside a quoted string (`by="a,b"` in `Forwarded`) does not separate elements.
struct HopsFromRight<'a> {
    rest: Option<&'a [u8]>,
    quoted: bool,
}

impl<'a> Iterator for HopsFromRight<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let mut in_quotes = false;
        for (i, byte) in rest.iter().enumerate().rev() {
            match byte {
                b'"' if self.quoted => in_quotes = !in_quotes,
                b',' if !in_quotes => {
                    self.rest = Some(&rest[..i]);
                    return Some(&rest[i + 1..]);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(rest)
    }
}

/// The address of one hop: an `X-Forwarded-For` element, or the `for=` of a `Forwarded`
/// element; `None` when it is not one.
fn parse_hop(hop: &[u8], forwarded: bool) -> Option<IpAddr> {
    if hop.len() > MAX_HOP_BYTES {
        return None;
    }
    let text = std::str::from_utf8(hop).ok()?.trim();
    if !forwarded {
        return parse_node(text);
    }
    let value = text.split(';').find_map(|pair| {
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
    fn junk_left_of_the_client_cannot_hide_it() {
        // The client writes whatever it likes; your proxies append the address they saw.
        let xff = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        let peer = ext("10.0.0.1:1");
        let many = format!("{}, 203.0.113.7", vec!["junk"; 40].join(","));
        let huge = format!("{}, 203.0.113.7", "x".repeat(100_000));
        for client_wrote in [b"x".to_vec(), b"1.2.3.4, , ".to_vec(), b"\xff\xfe".to_vec()] {
            let mut value = client_wrote.clone();
            value.extend_from_slice(b", 203.0.113.7");
            let h = headers("x-forwarded-for", &[&value]);
            assert_eq!(xff.client_ip(&h, &peer), ip("203.0.113.7"), "{value:?}");
            // The same with the client's header on a line of its own.
            let h = headers("x-forwarded-for", &[&client_wrote, b"203.0.113.7"]);
            assert_eq!(xff.client_ip(&h, &peer), ip("203.0.113.7"), "{value:?}");
        }
        for value in [many, huge] {
            let h = headers("x-forwarded-for", &[value.as_bytes()]);
            assert_eq!(xff.client_ip(&h, &peer), ip("203.0.113.7"));
        }
        let fwd = ClientIpConfig::forwarded(ClientIpSource::Forwarded, proxies());
        let h = headers("forwarded", &[b"proto=http, for=203.0.113.7;proto=https"]);
        assert_eq!(fwd.client_ip(&h, &peer), ip("203.0.113.7"));
        let h = headers("forwarded", &[b"for=\"[::1, for=203.0.113.7, for=10.0.0.2"]);
        assert_eq!(fwd.client_ip(&h, &peer), ip("203.0.113.7"));
        // A comma inside a quoted value does not split the element.
        let h = headers("forwarded", &[b"for=203.0.113.7;by=\"a,b\""]);
        assert_eq!(fwd.client_ip(&h, &peer), ip("203.0.113.7"));
        let h = headers(
            "forwarded",
            &[b"for=198.51.100.1, for=203.0.113.7;by=\"x,y\", for=10.0.0.2"],
        );
        assert_eq!(fwd.client_ip(&h, &peer), ip("203.0.113.7"));
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        let cfg = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        let peer = ext("10.0.0.1:1");
        let long = "1.1.1.1,".repeat(1000);
        let trusted_only = vec!["10.1.1.1"; 40].join(",");
        let cases: Vec<Vec<u8>> = vec![
            b"not-an-ip".to_vec(),
            b"203.0.113.7, , 10.1.1.1".to_vec(),
            b"203.0.113.7, garbage, 10.1.1.1".to_vec(),
            b"\xff\xfe".to_vec(),
            b"203.0.113.7, \xff, 10.1.1.1".to_vec(),
            long.into_bytes(),
            trusted_only.into_bytes(),
            format!("{}, 10.1.1.1", "9".repeat(300)).into_bytes(),
            b"999.1.1.1".to_vec(),
            b"[::1".to_vec(),
            b",".to_vec(),
            b"".to_vec(),
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
