//! Who is acting, for which tenant, with which API key: the resolvers the layer consults.
//!
//! In the flow request → **layer** → entry → sink → store → admin router, the layer asks the
//! resolvers twice: over the request (headers and extensions) before the inner service runs,
//! and over the response after it ran. The second answer wins when there is one, so the layer
//! works whether authentication runs outside it (and put an [`Actor`] into the request
//! extensions) or inside it (and put one into the response extensions).
//!
//! With no resolver configured, the layer reads [`Actor`], [`TenantRef`] and [`ApiKeyRef`] values
//! straight from the extensions.

use audit_core::{Actor, ApiKeyRef, TenantRef};
use http::{Extensions, HeaderMap};
use sha2::{Digest, Sha256};

/// Finds the actor of a request. Implemented for closures
/// `Fn(&HeaderMap, &Extensions) -> Option<Actor>`.
///
/// Called with the request's headers and extensions, then with the response's.
pub trait ResolveActor: Send + Sync + 'static {
    /// The actor, if these headers and extensions tell.
    fn resolve_actor(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<Actor>;
}

impl<F> ResolveActor for F
where
    F: Fn(&HeaderMap, &Extensions) -> Option<Actor> + Send + Sync + 'static,
{
    fn resolve_actor(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<Actor> {
        self(headers, extensions)
    }
}

/// Finds the tenant (and team) of a request. Implemented for closures
/// `Fn(&HeaderMap, &Extensions) -> Option<TenantRef>`.
pub trait ResolveTenant: Send + Sync + 'static {
    /// The tenant, if these headers and extensions tell.
    fn resolve_tenant(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<TenantRef>;
}

impl<F> ResolveTenant for F
where
    F: Fn(&HeaderMap, &Extensions) -> Option<TenantRef> + Send + Sync + 'static,
{
    fn resolve_tenant(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<TenantRef> {
        self(headers, extensions)
    }
}

/// Maps the raw value of the API key header to the key's id and name. Implemented for closures
/// `Fn(&str) -> Option<ApiKeyRef>`.
///
/// Return `None` for a key you do not know: the layer then records only a short SHA-256
/// fingerprint of it, never the key. Lookups that need I/O belong in your authentication
/// middleware, which can put an [`ApiKeyRef`] into the extensions instead.
pub trait ResolveApiKey: Send + Sync + 'static {
    /// The key's id and name.
    fn resolve_api_key(&self, raw_key: &str) -> Option<ApiKeyRef>;
}

impl<F> ResolveApiKey for F
where
    F: Fn(&str) -> Option<ApiKeyRef> + Send + Sync + 'static,
{
    fn resolve_api_key(&self, raw_key: &str) -> Option<ApiKeyRef> {
        self(raw_key)
    }
}

/// `sha256:` and the first 12 hex digits of the key's SHA-256: enough to tell keys apart in the
/// log, far too little to recover or brute-force a random key from.
pub fn fingerprint(raw_key: &[u8]) -> String {
    fingerprint_text(&fingerprint_bytes(raw_key))
}

/// The six bytes of a key's SHA-256 that [`fingerprint`] shows.
pub(crate) fn fingerprint_bytes(raw_key: &[u8]) -> [u8; 6] {
    let digest = Sha256::digest(raw_key);
    let mut out = [0; 6];
    out.copy_from_slice(&digest[..6]);
    out
}

/// `sha256:` and the bytes as 12 lower-case hex digits.
pub(crate) fn fingerprint_text(bytes: &[u8; 6]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(19);
    out.push_str("sha256:");
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_short_stable_and_hide_the_key() {
        let a = fingerprint(b"sk_live_0123456789abcdef");
        assert_eq!(a.len(), 19);
        assert!(a.starts_with("sha256:"));
        assert_eq!(a, fingerprint(b"sk_live_0123456789abcdef"));
        assert_ne!(a, fingerprint(b"sk_live_0123456789abcdeg"));
        // The SHA-256 of "abc" begins ba7816bf8f01.
        assert_eq!(fingerprint(b"abc"), "sha256:ba7816bf8f01");
    }

    #[test]
    fn closures_are_resolvers() {
        let actor = |h: &HeaderMap, _: &Extensions| {
            h.get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(|u| Actor::user(u, u))
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-user", "u1".parse().unwrap());
        assert_eq!(
            actor.resolve_actor(&headers, &Extensions::new()),
            Some(Actor::user("u1", "u1"))
        );
        let key = |raw: &str| (raw == "k").then(|| ApiKeyRef::new("1", "deploy"));
        assert_eq!(
            key.resolve_api_key("k").unwrap().name.as_deref(),
            Some("deploy")
        );
        assert_eq!(key.resolve_api_key("x"), None);
    }
}
