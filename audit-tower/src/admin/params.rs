//! The query string of the list and export endpoints, read into an [`AuditQuery`].
//!
//! One table, [`PARAMETERS`], says which parameters exist, which endpoints take them and
//! whether they repeat; the parser and the OpenAPI document both read it, so they cannot
//! disagree. Every refusal names the parameter.

use std::str::FromStr;

use audit_core::store::{AuditQuery, Cursor, MAX_LIMIT, Order, Scope};
use audit_core::{Action, ActorKind, Outcome};
use chrono::{DateTime, SecondsFormat, Utc};
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
        "Entity type, e.g. `ConnectionProfile`. Repeat for several.",
    ),
    param(
        "action",
        ValueType::Action,
        true,
        false,
        "Action, e.g. `Update` (well-known names in any case) or a custom name (exact). Repeat for several.",
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
        "Entity id. Repeat for several.",
    ),
    param(
        "outcome",
        ValueType::Outcome,
        true,
        false,
        "Outcome, in any case. Repeat for several.",
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
        "Free text, case-insensitive, matched literally in the entity name, details, actor name, entity id and API key name.",
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

/// Reads a query string into a validated query for `scope`.
///
/// Empty values (`?q=&from=`, as HTML forms send them) count as absent. Unknown parameters,
/// a single-valued parameter given twice and every malformed value are a 400 naming it.
pub(crate) fn parse(
    raw: Option<&str>,
    scope: Scope,
    endpoint: Endpoint,
) -> Result<AuditQuery, AdminError> {
    let mut query = AuditQuery::new(scope);
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
        apply(&mut query, parameter.name, &value)?;
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

/// The action a filter value names: a well-known action in any case (`update` is `Update`),
/// else a custom action's exact name.
fn action(value: &str) -> Result<Action, String> {
    if let Some(known) = Action::well_known().find(|a| a.as_str().eq_ignore_ascii_case(value)) {
        return Ok(known);
    }
    Action::from_str(value).map_err(|e| e.to_string())
}

fn apply(query: &mut AuditQuery, name: &'static str, value: &str) -> Result<(), AdminError> {
    let bad = |message: String| AdminError::invalid(name, message);
    match name {
        "entity_type" => query.entity_types.push(value.to_owned()),
        "actor_id" => query.actor_ids.push(value.to_owned()),
        "api_key" => query.api_keys.push(value.to_owned()),
        "entity_id" => query.entity_ids.push(value.to_owned()),
        "action" => query.actions.push(action(value).map_err(bad)?),
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
        let q = parse(
            Some("action=update&action=TOGGLEACTIVE&action=Frobnicate&outcome=Denied&actor_kind=API_KEY"),
            Scope::All,
            Endpoint::List,
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
        let refused = parse(Some("outcome=maybe"), Scope::All, Endpoint::List).unwrap_err();
        let text = format!("{refused:?}");
        assert!(text.contains("success, failure, denied, unknown"), "{text}");
    }

    #[test]
    fn refusals_name_the_parameter() {
        let list = |raw: &str| parse(Some(raw), Scope::All, Endpoint::List);
        assert_eq!(parameter_of(list("limit=0")), "limit");
        assert_eq!(parameter_of(list("limit=x")), "limit");
        assert_eq!(parameter_of(list("limit=1&limit=2")), "limit");
        assert_eq!(parameter_of(list("from=yesterday")), "from");
        assert_eq!(parameter_of(list("action=not%20an%20action")), "action");
        assert_eq!(parameter_of(list("cursor=abc")), "cursor");
        assert_eq!(parameter_of(list("colour=red")), "colour");
        assert_eq!(
            parameter_of(parse(Some("limit=5"), Scope::All, Endpoint::Export)),
            "limit"
        );
    }
}
