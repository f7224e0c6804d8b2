//! Who may read the audit log, and how much of it: [`AdminGuard`] and its answer, [`Access`].
//!
//! The guard runs first on every data endpoint. Its answer becomes the [`Scope`] of the store
//! query, so an entry outside the caller's scope is never read: not listed, not exported, and
//! 404 by id.

use audit_core::store::Scope;
use http::request::Parts;

/// A guard's answer: which part of the log the caller may read.
///
/// `#[non_exhaustive]` is deliberately absent: a new kind of access must be handled everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every entry of every tenant: a platform operator.
    All,
    /// The entries of one tenant: an organisation administrator.
    Tenant(String),
    /// The entries of one team within one tenant: a team administrator.
    Team {
        /// The tenant's id.
        tenant: String,
        /// The team's id within the tenant.
        team: String,
    },
    /// Nothing: the request gets `403` with `{"error":"access_denied","message":...}`.
    Denied(String),
}

impl Access {
    /// Access to one tenant.
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Access::Tenant(tenant.into())
    }

    /// Access to one team of a tenant.
    pub fn team(tenant: impl Into<String>, team: impl Into<String>) -> Self {
        Access::Team {
            tenant: tenant.into(),
            team: team.into(),
        }
    }

    /// No access, with the message the caller (and the viewer page) will see.
    pub fn denied(message: impl Into<String>) -> Self {
        Access::Denied(message.into())
    }

    /// The store scope this access stands for, or the denial message.
    pub fn scope(self) -> Result<Scope, String> {
        match self {
            Access::All => Ok(Scope::All),
            Access::Tenant(tenant) => Ok(Scope::Tenant(tenant)),
            Access::Team { tenant, team } => Ok(Scope::Team { tenant, team }),
            Access::Denied(message) => Err(message),
        }
    }
}

impl From<Scope> for Access {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::All => Access::All,
            Scope::Tenant(tenant) => Access::Tenant(tenant),
            Scope::Team { tenant, team } => Access::Team { tenant, team },
        }
    }
}

/// Decides, from the request's parts, how much of the log a caller may read. Implemented for
/// closures `Fn(&http::request::Parts) -> Access`.
///
/// The guard is synchronous: let your authentication middleware do any I/O and put its result
/// (a session, claims, an [`Actor`](audit_core::Actor)) into the request extensions, where the
/// guard reads it.
///
/// ```
/// use audit_core::TenantRef;
/// use audit_tower::admin::{Access, AdminGuard};
/// use http::request::Parts;
///
/// /// What your authentication middleware put into the extensions.
/// #[derive(Clone)]
/// struct Role(&'static str);
///
/// let guard = |parts: &Parts| {
///     let tenant = parts.extensions.get::<TenantRef>();
///     match (parts.extensions.get::<Role>(), tenant) {
///         (Some(Role("operator")), _) => Access::All,
///         (Some(Role("admin")), Some(t)) => Access::tenant(&t.tenant_id),
///         (Some(Role("team_admin")), Some(TenantRef { tenant_id, team_id: Some(team) })) => {
///             Access::team(tenant_id, team)
///         }
///         _ => Access::denied("The audit log is for administrators."),
///     }
/// };
/// let (parts, ()) = http::Request::new(()).into_parts();
/// assert!(matches!(guard.check(&parts), Access::Denied(_)));
/// ```
pub trait AdminGuard: Send + Sync + 'static {
    /// The caller's access.
    fn check(&self, parts: &Parts) -> Access;
}

impl<F> AdminGuard for F
where
    F: Fn(&Parts) -> Access + Send + Sync + 'static,
{
    fn check(&self, parts: &Parts) -> Access {
        self(parts)
    }
}

/// The default guard: denies everyone, so an admin router mounted without a guard shows
/// nothing. Replace it with [`AdminRouter::guard`](super::AdminRouter::guard).
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyAll;

/// The message of [`DenyAll`].
pub const NO_GUARD_MESSAGE: &str = "access to the audit log is not configured: the service must \
     give the admin router a guard (AdminRouter::guard) that grants administrators access";

impl AdminGuard for DenyAll {
    fn check(&self, _: &Parts) -> Access {
        Access::Denied(NO_GUARD_MESSAGE.to_owned())
    }
}
