//! What a gRPC call means for the log: recognising one, the action and entity its method
//! names (`/pkg.ConnectionProfiles/UpdateProfile` is [`Action::Update`] on a
//! `ConnectionProfile`), and its outcome from `grpc-status`.
//!
//! The method name's first word is its verb: a built-in action's name (`Create`, `Revoke`,
//! ...), a synonym (`Add` → `Create`, `Set` → `Update`, `Remove` → `Delete`), a verb the layer
//! was given ([`AuditLayer::verb`](crate::AuditLayer::verb), in UpperCamelCase), or else a
//! custom action of that word. Methods that read ([`GRPC_READ_VERBS`]: `Get`, `List`, `Watch`,
//! `Search`, ...) are not recorded, like safe HTTP methods, and neither are the `grpc.*`
//! services (health, reflection). The entity type is what follows the verb, singular
//! (`DeleteProfiles` → `Profile`); when the service's own name, singular and without a
//! trailing `Service`, ends with it, the service's name is taken instead, being the more
//! precise (`ConnectionProfiles/UpdateProfile` → `ConnectionProfile`); a method that is a
//! verb alone (`ApiKeyService/Revoke`) acts on the service's entity. A
//! [`RouteRule`](crate::RouteRule) on the call's path overrides any of it.

use std::sync::atomic::{AtomicBool, Ordering};

use audit_core::{Action, Outcome};
use heck::ToUpperCamelCase;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::capture::ResponseFacts;
use crate::config::Config;
use crate::failure::{FailureReason, MAX_MESSAGE_CHARS};
use crate::route::{Derived, RouteRule, singular};

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// The first words of gRPC method names that read rather than change: calls to such methods
/// are not recorded unless a [`RouteRule`](crate::RouteRule) on their path says so.
pub const GRPC_READ_VERBS: &[&str] = &[
    "Get", "List", "Watch", "Search", "Read", "Describe", "Find", "Lookup", "Query", "Count",
    "Check", "Stream",
];

/// Words that name a built-in action under another name.
const SYNONYMS: &[(&str, Action)] = &[
    ("Add", Action::Create),
    ("Insert", Action::Create),
    ("Register", Action::Create),
    ("Set", Action::Update),
    ("Patch", Action::Update),
    ("Modify", Action::Update),
    ("Edit", Action::Update),
    ("Rename", Action::Update),
    ("Upsert", Action::Update),
    ("Remove", Action::Delete),
    ("Destroy", Action::Delete),
    ("Enable", Action::Activate),
    ("Disable", Action::Deactivate),
    ("Run", Action::Execute),
];

/// gRPC paths longer than this are derived for each call, never cached: no real service's
/// paths are this long, and a client's made-up ones must not fill the cache.
pub(crate) const MAX_CACHED_PATH_BYTES: usize = 256;

/// Whether a request is a gRPC call: `POST` to `/package.Service/Method` with a
/// `content-type` of `application/grpc` (or `application/grpc+proto`, ...). gRPC-Web
/// (`application/grpc-web`) carries its trailers in the body and is not recognised: put the
/// layer inside the layer that translates it.
pub(crate) fn is_call(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    if *method != Method::POST {
        return false;
    }
    // Two non-empty segments: checked before the header, which costs a hashed look-up.
    let Some((service, name)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return false;
    };
    if service.is_empty() || name.is_empty() || name.contains('/') {
        return false;
    }
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';'))
}

/// What the call to `path` (`/package.Service/Method`) means, given the layer's verbs and the
/// rule on that path, if any.
pub(crate) fn derive(path: &str, verbs: &[(String, Action)], rule: Option<&RouteRule>) -> Derived {
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .unwrap_or(("", path));
    let (package, service) = service.rsplit_once('.').unwrap_or(("", service));
    let infrastructure = package == "grpc" || package.starts_with("grpc.");
    let name = method.to_upper_camel_case();
    let read = GRPC_READ_VERBS.contains(&first_word(&name));
    let (action, rest) = if read {
        (Action::Read, "")
    } else {
        verb_of(&name, verbs)
    };
    let mut derived = Derived {
        skip: read || infrastructure,
        action,
        entity_type: entity_type(service, rest),
        id_from_end: None,
        id_secret: false,
        intent: false,
        grpc: true,
        route: Box::from(path),
    };
    if let Some(rule) = rule {
        rule.apply(&mut derived);
    }
    derived
}

/// The first word of an UpperCamelCase name: up to its next capital letter.
fn first_word(name: &str) -> &str {
    let end = name
        .bytes()
        .enumerate()
        .skip(1)
        .find(|(_, b)| b.is_ascii_uppercase())
        .map_or(name.len(), |(i, _)| i);
    // Before an ASCII byte or at the end: a char boundary.
    name.get(..end).unwrap_or(name)
}

/// The action the start of a method's name (in UpperCamelCase) names, and the rest of the
/// name: the longest known verb that ends at a word boundary (`ToggleActiveUser` →
/// `ToggleActive`, `User`), else the first word as a custom action.
fn verb_of<'a>(name: &'a str, verbs: &[(String, Action)]) -> (Action, &'a str) {
    let at_boundary = |verb: &str| {
        !verb.is_empty()
            && name.starts_with(verb)
            && name[verb.len()..]
                .bytes()
                .next()
                .is_none_or(|b| b.is_ascii_uppercase())
    };
    let mut best: Option<(Action, usize)> = None;
    let mut consider = |verb: &str, action: &Action| {
        if best.as_ref().is_none_or(|(_, len)| verb.len() > *len) && at_boundary(verb) {
            best = Some((action.clone(), verb.len()));
        }
    };
    for action in Action::well_known() {
        consider(action.as_str(), &action);
    }
    for (verb, action) in SYNONYMS {
        consider(verb, action);
    }
    // The layer's verbs are path segments (`toggle-active`); compared in the method's case.
    for (segment, action) in verbs {
        consider(&segment.to_upper_camel_case(), action);
    }
    match best {
        Some((action, len)) => (action, &name[len..]),
        None => {
            let word = first_word(name);
            (Action::custom(word), &name[word.len()..])
        }
    }
}

/// The entity type of a call; see the module docs for the rule.
fn entity_type(service: &str, rest: &str) -> Option<String> {
    let service = service.to_upper_camel_case();
    let service = singular(service.strip_suffix("Service").unwrap_or(&service));
    let named = singular(&rest.to_upper_camel_case());
    let chosen = if named.is_empty() || service.ends_with(&named) {
        service
    } else {
        named
    };
    (!chosen.is_empty()).then_some(chosen)
}

/// The outcome of a gRPC call, from its `grpc-status`. Four bytes, so the response facts
/// every request carries stay the size they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrpcOutcome {
    pub outcome: Outcome,
    /// Whether `code` holds the response's status code (it had a well-formed one).
    known: bool,
    code: u16,
}

impl GrpcOutcome {
    fn new(outcome: Outcome, code: Option<u16>) -> Self {
        GrpcOutcome {
            outcome,
            known: code.is_some(),
            code: code.unwrap_or_default(),
        }
    }

    /// The status code, when the response had a well-formed one.
    pub fn code(&self) -> Option<u16> {
        self.known.then_some(self.code)
    }
}

/// A gRPC call's outcome and, when it did not succeed, why, from the `grpc-status` and
/// `grpc-message` in `headers` (the response's, for a trailers-only response, or its
/// trailers); `None` when they hold no status.
pub(crate) fn status(headers: &HeaderMap) -> Option<(GrpcOutcome, Option<String>)> {
    let value = headers.get(&GRPC_STATUS)?;
    Some(status_of(value, headers.get(&GRPC_MESSAGE)))
}

fn status_of(value: &HeaderValue, message: Option<&HeaderValue>) -> (GrpcOutcome, Option<String>) {
    let code = std::str::from_utf8(value.as_bytes())
        .ok()
        .filter(|text| (1..=5).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse::<u16>().ok());
    let Some(code) = code else {
        return made(
            "invalid_grpc_status",
            "the response's grpc-status is not a status code",
            Outcome::Failure,
        );
    };
    let outcome = match code {
        0 => Outcome::Success,
        7 | 16 => Outcome::Denied,
        _ => Outcome::Failure,
    };
    let details = (code != 0).then(|| {
        let name = CODE_NAMES
            .get(code as usize)
            .map_or_else(|| format!("GRPC_STATUS_{code}"), |name| (*name).to_owned());
        FailureReason::new(name, message.map(decode_message).unwrap_or_default()).details()
    });
    (GrpcOutcome::new(outcome, Some(code)), details)
}

/// A status the layer makes when the response gives none.
fn made(code: &str, message: &str, outcome: Outcome) -> (GrpcOutcome, Option<String>) {
    let details = FailureReason::new(code, message).details();
    (GrpcOutcome::new(outcome, None), Some(details))
}

/// The outcome of a gRPC response whose body ended without a status.
pub(crate) fn no_status() -> (GrpcOutcome, Option<String>) {
    made(
        "no_grpc_status",
        "the response ended without a grpc-status",
        Outcome::Failure,
    )
}

/// The outcome of a gRPC response whose body failed before its status.
pub(crate) fn body_failed() -> (GrpcOutcome, Option<String>) {
    made(
        "response_failed",
        "the response body failed before its grpc-status",
        Outcome::Failure,
    )
}

/// The outcome of a gRPC response dropped before its status (the client went away, a
/// deadline passed).
pub(crate) fn cancelled() -> (GrpcOutcome, Option<String>) {
    made(
        "cancelled",
        "the response was dropped before its grpc-status",
        Outcome::Failure,
    )
}

/// The outcome of a gRPC call through [`AuditLayer`](crate::AuditLayer), which does not read
/// trailers, when the response's head has no status: unknown. Warned about once per process.
pub(crate) fn unread() -> (GrpcOutcome, Option<String>) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "audit: a gRPC call's status is in its response trailers, which `AuditLayer` does \
             not read, so its entry's outcome is `unknown`: wrap gRPC services in \
             `AuditLayer::grpc()` instead"
        );
    }
    made(
        "grpc_status_unread",
        "the grpc-status came in trailers, which were not read",
        Outcome::Unknown,
    )
}

/// Puts a gRPC call's outcome, and why it did not succeed, into `facts`; the response's own
/// [`FailureReason`], if it had one, stays the reason.
pub(crate) fn apply(
    facts: &mut ResponseFacts,
    (outcome, details): (GrpcOutcome, Option<String>),
    config: &Config,
) {
    facts.grpc = Some(outcome);
    if facts.failure.is_none() {
        facts.failure =
            details.map(|details| config.redactor.redact_text(&details).unwrap_or(details));
    }
}

/// The status names of the gRPC codes, by number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `grpc-message`, percent-decoded (as the protocol encodes it), of bounded length: a longer
/// message is cut before it is decoded, so a huge one costs no more than a long one.
fn decode_message(value: &HeaderValue) -> String {
    // Each character is at most 4 bytes, each byte at most 3 when encoded.
    let bytes = value.as_bytes();
    let bytes = &bytes[..bytes.len().min(MAX_MESSAGE_CHARS * 12)];
    percent_encoding::percent_decode(bytes)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::DEFAULT_VERBS;

    fn verbs() -> Vec<(String, Action)> {
        DEFAULT_VERBS
            .iter()
            .map(|(s, a)| ((*s).to_owned(), a.clone()))
            .collect()
    }

    fn meaning(path: &str) -> (bool, Action, Option<String>) {
        let d = derive(path, &verbs(), None);
        (d.skip, d.action, d.entity_type)
    }

    #[test]
    fn methods_name_the_action_and_entity() {
        let cases = [
            (
                "/pkg.ConnectionProfiles/UpdateProfile",
                Action::Update,
                "ConnectionProfile",
            ),
            (
                "/pkg.v1.ConnectionProfileService/CreateConnectionProfile",
                Action::Create,
                "ConnectionProfile",
            ),
            ("/pkg.Admin/DeleteTenants", Action::Delete, "Tenant"),
            ("/pkg.ApiKeyService/Revoke", Action::Revoke, "ApiKey"),
            ("/pkg.ApiKeys/RevokeApiKey", Action::Revoke, "ApiKey"),
            ("/pkg.Flows/AddPolicy", Action::Create, "Policy"),
            ("/pkg.Flows/RemovePolicy", Action::Delete, "Policy"),
            ("/pkg.Users/ToggleActiveUser", Action::ToggleActive, "User"),
            ("/pkg.Users/ChangePassword", Action::ChangePassword, "User"),
            ("/pkg.Users/CreateUser2", Action::Create, "User2"),
            (
                "/pkg.Flows/ArchiveFlow",
                Action::Custom("Archive".into()),
                "Flow",
            ),
            ("/Greeter/SayHello", Action::Custom("Say".into()), "Hello"),
            ("/pkg.Keys/rotate_key", Action::Rotate, "Key"),
        ];
        for (path, action, entity) in cases {
            let (skip, got_action, got_entity) = meaning(path);
            assert!(!skip, "{path}");
            assert_eq!(got_action, action, "{path}");
            assert_eq!(got_entity.as_deref(), Some(entity), "{path}");
        }
    }

    #[test]
    fn reads_and_infrastructure_are_not_recorded() {
        for path in [
            "/pkg.ConnectionProfiles/GetProfile",
            "/pkg.ConnectionProfiles/ListProfiles",
            "/pkg.Events/WatchEvents",
            "/pkg.Search/SearchEntries",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(meaning(path).0, "{path}");
        }
    }

    #[test]
    fn rules_and_verbs_override_the_method_name() {
        let mut verbs = verbs();
        verbs.push(("approve".into(), Action::custom("Approve")));
        let d = derive("/pkg.Invoices/ApproveInvoice", &verbs, None);
        assert_eq!(
            (d.action, d.entity_type.as_deref()),
            (Action::custom("Approve"), Some("Invoice"))
        );
        let rule = RouteRule::new(Method::POST, "/pkg.Reports/GetReport")
            .action(Action::Export)
            .entity_type("Report");
        let d = derive("/pkg.Reports/GetReport", &verbs, Some(&rule));
        assert!(!d.skip);
        assert_eq!(d.action, Action::Export);
        let skip = RouteRule::any_method("/pkg.Jobs/Ping").skip();
        assert!(derive("/pkg.Jobs/Ping", &verbs, Some(&skip)).skip);
    }

    #[test]
    fn calls_are_recognised_by_method_path_and_content_type() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        assert!(is_call(&Method::POST, "/pkg.S/M", &h));
        assert!(!is_call(&Method::PUT, "/pkg.S/M", &h));
        assert!(!is_call(&Method::POST, "/pkg.S/M/x", &h));
        assert!(!is_call(&Method::POST, "/pkg.S/", &h));
        assert!(!is_call(&Method::POST, "//M", &h));
        assert!(!is_call(&Method::POST, "/tenants", &h));
        for (value, grpc) in [
            ("application/grpc+proto", true),
            ("Application/GRPC", true),
            ("application/grpc-web", false),
            ("application/json", false),
            ("application/grp", false),
        ] {
            h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_call(&Method::POST, "/pkg.S/M", &h), grpc, "{value}");
        }
    }

    #[test]
    fn statuses_map_to_outcomes_with_their_code_and_message() {
        let of = |code: &'static [u8], message: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(&GRPC_STATUS, HeaderValue::from_bytes(code).unwrap());
            if let Some(m) = message {
                h.insert(&GRPC_MESSAGE, HeaderValue::from_static(m));
            }
            status(&h).unwrap()
        };
        let ok = of(b"0", None);
        assert_eq!(
            (ok.0.outcome, ok.0.code(), ok.1),
            (Outcome::Success, Some(0), None)
        );
        let denied = of(b"7", Some("no%20access"));
        assert_eq!(denied.0.outcome, Outcome::Denied);
        assert_eq!(denied.1.as_deref(), Some("PERMISSION_DENIED: no access"));
        assert_eq!(of(b"16", None).0.outcome, Outcome::Denied);
        let missing = of(b"5", Some("profile p-9 not found: caf%C3%A9"));
        assert_eq!(
            missing.1.as_deref(),
            Some("NOT_FOUND: profile p-9 not found: café")
        );
        assert_eq!(of(b"42", None).1.as_deref(), Some("GRPC_STATUS_42"));
        for bad in [
            &b"abc"[..],
            b"",
            b"-1",
            b"65536",
            b"99999999999999999999",
            b"\xff",
        ] {
            let (outcome, details) = of(bad, None);
            assert_eq!((outcome.outcome, outcome.code()), (Outcome::Failure, None));
            assert!(details.unwrap().starts_with("invalid_grpc_status"));
        }
        let long = of(
            b"13",
            Some(Box::leak("%41".repeat(100_000).into_boxed_str())),
        );
        assert!(long.1.unwrap().chars().count() <= "INTERNAL: ".len() + MAX_MESSAGE_CHARS);
        assert!(status(&HeaderMap::new()).is_none());
    }

    #[test]
    fn odd_method_names_do_not_panic() {
        for path in [
            "/pkg.S/",
            "/pkg.S/é",
            "/pkg.S/_",
            "/pkg.S/1Create",
            "/.S/Create",
            "/pkg./Create",
            &format!("/pkg.S/Create{}", "Ü".repeat(100_000)),
        ] {
            let _ = derive(path, &verbs(), None);
        }
    }
}
