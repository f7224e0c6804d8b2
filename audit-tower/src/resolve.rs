//! Who is acting, for which tenant, with which API key: the resolvers the layer consults.
//!
//! The layer asks the resolvers twice: over the request (headers and extensions) before the
//! inner service runs, and over the response after it ran. The second answer wins when there
//! is one, so the layer works whether authentication runs outside it (and put an [`Actor`] into
//! the request extensions) or inside it (and put one into the response extensions).
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

/// How an unknown API key is recorded: `sha256:` and the first 12 hex digits of its SHA-256,
/// enough to tell keys apart in the log, far too little to recover or brute-force a random key
/// from. Kept inline, so recording it allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct KeyFingerprint([u8; KeyFingerprint::LEN]);

impl KeyFingerprint {
    const PREFIX: &'static [u8] = b"sha256:";
    const LEN: usize = Self::PREFIX.len() + 12;

    pub fn as_str(&self) -> &str {
        // ASCII by construction: the prefix and hex digits.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The fingerprint of `raw_key`.
pub(crate) fn fingerprint(raw_key: &[u8]) -> KeyFingerprint {
    let digest = Sha256::digest(raw_key);
    let mut text = [0; KeyFingerprint::LEN];
    let (prefix, digits) = text.split_at_mut(KeyFingerprint::PREFIX.len());
    prefix.copy_from_slice(KeyFingerprint::PREFIX);
    // Six bytes make exactly twelve digits, so this cannot fail.
    let _ = hex::encode_to_slice(&digest[..6], digits);
    KeyFingerprint(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_short_stable_and_hide_the_key() {
        let a = fingerprint(b"sk_live_0123456789abcdef");
        assert_eq!(a.as_str().len(), 19);
        assert!(a.as_str().starts_with("sha256:"));
        assert_eq!(
            a.as_str(),
            fingerprint(b"sk_live_0123456789abcdef").as_str()
        );
        assert_ne!(
            a.as_str(),
            fingerprint(b"sk_live_0123456789abcdeg").as_str()
        );
        // The SHA-256 of "abc" begins ba7816bf8f01.
        assert_eq!(fingerprint(b"abc").as_str(), "sha256:ba7816bf8f01");
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
