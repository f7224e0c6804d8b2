//! [`PartHealth`]: how a part of the audit pipeline outside the layer is doing.

use serde::Serialize;

/// How one part of the audit pipeline (a forwarder, say) is doing, as the admin router's
/// `GET /health` reports it under the part's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PartHealth {
    /// Whether the part is failing or behind: the health status becomes `degraded`.
    pub degraded: bool,
    /// The part's own figures, as JSON.
    pub details: serde_json::Value,
}
