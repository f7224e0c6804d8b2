//! What the storage benches share: settings from the environment, a deterministic generator,
//! raw statements, and percentiles.

use std::time::Duration;

use audit_core::{Action, Actor, ActorKind, ApiKeyRef, AuditEntry, Change, Outcome};
use audit_seaorm::SeaOrmStore;
use audit_seaorm::sea_orm::ConnectionTrait;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::{NoContext, Timestamp, Uuid};

/// A count from the environment (`_` allowed as a separator), or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Whether the command line asks for the backend `name`: `cargo bench` passes `--bench`, and
/// the other arguments are name filters (none: every backend).
pub fn backend_filter() -> impl Fn(&str) -> bool {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.to_lowercase())
        .collect();
    move |name: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| name.to_lowercase().contains(f.as_str()))
    }
}

/// A small deterministic generator (xorshift64*), so every backend gets the same data.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs `sql` on the store's connection; panics with the statement if it fails.
pub async fn exec(store: &SeaOrmStore, sql: &str) {
    if let Err(e) = store.connection().execute_unprepared(sql).await {
        panic!("{sql}: {e}");
    }
}

/// The `p` quantile of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `d` in milliseconds, two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

const ENTITY_TYPES: [&str; 12] = [
    "ConnectionProfile",
    "ApiKey",
    "Tenant",
    "Team",
    "User",
    "Mapping",
    "Schedule",
    "Job",
    "ExtractionCursor",
    "Webhook",
    "Secret",
    "Role",
];

const SYSTEMS: [&str; 10] = [
    "Salesforce",
    "HubSpot",
    "NetSuite",
    "Zendesk",
    "Shopify",
    "Stripe",
    "Workday",
    "Jira",
    "SAP",
    "Marketo",
];

const STAGES: [&str; 4] = ["prod", "staging", "dev", "sandbox"];

/// One realistic entry of tenant number `tenant` that occurred at `at`, with a UUIDv7 id made
/// from `at`: an action, an entity of one of a dozen types and 20,000 ids, a user of 400 or an
/// API key of 30, changes for updates, an IP, a user agent and a route.
pub fn entry(rng: &mut Rng, tenant: usize, at: DateTime<Utc>) -> AuditEntry {
    let action = match rng.below(20) {
        0..=5 => Action::Update,
        6..=9 => Action::Create,
        10..=11 => Action::Delete,
        12 => Action::Revoke,
        13 => Action::ToggleActive,
        14 => Action::Reset,
        15..=16 => Action::Execute,
        17 => Action::Login,
        18 => Action::LoginFailed,
        _ => Action::Export,
    };
    let entity_type = ENTITY_TYPES[rng.below(ENTITY_TYPES.len())];
    let system = SYSTEMS[rng.below(SYSTEMS.len())];
    let stage = STAGES[rng.below(STAGES.len())];
    let user = rng.below(400);
    let mut builder = AuditEntry::builder(action.clone())
        .tenant(format!("tenant-{tenant:02}"))
        .team(format!("team-{}", rng.below(5)))
        .entity(entity_type, format!("{}", rng.below(20_000)))
        .entity_name(format!("{system} {stage}"))
        .details(format!(
            "{action} {entity_type} {system} {stage} via admin console"
        ))
        .outcome(match rng.below(50) {
            0 => Outcome::Denied,
            1..=2 => Outcome::Failure,
            _ => Outcome::Success,
        })
        .occurred_at(at)
        .ip(std::net::IpAddr::from([
            10,
            0,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ]));
    builder = if rng.below(5) == 0 {
        let key = rng.below(30);
        builder
            .actor(Actor::api_key(
                format!("key-{key}"),
                format!("deployer {key}"),
            ))
            .api_key(ApiKeyRef::new(
                format!("key-{key}"),
                format!("deployer {key}"),
            ))
    } else {
        builder.actor(Actor::user(
            format!("user-{user}"),
            format!("user{user}@example.com"),
        ))
    };
    if matches!(action, Action::Update) {
        builder = builder.changes(vec![
            Change::new(
                "name",
                json!(format!("{system} {stage}")),
                json!(format!("{system} {stage} v2")),
            ),
            Change::new("active", json!(true), json!(false)),
        ]);
    }
    let mut entry = builder.build();
    let secs = at.timestamp() as u64;
    entry.id = Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        secs,
        at.timestamp_subsec_nanos(),
    ));
    entry.status = Some(200);
    entry.method = Some("POST".into());
    entry.route = Some(format!("/{}/{{id}}", entity_type.to_lowercase()));
    entry.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".into());
    entry.request_id = Some(entry.id.to_string());
    if entry.actor_kind == ActorKind::Anonymous {
        entry.actor_name = Some("anonymous".into());
    }
    entry
}
