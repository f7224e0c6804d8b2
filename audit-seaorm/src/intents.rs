//! `SeaOrmStore` as an [`IntentStore`]: intents in the `audit_intent` table, recovered into
//! `audit_log`.

use std::time::Duration;

use async_trait::async_trait;
use audit_core::{AuditEntry, IntentStore, Outcome, SinkError};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, QueryOrder, QuerySelect, TransactionTrait};

use crate::error::{sink_error, store_error};
use crate::store::SeaOrmStore;
use crate::write::insert_entries;

/// The `audit_intent` table.
mod intent {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_intent")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Microseconds since the Unix epoch.
        pub recorded_at: i64,
        #[sea_orm(column_type = "Text")]
        pub entry: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Intents recovered per transaction.
const RECOVERY_BATCH: u64 = 500;
/// Ids per `DELETE … WHERE id IN (…)`.
const IDS_PER_DELETE: usize = 1_000;

fn micros_now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn backend_error(error: impl std::error::Error + Send + Sync + 'static) -> SinkError {
    SinkError::Backend(Box::new(error))
}

#[async_trait]
impl IntentStore for SeaOrmStore {
    async fn record_intents(&self, intents: &[AuditEntry]) -> Result<(), SinkError> {
        if intents.is_empty() {
            return Ok(());
        }
        let recorded_at = micros_now();
        let mut rows = Vec::with_capacity(intents.len());
        for entry in intents {
            rows.push(intent::ActiveModel {
                id: Set(entry.id),
                recorded_at: Set(recorded_at),
                entry: Set(serde_json::to_string(entry).map_err(backend_error)?),
            });
        }
        intent::Entity::insert_many(rows)
            .on_conflict_do_nothing()
            .exec_without_returning(self.writer())
            .await
            .map_err(|e| sink_error(store_error(e)))?;
        Ok(())
    }

    async fn clear_intents(&self, ids: &[Uuid]) -> Result<(), SinkError> {
        for chunk in ids.chunks(IDS_PER_DELETE) {
            intent::Entity::delete_many()
                .filter(intent::Column::Id.is_in(chunk.iter().copied()))
                .exec(self.writer())
                .await
                .map_err(|e| sink_error(store_error(e)))?;
        }
        Ok(())
    }

    async fn recover_intents(&self, older_than: Duration) -> Result<u64, SinkError> {
        let age = i64::try_from(older_than.as_micros()).unwrap_or(i64::MAX);
        let cutoff = micros_now().saturating_sub(age);
        let mut recovered = 0;
        loop {
            let txn = self
                .writer()
                .begin_with_config(self.write_isolation(), None)
                .await
                .map_err(|e| sink_error(store_error(e)))?;
            let rows = intent::Entity::find()
                .filter(intent::Column::RecordedAt.lte(cutoff))
                .order_by_asc(intent::Column::RecordedAt)
                .limit(RECOVERY_BATCH)
                .all(&txn)
                .await
                .map_err(|e| sink_error(store_error(e)))?;
            if rows.is_empty() {
                return Ok(recovered);
            }
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                match serde_json::from_str::<AuditEntry>(&row.entry) {
                    Ok(mut entry) => {
                        // What the intent said, and nothing more: the request never finished.
                        entry.outcome = Outcome::Unknown;
                        entry.status = None;
                        entries.push(entry);
                    }
                    Err(error) => tracing::error!(
                        %error,
                        intent_id = %row.id,
                        "audit: an intent is not a readable entry; it is removed without an entry"
                    ),
                }
            }
            // Skips ids already stored: those requests finished and their entry was written.
            insert_entries(&txn, &entries).await.map_err(sink_error)?;
            intent::Entity::delete_many()
                .filter(intent::Column::Id.is_in(rows.iter().map(|r| r.id)))
                .exec(&txn)
                .await
                .map_err(|e| sink_error(store_error(e)))?;
            txn.commit().await.map_err(|e| sink_error(store_error(e)))?;
            recovered += rows.len() as u64;
        }
    }
}
