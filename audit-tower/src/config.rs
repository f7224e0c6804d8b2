//! [`Config`]: what an [`AuditLayer`](crate::AuditLayer) was told, shared by its services,
//! the contexts it hands out and its writer.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use audit_core::{AuditSink, IntentStore, Limits, Redactor};
use http::HeaderName;

use crate::client_ip::ClientIpConfig;
use crate::resolve::{ResolveActor, ResolveApiKey, ResolveTenant};
use crate::route::Routes;

/// The settings of one layer (and its clones).
#[derive(Clone)]
pub(crate) struct Config {
    pub sink: Arc<dyn AuditSink>,
    pub actor: Option<Arc<dyn ResolveActor>>,
    pub tenant: Option<Arc<dyn ResolveTenant>>,
    pub api_key: Option<Arc<dyn ResolveApiKey>>,
    pub api_key_header: Option<HeaderName>,
    /// The request header (gRPC metadata) an entity id is read from when the route has none.
    pub entity_id_header: Option<HeaderName>,
    pub client_ip: ClientIpConfig,
    pub routes: Routes,
    pub record_safe_methods: bool,
    pub redactor: Redactor,
    pub limits: Limits,
    /// Where intents go, for routes whose rule asks for one.
    pub intents: Option<Arc<dyn IntentStore>>,
    /// Where entries' times come from, when not the system clock.
    pub clock: Option<Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>>,
}

impl Config {
    pub fn new(sink: Arc<dyn AuditSink>) -> Self {
        Config {
            sink,
            actor: None,
            tenant: None,
            api_key: None,
            api_key_header: Some(HeaderName::from_static("x-api-key")),
            entity_id_header: None,
            client_ip: ClientIpConfig::default(),
            routes: Routes::default(),
            record_safe_methods: false,
            redactor: Redactor::default(),
            limits: Limits::default(),
            intents: None,
            clock: None,
        }
    }

    /// Now, as time since the Unix epoch, by the layer's clock.
    pub fn now(&self) -> Duration {
        match &self.clock {
            None => crate::capture::now(),
            Some(clock) => {
                let at = clock();
                let micros = u64::try_from(at.timestamp_micros()).unwrap_or_default();
                Duration::from_micros(micros)
            }
        }
    }

    /// Whether any resolver may name a caller from a response's extensions: without one, only
    /// the extensions themselves can, and an empty set of them names nobody.
    pub fn resolves_from_headers(&self) -> bool {
        self.actor.is_some() || self.tenant.is_some()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key_header", &self.api_key_header)
            .field("client_ip", &self.client_ip)
            .field("redactor", &self.redactor)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
