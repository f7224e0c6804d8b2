//! Demo data for a first start: two tenants, an administrator and a member in each, an
//! operator, some configuration objects, and six days of history so the audit viewer is not
//! empty.
//!
//! The accounts and the objects the history starts from are written to the database directly:
//! they stand for what existed before the log's window. The history itself is made the way a
//! real one is: requests sent through the service's own router ([`crate::router_with`]), with
//! the audit layer's clock set to the moment each request is meant to happen, so every entry
//! in the demo is one the layer really recorded (sign-ins and failed ones, changes with their
//! old and new values, a revoked key refused, a member refused a change, an export).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{self, Method, Request, StatusCode};
use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::AppState;
use crate::auth::{ADMINISTRATOR, MEMBER, OPERATOR, password_hash, sha256_hex};
use crate::model::{
    api_key, connection_profile, extraction_cursor, mapping_config, session, tenant, user,
};

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
    /// A request of the demo history was not answered as expected.
    #[error("demo history: {method} {path} answered {status}: {body}")]
    Unexpected {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The status it got.
        status: StatusCode,
        /// The start of the answer's body.
        body: String,
    },
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
    for (id, name, plan) in [
        ("acme", "Acme Logistics", "enterprise"),
        ("globex", "Globex Retail", "starter"),
    ] {
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
                active: Set(true),
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
    let demo = Demo { tenants, operator };
    history(state, &demo).await?;
    Ok(demo)
}

/// A place on the demo's timeline: whole days before today (UTC), then hours and minutes.
#[derive(Clone, Copy)]
struct At(i64, u32, u32);

/// How a demo request is authenticated.
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Key(&'a str),
}

/// One person or machine of the history: where its requests come from and how.
struct Client {
    ip: [u8; 4],
    user_agent: &'static str,
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// Sends the history's requests through the service's router with the layer's clock set.
struct Driver {
    app: Router,
    clock: Arc<Mutex<DateTime<Utc>>>,
    /// The start of the day six days ago; `At` counts from there.
    origin: DateTime<Utc>,
    /// No request is dated later than this.
    latest: DateTime<Utc>,
}

impl Driver {
    fn new(state: &AppState) -> Self {
        let now = Utc::now();
        let today = now.duration_trunc(Duration::days(1)).unwrap_or(now);
        let clock = Arc::new(Mutex::new(now));
        let read = clock.clone();
        let layer = crate::audit_layer(state, &crate::AuditOptions::default())
            .clock(move || *read.lock().unwrap_or_else(|p| p.into_inner()));
        Driver {
            app: crate::router_with(state.clone(), layer),
            clock,
            origin: today - Duration::days(6),
            latest: now - Duration::minutes(5),
        }
    }

    /// Sends one request at `at`, expecting `expected`; returns the JSON answer.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        at: At,
        from: &Client,
        auth: Auth<'_>,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Result<Value, SeedError> {
        let At(day, hour, minute) = at;
        let when = self.origin
            + Duration::days(6 + day)
            + Duration::hours(i64::from(hour))
            + Duration::minutes(i64::from(minute));
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = when.min(self.latest);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::USER_AGENT, from.user_agent)
            .extension(ConnectInfo(SocketAddr::from((from.ip, 49152))));
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            Auth::Key(key) => request = request.header("x-api-key", key),
        }
        let request = match body {
            Some(body) => request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        let unexpected = |status: StatusCode, body: String| SeedError::Unexpected {
            method: method.clone(),
            path: path.to_owned(),
            status,
            body,
        };
        let request = request.map_err(|e| unexpected(StatusCode::BAD_REQUEST, e.to_string()))?;
        let response = match self.app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        if status != expected {
            let text = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            return Err(unexpected(status, text));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Signs in; returns the session token.
    async fn login(&self, at: At, from: &Client, user: &DemoUser) -> Result<String, SeedError> {
        let body = json!({"email": user.email, "password": user.password});
        let answer = self
            .send(
                at,
                from,
                Auth::None,
                Method::POST,
                "/login",
                Some(body),
                StatusCode::OK,
            )
            .await?;
        Ok(answer["token"].as_str().unwrap_or_default().to_owned())
    }
}

/// Six days of a tenant's life, and the operator's, sent as requests.
async fn history(state: &AppState, demo: &Demo) -> Result<(), SeedError> {
    use StatusCode as S;
    let driver = Driver::new(state);
    for (n, t) in demo.tenants.iter().enumerate() {
        let id = t.id.as_str();
        // The second tenant's day starts three hours later, so the two histories interleave.
        let shift = 3 * n as u32;
        let at =
            |day: i64, hour: u32, minute: u32| At(day - i64::from(n as u8), hour + shift, minute);
        let admin_pc = Client {
            ip: [203, 0, 113, 10 + n as u8],
            user_agent: BROWSER,
        };
        let member_pc = Client {
            ip: [198, 51, 100, 23 + n as u8],
            user_agent: BROWSER,
        };
        let ci = Client {
            ip: [192, 0, 2, 44 + n as u8],
            user_agent: "nightly-sync/2.3 (+ci)",
        };
        let stranger = Client {
            ip: [185, 220, 101, 7],
            user_agent: "python-requests/2.32",
        };
        let (ci_key, _) = &t.api_key;

        // Day 1: the administrator sets up a new connection, a mapping and a key for exports.
        let admin = driver.login(at(-6, 8, 2), &admin_pc, &t.admin).await?;
        let hubspot = driver
            .send(at(-6, 8, 9), &admin_pc, Auth::Bearer(&admin), Method::POST, "/connection-profiles",
                Some(json!({"name": "HubSpot marketing", "kind": "hubspot", "host": "api.hubapi.example",
                    "username": format!("sync@{id}.example"), "client_secret": format!("hs-demo-{id}-7f3a")})),
                S::CREATED)
            .await?;
        let hubspot = hubspot["id"].as_str().unwrap_or_default().to_owned();
        driver
            .send(at(-6, 8, 15), &admin_pc, Auth::Bearer(&admin), Method::POST, "/mapping-configs",
                Some(json!({"name": "Contacts to HubSpot", "mapping": {"email": "Email", "company": "CompanyName"}})),
                S::CREATED)
            .await?;
        let export_key = driver
            .send(
                at(-6, 8, 21),
                &admin_pc,
                Auth::Bearer(&admin),
                Method::POST,
                "/api-keys",
                Some(json!({"name": "warehouse-export"})),
                S::CREATED,
            )
            .await?;
        let (export_key_id, export_key_secret) = (
            export_key["id"].as_str().unwrap_or_default().to_owned(),
            export_key["key"].as_str().unwrap_or_default().to_owned(),
        );

        // Day 2: the member mistypes the password, signs in, and adjusts mapping and profile.
        driver
            .send(
                at(-5, 9, 40),
                &member_pc,
                Auth::None,
                Method::POST,
                "/login",
                Some(json!({"email": t.member.email, "password": "Summer2026"})),
                S::UNAUTHORIZED,
            )
            .await?;
        let member = driver.login(at(-5, 9, 41), &member_pc, &t.member).await?;
        driver
            .send(at(-5, 9, 52), &member_pc, Auth::Bearer(&member), Method::PUT,
                &format!("/mapping-configs/mc-{id}-0"),
                Some(json!({"mapping": {"order_no": "OrderNumber", "total": "GrossAmount", "currency": "Currency"}})),
                S::OK)
            .await?;
        driver
            .send(
                at(-5, 10, 5),
                &member_pc,
                Auth::Bearer(&member),
                Method::PUT,
                &format!("/connection-profiles/cp-{id}-1"),
                Some(json!({"host": "erp-sbx2.internal"})),
                S::OK,
            )
            .await?;

        // Night of day 3: the CI key resets a cursor and rotates a profile's secret.
        driver
            .send(
                at(-4, 2, 0),
                &ci,
                Auth::Key(ci_key),
                Method::POST,
                &format!("/extraction-cursors/ec-{id}-0/reset"),
                Some(json!({"position": "2026-11-20T00:00:00Z"})),
                S::OK,
            )
            .await?;
        driver
            .send(
                at(-4, 2, 1),
                &ci,
                Auth::Key(ci_key),
                Method::PUT,
                &format!("/connection-profiles/cp-{id}-0"),
                Some(json!({"client_secret": format!("rotated-{id}-4411")})),
                S::OK,
            )
            .await?;

        // Day 4: the member may not revoke keys; the administrator does, after an incident.
        driver
            .send(
                at(-3, 11, 30),
                &member_pc,
                Auth::Bearer(&member),
                Method::POST,
                &format!("/api-keys/{export_key_id}/revoke"),
                None,
                S::FORBIDDEN,
            )
            .await?;
        let admin = driver.login(at(-3, 14, 40), &admin_pc, &t.admin).await?;
        driver
            .send(
                at(-3, 14, 44),
                &admin_pc,
                Auth::Bearer(&admin),
                Method::POST,
                &format!("/api-keys/{export_key_id}/revoke"),
                None,
                S::OK,
            )
            .await?;

        // Day 5: the revoked key is tried at night; someone probes with an unknown key.
        driver
            .send(
                at(-2, 3, 12),
                &ci,
                Auth::Key(&export_key_secret),
                Method::PUT,
                &format!("/mapping-configs/mc-{id}-1"),
                Some(json!({"name": "Customers to CRM"})),
                S::UNAUTHORIZED,
            )
            .await?;
        driver
            .send(
                at(-2, 3, 20),
                &stranger,
                Auth::Key("sk_live_guessed_0000000000"),
                Method::DELETE,
                &format!("/connection-profiles/cp-{id}-0"),
                None,
                S::UNAUTHORIZED,
            )
            .await?;

        // Day 6: the administrator retires the sandbox connection and renames a mapping.
        let admin = driver.login(at(-1, 15, 58), &admin_pc, &t.admin).await?;
        driver
            .send(
                at(-1, 16, 3),
                &admin_pc,
                Auth::Bearer(&admin),
                Method::DELETE,
                &format!("/connection-profiles/{hubspot}"),
                None,
                S::NO_CONTENT,
            )
            .await?;
        driver
            .send(
                at(-1, 16, 10),
                &admin_pc,
                Auth::Bearer(&admin),
                Method::PUT,
                &format!("/mapping-configs/mc-{id}-1"),
                Some(json!({"name": "Customers to CRM (v2)"})),
                S::OK,
            )
            .await?;
        driver
            .send(
                at(-1, 16, 12),
                &admin_pc,
                Auth::Bearer(&admin),
                Method::POST,
                &format!("/tenants/{id}/toggle-active"),
                None,
                S::OK,
            )
            .await?;
        driver
            .send(
                at(-1, 16, 13),
                &admin_pc,
                Auth::Bearer(&admin),
                Method::POST,
                &format!("/tenants/{id}/toggle-active"),
                None,
                S::OK,
            )
            .await?;

        // Today: the member resets the other cursor.
        let member = driver.login(at(0, 1, 0), &member_pc, &t.member).await?;
        driver
            .send(
                at(0, 1, 4),
                &member_pc,
                Auth::Bearer(&member),
                Method::POST,
                &format!("/extraction-cursors/ec-{id}-1/reset"),
                None,
                S::OK,
            )
            .await?;
    }

    // Sign-ins no tenant owns, which only the operator sees, and the operator's own.
    let stranger = Client {
        ip: [185, 220, 101, 7],
        user_agent: "python-requests/2.32",
    };
    for (minute, email) in [
        (1, "admin@acme.example.com"),
        (2, "root@platform.example"),
        (3, "ceo@acme.example"),
    ] {
        driver
            .send(
                At(-2, 4, minute),
                &stranger,
                Auth::None,
                Method::POST,
                "/login",
                Some(json!({"email": email, "password": "password1"})),
                S::UNAUTHORIZED,
            )
            .await?;
    }
    let console = Client {
        ip: [10, 0, 0, 5],
        user_agent: BROWSER,
    };
    driver
        .login(At(-1, 7, 30), &console, &demo.operator)
        .await?;
    // The history's sessions are over: no token of it stays valid.
    session::Entity::delete_many().exec(&state.db).await?;
    Ok(())
}
