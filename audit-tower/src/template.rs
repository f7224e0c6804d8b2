//! Routes without axum: the [`RouteTemplate`] a service names in the request extensions, the
//! rules' templates matched against a request's path, and the warning for a request that
//! neither names.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;

use http::Method;

/// The route template of a request, for stacks without axum's router.
///
/// Under an axum `Router` the layer reads the matched route itself. On any other tower stack
/// (hyper with a hand-written router, tower's `Steer`, a framework of its own), the service
/// that routes a request can name its template here; the layer then derives the action and
/// entity from it exactly as from an axum route. Without it, the layer matches the request's
/// path against the templates of its [`RouteRule`](crate::RouteRule)s.
///
/// Put it into the request extensions before the layer sees the request (a layer outside the
/// audit layer, or the router itself when it runs first):
///
/// ```
/// use audit_tower::RouteTemplate;
/// use http::Request;
///
/// let mut req = Request::put("/tenants/acme").body(()).unwrap();
/// req.extensions_mut().insert(RouteTemplate::new("/tenants/{id}"));
/// assert_eq!(req.extensions().get::<RouteTemplate>().map(RouteTemplate::as_str), Some("/tenants/{id}"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteTemplate(Cow<'static, str>);

impl RouteTemplate {
    /// The template, written as in `Router::route`: `/tenants/{id}`, `/api-keys/{id}/revoke`.
    pub fn new(template: impl Into<Cow<'static, str>>) -> Self {
        RouteTemplate(template.into())
    }

    /// The template as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for RouteTemplate {
    fn from(template: &'static str) -> Self {
        RouteTemplate::new(template)
    }
}

impl From<String> for RouteTemplate {
    fn from(template: String) -> Self {
        RouteTemplate::new(template)
    }
}

/// One segment of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Matches this text exactly.
    Literal(Box<str>),
    /// `{name}` (or `:name`): one non-empty segment.
    Param,
    /// `{*name}`, last: one or more segments.
    Rest,
}

/// A rule's route compiled for matching paths.
#[derive(Debug, Clone)]
struct Template {
    route: Box<str>,
    parts: Box<[Part]>,
    /// How many parts are literal: the more specific of two matching templates wins.
    literals: usize,
}

impl Template {
    fn compile(route: &str) -> Self {
        let parts: Box<[Part]> = segments(route)
            .map(|segment| {
                if segment.starts_with("{*") && segment.ends_with('}') {
                    Part::Rest
                } else if segment.len() > 1
                    && (segment.starts_with('{') && segment.ends_with('}')
                        || segment.starts_with(':'))
                {
                    Part::Param
                } else {
                    Part::Literal(segment.into())
                }
            })
            .collect();
        let literals = parts
            .iter()
            .filter(|p| matches!(p, Part::Literal(_)))
            .count();
        Template {
            route: route.into(),
            parts,
            literals,
        }
    }

    fn matches(&self, path: &str) -> bool {
        let mut path = segments(path);
        for part in &self.parts {
            let Some(segment) = path.next() else {
                return false;
            };
            match part {
                Part::Literal(text) if **text == *segment => {}
                Part::Param if !segment.is_empty() => {}
                Part::Rest => return !segment.is_empty() || path.next().is_some(),
                _ => return false,
            }
        }
        path.next().is_none()
    }
}

/// The segments of a path or template: what lies between its slashes, the leading one aside.
fn segments(path: &str) -> std::str::Split<'_, char> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// The rules' routes, compiled; matched in one pass over them, without allocating.
#[derive(Debug, Clone, Default)]
pub(crate) struct Templates {
    templates: Vec<Template>,
}

impl Templates {
    /// Adds a rule's route (once: rules for several methods share a template).
    pub fn add(&mut self, route: &str) {
        if !self.templates.iter().any(|t| *t.route == *route) {
            self.templates.push(Template::compile(route));
        }
    }

    /// The template `path` matches: of several, the one with the most literal segments, and of
    /// those the one added last.
    pub fn find(&self, path: &str) -> Option<&str> {
        let mut best: Option<&Template> = None;
        for template in &self.templates {
            if best.is_some_and(|b| b.literals > template.literals) || !template.matches(path) {
                continue;
            }
            best = Some(template);
        }
        best.map(|t| &*t.route)
    }
}

/// How many distinct unrouted request shapes are warned about; past it the layer warns once
/// more, that it stops, so a scan of random paths cannot grow memory or flood the log.
pub(crate) const MAX_WARNED_SHAPES: usize = 1024;

/// The shapes of the unrouted requests warned about so far.
#[derive(Debug, Default)]
pub(crate) struct Unrouted {
    warned: Mutex<Warned>,
}

#[derive(Debug, Default)]
struct Warned {
    shapes: HashSet<u64, foldhash::fast::FixedState>,
    full: bool,
}

impl Unrouted {
    /// Warns, once per method and path shape, that a request the layer would record has no
    /// route, and how to give it one.
    pub fn warn(&self, method: &Method, path: &str) {
        let shape = shape(method, path);
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.full || warned.shapes.contains(&shape) {
            return;
        }
        if warned.shapes.len() == MAX_WARNED_SHAPES {
            warned.full = true;
            drop(warned);
            tracing::warn!(
                "audit: {MAX_WARNED_SHAPES} request shapes without a route were warned about; \
                 no more are"
            );
            return;
        }
        warned.shapes.insert(shape);
        drop(warned);
        let shown = Shown(path);
        tracing::warn!(
            %method,
            path = %shown,
            "audit: a {method} request was not recorded: no route template is known for it. \
             Route it with axum's Router, put an `audit_tower::RouteTemplate` into its \
             extensions, or add an `AuditLayer::rule(RouteRule::new(..))` whose route matches \
             its path"
        );
    }

    /// How many shapes were warned about.
    #[cfg(test)]
    fn count(&self) -> usize {
        self.warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shapes
            .len()
    }
}

/// A path as the warning shows it: its shape, so an id in it is not logged.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, segment) in segments(self.0).take(MAX_SHAPE_SEGMENTS).enumerate() {
            if i > 0 || self.0.starts_with('/') {
                f.write_str("/")?;
            }
            f.write_str(if looks_like_a_value(segment) {
                "{…}"
            } else {
                segment
            })?;
        }
        if segments(self.0).nth(MAX_SHAPE_SEGMENTS).is_some() {
            f.write_str("/…")?;
        }
        Ok(())
    }
}

/// Segments of a path that count for its shape; the rest are one `…`.
const MAX_SHAPE_SEGMENTS: usize = 8;

/// Whether a path segment is probably a value (an id, a name) rather than a fixed word: it
/// holds a digit, a character other than letters, `-` and `_`, or is long.
fn looks_like_a_value(segment: &str) -> bool {
    segment.len() > 32
        || segment
            .bytes()
            .any(|b| !(b.is_ascii_alphabetic() || b == b'-' || b == b'_'))
}

/// A digest of the method and the path's shape: `/tenants/t-1` and `/tenants/t-2` are one
/// shape, `/tenants/acme` another.
fn shape(method: &Method, path: &str) -> u64 {
    let mut hasher = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
    method.as_str().hash(&mut hasher);
    for (count, segment) in segments(path).enumerate() {
        if count == MAX_SHAPE_SEGMENTS {
            "…".hash(&mut hasher);
            break;
        }
        if looks_like_a_value(segment) {
            0u8.hash(&mut hasher);
        } else {
            segment.hash(&mut hasher);
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates(routes: &[&str]) -> Templates {
        let mut t = Templates::default();
        for r in routes {
            t.add(r);
        }
        t
    }

    #[test]
    fn params_match_one_non_empty_segment_and_literals_exactly() {
        let t = templates(&["/tenants/{id}", "/tenants/{id}/revoke", "/files/{*path}"]);
        assert_eq!(t.find("/tenants/acme"), Some("/tenants/{id}"));
        assert_eq!(t.find("/tenants/acme/revoke"), Some("/tenants/{id}/revoke"));
        assert_eq!(t.find("/tenants/"), None);
        assert_eq!(t.find("/tenants"), None);
        assert_eq!(t.find("/tenants/acme/"), None);
        assert_eq!(t.find("/Tenants/acme"), None);
        assert_eq!(t.find("/tenants/acme/rotate"), None);
        assert_eq!(t.find("/files/a/b/c"), Some("/files/{*path}"));
        assert_eq!(t.find("/files/a"), Some("/files/{*path}"));
        assert_eq!(t.find("/files/"), None);
        assert_eq!(t.find(""), None);
        assert_eq!(t.find("/"), None);
        assert_eq!(t.find(&"/x".repeat(10_000)), None);
    }

    #[test]
    fn the_most_literal_template_wins() {
        let t = templates(&["/tenants/{id}", "/tenants/new", "/{kind}/{id}"]);
        assert_eq!(t.find("/tenants/new"), Some("/tenants/new"));
        assert_eq!(t.find("/tenants/acme"), Some("/tenants/{id}"));
        assert_eq!(t.find("/teams/ops"), Some("/{kind}/{id}"));
    }

    #[test]
    fn shapes_ignore_values_and_are_capped() {
        assert_eq!(
            shape(&Method::POST, "/tenants/t-1"),
            shape(&Method::POST, "/tenants/t-2")
        );
        assert_ne!(
            shape(&Method::POST, "/tenants/t-1"),
            shape(&Method::PUT, "/tenants/t-1")
        );
        assert_ne!(
            shape(&Method::POST, "/tenants/t-1"),
            shape(&Method::POST, "/teams/t-1")
        );
        assert_eq!(
            Shown("/tenants/0195f0c2/keys/k1/a/b/c/d/e/f").to_string(),
            "/tenants/{…}/keys/{…}/a/b/c/d/…"
        );
        let unrouted = Unrouted::default();
        for i in 0..MAX_WARNED_SHAPES + 10 {
            // Distinct literal words, so each is a shape of its own.
            let word: String = format!("{i:x}")
                .chars()
                .filter_map(|c| c.to_digit(16))
                .map(|d| char::from(b'a' + d as u8))
                .collect();
            unrouted.warn(&Method::POST, &format!("/{word}x"));
        }
        assert_eq!(unrouted.count(), MAX_WARNED_SHAPES);
    }
}
