//! The service's own tables: the configuration objects an integration platform manages.
//!
//! Ids are UUID text so the same code runs on SQLite, PostgreSQL and MySQL. Secrets are stored
//! only as SHA-256 hashes (API keys, session tokens, passwords with a salt) or, for connection
//! profiles, as the service needs them to connect; they never reach the audit log.

/// A customer organisation.
pub mod tenant {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// One tenant.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        /// The tenant's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Display name.
        pub name: String,
        /// The plan, which decides retention.
        pub plan: String,
        /// Whether the tenant may sync.
        pub active: bool,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A person who signs in.
pub mod user {
    use sea_orm::entity::prelude::*;

    /// One user.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        /// The user's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The tenant the user belongs to.
        pub tenant_id: String,
        /// Sign-in email.
        #[sea_orm(unique)]
        pub email: String,
        /// `Administrator` or `Member`.
        pub role: String,
        /// Random salt for the password hash.
        pub salt: String,
        /// SHA-256 of salt and password (a demo: real services use a slow hash such as Argon2).
        pub password_hash: String,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A bearer token handed out by `POST /login`.
pub mod session {
    use sea_orm::entity::prelude::*;

    /// One session.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        /// SHA-256 of the token; the token itself is never stored.
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        /// The signed-in user.
        pub user_id: String,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A machine credential.
pub mod api_key {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// One API key.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        /// The key's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The tenant the key acts for.
        pub tenant_id: String,
        /// Display name, e.g. `ci-deployer`.
        pub name: String,
        /// The first characters of the key, to recognise it in lists.
        pub prefix: String,
        /// SHA-256 of the key; the key itself is shown once, at creation.
        #[serde(skip)]
        #[sea_orm(unique)]
        pub key_hash: String,
        /// Whether the key was revoked.
        pub revoked: bool,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How the platform connects to an external system.
pub mod connection_profile {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// One connection profile.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "connection_profiles")]
    pub struct Model {
        /// The profile's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The owning tenant.
        pub tenant_id: String,
        /// Display name, e.g. `Salesforce prod`.
        pub name: String,
        /// The connector, e.g. `salesforce`.
        pub kind: String,
        /// Where to connect.
        pub host: String,
        /// Who to connect as.
        pub username: String,
        /// The credential the service needs to connect. Returned by no endpoint; redacted in
        /// the audit log by its name.
        #[serde(skip)]
        pub client_secret: String,
        /// Whether the service syncs through it; `POST /connection-profiles/bulk-deactivate`
        /// clears it.
        #[sea_orm(default_value = true)]
        pub active: bool,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How records are mapped from a source to a target.
pub mod mapping_config {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// One mapping config.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "mapping_configs")]
    pub struct Model {
        /// The config's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The owning tenant.
        pub tenant_id: String,
        /// Display name, e.g. `Orders to ERP`.
        pub name: String,
        /// Field mapping, source field → target field.
        pub mapping: Json,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Where an incremental extraction stands.
pub mod extraction_cursor {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// One extraction cursor.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "extraction_cursors")]
    pub struct Model {
        /// The cursor's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The owning tenant.
        pub tenant_id: String,
        /// Display name, e.g. `Orders since last sync`.
        pub name: String,
        /// The position: a timestamp or an opaque token.
        pub position: String,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
