//! What a request means for the log, from its matched route: `POST /api-keys/{id}/revoke` is
//! [`Action::Revoke`] on an `ApiKey` whose id is the `{id}` segment. [`RouteRule`]s override
//! the derivation. It is computed once per method and route template and cached, so a request
//! pays one map lookup.

use std::sync::{Arc, RwLock};

use audit_core::{Action, Redactor};
use heck::ToUpperCamelCase;
use http::Method;
use std::collections::HashMap;

use crate::grpc;
use crate::template::{Templates, Unrouted};

/// The verb segments recognised at the end of a route by default, and their actions.
pub const DEFAULT_VERBS: &[(&str, Action)] = &[
    ("activate", Action::Activate),
    ("deactivate", Action::Deactivate),
    ("enable", Action::Activate),
    ("disable", Action::Deactivate),
    ("toggle-active", Action::ToggleActive),
    ("toggle_active", Action::ToggleActive),
    ("revoke", Action::Revoke),
    ("rotate", Action::Rotate),
    ("reset", Action::Reset),
    ("execute", Action::Execute),
    ("run", Action::Execute),
    ("login", Action::Login),
    ("logout", Action::Logout),
    ("export", Action::Export),
    ("publish", Action::Publish),
    ("clone", Action::Clone),
    ("duplicate", Action::Clone),
    ("copy", Action::Clone),
    ("start", Action::Start),
    ("stop", Action::Stop),
    ("install", Action::Install),
    ("uninstall", Action::Uninstall),
    ("authorize", Action::Authorize),
    ("authorise", Action::Authorize),
    ("invite", Action::Invite),
    ("password", Action::ChangePassword),
    ("change-password", Action::ChangePassword),
    ("change_password", Action::ChangePassword),
];

/// An explicit rule for one route (and optionally one method), overriding the derivation.
///
/// A rule on a safe method (`GET`, `HEAD`, `OPTIONS`) makes that route recorded; a rule with
/// [`skip`](Self::skip) makes a mutating route unrecorded.
///
/// ```
/// use audit_core::Action;
/// use audit_tower::RouteRule;
/// use http::Method;
///
/// // `POST /sessions` is a login, not the creation of a "Session".
/// let login = RouteRule::new(Method::POST, "/sessions").action(Action::Login).entity_type("User");
/// // Downloads of a report are worth recording.
/// let download = RouteRule::new(Method::GET, "/reports/{id}/download").action(Action::Export);
/// // Health pings are not.
/// let ping = RouteRule::any_method("/health/ping").skip();
/// # let _ = (login, download, ping);
/// ```
#[derive(Debug, Clone)]
pub struct RouteRule {
    method: Option<Method>,
    route: String,
    action: Option<Action>,
    entity_type: Option<String>,
    entity_id_param: Option<String>,
    skip: bool,
    intent: bool,
}

impl RouteRule {
    /// A rule for `method` on the route template `route` (as written in `Router::route`).
    pub fn new(method: Method, route: impl Into<String>) -> Self {
        RouteRule {
            method: Some(method),
            route: route.into(),
            action: None,
            entity_type: None,
            entity_id_param: None,
            skip: false,
            intent: false,
        }
    }

    /// A rule for every method on the route template `route`.
    pub fn any_method(route: impl Into<String>) -> Self {
        RouteRule {
            method: None,
            ..RouteRule::new(Method::GET, route)
        }
    }

    /// Records this action instead of the derived one.
    pub fn action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// Records this entity type instead of the derived one.
    pub fn entity_type(mut self, entity_type: impl Into<String>) -> Self {
        self.entity_type = Some(entity_type.into());
        self
    }

    /// Takes the entity id from the path parameter with this name (without braces).
    pub fn entity_id_param(mut self, name: impl Into<String>) -> Self {
        self.entity_id_param = Some(name.into());
        self
    }

    /// Records nothing for this route.
    pub fn skip(mut self) -> Self {
        self.skip = true;
        self
    }

    /// Stores an intent before the handler runs, in the layer's
    /// [`intents`](crate::AuditLayer::intents) store: for routes whose change lives outside
    /// the service's database, so that a process that dies mid-request leaves an entry whose
    /// outcome is `unknown` instead of a change with no entry. A request whose intent cannot
    /// be stored is refused with `503` before its handler runs.
    pub fn intent(mut self) -> Self {
        self.intent = true;
        self
    }

    fn matches(&self, method: &Method) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
    }

    /// Overrides what the rule names (all but the id parameter, which only a route template
    /// has) in `derived`.
    pub(crate) fn apply(&self, derived: &mut Derived) {
        derived.skip = self.skip;
        derived.intent = self.intent;
        if let Some(action) = &self.action {
            derived.action = action.clone();
        }
        if let Some(entity_type) = &self.entity_type {
            derived.entity_type = Some(entity_type.clone());
        }
    }
}

/// What a method on a route means for the audit log; computed once per route and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derived {
    pub skip: bool,
    pub action: Action,
    pub entity_type: Option<String>,
    /// The position of the entity id parameter, counted from the end of the path.
    pub id_from_end: Option<usize>,
    /// Whether that parameter's name is sensitive (`/password-resets/{token}`): its value is
    /// recorded as [`REDACTED`](audit_core::REDACTED), never as it is.
    pub id_secret: bool,
    /// Whether an intent is stored before the handler runs.
    pub intent: bool,
    /// Whether this is a gRPC call, whose outcome is its `grpc-status`.
    pub grpc: bool,
    /// The route template itself (a gRPC call's path).
    pub route: Box<str>,
}

impl Derived {
    /// A derivation given whole, for entries whose meaning is known without a route (the admin
    /// router's reads of the log).
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn fixed(action: Action, entity_type: Option<String>, route: Box<str>) -> Self {
        Derived {
            skip: false,
            action,
            entity_type,
            id_from_end: None,
            id_secret: false,
            intent: false,
            grpc: false,
            route,
        }
    }
}

/// Derivations by route template, then by method. foldhash reads a template eight bytes at a
/// time (FNV reads one), and its keys are the application's own templates, never client input,
/// so it needs no more defence against flooding than its seed gives.
type DeriveCache = HashMap<Box<str>, Vec<(Method, Arc<Derived>)>, foldhash::fast::RandomState>;

/// Derivations of gRPC calls by path. Paths are client input here (any path may be called),
/// so the cache is bounded like the other, and its hasher is seeded per process.
type GrpcCache = HashMap<Box<str>, Arc<Derived>, foldhash::fast::RandomState>;

/// The route configuration of a layer: verbs, rules and the cache of derivations.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    verbs: Vec<(String, Action)>,
    rules: Vec<RouteRule>,
    /// The layer's redactor: an id parameter with a sensitive name (`{token}`) is not recorded.
    redactor: Redactor,
    cache: Arc<RwLock<DeriveCache>>,
    /// The rules' routes compiled, for requests that come without a route.
    templates: Templates,
    grpc_cache: Arc<RwLock<GrpcCache>>,
    /// The request shapes warned about for having no route, shared by the layer's clones.
    unrouted: Arc<Unrouted>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            verbs: DEFAULT_VERBS
                .iter()
                .map(|(s, a)| ((*s).to_owned(), a.clone()))
                .collect(),
            rules: Vec::new(),
            redactor: Redactor::default(),
            cache: Arc::default(),
            templates: Templates::default(),
            grpc_cache: Arc::default(),
            unrouted: Arc::default(),
        }
    }
}

/// More distinct routes than any real service has; past it derivations are not cached, so a
/// flood of odd method names cannot grow memory.
const CACHE_LIMIT: usize = 4096;

impl Routes {
    pub fn add_rule(&mut self, rule: RouteRule) {
        self.templates.add(&rule.route);
        self.rules.push(rule);
        self.cache = Arc::default();
        self.grpc_cache = Arc::default();
    }

    pub fn set_redactor(&mut self, redactor: Redactor) {
        self.redactor = redactor;
        self.cache = Arc::default();
    }

    pub fn add_verb(&mut self, segment: String, action: Action) {
        self.verbs.retain(|(s, _)| *s != segment);
        self.verbs.push((segment, action));
        self.cache = Arc::default();
        self.grpc_cache = Arc::default();
    }

    /// The template of the rules' that `path` matches, for a request without a route.
    pub fn find_template(&self, path: &str) -> Option<&str> {
        self.templates.find(path)
    }

    /// Warns (once per shape) that a request has no route.
    pub fn warn_unrouted(&self, method: &Method, path: &str) {
        self.unrouted.warn(method, path);
    }

    /// What the gRPC call to `path` means; see [`grpc`](crate::grpc).
    pub fn derive_grpc(&self, path: &str) -> Arc<Derived> {
        let read = self.grpc_cache.read().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = read.get(path) {
            return found.clone();
        }
        let cached = read.len();
        drop(read);
        let rule = self
            .rules
            .iter()
            .rev()
            .find(|r| *r.route == *path && r.matches(&Method::POST));
        let derived = Arc::new(grpc::derive(path, &self.verbs, rule));
        if cached < CACHE_LIMIT && path.len() <= grpc::MAX_CACHED_PATH_BYTES {
            let mut write = self.grpc_cache.write().unwrap_or_else(|p| p.into_inner());
            write.insert(Box::from(path), derived.clone());
        }
        derived
    }

    /// The custom actions the configuration names: verbs added with
    /// [`AuditLayer::verb`](crate::AuditLayer::verb) and rules' actions.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub fn custom_actions(&self) -> Vec<Action> {
        let mut actions: Vec<Action> = Vec::new();
        let named = self
            .verbs
            .iter()
            .map(|(_, a)| a)
            .chain(self.rules.iter().filter_map(|r| r.action.as_ref()));
        for action in named {
            if !action.is_well_known() && !actions.contains(action) {
                actions.push(action.clone());
            }
        }
        actions
    }

    /// Whether any rule could make a safe-method request recorded.
    pub fn has_safe_method_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|r| !r.skip && r.method.as_ref().is_none_or(is_safe))
    }

    pub fn derive(&self, method: &Method, route: &str) -> Arc<Derived> {
        let read = self.cache.read().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = read.get(route).and_then(|per_method| {
            per_method
                .iter()
                .find(|(m, _)| m == method)
                .map(|(_, d)| d.clone())
        }) {
            return found;
        }
        let cached = read.len();
        drop(read);
        let derived = Arc::new(self.compute(method, route));
        // Method names are client input (any token is a valid method), so bound the cache.
        if cached < CACHE_LIMIT {
            let mut write = self.cache.write().unwrap_or_else(|p| p.into_inner());
            let per_method = write.entry(Box::from(route)).or_default();
            if per_method.len() < 16 && !per_method.iter().any(|(m, _)| m == method) {
                per_method.push((method.clone(), derived.clone()));
            }
        }
        derived
    }

    fn compute(&self, method: &Method, route: &str) -> Derived {
        let rule = self
            .rules
            .iter()
            .rev()
            .find(|r| r.route == route && r.matches(method));
        let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
        let wildcard = segments.iter().any(|s| s.starts_with("{*"));
        let mut resource: &[&str] = &segments;
        let mut action = None;
        if let Some((last, rest)) = segments.split_last() {
            if let Some((_, verb)) = self.verbs.iter().find(|(v, _)| v == last) {
                action = Some(verb.clone());
                resource = rest;
            } else if *method == Method::POST && rest.last().is_some_and(|s| is_param(s)) {
                // `POST /flows/{id}/clone`: a word after an object's id that does not name a
                // collection (`/tenants/{id}/teams`) is something done to that object.
                if let Some(verb) = verb_of(last) {
                    action = Some(verb);
                    resource = rest;
                }
            }
        }
        let action = action.unwrap_or_else(|| method_action(method));
        let collection = resource.iter().rposition(|s| !is_param(s));
        let entity_type = collection.map(|i| entity_type_of(resource[i]));
        let id_index = collection
            .map(|i| i + 1)
            .filter(|&i| resource.get(i).is_some_and(|s| is_param(s)));
        let mut derived = Derived {
            skip: false,
            action,
            entity_type,
            id_from_end: id_index
                .map(|i| segments.len() - 1 - i)
                .filter(|_| !wildcard),
            id_secret: false,
            intent: false,
            grpc: false,
            route: Box::from(route),
        };
        if let Some(rule) = rule {
            rule.apply(&mut derived);
            if let Some(param) = &rule.entity_id_param {
                let wanted = format!("{{{param}}}");
                derived.id_from_end = segments
                    .iter()
                    .position(|s| *s == wanted)
                    .map(|i| segments.len() - 1 - i)
                    .filter(|_| !wildcard);
            }
        } else if is_safe(method) {
            derived.skip = true;
        }
        derived.id_secret = derived
            .id_from_end
            .and_then(|n| segments.len().checked_sub(n + 1))
            .and_then(|i| segments.get(i))
            .is_some_and(|param| {
                let name = param.trim_start_matches([':', '{']).trim_end_matches('}');
                // `{token}` holds a secret; `{token_id}` names one, which the log must show.
                let names_an_id = name.to_ascii_lowercase().ends_with("id");
                self.redactor.is_sensitive_key(name) && !names_an_id
            });
        derived
    }
}

pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}') || segment.starts_with(':')
}

fn method_action(method: &Method) -> Action {
    match *method {
        Method::POST => Action::Create,
        Method::PUT | Method::PATCH => Action::Update,
        Method::DELETE => Action::Delete,
        Method::GET | Method::HEAD => Action::Read,
        // Any token is a valid method (`FOO!`, `M-SEARCH`), so the name is made a valid action.
        _ => Action::custom(&method.as_str().to_ascii_lowercase().to_upper_camel_case()),
    }
}

/// The action a word after an object's id names, when it names one: a literal segment that is
/// not plural (`clone`, `archive`, `send-test`) is a verb on the object; a plural one
/// (`teams`, `api-keys`) is a collection inside it, and gives `None`.
fn verb_of(segment: &str) -> Option<Action> {
    let word = segment.trim();
    if word.is_empty() || is_param(word) || word.starts_with('*') || singular(word) != word {
        return None;
    }
    Some(Action::custom(
        &word.to_ascii_lowercase().to_upper_camel_case(),
    ))
}

/// Singular words that end in `s`, which would otherwise lose it (`status`, not `statu`).
const ALREADY_SINGULAR: &[&str] = &[
    "status",
    "alias",
    "canvas",
    "bonus",
    "campus",
    "census",
    "corpus",
    "focus",
    "radius",
    "virus",
    "nexus",
    "analysis",
    "basis",
    "axis",
    "diagnosis",
    "synopsis",
    "thesis",
];

/// `connection-profiles` → `ConnectionProfile`, `policies` → `Policy`.
fn entity_type_of(collection: &str) -> String {
    singular(collection).to_upper_camel_case()
}

pub(crate) fn singular(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    if ALREADY_SINGULAR.iter().any(|w| lower.ends_with(w)) {
        word.to_owned()
    } else if lower.ends_with("ies") && word.len() > 3 {
        format!("{}y", &word[..word.len() - 3])
    } else if ["sses", "shes", "ches", "xes", "zes", "uses"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        word[..word.len() - 2].to_owned()
    } else if lower.ends_with('s') && !lower.ends_with("ss") && word.len() > 1 {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

/// The path segment at `from_end` positions before the end of `path`, percent-decoded.
#[cfg(test)]
pub(crate) fn segment_from_end(path: &str, from_end: usize) -> Option<String> {
    raw_segment_from_end(path, from_end).map(|s| percent_decode(s).into_owned())
}

/// The path segment at `from_end` positions before the end of `path`, as it appears there.
pub(crate) fn raw_segment_from_end(path: &str, from_end: usize) -> Option<&str> {
    let mut rest = path.as_bytes();
    let mut left = from_end;
    loop {
        while let [head @ .., b'/'] = rest {
            rest = head;
        }
        if rest.is_empty() {
            return None;
        }
        let start = rest.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
        if left == 0 {
            // Both ends sit next to a `/` (or an end of `path`), so they are char boundaries.
            return path.get(start..rest.len());
        }
        left -= 1;
        rest = &rest[..start];
    }
}

/// `segment` with its `%XX` escapes decoded (invalid UTF-8 replaced, malformed escapes kept
/// as they are).
pub(crate) fn percent_decode(segment: &str) -> std::borrow::Cow<'_, str> {
    if !segment.contains('%') {
        // Nothing to decode, and no need to check the text again.
        return std::borrow::Cow::Borrowed(segment);
    }
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(method: Method, route: &str) -> Derived {
        (*Routes::default().derive(&method, route)).clone()
    }

    #[test]
    fn singular_words_ending_in_s_keep_it() {
        for (word, one) in [
            ("Status", "Status"),
            ("job-status", "job-status"),
            ("statuses", "status"),
            ("order_statuses", "order_status"),
            ("alias", "alias"),
            ("analysis", "analysis"),
            ("policies", "policy"),
            ("access", "access"),
            ("Profiles", "Profile"),
        ] {
            assert_eq!(singular(word), one, "{word}");
        }
        // A singular word after an id is a verb on the object, a plural one a collection.
        let status = derive(Method::POST, "/jobs/{id}/status");
        assert_eq!(
            (status.action.as_str(), status.entity_type.as_deref()),
            ("Status", Some("Job"))
        );
        assert_eq!(
            derive(Method::PUT, "/job-statuses/{id}")
                .entity_type
                .as_deref(),
            Some("JobStatus")
        );
    }

    #[test]
    fn the_tracked_routes_derive_the_right_action_and_entity() {
        let cases = [
            (Method::POST, "/tenants", Action::Create, "Tenant", None),
            (
                Method::PUT,
                "/tenants/{id}",
                Action::Update,
                "Tenant",
                Some(0),
            ),
            (
                Method::POST,
                "/tenants/{id}/deactivate",
                Action::Deactivate,
                "Tenant",
                Some(1),
            ),
            (
                Method::POST,
                "/tenants/{id}/toggle-active",
                Action::ToggleActive,
                "Tenant",
                Some(1),
            ),
            (
                Method::POST,
                "/connection-profiles",
                Action::Create,
                "ConnectionProfile",
                None,
            ),
            (
                Method::PATCH,
                "/connection-profiles/{id}",
                Action::Update,
                "ConnectionProfile",
                Some(0),
            ),
            (
                Method::DELETE,
                "/mapping-configs/{id}",
                Action::Delete,
                "MappingConfig",
                Some(0),
            ),
            (
                Method::POST,
                "/api-keys/{id}/revoke",
                Action::Revoke,
                "ApiKey",
                Some(1),
            ),
            (
                Method::POST,
                "/extraction-cursors/{id}/reset",
                Action::Reset,
                "ExtractionCursor",
                Some(1),
            ),
            (
                Method::POST,
                "/api/v1/policies",
                Action::Create,
                "Policy",
                None,
            ),
            (
                Method::DELETE,
                "/tenants/{tid}/teams/{team_id}",
                Action::Delete,
                "Team",
                Some(0),
            ),
            (Method::POST, "/boxes", Action::Create, "Box", None),
            (Method::POST, "/addresses", Action::Create, "Address", None),
        ];
        for (method, route, action, entity, id) in cases {
            let d = derive(method.clone(), route);
            assert_eq!(d.action, action, "{method} {route}");
            assert_eq!(d.entity_type.as_deref(), Some(entity), "{method} {route}");
            assert_eq!(d.id_from_end, id, "{method} {route}");
            assert!(!d.skip);
        }
    }

    #[test]
    fn safe_methods_are_skipped_unless_a_rule_says_otherwise() {
        assert!(derive(Method::GET, "/tenants/{id}").skip);
        let mut routes = Routes::default();
        routes.add_rule(RouteRule::new(Method::GET, "/reports/{id}").action(Action::Export));
        assert!(routes.has_safe_method_rules());
        let d = routes.derive(&Method::GET, "/reports/{id}");
        assert!(!d.skip);
        assert_eq!(d.action, Action::Export);
        assert_eq!(d.entity_type.as_deref(), Some("Report"));
    }

    #[test]
    fn rules_override_action_entity_and_id_and_can_skip() {
        let mut routes = Routes::default();
        routes.add_rule(
            RouteRule::new(Method::POST, "/sessions")
                .action(Action::Login)
                .entity_type("User"),
        );
        routes.add_rule(RouteRule::any_method("/orgs/{org}/sync/{job}").entity_id_param("org"));
        routes.add_rule(RouteRule::any_method("/health").skip());
        let login = routes.derive(&Method::POST, "/sessions");
        assert_eq!(
            (login.action.clone(), login.entity_type.as_deref()),
            (Action::Login, Some("User"))
        );
        assert_eq!(
            routes
                .derive(&Method::POST, "/orgs/{org}/sync/{job}")
                .id_from_end,
            Some(2)
        );
        assert!(routes.derive(&Method::POST, "/health").skip);
        assert!(!routes.derive(&Method::POST, "/other").skip);
    }

    #[test]
    fn custom_verbs_are_recognised() {
        let mut routes = Routes::default();
        routes.add_verb("approve".into(), Action::Custom("Approve".into()));
        let d = routes.derive(&Method::POST, "/invoices/{id}/approve");
        assert_eq!(d.action, Action::Custom("Approve".into()));
        assert_eq!(d.entity_type.as_deref(), Some("Invoice"));
    }

    #[test]
    fn the_products_verbs_are_built_in() {
        let cases = [
            ("/flows/{id}/publish", Action::Publish, "Flow"),
            ("/flows/{id}/clone", Action::Clone, "Flow"),
            ("/flows/{id}/duplicate", Action::Clone, "Flow"),
            ("/integrations/{id}/start", Action::Start, "Integration"),
            ("/integrations/{id}/stop", Action::Stop, "Integration"),
            ("/apps/{id}/install", Action::Install, "App"),
            ("/apps/{id}/uninstall", Action::Uninstall, "App"),
            (
                "/connections/{id}/authorize",
                Action::Authorize,
                "Connection",
            ),
            ("/teams/{id}/invite", Action::Invite, "Team"),
            ("/users/{id}/password", Action::ChangePassword, "User"),
            ("/users/{id}/logout", Action::Logout, "User"),
        ];
        for (route, action, entity) in cases {
            let d = derive(Method::POST, route);
            assert_eq!(d.action, action, "{route}");
            assert_eq!(d.entity_type.as_deref(), Some(entity), "{route}");
            assert_eq!(d.id_from_end, Some(1), "{route}");
        }
        // The password verb holds whatever the method.
        let put = derive(Method::PUT, "/users/{id}/password");
        assert_eq!(
            (put.action, put.entity_type.as_deref(), put.id_from_end),
            (Action::ChangePassword, Some("User"), Some(1))
        );
    }

    #[test]
    fn an_unknown_word_after_an_id_is_a_verb_on_the_object() {
        let d = derive(Method::POST, "/flows/{id}/archive");
        assert_eq!(d.action, Action::Custom("Archive".into()));
        assert_eq!(d.entity_type.as_deref(), Some("Flow"));
        assert_eq!(d.id_from_end, Some(1));
        let d = derive(Method::POST, "/webhooks/{id}/send-test");
        assert_eq!(d.action, Action::Custom("SendTest".into()));
        assert_eq!(d.entity_type.as_deref(), Some("Webhook"));
        // A plural word is a collection inside the object.
        let d = derive(Method::POST, "/tenants/{id}/teams");
        assert_eq!(
            (d.action, d.entity_type.as_deref(), d.id_from_end),
            (Action::Create, Some("Team"), None)
        );
        // Without an id before it, a word is a collection, as before.
        let d = derive(Method::POST, "/reports/archive");
        assert_eq!(d.action, Action::Create);
        assert_eq!(d.entity_type.as_deref(), Some("Archive"));
        // Other methods keep the word as the object (`PUT /users/{id}/avatar`).
        let d = derive(Method::PUT, "/users/{id}/avatar");
        assert_eq!(d.action, Action::Update);
        assert_eq!(d.entity_type.as_deref(), Some("Avatar"));
    }

    #[test]
    fn ids_are_read_from_the_end_of_the_path_and_decoded() {
        assert_eq!(
            segment_from_end("/api-keys/k%2042/revoke", 1).as_deref(),
            Some("k 42")
        );
        assert_eq!(segment_from_end("/x/%zz", 0).as_deref(), Some("%zz"));
        assert_eq!(segment_from_end("/x/%", 0).as_deref(), Some("%"));
        assert_eq!(segment_from_end("/a", 3), None);
        assert_eq!(segment_from_end("/a//b/", 0).as_deref(), Some("b"));
        assert_eq!(segment_from_end("/a//b/", 1).as_deref(), Some("a"));
        assert_eq!(segment_from_end("a/b", 1).as_deref(), Some("a"));
        assert_eq!(segment_from_end("/é/b", 1).as_deref(), Some("é"));
        assert_eq!(segment_from_end("///", 0), None);
        assert_eq!(segment_from_end("", 0), None);
        assert_eq!(segment_from_end("/a/%C3%A9", 0).as_deref(), Some("é"));
        assert_eq!(segment_from_end("/a/%FF", 0).as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn a_verb_alone_and_wildcards_do_not_panic() {
        let d = derive(Method::POST, "/login");
        assert_eq!(d.action, Action::Login);
        assert_eq!(d.entity_type, None);
        let w = derive(Method::POST, "/files/{*path}");
        assert_eq!(w.id_from_end, None);
        assert_eq!(derive(Method::POST, "/").entity_type, None);
    }
}
