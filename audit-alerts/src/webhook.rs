//! [`WebhookNotifier`]: alerts as signed JSON `POST`s, retried with exponential backoff; and
//! [`signature`] / [`verify`], the signature scheme for receivers.
//!
//! # The signature
//!
//! Each request carries two headers:
//!
//! - `X-Audit-Timestamp`: when the request was signed, in whole seconds since the Unix epoch
//!   (`1767225600`);
//! - `X-Audit-Signature`: `sha256=` followed by the lower-case hex of
//!   HMAC-SHA256(secret, timestamp + `"."` + body), where timestamp is the header's text and
//!   body the request's bytes exactly as received.
//!
//! A receiver recomputes the HMAC over the raw body (before any JSON parsing), compares it in
//! constant time, and refuses a timestamp further than a few minutes from its own clock, so a
//! captured request cannot be replayed later: the timestamp is inside the signed text, and
//! changing it breaks the signature. Each attempt is signed anew, so a retry after a backoff is
//! not refused as stale. The body's `id` is the same on every attempt; a receiver that must act
//! once per alert remembers the ids it has handled.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::alert::Alert;
use crate::error::{AlertError, NotifyError};
use crate::notify::Notifier;

/// The header holding the signature, `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-audit-signature";
/// The header holding the signing time, in seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "x-audit-timestamp";

type HmacSha256 = Hmac<Sha256>;

/// The `X-Audit-Signature` value of `body` sent at `timestamp` (the `X-Audit-Timestamp`
/// text): `sha256=` and the hex HMAC-SHA256 of `timestamp.body` under `secret`.
///
/// ```
/// let signed = audit_alerts::signature(b"secret", "1767225600", br#"{"rule":"r"}"#);
/// assert!(signed.starts_with("sha256="));
/// assert_eq!(signed.len(), "sha256=".len() + 64);
/// ```
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = keyed(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `signature` (the `X-Audit-Signature` header) signs `body` sent at `timestamp` (the
/// `X-Audit-Timestamp` header) under `secret`, compared in constant time, and the timestamp is
/// within `tolerance` of this machine's clock.
///
/// ```
/// use std::time::Duration;
///
/// let now = chrono::Utc::now().timestamp().to_string();
/// let body = br#"{"rule":"r"}"#;
/// let signed = audit_alerts::signature(b"secret", &now, body);
/// let five_minutes = Duration::from_secs(300);
/// assert!(audit_alerts::verify(b"secret", &now, body, &signed, five_minutes));
/// assert!(!audit_alerts::verify(b"other", &now, body, &signed, five_minutes));
/// assert!(!audit_alerts::verify(b"secret", "1000000000", body, &signed, five_minutes));
/// ```
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    tolerance: Duration,
) -> bool {
    let Ok(sent) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = chrono::Utc::now().timestamp();
    if now.abs_diff(sent) > tolerance.as_secs() {
        return false;
    }
    let Some(Ok(expected)) = signature.strip_prefix("sha256=").map(hex::decode) else {
        return false;
    };
    let mut mac = keyed(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length, so this never fails; the fallback only satisfies the type.
    HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

/// Posts each alert as JSON (the [`Alert`]'s serde form) to a URL, signed with a shared secret
/// (see the [module docs](crate::webhook) for the scheme).
///
/// An attempt that gets no answer within the [`timeout`](Self::timeout), a connection error, or
/// a `408`, `425`, `429` or `5xx` is retried after `base_delay`, then twice that, and so on (at
/// most [`max_delay`](Self::max_delay)), up to [`attempts`](Self::attempts) requests in all.
/// Another status (a `401` for a wrong secret, a redirect, which is not followed) fails at once:
/// sending it again would not help. Every attempt and every failed one is counted
/// ([`stats`](Self::stats)).
///
/// ```
/// use std::time::Duration;
/// use audit_alerts::WebhookNotifier;
///
/// let webhook = WebhookNotifier::new("http://127.0.0.1:9000/alerts", "a shared secret")?
///     .attempts(5)
///     .base_delay(Duration::from_millis(500))
///     .timeout(Duration::from_secs(5));
/// assert_eq!(webhook.stats().attempts, 0);
/// # Ok::<(), audit_alerts::AlertError>(())
/// ```
#[derive(Clone)]
pub struct WebhookNotifier {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Arc<[u8]>,
    attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    timeout: Duration,
    counters: Arc<WebhookCounters>,
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("url", &self.url.as_str())
            .field("secret", &"[REDACTED]")
            .field("attempts", &self.attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Default)]
struct WebhookCounters {
    attempts: AtomicU64,
    failed_attempts: AtomicU64,
    delivered: AtomicU64,
    given_up: AtomicU64,
}

/// What a [`WebhookNotifier`] has done since it was made (its clones share the counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WebhookStats {
    /// Requests sent.
    pub attempts: u64,
    /// Requests that failed: no answer in time, a connection error, or a status other than 2xx.
    pub failed_attempts: u64,
    /// Alerts the receiver took (answered 2xx).
    pub delivered: u64,
    /// Alerts given up on: the last attempt failed, or the receiver refused one for good.
    pub given_up: u64,
}

impl WebhookNotifier {
    /// A webhook to `url` (`http://`, or `https://` with the crate's `rustls` feature), signed
    /// with `secret`: 5 attempts, 500 ms base delay, 30 s maximum delay, 10 s per request.
    ///
    /// Refuses a URL that does not parse or is not HTTP(S), and an empty secret.
    pub fn new(url: &str, secret: impl AsRef<[u8]>) -> Result<Self, AlertError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| AlertError::Webhook(format!("{url:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AlertError::Webhook(format!(
                "{:?} is not an http:// or https:// URL",
                url.as_str()
            )));
        }
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Err(AlertError::Webhook("the signing secret is empty".into()));
        }
        let client = reqwest::Client::builder()
            // A redirect would take the signed alert somewhere it was not addressed to.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("audit-alerts/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertError::Webhook(e.to_string()))?;
        Ok(WebhookNotifier {
            client,
            url,
            secret: secret.into(),
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            counters: Arc::default(),
        })
    }

    /// Sends each alert at most `attempts` times (at least once).
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Waits `delay` after the first failed attempt, doubling it after each further one.
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Never waits longer than `delay` between two attempts.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Gives each request `timeout` to be answered, from connecting to the end of the answer.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The counts so far.
    pub fn stats(&self) -> WebhookStats {
        let c = &self.counters;
        WebhookStats {
            attempts: c.attempts.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            given_up: c.given_up.load(Ordering::Relaxed),
        }
    }

    /// The wait after failed attempt number `attempt` (1 for the first).
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// One signed request; `Ok(None)` when the receiver took it, else the status or failure.
    async fn send(&self, body: &[u8]) -> Result<Option<u16>, reqwest::Error> {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signed = signature(&self.secret, &timestamp, body);
        let response = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signed)
            .body(body.to_vec())
            .send()
            .await?;
        let status = response.status();
        // Read the answer to its end, so the connection can be reused.
        let _ = response.bytes().await;
        Ok((!status.is_success()).then_some(status.as_u16()))
    }
}

/// Whether a status may be answered differently later.
fn transient(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500..=599)
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(alert)?;
        let counters = &self.counters;
        let mut attempt = 0;
        let failure = loop {
            attempt += 1;
            counters.attempts.fetch_add(1, Ordering::Relaxed);
            let failure = match self.send(&body).await {
                Ok(None) => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Some(status)) => NotifyError::Status {
                    status,
                    attempts: attempt,
                },
                Err(e) => NotifyError::Unreachable {
                    attempts: attempt,
                    source: Box::new(e),
                },
            };
            counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
            let retry = match &failure {
                NotifyError::Status { status, .. } => transient(*status),
                _ => true,
            };
            if !retry || attempt >= self.attempts {
                break failure;
            }
            tracing::debug!(
                target: "audit::alert",
                alert_id = %alert.id,
                attempt,
                error = %failure,
                "alert webhook failed; retrying"
            );
            tokio::time::sleep(self.delay(attempt)).await;
        };
        counters.given_up.fetch_add(1, Ordering::Relaxed);
        Err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_its_maximum() -> Result<(), AlertError> {
        let webhook = WebhookNotifier::new("http://127.0.0.1:1/", "s")?
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(700));
        let delays: Vec<u128> = (1..=6).map(|a| webhook.delay(a).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 700, 700, 700]);
        assert_eq!(webhook.delay(200), Duration::from_millis(700));
        Ok(())
    }

    #[test]
    fn bad_urls_and_empty_secrets_are_refused_and_the_secret_is_never_shown() {
        assert!(WebhookNotifier::new("not a url", "s").is_err());
        assert!(WebhookNotifier::new("ftp://example.com/", "s").is_err());
        assert!(WebhookNotifier::new("http://example.com/", "").is_err());
        let shown = WebhookNotifier::new("http://example.com/", "hunter2")
            .map(|w| format!("{w:?}"))
            .unwrap_or_default();
        assert!(
            shown.contains("example.com") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let a = signature(b"k", "1", b"{}");
        assert_ne!(a, signature(b"k", "2", b"{}"));
        assert_ne!(a, signature(b"k", "1", b"{ }"));
        assert_ne!(a, signature(b"j", "1", b"{}"));
        // The separator keeps "1" + "2{}" apart from "12" + "{}".
        assert_ne!(signature(b"k", "1", b"2{}"), signature(b"k", "12", b"{}"));
    }
}
