//! Demo data for a first start: two tenants, an administrator and a member in each, some
//! configuration objects, and a few days of history so the audit viewer is not empty.

use audit_core::{Action, Actor, ApiKeyRef, AuditEntry, AuditSink, Change, Outcome};
use chrono::{Duration, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::AppState;
use crate::auth::{ADMINISTRATOR, MEMBER, OPERATOR, password_hash, sha256_hex};
use crate::model::{api_key, connection_profile, extraction_cursor, mapping_config, tenant, user};

/// A demo account.
#[derive(Debug, Clone)]
pub struct DemoUser {
    /// Sign-in email.
    pub email: String,
    /// Password (demo only).
    pub password: String,
    /// `Administrator` or `Member`.
    pub role: String,
    /// The user's id.
    pub id: String,
}

/// One demo tenant and what it holds.
#[derive(Debug, Clone)]
pub struct DemoTenant {
    /// The tenant's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The administrator.
    pub admin: DemoUser,
    /// The member.
    pub member: DemoUser,
    /// A working API key's secret and name.
    pub api_key: (String, String),
}

/// What the seed created.
#[derive(Debug, Clone)]
pub struct Demo {
    /// `acme` and `globex`.
    pub tenants: Vec<DemoTenant>,
    /// The platform operator, who reads every tenant's audit log.
    pub operator: DemoUser,
}

/// Seeds the demo when the database has no tenant yet; returns what it made, or `None` when
/// the data was already there.
pub async fn seed_demo(state: &AppState) -> Result<Option<Demo>, SeedError> {
    let seeded = tenant::Entity::find().count(&state.db).await? > 0;
    Ok(if seeded {
        None
    } else {
        Some(create(state).await?)
    })
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The service's tables.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] audit_core::SinkError),
}

fn demo_user(tenant: &str, role: &str) -> DemoUser {
    let short = if role == ADMINISTRATOR {
        "admin"
    } else {
        "member"
    };
    DemoUser {
        email: format!("{short}@{tenant}.example"),
        password: format!("{tenant}-{short}-demo"),
        role: role.to_owned(),
        id: format!("u-{tenant}-{short}"),
    }
}

async fn create(state: &AppState) -> Result<Demo, SeedError> {
    let mut tenants = Vec::new();
    for (index, (id, name, plan)) in [
        ("acme", "Acme Logistics", "enterprise"),
        ("globex", "Globex Retail", "starter"),
    ]
    .into_iter()
    .enumerate()
    {
        tenant::ActiveModel {
            id: Set(id.into()),
            name: Set(name.into()),
            plan: Set(plan.into()),
            active: Set(true),
        }
        .insert(&state.db)
        .await?;
        let admin = demo_user(id, ADMINISTRATOR);
        let member = demo_user(id, MEMBER);
        for u in [&admin, &member] {
            let salt = uuid::Uuid::new_v4().simple().to_string();
            user::ActiveModel {
                id: Set(u.id.clone()),
                tenant_id: Set(id.into()),
                email: Set(u.email.clone()),
                role: Set(u.role.clone()),
                password_hash: Set(password_hash(&salt, &u.password)),
                salt: Set(salt),
            }
            .insert(&state.db)
            .await?;
        }
        let key_secret = format!("sk_demo_{id}_0000000000000000");
        let key_name = format!("{id}-ci-deployer");
        api_key::ActiveModel {
            id: Set(format!("k-{id}-ci")),
            tenant_id: Set(id.into()),
            name: Set(key_name.clone()),
            prefix: Set(key_secret.chars().take(12).collect()),
            key_hash: Set(sha256_hex(&key_secret)),
            revoked: Set(false),
        }
        .insert(&state.db)
        .await?;
        for (n, (pname, kind, host)) in [
            ("Salesforce prod", "salesforce", "login.salesforce.example"),
            ("ERP sandbox", "sap", "erp-sbx.internal"),
        ]
        .into_iter()
        .enumerate()
        {
            connection_profile::ActiveModel {
                id: Set(format!("cp-{id}-{n}")),
                tenant_id: Set(id.into()),
                name: Set(pname.into()),
                kind: Set(kind.into()),
                host: Set(host.into()),
                username: Set(format!("integration@{id}.example")),
                client_secret: Set(format!("demo-secret-{id}-{n}")),
            }
            .insert(&state.db)
            .await?;
        }
        for (n, mname) in ["Orders to ERP", "Customers to CRM"]
            .into_iter()
            .enumerate()
        {
            mapping_config::ActiveModel {
                id: Set(format!("mc-{id}-{n}")),
                tenant_id: Set(id.into()),
                name: Set(mname.into()),
                mapping: Set(json!({"order_no": "OrderNumber", "total": "NetAmount", "currency": "Currency"})),
            }
            .insert(&state.db)
            .await?;
        }
        for (n, cname) in ["Orders since last sync", "Customers delta"]
            .into_iter()
            .enumerate()
        {
            extraction_cursor::ActiveModel {
                id: Set(format!("ec-{id}-{n}")),
                tenant_id: Set(id.into()),
                name: Set(cname.into()),
                position: Set("2026-11-01T00:00:00Z".into()),
            }
            .insert(&state.db)
            .await?;
        }
        state
            .store
            .record_batch(history(id, &admin, &member, &key_name, index as u64))
            .await?;
        tenants.push(DemoTenant {
            id: id.into(),
            name: name.into(),
            admin,
            member,
            api_key: (key_secret, key_name),
        });
    }
    let operator = DemoUser {
        email: "operator@platform.example".into(),
        password: "platform-operator-demo".into(),
        role: OPERATOR.into(),
        id: "u-platform-operator".into(),
    };
    let salt = uuid::Uuid::new_v4().simple().to_string();
    user::ActiveModel {
        id: Set(operator.id.clone()),
        // The operator belongs to no customer: its own actions are the platform's.
        tenant_id: Set("platform".into()),
        email: Set(operator.email.clone()),
        role: Set(operator.role.clone()),
        password_hash: Set(password_hash(&salt, &operator.password)),
        salt: Set(salt),
    }
    .insert(&state.db)
    .await?;
    Ok(Demo { tenants, operator })
}

/// A few days of plausible history, deterministic so screenshots and tests agree.
fn history(
    tenant: &str,
    admin: &DemoUser,
    member: &DemoUser,
    key_name: &str,
    salt: u64,
) -> Vec<AuditEntry> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ salt;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let now = Utc::now();
    let events: [(Action, &str, &str, &str); 9] = [
        (Action::Update, "MappingConfig", "mc-0", "Orders to ERP"),
        (
            Action::Update,
            "ConnectionProfile",
            "cp-0",
            "Salesforce prod",
        ),
        (
            Action::Reset,
            "ExtractionCursor",
            "ec-0",
            "Orders since last sync",
        ),
        (Action::Create, "MappingConfig", "mc-0", "Orders to ERP"),
        (Action::Revoke, "ApiKey", "k-old", "legacy-importer"),
        (Action::Login, "User", "admin", "admin"),
        (Action::LoginFailed, "User", "", ""),
        (Action::ToggleActive, "Tenant", "self", "tenant"),
        (Action::Delete, "ConnectionProfile", "cp-9", "Old FTP drop"),
    ];
    (0..120)
        .map(|i| {
            let (action, entity_type, suffix, name) =
                events[next(events.len() as u64) as usize].clone();
            let minutes = 5 * 24 * 60 - i * 60 + next(50) as i64;
            let by_key = next(4) == 0 && action != Action::Login && action != Action::LoginFailed;
            let who = if next(3) == 0 { member } else { admin };
            let ip = format!("203.0.113.{}", 10 + next(40));
            let mut builder = AuditEntry::builder(action.clone())
                .tenant(tenant)
                .occurred_at(now - Duration::minutes(minutes))
                .ip(ip
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([203, 0, 113, 1])))
                .entity_type(entity_type);
            builder = match action {
                Action::LoginFailed => builder
                    .actor(Actor::anonymous_named(format!(
                        "{}x@{tenant}.example",
                        &who.email[..3]
                    )))
                    .outcome(Outcome::Denied)
                    .details("wrong email or password"),
                Action::Login => builder
                    .actor(Actor::user(who.id.clone(), who.email.clone()))
                    .entity_name(who.email.clone()),
                _ if by_key => builder
                    .actor(Actor::api_key(format!("k-{tenant}-ci"), key_name))
                    .api_key(ApiKeyRef::new(format!("k-{tenant}-ci"), key_name)),
                _ => builder.actor(Actor::user(who.id.clone(), who.email.clone())),
            };
            if !matches!(action, Action::Login | Action::LoginFailed) {
                let id = if suffix == "self" {
                    tenant.to_owned()
                } else {
                    format!("{suffix}-{tenant}")
                };
                builder = builder
                    .entity(entity_type, id)
                    .entity_name(if name == "tenant" { tenant } else { name });
            }
            builder = match (&action, entity_type) {
                (Action::Update, "MappingConfig") => builder.changes(vec![Change::new(
                    "mapping.total",
                    json!("NetAmount"),
                    json!(if i % 2 == 0 {
                        "GrossAmount"
                    } else {
                        "NetAmount"
                    }),
                )]),
                (Action::Update, "ConnectionProfile") => builder.changes(vec![
                    Change::new(
                        "host",
                        json!("login.salesforce.example"),
                        json!("eu.salesforce.example"),
                    ),
                    Change::new("client_secret", json!("x"), json!("y")),
                ]),
                (Action::Reset, _) => builder.details("cursor moved back to the start"),
                _ => builder,
            };
            if who.role == MEMBER
                && matches!(action, Action::Revoke | Action::ToggleActive)
                && !by_key
            {
                builder = builder
                    .outcome(Outcome::Denied)
                    .details("this change needs the Administrator role");
            }
            builder.build()
        })
        .collect()
}
