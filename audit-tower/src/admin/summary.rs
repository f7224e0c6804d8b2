//! "Who did what" at a glance: `GET /summary` (entries per UTC day and per action, actor or
//! entity type), `GET /actors` (the actors seen, for an actor picker) and `GET /facets` (what
//! the viewer's pickers offer). Each is counted by the store's own grouped query, answered
//! within the caller's scope, and recorded as a `Read` of the `AuditLog` like a listing.

use std::collections::BTreeMap;

use audit_core::store::{
    ActorSeen, ApiKeyFacet, AuditQuery, AuditStore, DEFAULT_ACTORS, MAX_ACTORS, MAX_FACET_VALUES,
    Scope, Summary, SummaryBy,
};
use audit_core::{Action, ActorKind, AuditSink};
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use http::StatusCode;
use http::request::Parts;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::AdminError;
use super::handlers::{AdminState, AppState};
use super::params::{self, Endpoint, PARAMETERS};
use super::response::json_response;

/// How many keys a summary's `totals` name; the rest are added up under [`OTHER`].
pub(crate) const TOP_KEYS: usize = 20;
/// The key under which a summary adds up the keys past the first [`TOP_KEYS`].
pub(crate) const OTHER: &str = "(other)";
/// The key of entries that have none (no actor id, no entity type).
pub(crate) const NONE: &str = "(none)";
/// How many days a summary covers when the caller gives no `from`: today (UTC) and the 29
/// days before it.
pub(crate) const DEFAULT_DAYS: i64 = 30;

/// The parameters of the list endpoints that a summary does not take: it counts every match.
const NOT_FOR_SUMMARY: [&str; 3] = ["order", "limit", "cursor"];

/// The body of `GET /summary`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SummaryBody {
    /// What the entries were counted by: `action`, `actor` or `entity_type`.
    by: &'static str,
    /// The start of the range counted (RFC 3339, included).
    from: String,
    /// The end of the range counted (RFC 3339, excluded).
    to: String,
    /// The days with entries, oldest first.
    days: Vec<DayBody>,
    /// Every key's total, largest first: at most 20 keys, then `(other)` adding up the rest.
    totals: Vec<TotalBody>,
}

/// One day of a summary.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DayBody {
    /// The UTC day, `YYYY-MM-DD`.
    day: String,
    /// Entries of the day per key (keys outside `totals` under `(other)`).
    counts: BTreeMap<String, u64>,
}

/// One key's total in a summary.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TotalBody {
    /// The key: an action, an actor id or an entity type; `(none)` for entries without one,
    /// `(other)` for the keys past the first 20.
    key: String,
    /// What to show for it: for an actor, the name or e-mail of their latest entry.
    label: String,
    /// How many entries.
    count: u64,
}

/// The body of `GET /actors`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ActorsBody {
    /// The actors, most recently seen first.
    items: Vec<ActorBody>,
}

/// One actor of `GET /actors`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ActorBody {
    /// The actor's id.
    actor_id: String,
    /// The name (or e-mail) of their latest entry.
    actor_name: Option<String>,
    /// The kind of their latest entry: `user`, `api_key`, `system` or `anonymous`.
    actor_kind: &'static str,
    /// How many entries they have in your scope.
    count: u64,
    /// When their latest entry occurred (RFC 3339).
    last_seen: String,
}

/// The body of `GET /facets`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct FacetsBody {
    /// The entity types the service names, and those present in your scope, sorted.
    entity_types: Vec<String>,
    /// The well-known actions, the service's own, and others present in your scope.
    actions: Vec<String>,
    /// The teams present in your scope (at most 200, those with the most entries).
    teams: Vec<String>,
    /// The API keys present in your scope (at most 200, those with the most entries).
    api_keys: Vec<ApiKeyBody>,
}

/// An API key of `GET /facets`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ApiKeyBody {
    /// The key's id.
    id: String,
    /// Its name, if an entry gave one.
    name: Option<String>,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The first name a client sent, cut and printable, for an error.
fn shown(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The query string of a summary split into `by` and the filters, which go to the list
/// endpoints' parser. `order`, `limit` and `cursor` are refused, and so is a name no filter
/// has, with the list of what is accepted.
fn split_summary_query(raw: Option<&str>) -> Result<(SummaryBy, String), AdminError> {
    let mut by: Option<SummaryBy> = None;
    let mut filters = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if name == "by" {
            if value.is_empty() {
                continue;
            }
            if by.is_some() {
                return Err(AdminError::invalid("by", "given more than once"));
            }
            by = Some(value.parse::<SummaryBy>().map_err(|e| {
                AdminError::invalid("by", format!("{}; got {:?}", e.expected(), shown(&value)))
            })?);
            continue;
        }
        let known = PARAMETERS
            .iter()
            .any(|p| p.name == name && !p.list_only && !NOT_FOR_SUMMARY.contains(&p.name));
        if !known {
            let mut accepted: Vec<&str> = vec!["by"];
            accepted.extend(
                PARAMETERS
                    .iter()
                    .filter(|p| !p.list_only && !NOT_FOR_SUMMARY.contains(&p.name))
                    .map(|p| p.name),
            );
            let message = if NOT_FOR_SUMMARY.contains(&name.as_ref()) {
                format!(
                    "a summary counts every matching entry; it takes {}",
                    accepted.join(", ")
                )
            } else {
                format!("unknown parameter; accepted: {}", accepted.join(", "))
            };
            return Err(AdminError::invalid(shown(&name), message));
        }
        filters.append_pair(&name, &value);
    }
    Ok((by.unwrap_or_default(), filters.finish()))
}

/// The range a summary counts: the caller's, or up to now (or their `to`) from the start of
/// the UTC day [`DEFAULT_DAYS`] − 1 days before.
fn window(query: &AuditQuery, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let to = query.to.unwrap_or(now);
    let from = query.from.unwrap_or_else(|| {
        let midnight = to
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(to, |start| start.and_utc());
        midnight - Duration::days(DEFAULT_DAYS - 1)
    });
    (from, to)
}

/// The filter of `query` for the metadata of the entry that records the read: as a
/// listing's, without the order, which a count does not have.
fn filter_of(query: &AuditQuery) -> Value {
    let mut filter = params::filter_json(query);
    if let Value::Object(map) = &mut filter {
        map.remove("order");
    }
    filter
}

/// `GET /summary?by=action|actor|entity_type` and the list's filters.
pub(crate) async fn summary<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let (by, filters) = split_summary_query(parts.uri.query())?;
    let mut query = parse(&shared, Some(&filters), scope.clone()).await?;
    let (from, to) = window(&query, Utc::now());
    query.from = Some(from);
    query.to = Some(to);
    let counted = if to > from {
        query.validate()?;
        shared.store.summary(&query, by).await?
    } else {
        // A range that starts after now has nothing yet.
        Summary::new(by, [])
    };
    let body = summary_body(&shared, &query, &counted, from, to).await?;
    let read = shared.read(&parts, Action::Read);
    read.details(format!(
        "summarised {} audit entries by {}",
        counted.total(),
        by.as_str()
    ))
    .metadata("endpoint", "summary")
    .metadata("by", by.as_str())
    .metadata("filter", &filter_of(&query))
    .metadata("counted", &counted.total());
    shared
        .record(&parts, read, Some(&scope), StatusCode::OK)
        .await;
    Ok(json_response(StatusCode::OK, &body))
}

/// The body of a summary: the first [`TOP_KEYS`] keys by total, the rest under [`OTHER`];
/// for actors, each labelled with the name of their latest entry.
async fn summary_body<S: AuditStore + AuditSink>(
    shared: &AdminState<S>,
    query: &AuditQuery,
    summary: &Summary,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SummaryBody, AdminError> {
    let totals = summary.totals();
    let shown_keys: Vec<Option<String>> = totals
        .iter()
        .take(TOP_KEYS)
        .map(|(key, _)| key.clone())
        .collect();
    let name_of = |key: &Option<String>| key.clone().unwrap_or_else(|| NONE.to_owned());
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    if summary.by == SummaryBy::Actor {
        let ids: Vec<String> = shown_keys.iter().flatten().cloned().collect();
        if let Ok(limit) = u32::try_from(ids.len())
            && limit > 0
        {
            let mut named = query.clone();
            named.actor_ids = ids;
            for actor in shared.store.actors(&named, None, limit).await? {
                if let Some(name) = actor.actor_name {
                    labels.insert(actor.actor_id, name);
                }
            }
        }
    }
    let mut body_totals: Vec<TotalBody> = totals
        .iter()
        .take(TOP_KEYS)
        .map(|(key, count)| {
            let key = name_of(key);
            TotalBody {
                label: labels.get(&key).cloned().unwrap_or_else(|| key.clone()),
                key,
                count: *count,
            }
        })
        .collect();
    let rest: u64 = totals.iter().skip(TOP_KEYS).map(|(_, count)| count).sum();
    if totals.len() > TOP_KEYS {
        body_totals.push(TotalBody {
            key: OTHER.to_owned(),
            label: OTHER.to_owned(),
            count: rest,
        });
    }
    let mut days: Vec<DayBody> = Vec::new();
    for count in &summary.counts {
        let day = count.day.format("%Y-%m-%d").to_string();
        if days.last().is_none_or(|last| last.day != day) {
            days.push(DayBody {
                day,
                counts: BTreeMap::new(),
            });
        }
        let key = if shown_keys.contains(&count.key) {
            name_of(&count.key)
        } else {
            OTHER.to_owned()
        };
        if let Some(last) = days.last_mut() {
            *last.counts.entry(key).or_default() += count.count;
        }
    }
    Ok(SummaryBody {
        by: summary.by.as_str(),
        from: rfc3339(from),
        to: rfc3339(to),
        days,
        totals: body_totals,
    })
}

/// `GET /actors?q=<part of an id, name or e-mail>&limit=N`: the actors seen in the scope.
pub(crate) async fn actors<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let mut text: Option<String> = None;
    let mut limit: Option<u32> = None;
    for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        if value.is_empty() && (name == "q" || name == "limit") {
            continue;
        }
        match name.as_ref() {
            "q" if text.is_none() => text = Some(value.into_owned()),
            "limit" if limit.is_none() => {
                limit = Some(value.parse().map_err(|_| {
                    AdminError::invalid(
                        "limit",
                        format!(
                            "must be a whole number from 1 to {MAX_ACTORS}, got {:?}",
                            shown(&value)
                        ),
                    )
                })?);
            }
            "q" | "limit" => return Err(AdminError::invalid(name, "given more than once")),
            other => {
                return Err(AdminError::invalid(
                    shown(other),
                    "unknown parameter; `/actors` takes `q` and `limit`",
                ));
            }
        }
    }
    let limit = limit.unwrap_or(DEFAULT_ACTORS);
    let query = parse(&shared, None, scope.clone()).await?;
    let text = text.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let actors = shared.store.actors(&query, text, limit).await?;
    let read = shared.read(&parts, Action::Read);
    read.details(format!("listed {} actors of the audit log", actors.len()))
        .metadata("endpoint", "actors")
        .metadata("limit", &limit)
        .metadata("returned", &actors.len());
    if let Some(text) = text {
        read.metadata("q", text);
    }
    shared
        .record(&parts, read, Some(&scope), StatusCode::OK)
        .await;
    let items = actors.into_iter().map(actor_body).collect();
    Ok(json_response(StatusCode::OK, &ActorsBody { items }))
}

fn actor_body(actor: ActorSeen) -> ActorBody {
    ActorBody {
        actor_id: actor.actor_id,
        actor_name: actor.actor_name,
        actor_kind: kind_name(actor.actor_kind),
        count: actor.count,
        last_seen: rfc3339(actor.last_seen),
    }
}

fn kind_name(kind: ActorKind) -> &'static str {
    kind.as_str()
}

/// `GET /facets`: what the viewer offers in its pickers.
pub(crate) async fn facets<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    if let Some((name, _)) =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).next()
    {
        return Err(AdminError::invalid(
            shown(&name),
            "unknown parameter; `/facets` takes none",
        ));
    }
    let query = parse(&shared, None, scope.clone()).await?;
    let present = shared.store.facets(&query, MAX_FACET_VALUES).await?;
    let vocabulary = &shared.vocabulary;
    let mut entity_types: Vec<String> = vocabulary.entity_types.clone();
    entity_types.extend(present.entity_types);
    entity_types.sort();
    entity_types.dedup();
    let mut actions: Vec<String> = Vec::new();
    for action in vocabulary
        .valid_actions()
        .chain(present.actions.iter().cloned())
    {
        let name = action.as_str().to_owned();
        if !actions.contains(&name) {
            actions.push(name);
        }
    }
    let body = FacetsBody {
        entity_types,
        actions,
        teams: present.teams,
        api_keys: present
            .api_keys
            .into_iter()
            .map(|ApiKeyFacet { id, name }| ApiKeyBody { id, name })
            .collect(),
    };
    let read = shared.read(&parts, Action::Read);
    read.details("listed the audit log's filter values")
        .metadata("endpoint", "facets");
    shared
        .record(&parts, read, Some(&scope), StatusCode::OK)
        .await;
    Ok(json_response(StatusCode::OK, &body))
}

/// The list endpoints' parser over `raw` (filters only), with the router's vocabulary: the
/// same filters, the same refusals, the log's own reads left out unless `reads=include`.
async fn parse<S: AuditStore>(
    shared: &AdminState<S>,
    raw: Option<&str>,
    scope: Scope,
) -> Result<AuditQuery, AdminError> {
    let query = params::parse(raw, scope, Endpoint::Export, &shared.vocabulary)?;
    super::handlers::confirm_actions(shared, &query).await?;
    Ok(query)
}

/// The OpenAPI paths of the three endpoints: `filters` are the list's filter parameters (each
/// one's object, as the document writes them), `error` the error body's schema reference.
pub(crate) fn openapi_paths(
    generator: &mut schemars::SchemaGenerator,
    filters: &[Value],
    error: &Value,
) -> Value {
    let summary_ref = Value::from(generator.subschema_for::<SummaryBody>());
    let actors_ref = Value::from(generator.subschema_for::<ActorsBody>());
    let facets_ref = Value::from(generator.subschema_for::<FacetsBody>());
    let error_response = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": error}},
        })
    };
    let mut summary_parameters: Vec<Value> = vec![json!({
        "name": "by",
        "in": "query",
        "required": false,
        "description": "What to count entries by. The key of `actor` is the actor id, labelled with the name of their latest entry.",
        "schema": {
            "type": "string",
            "enum": SummaryBy::ALL.iter().map(|by| by.as_str()).collect::<Vec<_>>(),
            "default": SummaryBy::default().as_str(),
        },
    })];
    summary_parameters.extend(
        filters
            .iter()
            .filter(|p| {
                p["name"]
                    .as_str()
                    .is_some_and(|name| !NOT_FOR_SUMMARY.contains(&name))
            })
            .cloned(),
    );
    json!({
        "/summary": {
            "get": {
                "summary": "Entries per UTC day and per action, actor or entity type",
                "description": format!(
                    "Counts the entries matching the filters per UTC day and per key of `by`, \
                     in the store's own grouped query. Without `from`, today (UTC) and the {} \
                     days before it, up to `to` or now. `totals` name the {TOP_KEYS} largest \
                     keys and add up the rest under `{OTHER}`; entries without an actor or \
                     entity type count under `{NONE}`. Recorded as a `Read` of the `AuditLog`.",
                    DEFAULT_DAYS - 1
                ),
                "parameters": summary_parameters,
                "responses": {
                    "200": {
                        "description": "The counts.",
                        "content": {"application/json": {"schema": summary_ref}},
                    },
                    "400": error_response("A parameter is malformed or unknown, or `by` is not one of its values; `parameter` names it."),
                    "403": error_response("The guard denied access, or a team is not yours."),
                },
            }
        },
        "/actors": {
            "get": {
                "summary": "The actors seen in your scope",
                "description": "Each actor with entries in your scope, with the name and kind of their latest entry, how many entries they have and when they were last seen, most recently seen first. Recorded as a `Read` of the `AuditLog`.",
                "parameters": [
                    {
                        "name": "q", "in": "query", "required": false,
                        "description": "A part of the actor's id, name or e-mail, in any case.",
                        "schema": {"type": "string", "maxLength": audit_core::store::MAX_TEXT_CHARS},
                    },
                    {
                        "name": "limit", "in": "query", "required": false,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ACTORS, "default": DEFAULT_ACTORS},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The actors.",
                        "content": {"application/json": {"schema": actors_ref}},
                    },
                    "400": error_response("A parameter is malformed or unknown; `parameter` names it."),
                    "403": error_response("The guard denied access."),
                },
            }
        },
        "/facets": {
            "get": {
                "summary": "What the viewer's pickers offer",
                "description": format!(
                    "The entity types the service names and those present in your scope; the \
                     well-known actions, the service's own and others present; the teams and \
                     API keys present (at most {MAX_FACET_VALUES} of each, those with the most \
                     entries). Recorded as a `Read` of the `AuditLog`."
                ),
                "responses": {
                    "200": {
                        "description": "The values.",
                        "content": {"application/json": {"schema": facets_ref}},
                    },
                    "400": error_response("A parameter was given; there are none."),
                    "403": error_response("The guard denied access."),
                },
            }
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn by_and_filters_are_split_and_list_parameters_refused() {
        let (by, filters) = split_summary_query(Some("by=actor&action=Update&q=x")).unwrap();
        assert_eq!(by, SummaryBy::Actor);
        assert_eq!(filters, "action=Update&q=x");
        assert_eq!(split_summary_query(None).unwrap().0, SummaryBy::Action);
        for (raw, parameter) in [
            ("by=team", "by"),
            ("by=actor&by=action", "by"),
            ("limit=5", "limit"),
            ("order=asc", "order"),
            ("colour=red", "colour"),
        ] {
            match split_summary_query(Some(raw)) {
                Err(AdminError::InvalidParameter {
                    parameter: p,
                    message,
                }) => {
                    assert_eq!(p, parameter);
                    if raw != "by=actor&by=action" {
                        assert!(message.contains("entity_type"), "{message}");
                    }
                }
                other => panic!("{raw}: expected a bad parameter, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_default_window_is_thirty_utc_days_up_to_now() {
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 15, 30, 0).unwrap();
        let q = AuditQuery::new(Scope::All);
        let (from, to) = window(&q, now);
        assert_eq!(to, now);
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap());
        let given = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(window(&q.clone().from(given), now), (given, now));
    }
}
