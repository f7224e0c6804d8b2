//! What the storage benches share: settings from the environment, a deterministic generator,
//! raw statements, and percentiles.

use std::time::Duration;

use audit_seaorm::SeaOrmStore;
use audit_seaorm::sea_orm::ConnectionTrait;

/// A count from the environment (`_` allowed as a separator), or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift64*), so every backend gets the same data.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs `sql` on the store's connection; panics with the statement if it fails.
pub async fn exec(store: &SeaOrmStore, sql: &str) {
    if let Err(e) = store.connection().execute_unprepared(sql).await {
        panic!("{sql}: {e}");
    }
}

/// The `p` quantile of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `d` in milliseconds, two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}
