//! `GET /`: the viewer page, one static HTML file with its CSS and script inline.
//!
//! The page holds no data: it fetches `entries`, `entries/{id}`, `summary`, `actors`, `facets`
//! and `retention` and links the exports relative to its own address, so it works under any
//! mount prefix. Signed out (the data endpoints answer 401) it goes to the configured sign-in
//! page with `?next=` its own address; denied (403) it shows the guard's message instead of
//! the log. Every value from the log is put into
//! the page with `textContent`, never parsed as HTML; as a second line of defence the
//! `Content-Security-Policy` allows only this page's own script and style (by hash) and
//! requests to its own origin.

use audit_core::AuditSink;
use audit_core::store::{AuditStore, MAX_TEXT_CHARS};
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_FRAME_OPTIONS};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::handlers::AppState;
use super::params::Vocabulary;
use super::response::common_headers;

const TEMPLATE: &str = include_str!("viewer.html");
const CONFIG_SLOT: &str = "{{CONFIG}}";
/// Where the page takes the longest free text the store accepts.
const MAX_TEXT_SLOT: &str = "{{MAX_TEXT_CHARS}}";

/// What the page is told when it is rendered.
#[derive(Debug, Default)]
pub(crate) struct ViewerSettings<'a> {
    /// The entity types the service names.
    pub entity_types: &'a [String],
    /// The actions the filter accepts.
    pub vocabulary: Option<&'a Vocabulary>,
    /// Where a signed-out visitor signs in (`?next=` is added).
    pub sign_in_url: Option<&'a str>,
    /// Where the sign-out control leads.
    pub sign_out_url: Option<&'a str>,
}

/// The rendered page and its security policy.
pub(crate) struct ViewerPage {
    html: String,
    csp: HeaderValue,
}

impl ViewerPage {
    pub(crate) fn new(settings: &ViewerSettings<'_>) -> Self {
        let actions: Vec<String> = settings
            .vocabulary
            .map_or_else(Vocabulary::default, Clone::clone)
            .valid_actions()
            .map(|a| a.as_str().to_owned())
            .collect();
        let config = json!({
            "actions": actions,
            "entity_types": settings.entity_types,
            "sign_in_url": settings.sign_in_url,
            "sign_out_url": settings.sign_out_url,
        });
        // Inside a <script type="application/json"> block only `</script` could end it early;
        // escaping every `<` rules that out whatever the entity types say.
        let config = config.to_string().replace('<', "\\u003c");
        let html = TEMPLATE
            .replace(CONFIG_SLOT, &config)
            .replace(MAX_TEXT_SLOT, &MAX_TEXT_CHARS.to_string());
        let script = element_body(TEMPLATE, "<script>", "</script>");
        let style = element_body(TEMPLATE, "<style>", "</style>");
        let csp = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
            sha256_base64(script),
            sha256_base64(style),
        );
        ViewerPage {
            html,
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    }
}

/// The text between the first `open` tag and the next `close` tag (what a CSP hash covers).
fn element_body<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    html.split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map_or("", |(body, _)| body)
}

fn sha256_base64(text: &str) -> String {
    STANDARD.encode(Sha256::digest(text.as_bytes()))
}

/// Serves the page.
pub(crate) async fn page<S: AuditStore + AuditSink>(State(shared): AppState<S>) -> Response {
    let mut response = Response::new(Body::from(shared.viewer.html.clone()));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CONTENT_SECURITY_POLICY, shared.viewer.csp.clone());
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    common_headers(headers);
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_one_script_and_style_and_no_html_sinks() {
        assert!(!element_body(TEMPLATE, "<script>", "</script>").is_empty());
        assert!(!element_body(TEMPLATE, "<style>", "</style>").is_empty());
        assert_eq!(TEMPLATE.matches("<script>").count(), 1);
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!TEMPLATE.contains(sink), "the viewer must not use {sink}");
        }
        assert!(TEMPLATE.contains(CONFIG_SLOT));
        assert!(TEMPLATE.contains(MAX_TEXT_SLOT));
        let page = ViewerPage::new(&ViewerSettings::default());
        assert!(
            page.html
                .contains(&format!("maxlength=\"{MAX_TEXT_CHARS}\""))
        );
        assert!(!page.html.contains("{{"));
    }

    #[test]
    fn hashes_are_standard_base64() {
        // SHA-256 of the empty string.
        assert_eq!(
            sha256_base64(""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn config_cannot_close_its_script_block() {
        let types = ["</script><script>alert(1)</script>".to_owned()];
        let page = ViewerPage::new(&ViewerSettings {
            entity_types: &types,
            sign_in_url: Some("/login</script>"),
            ..ViewerSettings::default()
        });
        assert_eq!(page.html.matches("</script>").count(), 2);
    }

    #[test]
    fn the_page_is_told_the_actions_and_where_to_sign_in_and_out() {
        let vocabulary = Vocabulary::new(&["Approve".to_owned()], &[]);
        let page = ViewerPage::new(&ViewerSettings {
            vocabulary: Some(&vocabulary),
            sign_in_url: Some("/login"),
            sign_out_url: Some("/logout"),
            ..ViewerSettings::default()
        });
        let config = element_body(
            &page.html,
            "<script type=\"application/json\" id=\"audit-config\">",
            "</script>",
        );
        let config: serde_json::Value = serde_json::from_str(config).unwrap();
        assert_eq!(config["sign_in_url"], "/login");
        assert_eq!(config["sign_out_url"], "/logout");
        let actions = config["actions"].as_array().unwrap();
        assert!(actions.contains(&json!("ToggleActive")));
        assert_eq!(actions.last(), Some(&json!("Approve")));
    }
}
