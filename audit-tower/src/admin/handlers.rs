//! The data endpoints: list, one entry, and the three exports; and the entries that record
//! each read of the log, made by the audit layer's own capture.

use std::collections::BTreeMap;
use std::sync::Arc;

use audit_core::chain::ChainReport;
use audit_core::store::StoreError;
use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_core::{Action, AuditSink, PartHealth, TenantRef};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, State};
use axum::response::Response;
use chrono::Utc;
use futures_util::TryStreamExt;
use futures_util::stream::{self, BoxStream, StreamExt};
use http::request::Parts;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::AUDIT_LOG_ENTITY;
use super::error::AdminError;
use super::export::{self, Format, Item};
use super::guard::AdminGuard;
use super::params::{self, Endpoint};
use super::response::json_response;
use super::viewer::ViewerPage;
use crate::capture::{ResponseFacts, capture_with};
use crate::context::AuditContext;
use crate::delivery::DeliveryStats;
use crate::layer::AuditLayer;
use crate::route::Derived;

/// What every handler shares.
pub(crate) struct AdminState<S> {
    pub store: Arc<S>,
    pub guard: Arc<dyn AdminGuard>,
    /// The audit layer: reads are recorded with its capture, through its queue.
    pub audit: AuditLayer,
    pub viewer: ViewerPage,
    pub openapi: Bytes,
    /// Other parts of the pipeline reported by `GET /health`, by name.
    pub health_parts: Vec<(String, HealthPart)>,
    /// How long each tenant's entries are kept.
    pub retention: audit_core::retention::RetentionPolicy,
    /// The latest signed checkpoint of a tenant's chain, for its exports.
    pub checkpoints: Option<CheckpointSource>,
    /// The service's custom actions and entity types, which the filters read values against.
    pub vocabulary: params::Vocabulary,
}

/// Gives the latest signed checkpoint of a tenant's chain (`None`: the entries without a
/// tenant), if there is one.
pub(crate) type CheckpointSource =
    Arc<dyn Fn(Option<&str>) -> Option<audit_core::checkpoint::SignedCheckpoint> + Send + Sync>;

/// Reports how one part of the pipeline is doing.
pub(crate) type HealthPart = Arc<dyn Fn() -> PartHealth + Send + Sync>;

pub(crate) type AppState<S> = State<Arc<AdminState<S>>>;

impl<S: AuditStore + AuditSink> AdminState<S> {
    /// The caller's scope, or a 403 (recorded as a denied read).
    pub(crate) async fn scope(&self, parts: &Parts) -> Result<Scope, AdminError> {
        match self.guard.check(parts).scope() {
            Ok(scope) => Ok(scope),
            Err(message) => {
                let read = self.read(parts, Action::Read);
                read.details("access to the audit log denied");
                self.record(parts, read, None, StatusCode::FORBIDDEN).await;
                Err(AdminError::AccessDenied(message))
            }
        }
    }

    /// The draft of the entry that records a read of the log, made as the layer makes any:
    /// its resolvers, client address, redaction and limits.
    pub(crate) fn read(&self, parts: &Parts, action: Action) -> AuditContext {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path(), MatchedPath::as_str);
        let derived = Derived::fixed(action, Some(AUDIT_LOG_ENTITY.to_owned()), route.into());
        let config = self.audit.config();
        let capture = capture_with(
            config,
            Arc::new(derived),
            &parts.method,
            parts.uri.path(),
            &parts.headers,
            &parts.extensions,
        );
        let read = AuditContext::new(config.clone(), capture);
        read.entity_name("Audit log");
        read
    }

    /// Records a read with its answer's `status`. Without a tenant from the request, the
    /// granted scope's tenant (and team) is the entry's, so tenant administrators see their own
    /// reads in their own log. The entry goes through the layer's queue like a request's.
    pub(crate) async fn record(
        &self,
        parts: &Parts,
        read: AuditContext,
        scope: Option<&Scope>,
        status: StatusCode,
    ) {
        // axum answers HEAD with the GET handler and drops the body: nothing was read.
        if parts.method == Method::HEAD && status.is_success() {
            return;
        }
        match scope {
            Some(Scope::Tenant(tenant)) => read.fallback_tenant(TenantRef::new(tenant)),
            Some(Scope::Team { tenant, team }) => {
                read.fallback_tenant(TenantRef::new(tenant).with_team(team));
            }
            Some(Scope::All) | None => {}
        }
        let facts = ResponseFacts {
            status: Some(status.as_u16()),
            caller: None,
            failure: None,
            grpc: None,
        };
        self.audit.record_served(read, facts).await;
    }
}

/// The body of `GET /health`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Health {
    /// `ok`; `degraded` when an entry has waited 5 s or more to be stored (the sink is failing
    /// or slow) or a part reports itself degraded; `refusing` when every queue slot is held
    /// and recorded requests get `503`.
    status: &'static str,
    /// The audit layer's delivery figures.
    delivery: DeliveryStats,
    /// The other parts of the pipeline the router was given (a JetStream forwarder, say), by
    /// name; empty when none.
    parts: BTreeMap<String, PartHealth>,
}

impl Health {
    fn of(delivery: DeliveryStats, parts: BTreeMap<String, PartHealth>) -> Self {
        let status = if delivery.held >= delivery.capacity {
            "refusing"
        } else if delivery.oldest_queued_ms.is_some_and(|ms| ms >= 5_000)
            || parts.values().any(|part| part.degraded)
        {
            "degraded"
        } else {
            "ok"
        };
        Health {
            status,
            delivery,
            parts,
        }
    }
}

/// `GET /health`: how the recording of the service's requests is doing.
pub(crate) async fn health<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    shared.scope(&parts).await?;
    let reports = shared
        .health_parts
        .iter()
        .map(|(name, report)| (name.clone(), report()))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &Health::of(shared.audit.stats(), reports),
    ))
}

/// `GET /verify[?tenant=ID]`: checks a tenant's hash chain. A tenant administrator checks
/// their own tenant (a `tenant` naming another is refused); an operator names the tenant, or
/// gives none for the entries without a tenant. Team administrators are refused: a chain is a
/// whole tenant's.
pub(crate) async fn verify<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let asked = only_tenant_param(&parts, "/verify")?;
    let tenant = tenant_of_scope(&scope, asked, false)?;
    let Some(report) = shared.store.verify_chain(tenant.as_deref()).await? else {
        return Ok(json_response(
            StatusCode::NOT_IMPLEMENTED,
            &json!({
                "error": "not_supported",
                "message": "this store keeps no hash chain to verify",
            }),
        ));
    };
    let read = shared.read(&parts, Action::Read);
    read.details(match &report.broken {
        None => format!("verified {} audit entries: intact", report.checked),
        Some(_) => format!(
            "verified the audit log: broken after {} entries",
            report.checked
        ),
    })
    .metadata("endpoint", "verify");
    shared
        .record(&parts, read, Some(&scope), StatusCode::OK)
        .await;
    Ok(json_response(StatusCode::OK, &verify_json(&report)))
}

/// `POST /erase` with `{"actor_id": "…"}`: erases that person's personal data from every
/// entry of theirs (operators only). The body must be JSON, which a cross-site form cannot
/// send; the erasure is recorded as an `Erase` entry.
pub(crate) async fn erase<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    if scope != Scope::All {
        return Err(AdminError::AccessDenied(
            "erasing a person's data from the log is for operators".to_owned(),
        ));
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Erase {
        actor_id: String,
    }
    let Erase { actor_id } = json_body(&parts, &body, "/erase", "{\"actor_id\": \"…\"}")?;
    if actor_id.trim().is_empty() || actor_id.len() > 255 {
        return Err(AdminError::invalid(
            "actor_id",
            "an actor id of 1 to 255 bytes",
        ));
    }
    let Some(erased) = shared.store.erase_actor(&actor_id).await? else {
        return Ok(json_response(
            StatusCode::NOT_IMPLEMENTED,
            &json!({
                "error": "not_supported",
                "message": "this store cannot erase entries' personal data",
            }),
        ));
    };
    let record = shared.read(&parts, Action::Erase);
    record
        .details(format!(
            "erased the personal data of {erased} audit entries"
        ))
        .metadata("endpoint", "erase")
        .metadata("erased_actor_id", &actor_id)
        .metadata("entries", &erased);
    shared
        .record(&parts, record, Some(&scope), StatusCode::OK)
        .await;
    Ok(json_response(
        StatusCode::OK,
        &json!({"actor_id": actor_id, "erased": erased}),
    ))
}

/// The only parameter of an endpoint that takes a tenant: `tenant`, at most once.
pub(crate) fn only_tenant_param(
    parts: &Parts,
    endpoint: &str,
) -> Result<Option<String>, AdminError> {
    let mut asked: Option<String> = None;
    for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "tenant" if asked.is_none() => {
                Scope::tenant(value.as_ref())
                    .validate()
                    .map_err(|_| AdminError::invalid("tenant", "not a tenant id"))?;
                asked = Some(value.into_owned());
            }
            "tenant" => return Err(AdminError::invalid("tenant", "give one tenant")),
            other => {
                return Err(AdminError::invalid(
                    other.chars().take(64).collect::<String>(),
                    format!("unknown parameter; `{endpoint}` takes only `tenant`"),
                ));
            }
        }
    }
    Ok(asked)
}

/// The tenant an endpoint about a whole tenant's log acts on: a tenant administrator's own
/// (naming another is refused), the one an operator names (none: the entries without a
/// tenant). A team administrator gets their tenant's when `teams` allows it, and a refusal
/// otherwise.
pub(crate) fn tenant_of_scope(
    scope: &Scope,
    asked: Option<String>,
    teams: bool,
) -> Result<Option<String>, AdminError> {
    match (scope, asked) {
        (Scope::All, asked) => Ok(asked),
        (Scope::Tenant(own), None) => Ok(Some(own.clone())),
        (Scope::Tenant(own) | Scope::Team { tenant: own, .. }, Some(asked)) if asked == *own => {
            if matches!(scope, Scope::Team { .. }) && !teams {
                return Err(team_refused());
            }
            Ok(Some(asked))
        }
        (Scope::Team { tenant, .. }, None) if teams => Ok(Some(tenant.clone())),
        (Scope::Team { .. }, _) if !teams => Err(team_refused()),
        (_, Some(_)) => Err(AdminError::AccessDenied(
            "you may ask about your own tenant's log only".to_owned(),
        )),
        (Scope::Team { .. }, None) => Err(team_refused()),
    }
}

fn team_refused() -> AdminError {
    AdminError::AccessDenied(
        "this covers a whole tenant's log; ask a tenant administrator".to_owned(),
    )
}

/// The JSON body of an operator's `POST` endpoint, as `T`: no query string, and
/// `Content-Type: application/json`, which a cross-site form cannot send. `shape` shows the
/// body expected in the error.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    parts: &Parts,
    body: &[u8],
    endpoint: &str,
    shape: &str,
) -> Result<T, AdminError> {
    if let Some(query) = parts.uri.query().filter(|q| !q.is_empty()) {
        let name: String = query
            .split(['=', '&'])
            .next()
            .unwrap_or("")
            .chars()
            .take(64)
            .collect();
        return Err(AdminError::invalid(
            name,
            format!("unknown parameter; `{endpoint}` takes a JSON body"),
        ));
    }
    let json = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Err(AdminError::invalid(
            "content-type",
            format!("send the body as application/json: {shape}"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        AdminError::invalid(
            "body",
            format!(
                "expected {shape}: {}",
                e.to_string().chars().take(120).collect::<String>()
            ),
        )
    })
}

/// The body of `GET /verify`.
fn verify_json(report: &ChainReport) -> Value {
    use audit_core::chain::ChainBreak;
    let broken = report.broken.as_ref().map(|broken| {
        let (reason, seq, id) = match broken {
            ChainBreak::Sequence { id, found, .. } => ("sequence", Some(*found), Some(*id)),
            ChainBreak::Hash { id, seq } => ("hash", Some(*seq), Some(*id)),
            ChainBreak::Personal { id, seq } => ("personal", Some(*seq), Some(*id)),
            ChainBreak::Truncated { last, .. } => ("truncated", Some(*last), None),
            ChainBreak::Checkpoint { seq } => ("checkpoint", Some(*seq), None),
            ChainBreak::Unchained { id } => ("unchained", None, Some(*id)),
            ChainBreak::Unattested { start } => ("unattested", Some(*start), None),
        };
        json!({"reason": reason, "seq": seq, "id": id, "message": broken.to_string()})
    });
    json!({
        "tenant_id": report.tenant_id,
        "intact": report.is_intact(),
        "start": report.start,
        "checked": report.checked,
        "unchained": report.unchained,
        "last": {"seq": report.last.0, "hash": report.last.1.to_hex()},
        "broken": broken,
    })
}

/// Refuses a filter by a custom action that is neither configured nor in the log within
/// `query`'s scope: such a filter can only be a typo, and an empty page would say "nothing
/// happened". An action the log holds (one a route derived, not configured) is kept.
pub(crate) async fn confirm_actions<S: AuditStore>(
    shared: &AdminState<S>,
    query: &AuditQuery,
) -> Result<(), AdminError> {
    for action in shared.vocabulary.unconfirmed(query) {
        let probe = AuditQuery::new(query.scope.clone())
            .action(action.clone())
            .limit(1);
        if !shared.store.query(&probe).await?.items.is_empty() {
            continue;
        }
        let present = shared
            .store
            .facets(&AuditQuery::new(query.scope.clone()), 200)
            .await?
            .actions;
        let custom: Vec<Action> = present.into_iter().filter(|a| !a.is_well_known()).collect();
        return Err(AdminError::invalid(
            "action",
            shared.vocabulary.unknown_action(action.as_str(), &custom),
        ));
    }
    Ok(())
}

/// `GET /entries`
pub(crate) async fn list<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let query = params::parse(
        parts.uri.query(),
        scope.clone(),
        Endpoint::List,
        &shared.vocabulary,
    )?;
    confirm_actions(&shared, &query).await?;
    let page = shared.store.query(&query).await?;
    let read = shared.read(&parts, Action::Read);
    read.details(format!("listed {} audit entries", page.items.len()))
        .metadata("endpoint", "entries")
        .metadata("filter", &params::filter_json(&query))
        .metadata("limit", &query.limit)
        .metadata("continued", &query.cursor.is_some())
        .metadata("returned", &page.items.len());
    shared
        .record(&parts, read, Some(&scope), StatusCode::OK)
        .await;
    Ok(json_response(StatusCode::OK, &page))
}

/// `GET /entries/{id}`
pub(crate) async fn entry<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    id: Result<Path<String>, PathRejection>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let Path(text) = id.map_err(|_| AdminError::invalid("id", "not a valid path segment"))?;
    let id = Uuid::try_parse(&text).map_err(|_| {
        AdminError::invalid(
            "id",
            "expected an entry id (a UUID such as 0190c0de-7a2b-7cc3-9e1f-1234567890ab)",
        )
    })?;
    let entry = shared
        .store
        .get(&scope, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.to_string()))?;
    let read = shared.read(&parts, Action::Read);
    read.entity_id(id)
        .details("read one audit entry")
        .metadata("endpoint", "entry");
    shared
        .record(&parts, read, Some(&scope), StatusCode::OK)
        .await;
    Ok(json_response(StatusCode::OK, &entry))
}

/// `GET /export.csv`
pub(crate) async fn export_csv<S: AuditStore + AuditSink>(
    state: AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    export(state, parts, Format::Csv).await
}

/// `GET /export.json`
pub(crate) async fn export_json<S: AuditStore + AuditSink>(
    state: AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    export(state, parts, Format::Json).await
}

/// `GET /export.ndjson`
pub(crate) async fn export_ndjson<S: AuditStore + AuditSink>(
    state: AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    export(state, parts, Format::Ndjson).await
}

async fn export<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
    format: Format,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let mut query = params::parse(
        parts.uri.query(),
        scope.clone(),
        Endpoint::Export,
        &shared.vocabulary,
    )?;
    confirm_actions(&shared, &query).await?;
    let filter = params::filter_json(&query);
    // An export with no end ends when it starts: otherwise, oldest first, it would go on to
    // read what is written while it streams (its own `Export` entry among them), and on a
    // busy log might never catch up. One that starts later than that has nothing to export.
    let started = Utc::now();
    let empty = matches!((query.from, query.to), (Some(from), None) if from >= started);
    if query.to.is_none() {
        query.to = Some(started);
    }
    // JSON and NDJSON carry the proof: each entry's link, and for a tenant's export where its
    // chain starts (after a purge) and its latest signed checkpoint.
    let linked = format != Format::Csv;
    let tenant = match &scope {
        Scope::Tenant(tenant) if linked => Some(tenant.clone()),
        _ => None,
    };
    let mut entries: BoxStream<'static, Result<Item, StoreError>> = if empty {
        stream::empty().boxed()
    } else if linked {
        shared
            .store
            .export_linked(&query)
            .map_ok(|(entry, link)| Item::Entry(entry, link))
            .boxed()
    } else {
        shared
            .store
            .export(&query)
            .map_ok(|entry| Item::Entry(entry, None))
            .boxed()
    };
    // Wait for the first entry, so a store that fails at once is a proper error status rather
    // than an aborted download.
    let first = entries.next().await;
    let first = match first {
        Some(Err(error)) => return Err(error.into()),
        other => other,
    };
    let read = shared.read(&parts, Action::Export);
    read.details(format!(
        "exported the audit log as {}",
        format.extension().to_uppercase()
    ))
    .metadata("endpoint", "export")
    .metadata("format", format.extension())
    .metadata("filter", &filter);
    shared
        .record(&parts, read, Some(&scope), StatusCode::OK)
        .await;
    let file_stem = format!("audit-log-{}", started.format("%Y%m%dT%H%M%SZ"));
    let mut lead = Vec::new();
    let mut trail = Vec::new();
    if let Some(tenant) = &tenant {
        if let Some((seq, hash)) = shared.store.chain_start(Some(tenant)).await? {
            lead.push(Ok(Item::Record(audit_core::chain::linked_json_start(
                Some(tenant),
                seq,
                &hash,
            ))));
        }
        if let Some(checkpoint) = shared.checkpoints.as_ref().and_then(|f| f(Some(tenant))) {
            trail.push(Ok(Item::Record(
                json!({"checkpoint": checkpoint.to_json()}),
            )));
        }
    }
    let entries = stream::iter(lead)
        .chain(stream::iter(first))
        .chain(entries)
        .chain(stream::iter(trail))
        .boxed();
    Ok(export::response(format, &file_stem, entries))
}

/// `405` for a method a route of the router does not take, in the router's JSON error format.
/// The audit layer around the router records the attempt; its entry names the log
/// ([`AUDIT_LOG_ENTITY`]) rather than the route's last word (`/entries` is not an `Entry`).
pub(crate) async fn method_not_allowed(audit: Option<AuditContext>, method: Method) -> Response {
    if let Some(audit) = audit {
        audit.entity_type(AUDIT_LOG_ENTITY);
    }
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({
            "error": "method_not_allowed",
            "message": format!("this endpoint does not take {}", method.as_str().chars().take(32).collect::<String>()),
        }),
    )
}
