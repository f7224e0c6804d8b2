//! The query string of the list and export endpoints, read into an [`AuditQuery`].
//!
//! One table, [`PARAMETERS`], says which parameters exist, which endpoints take them and
//! whether they repeat; the parser and the OpenAPI document both read it, so they cannot
//! disagree. Every refusal names the parameter.
//!
//! The filters of closed sets (`action`, `actor_kind`, `outcome`, `order`, `reads`) refuse a
//! value outside the set with a message listing the set; an action is closed by the
//! well-known actions and the service's own ([`Vocabulary`]). The entity type stays open: a
//! configured type is matched in any spelling (`connection-profile` is `ConnectionProfile`),
//! and any other is searched as given, so the entries of a type the service no longer has
//! remain findable.

use std::str::FromStr;

use audit_core::store::{AuditQuery, Cursor, MAX_LIMIT, Order, Scope};
use audit_core::trace::is_trace_id;
use audit_core::{Action, ActorKind, Outcome};
use chrono::{DateTime, SecondsFormat, Utc};
use heck::ToUpperCamelCase;
use serde_json::{Map, Value, json};

use super::error::AdminError;

/// Which endpoint a query string belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET /entries`: one page.
    List,
    /// `GET /export.*`: every matching entry.
    Export,
}

/// The type of a parameter's value, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueType {
    /// A filter value: an id, a type, a key.
    Text,
    /// The free-text search.
    FreeText,
    Action,
    ActorKind,
    Outcome,
    DateTime,
    Order,
    Limit,
    Cursor,
    /// `hide` or `include`: the log's own reads.
    Reads,
    /// A W3C trace id: 32 hexadecimal digits.
    TraceId,
}

/// What the service calls things: the custom actions it records and the entity types it
/// has, as configured on the router ([`AdminRouter::actions`](super::AdminRouter::actions),
/// [`AdminRouter::entity_types`](super::AdminRouter::entity_types)). The filters read
/// values against it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vocabulary {
    /// The service's custom actions, as it spells them.
    pub actions: Vec<Action>,
    /// The service's entity types, as it spells them.
    pub entity_types: Vec<String>,
}

impl Vocabulary {
    /// The vocabulary of `actions` (custom names; a well-known name is ignored, it is valid
    /// anyway) and `entity_types`, each once.
    pub(crate) fn new(actions: &[String], entity_types: &[String]) -> Self {
        let mut custom: Vec<Action> = Vec::new();
        for name in actions {
            let action = Action::from_str(name).unwrap_or_else(|_| Action::Custom(name.clone()));
            if matches!(action, Action::Custom(_)) && !custom.contains(&action) {
                custom.push(action);
            }
        }
        let mut types: Vec<String> = Vec::new();
        for name in entity_types {
            if !types.contains(name) {
                types.push(name.clone());
            }
        }
        Vocabulary {
            actions: custom,
            entity_types: types,
        }
    }

    /// Every action a filter accepts: the well-known ones, then the service's.
    pub(crate) fn valid_actions(&self) -> impl Iterator<Item = Action> + '_ {
        Action::well_known().chain(self.actions.iter().cloned())
    }

    /// The action a filter value names, in any case: a well-known action or one of the
    /// service's. Another valid action name is taken as given, to be confirmed against the
    /// log ([`unconfirmed`](Self::unconfirmed)); text no action could have is refused with
    /// the list of valid names.
    fn action(&self, value: &str) -> Result<Action, String> {
        if let Some(known) = self
            .valid_actions()
            .find(|a| a.as_str().eq_ignore_ascii_case(value))
        {
            return Ok(known);
        }
        match Action::from_str(value) {
            Ok(action) => Ok(action),
            Err(_) => Err(self.unknown_action(value, &[])),
        }
    }

    /// The actions of `query` that are neither well-known nor the service's: each is valid
    /// only if the log holds it (an action a route derived, `POST /flows/{id}/archive`).
    pub(crate) fn unconfirmed<'q>(&self, query: &'q AuditQuery) -> Vec<&'q Action> {
        query
            .actions
            .iter()
            .filter(|a| !self.valid_actions().any(|v| v == **a))
            .collect()
    }

    /// The refusal of an action `value`: the valid names, with the custom actions `present`
    /// in the log.
    pub(crate) fn unknown_action(&self, value: &str, present: &[Action]) -> String {
        let mut names: Vec<String> = self
            .valid_actions()
            .map(|a| a.as_str().to_owned())
            .collect();
        for action in present {
            if !names.iter().any(|n| n == action.as_str()) {
                names.push(action.as_str().to_owned());
            }
        }
        format!(
            "unknown action {:?}; expected one of: {}",
            cut(value),
            names.join(", ")
        )
    }

    /// The entity type a filter value names: the configured type it spells in any case or
    /// separator style (`connection-profile`, `connection_profile`, `CONNECTIONPROFILE` are
    /// `ConnectionProfile`), else the value itself.
    fn entity_type(&self, value: &str) -> String {
        let camel = value.to_upper_camel_case();
        self.entity_types
            .iter()
            .find(|t| t.eq_ignore_ascii_case(value) || t.eq_ignore_ascii_case(&camel))
            .cloned()
            .unwrap_or_else(|| value.to_owned())
    }
}

/// One query parameter.
#[derive(Debug)]
pub(crate) struct Parameter {
    pub name: &'static str,
    pub kind: ValueType,
    /// Whether it may be given several times (a multi-select; values combine with OR).
    pub repeatable: bool,
    /// Whether only `GET /entries` takes it.
    pub list_only: bool,
    pub description: &'static str,
}

const fn param(
    name: &'static str,
    kind: ValueType,
    repeatable: bool,
    list_only: bool,
    description: &'static str,
) -> Parameter {
    Parameter {
        name,
        kind,
        repeatable,
        list_only,
        description,
    }
}

/// Every query parameter of the list and export endpoints.
pub(crate) const PARAMETERS: &[Parameter] = &[
    param(
        "entity_type",
        ValueType::Text,
        true,
        false,
        "Entity type, e.g. `ConnectionProfile`; a type the service names is matched in any case or spelling (`connection-profile`). Repeat for several.",
    ),
    param(
        "action",
        ValueType::Action,
        true,
        false,
        "Action, in any case: a well-known action, e.g. `Update`, or one of the service's own. Repeat for several.",
    ),
    param(
        "actor_id",
        ValueType::Text,
        true,
        false,
        "Actor id (user id, API key id). Repeat for several.",
    ),
    param(
        "actor_kind",
        ValueType::ActorKind,
        true,
        false,
        "Actor kind, in any case. Repeat for several.",
    ),
    param(
        "api_key",
        ValueType::Text,
        true,
        false,
        "API key id or name. Repeat for several.",
    ),
    param(
        "entity_id",
        ValueType::Text,
        true,
        false,
        "Entity id: the object's own entries and the bulk changes that name it. Repeat for several.",
    ),
    param(
        "request_id",
        ValueType::Text,
        true,
        false,
        "Request id (`x-request-id`, or the entry id of a request that had none): the entries one request left, with those of the background jobs it started. Repeat for several.",
    ),
    param(
        "trace_id",
        ValueType::TraceId,
        true,
        false,
        "W3C trace id, 32 hexadecimal digits in any case (the trace id of the request's `traceparent` header, or of its OpenTelemetry span): the entries of the requests of that trace, with those of the background jobs they started. Repeat for several.",
    ),
    param(
        "outcome",
        ValueType::Outcome,
        true,
        false,
        "Outcome, in any case. Repeat for several.",
    ),
    param(
        "team",
        ValueType::Text,
        true,
        false,
        "Team id, within your scope (a team administrator may name their own team only). Repeat for several.",
    ),
    param(
        "reads",
        ValueType::Reads,
        false,
        false,
        "`hide` (the default) leaves out the log's own reads (`Read` on `AuditLog`); `include` shows them. Exports of the log are always shown.",
    ),
    param(
        "from",
        ValueType::DateTime,
        false,
        false,
        "Only entries at or after this instant (RFC 3339).",
    ),
    param(
        "to",
        ValueType::DateTime,
        false,
        false,
        "Only entries strictly before this instant (RFC 3339).",
    ),
    param(
        "q",
        ValueType::FreeText,
        false,
        false,
        "Free text, case-insensitive, matched literally in any one of: action, entity type, entity id, entity name, actor id, actor name, API key name, client IP, request id, details, and each change's field name, old value and new value.",
    ),
    param(
        "order",
        ValueType::Order,
        false,
        false,
        "`desc` (newest first, the default) or `asc`.",
    ),
    param("limit", ValueType::Limit, false, true, "Page size."),
    param(
        "cursor",
        ValueType::Cursor,
        false,
        true,
        "The `next_cursor` of the previous page of the same query.",
    ),
];

/// Reads a query string into a validated query for `scope`, reading values against the
/// service's `vocabulary`.
///
/// Empty values (`?q=&from=`, as HTML forms send them) count as absent. Unknown parameters,
/// a single-valued parameter given twice and every malformed value are a 400 naming it; a
/// team administrator naming another team is a 403 naming it. The log's own reads are left
/// out unless `reads=include`.
pub(crate) fn parse(
    raw: Option<&str>,
    scope: Scope,
    endpoint: Endpoint,
    vocabulary: &Vocabulary,
) -> Result<AuditQuery, AdminError> {
    let mut query = AuditQuery::new(scope).hide_log_reads(true);
    let mut seen: Vec<&'static str> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let Some(parameter) = PARAMETERS.iter().find(|p| p.name == name) else {
            return Err(unknown(&name, endpoint));
        };
        if parameter.list_only && endpoint == Endpoint::Export {
            return Err(AdminError::invalid(
                parameter.name,
                "exports stream every matching entry; `limit` and `cursor` apply to /entries only",
            ));
        }
        if value.is_empty() {
            continue;
        }
        if !parameter.repeatable {
            if seen.contains(&parameter.name) {
                return Err(AdminError::invalid(parameter.name, "given more than once"));
            }
            seen.push(parameter.name);
        }
        apply(&mut query, parameter.name, &value, vocabulary)?;
    }
    if let Scope::Team { team: own, .. } = &query.scope
        && let Some(other) = query.teams.iter().find(|team| *team != own)
    {
        return Err(AdminError::AccessDenied(format!(
            "you may read the entries of team {own:?} only, not of team {:?}",
            cut(other)
        )));
    }
    query.validate()?;
    Ok(query)
}

fn unknown(name: &str, endpoint: Endpoint) -> AdminError {
    let accepted: Vec<&str> = PARAMETERS
        .iter()
        .filter(|p| endpoint == Endpoint::List || !p.list_only)
        .map(|p| p.name)
        .collect();
    // The name is the client's text: cut it, and keep it printable.
    let shown: String = name
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    AdminError::invalid(
        shown,
        format!("unknown parameter; accepted: {}", accepted.join(", ")),
    )
}

fn apply(
    query: &mut AuditQuery,
    name: &'static str,
    value: &str,
    vocabulary: &Vocabulary,
) -> Result<(), AdminError> {
    let bad = |message: String| AdminError::invalid(name, message);
    match name {
        "entity_type" => query.entity_types.push(vocabulary.entity_type(value)),
        "team" => query.teams.push(value.to_owned()),
        "reads" => {
            query.hide_log_reads = if value.eq_ignore_ascii_case("hide") {
                true
            } else if value.eq_ignore_ascii_case("include") {
                false
            } else {
                return Err(bad(format!(
                    "expected one of: hide, include; got {:?}",
                    cut(value)
                )));
            };
        }
        "actor_id" => query.actor_ids.push(value.to_owned()),
        "api_key" => query.api_keys.push(value.to_owned()),
        "entity_id" => query.entity_ids.push(value.to_owned()),
        "request_id" => query.request_ids.push(value.to_owned()),
        // Stored lower-case; a tool may show the digits in upper case.
        "trace_id" => {
            let trace_id = value.to_ascii_lowercase();
            if !is_trace_id(&trace_id) {
                return Err(bad(format!(
                    "expected a W3C trace id, 32 hexadecimal digits not all zero, got {:?}",
                    cut(value)
                )));
            }
            query.trace_ids.push(trace_id);
        }
        "action" => query.actions.push(vocabulary.action(value).map_err(bad)?),
        // Closed sets of lower-case names: any case is accepted.
        "actor_kind" => query.actor_kinds.push(
            ActorKind::from_str(&value.to_ascii_lowercase()).map_err(|e| bad(e.to_string()))?,
        ),
        "outcome" => query
            .outcomes
            .push(Outcome::from_str(&value.to_ascii_lowercase()).map_err(|e| bad(e.to_string()))?),
        "from" => query.from = Some(instant(name, value)?),
        "to" => query.to = Some(instant(name, value)?),
        "q" => query.text = Some(value.to_owned()),
        "order" => query.order = Order::from_str(value).map_err(|e| bad(e.to_string()))?,
        "limit" => {
            query.limit = value.parse().map_err(|_| {
                bad(format!(
                    "must be a whole number from 1 to {MAX_LIMIT}, got {:?}",
                    cut(value)
                ))
            })?;
        }
        "cursor" => {
            query.cursor = Some(Cursor::from_str(value).map_err(|e| bad(e.expected().to_owned()))?);
        }
        _ => return Err(bad("unknown parameter".to_owned())),
    }
    Ok(())
}

fn instant(name: &'static str, value: &str) -> Result<DateTime<Utc>, AdminError> {
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            AdminError::invalid(
                name,
                format!(
                    "expected an RFC 3339 date and time such as 2026-01-31T00:00:00Z, got {:?}",
                    cut(value)
                ),
            )
        })
}

fn cut(value: &str) -> String {
    value.chars().take(64).collect()
}

/// The filter of `query` as JSON, for the metadata of the entry that records a read or an
/// export: only what was set, in the parameters' own names.
pub(crate) fn filter_json(query: &AuditQuery) -> Value {
    let mut filter = Map::new();
    let mut list = |name: &str, values: Vec<String>| {
        if !values.is_empty() {
            filter.insert(name.to_owned(), json!(values));
        }
    };
    list("entity_type", query.entity_types.clone());
    list(
        "action",
        query
            .actions
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
    );
    list("actor_id", query.actor_ids.clone());
    list(
        "actor_kind",
        query
            .actor_kinds
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect(),
    );
    list("api_key", query.api_keys.clone());
    list("entity_id", query.entity_ids.clone());
    list("request_id", query.request_ids.clone());
    list("trace_id", query.trace_ids.clone());
    list("team", query.teams.clone());
    list(
        "outcome",
        query
            .outcomes
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect(),
    );
    let time = |at: DateTime<Utc>| json!(at.to_rfc3339_opts(SecondsFormat::Micros, true));
    if let Some(from) = query.from {
        filter.insert("from".to_owned(), time(from));
    }
    if let Some(to) = query.to {
        filter.insert("to".to_owned(), time(to));
    }
    if let Some(q) = query.trimmed_text() {
        filter.insert("q".to_owned(), json!(q));
    }
    filter.insert("order".to_owned(), json!(query.order.as_str()));
    if !query.hide_log_reads {
        filter.insert("reads".to_owned(), json!("include"));
    }
    Value::Object(filter)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parameter_of(result: Result<AuditQuery, AdminError>) -> String {
        match result {
            Err(AdminError::InvalidParameter { parameter, .. }) => parameter,
            other => panic!("expected a bad parameter, got {other:?}"),
        }
    }

    #[test]
    fn repeated_filters_accumulate_and_empty_values_are_ignored() {
        let q = parse(
            Some("action=Create&action=Revoke&entity_type=ApiKey&q=&from=&outcome=denied"),
            Scope::All,
            Endpoint::List,
            &Vocabulary::default(),
        )
        .unwrap();
        assert_eq!(q.actions, [Action::Create, Action::Revoke]);
        assert_eq!(q.entity_types, ["ApiKey"]);
        assert_eq!(q.outcomes, [Outcome::Denied]);
        assert_eq!(q.text, None);
        assert_eq!(q.from, None);
    }

    #[test]
    fn known_names_match_in_any_case() {
        let vocabulary = Vocabulary::new(&["Frobnicate".to_owned()], &[]);
        let q = parse(
            Some("action=update&action=TOGGLEACTIVE&action=frobnicate&outcome=Denied&actor_kind=API_KEY"),
            Scope::All,
            Endpoint::List,
            &vocabulary,
        )
        .unwrap();
        assert_eq!(
            q.actions,
            [
                Action::Update,
                Action::ToggleActive,
                Action::Custom("Frobnicate".into())
            ]
        );
        assert_eq!(q.outcomes, [Outcome::Denied]);
        assert_eq!(q.actor_kinds, [ActorKind::ApiKey]);
        let refused = parse(
            Some("outcome=maybe"),
            Scope::All,
            Endpoint::List,
            &Vocabulary::default(),
        )
        .unwrap_err();
        let text = format!("{refused:?}");
        assert!(text.contains("success, failure, denied, unknown"), "{text}");
    }

    #[test]
    fn refusals_name_the_parameter() {
        let list = |raw: &str| {
            parse(
                Some(raw),
                Scope::All,
                Endpoint::List,
                &Vocabulary::default(),
            )
        };
        assert_eq!(parameter_of(list("limit=0")), "limit");
        assert_eq!(parameter_of(list("limit=x")), "limit");
        assert_eq!(parameter_of(list("limit=1&limit=2")), "limit");
        assert_eq!(parameter_of(list("from=yesterday")), "from");
        assert_eq!(parameter_of(list("action=not%20an%20action")), "action");
        assert_eq!(parameter_of(list("cursor=abc")), "cursor");
        assert_eq!(parameter_of(list("colour=red")), "colour");
        assert_eq!(
            parameter_of(parse(
                Some("limit=5"),
                Scope::All,
                Endpoint::Export,
                &Vocabulary::default()
            )),
            "limit"
        );
    }

    #[test]
    fn closed_filters_list_their_values_and_entity_types_take_any_spelling() {
        let vocabulary = Vocabulary::new(
            &["Approve".to_owned(), "Update".to_owned()],
            &["ConnectionProfile".to_owned(), "ApiKey".to_owned()],
        );
        assert_eq!(vocabulary.actions, [Action::Custom("Approve".into())]);
        let list = |raw: &str| parse(Some(raw), Scope::All, Endpoint::List, &vocabulary);
        let message = |result: Result<AuditQuery, AdminError>| match result {
            Err(AdminError::InvalidParameter { message, .. }) => message,
            other => panic!("expected a bad parameter, got {other:?}"),
        };
        // Text no action could have is refused here; a valid name outside the lists is left
        // for the log to confirm (`handlers::confirm_actions`).
        let refused = message(list("action=Frob%20nicate"));
        assert!(refused.contains("Create, Read, Update"), "{refused}");
        assert!(refused.ends_with(", Approve"), "{refused}");
        let pending = list("action=Frobnicate&action=update").unwrap();
        assert_eq!(
            vocabulary.unconfirmed(&pending),
            [&Action::Custom("Frobnicate".into())]
        );
        assert_eq!(
            list("action=APPROVE").unwrap().actions,
            [Action::Custom("Approve".into())]
        );
        assert!(message(list("actor_kind=robot")).contains("user, api_key, system, anonymous"));
        assert!(message(list("order=newest")).contains("`desc` or `asc`"));
        assert!(message(list("reads=all")).contains("hide, include"));
        let q = list(
            "entity_type=connection-profile&entity_type=CONNECTION_PROFILE&entity_type=apikey&entity_type=RetiredThing",
        )
        .unwrap();
        assert_eq!(
            q.entity_types,
            [
                "ConnectionProfile",
                "ConnectionProfile",
                "ApiKey",
                "RetiredThing"
            ]
        );
        assert!(q.hide_log_reads);
        assert!(!list("reads=include").unwrap().hide_log_reads);
        assert!(list("reads=HIDE").unwrap().hide_log_reads);
    }

    #[test]
    fn a_team_filter_stays_inside_a_team_scope() {
        let none = Vocabulary::default();
        let team = || Scope::team("acme", "ops");
        let q = parse(Some("team=ops"), team(), Endpoint::List, &none).unwrap();
        assert_eq!(q.teams, ["ops"]);
        match parse(Some("team=ops&team=sales"), team(), Endpoint::List, &none) {
            Err(AdminError::AccessDenied(message)) => assert!(message.contains("sales")),
            other => panic!("expected a 403, got {other:?}"),
        }
        let q = parse(
            Some("team=ops&team=sales"),
            Scope::tenant("acme"),
            Endpoint::Export,
            &none,
        )
        .unwrap();
        assert_eq!(q.teams, ["ops", "sales"]);
    }
}
