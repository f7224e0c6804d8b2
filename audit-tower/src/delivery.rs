//! How entries reach the sink: through one bounded queue and its writer task, with the response
//! waiting for its entry to be stored ([`Synchronous`], the default) or not ([`Buffered`]).
//!
//! A request the layer records takes a slot in the queue *before* its handler runs; when no
//! slot is free the request is refused with `503 Service Unavailable` and the handler never
//! runs, so no change ever happens without room for its entry. When the response is ready the
//! request's capture goes into the queue as it is. A writer task, spawned on the Tokio runtime
//! the first time it is needed, takes everything that has gathered, builds the `AuditEntry`s
//! (into the entries of its previous batch, reusing their buffers) and hands them to the sink
//! in batches, retrying a failed batch with backoff until it is stored. Slots are given back
//! only once their entries are stored, so a sink that stays down fills the queue and the layer
//! starts refusing requests rather than losing entries.
//!
//! Synchronous, the response waits until the writer has stored its entry: entries of requests
//! that finish while a batch is being written share the next batch, so concurrent requests
//! share one transaction (group commit). When the sink keeps failing for longer than
//! [`Synchronous::wait`], the response goes out and the entry stays with the writer, which
//! keeps retrying it: the hand-off is counted and logged, never silent.
//!
//! Call [`AuditLayer::flush`](crate::AuditLayer::flush) at shutdown, after the server has
//! stopped taking requests: entries still queued when the process exits are lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use audit_core::{Action, AuditEntry, AuditSink, SinkError};
use chrono::DateTime;
use serde::Serialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::capture::{Capture, now};
use crate::config::Config;
use crate::context::AuditContext;

/// The most entries handed to the sink in one call, by default: the batch size at which the
/// SQL stores write fastest (see `BENCHMARKS.md`).
const DEFAULT_MAX_BATCH: usize = 1_000;
/// Slots in the queue, by default.
const DEFAULT_CAPACITY: usize = 8_192;
/// The longest wait between two attempts to store a failed batch, by default: short, so that
/// once the sink is back the queue drains (and refusals stop) within a fraction of a second.
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_millis(100);
/// A synchronous response hands its entry off at most `wait / TICKS_PER_WAIT` after its
/// `wait` has passed.
const TICKS_PER_WAIT: u32 = 10;
/// The shortest tick: a zero `wait` must not spin.
const MIN_TICK: Duration = Duration::from_millis(1);
/// The first wait after a failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(25);

/// Settings of the synchronous delivery mode, the default; see
/// [`AuditLayer::synchronous`](crate::AuditLayer::synchronous).
///
/// The response waits until its entry is stored. Entries of concurrent requests are written
/// together, one `record_slice` call (one transaction in the SQL stores) per group. A recorded
/// request takes a queue slot before its handler runs and is refused with `503` when none is
/// free, which happens only when the sink has been failing long enough for `capacity` entries
/// to pile up. When the sink fails, the response waits up to [`wait`](Self::wait) while the
/// writer retries; after that it goes out and the entry stays queued until stored.
///
/// ```
/// use std::time::Duration;
/// use audit_tower::Synchronous;
///
/// let sync = Synchronous::default().wait(Duration::from_secs(5));
/// assert_eq!(sync.capacity(), 8_192);
/// ```
#[derive(Debug, Clone)]
pub struct Synchronous {
    capacity: usize,
    max_batch: usize,
    wait: Duration,
    max_backoff: Duration,
}

impl Default for Synchronous {
    /// 8,192 slots, groups of up to 1,000 entries, a response waits up to 2 s for a failing
    /// sink, retries at least every 100 ms.
    fn default() -> Self {
        Synchronous {
            capacity: DEFAULT_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            wait: Duration::from_secs(2),
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl Synchronous {
    /// A queue of `capacity` entries (at least 1): requests being handled and entries waiting
    /// to be stored all hold a slot.
    pub fn new(capacity: usize) -> Self {
        Synchronous {
            capacity: capacity.max(1),
            ..Synchronous::default()
        }
    }

    /// The most entries written in one group (at least 1).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// How long a response waits for its entry while the sink fails; after that the entry is
    /// handed to the writer, which retries it until stored, and the response goes out (at most
    /// a tenth of `wait` later: the writer checks on waiting responses ten times per `wait`).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The longest wait between two attempts to store a failed group (the first wait is 25 ms,
    /// doubling each time).
    pub fn max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff.max(Duration::from_millis(1));
        self
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Settings of the buffered delivery mode; see [`AuditLayer::buffered`](crate::AuditLayer::buffered).
///
/// A recorded request takes a slot in the queue before its handler runs; when no slot is free
/// it is refused with `503 Service Unavailable` and `Retry-After: 1`, and the handler never
/// runs, so no change happens without room for its entry. When the response is ready the
/// capture is queued and the response returned at once. A writer task on the Tokio runtime
/// builds the entries and hands them to the sink in batches, retrying a failed batch with
/// backoff until it is stored; slots are given back only then, so a sink that stays down fills
/// the queue and the layer refuses requests rather than losing entries. Entries still queued
/// when the process exits are lost: call [`AuditLayer::flush`](crate::AuditLayer::flush) after
/// the server has stopped.
///
/// ```
/// use std::time::Duration;
/// use audit_tower::Buffered;
///
/// let buffered = Buffered::new(8_192).max_batch(500).linger(Duration::from_millis(20));
/// assert_eq!(buffered.capacity(), 8_192);
/// ```
#[derive(Debug, Clone)]
pub struct Buffered {
    capacity: usize,
    max_batch: usize,
    linger: Duration,
    max_backoff: Duration,
}

impl Default for Buffered {
    /// 8,192 slots, batches of up to 1,000 (the size at which the SQL stores write fastest; see
    /// `BENCHMARKS.md`), 20 ms of lingering, retries at least every 100 ms.
    fn default() -> Self {
        Buffered {
            capacity: DEFAULT_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            linger: Duration::from_millis(20),
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl Buffered {
    /// A queue of `capacity` entries (at least 1): requests being handled, entries waiting and
    /// entries being written all hold a slot.
    pub fn new(capacity: usize) -> Self {
        Buffered {
            capacity: capacity.max(1),
            ..Buffered::default()
        }
    }

    /// The most entries handed to the sink in one `record_slice` call (at least 1).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// How long the writer, woken by a first entry, waits for more to gather before writing
    /// (unless a full batch gathers sooner). Zero writes at once.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The longest wait between two attempts to store a failed batch (the first wait is 25 ms,
    /// doubling each time).
    pub fn max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff.max(Duration::from_millis(1));
        self
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The queue's settings, from either mode's.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    capacity: usize,
    max_batch: usize,
    linger: Duration,
    max_backoff: Duration,
    /// How long a response waits for its entry: synchronous mode only.
    wait: Option<Duration>,
}

impl From<Synchronous> for Settings {
    fn from(s: Synchronous) -> Self {
        Settings {
            capacity: s.capacity,
            max_batch: s.max_batch,
            linger: Duration::ZERO,
            max_backoff: s.max_backoff,
            wait: Some(s.wait),
        }
    }
}

impl From<Buffered> for Settings {
    fn from(b: Buffered) -> Self {
        Settings {
            capacity: b.capacity,
            max_batch: b.max_batch,
            linger: b.linger,
            max_backoff: b.max_backoff,
            wait: None,
        }
    }
}

/// How a layer's delivery is doing: what [`AuditLayer::stats`](crate::AuditLayer::stats)
/// returns and the admin router's `GET /health` shows. The counters count since the layer was
/// made; the same figures go to the [`metrics`] facade (see the [crate docs](crate#health-and-metrics)
/// for their names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "admin", derive(schemars::JsonSchema))]
pub struct DeliveryStats {
    /// `"synchronous"` or `"buffered"`.
    pub mode: &'static str,
    /// Slots in the queue.
    pub capacity: usize,
    /// Slots held: by requests being handled and by entries not yet stored.
    pub held: usize,
    /// Entries waiting to be stored or being stored.
    pub queued: usize,
    /// Entries stored.
    pub written: u64,
    /// Attempts to store a batch that failed (each is retried).
    pub failed_attempts: u64,
    /// Synchronous mode: responses that stopped waiting for a failing sink and left their
    /// entry to the writer.
    pub handed_off: u64,
    /// Requests refused with `503` before their handler ran: every slot was held, or the
    /// request's intent could not be stored.
    pub refused: u64,
    /// How long the oldest entry not yet stored has waited since its request came in, in
    /// milliseconds; `None` when nothing waits.
    pub oldest_queued_ms: Option<u64>,
}

/// Metric names, as the [`metrics`] facade sees them.
pub(crate) mod metric {
    /// Counter: entries stored.
    pub const WRITTEN: &str = "audit_entries_written_total";
    /// Counter: failed attempts to store a batch.
    pub const FAILED_ATTEMPTS: &str = "audit_write_failures_total";
    /// Counter: synchronous responses that left their entry to the writer.
    pub const HANDED_OFF: &str = "audit_entries_handed_off_total";
    /// Counter: requests refused with 503.
    pub const REFUSED: &str = "audit_requests_refused_total";
    /// Gauge: entries waiting to be stored or being stored.
    pub const QUEUED: &str = "audit_entries_queued";
    /// Gauge: age of the oldest entry not yet stored, in seconds.
    pub const OLDEST_AGE: &str = "audit_oldest_queued_seconds";
}

/// The answer to a request for a slot.
pub(crate) enum Reserve {
    /// A slot is held; give it back with [`Queue::push`] or [`Queue::give_back`].
    Taken,
    /// Every slot is taken: refuse the request.
    Full,
    /// No Tokio runtime to run the writer on: deliver this entry directly.
    NoRuntime,
}

/// What waits for the writer, in push order.
struct Items {
    list: Vec<AuditContext>,
    /// How many contexts were ever pushed: the sequence number of the last one.
    pushed: u64,
    /// How many the writer has taken: the sequence number of the last one it took.
    taken: u64,
}

/// The counters behind [`DeliveryStats`].
#[derive(Default)]
struct Counters {
    written: AtomicU64,
    failed_attempts: AtomicU64,
    handed_off: AtomicU64,
    refused: AtomicU64,
}

/// The queue of one layer (shared by its clones).
pub(crate) struct Queue {
    settings: Settings,
    sink: Arc<dyn AuditSink>,
    items: Mutex<Items>,
    /// Finished contexts kept for reuse by later requests.
    spare: Mutex<Vec<AuditContext>>,
    /// Slots held: by requests in flight, queued entries and entries being written.
    held: AtomicUsize,
    /// Entries queued or being written.
    undelivered: AtomicUsize,
    /// The sequence number up to which every pushed entry is stored (or had nothing to store).
    stored: AtomicU64,
    /// When the oldest entry the writer holds came in, in microseconds since the epoch; 0 when
    /// it holds none.
    oldest_in_hand: AtomicU64,
    /// Whether a writer task is alive.
    writer: AtomicBool,
    /// Whether the last request for a slot was refused (to log only the first refusal).
    refusing: AtomicBool,
    /// Whether a response has handed its entry off since the sink last stored a batch (to log
    /// only the first hand-off of an outage).
    handing_off: AtomicBool,
    counters: Counters,
    /// Wakes the writer.
    wake: Notify,
    /// Tells `flush` callers and waiting responses that entries were delivered.
    delivered: Notify,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("settings", &self.settings)
            .field("held", &self.held.load(Ordering::Relaxed))
            .field("undelivered", &self.undelivered.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Queue {
    pub fn new(settings: impl Into<Settings>, sink: Arc<dyn AuditSink>) -> Self {
        Queue {
            settings: settings.into(),
            sink,
            items: Mutex::new(Items {
                list: Vec::new(),
                pushed: 0,
                taken: 0,
            }),
            spare: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            undelivered: AtomicUsize::new(0),
            stored: AtomicU64::new(0),
            oldest_in_hand: AtomicU64::new(0),
            writer: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            handing_off: AtomicBool::new(false),
            counters: Counters::default(),
            wake: Notify::new(),
            delivered: Notify::new(),
        }
    }

    fn items(&self) -> MutexGuard<'_, Items> {
        // Pushing and taking leave the list whole, so a poisoned lock still holds good data.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether responses wait for their entries.
    pub fn synchronous(&self) -> bool {
        self.settings.wait.is_some()
    }

    /// Takes a slot for a request about to run, making sure a writer is running.
    pub fn reserve(self: &Arc<Self>) -> Reserve {
        if !self.writer.load(Ordering::Acquire) && !self.start_writer() {
            return Reserve::NoRuntime;
        }
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.settings.capacity).then_some(held + 1)
            })
            .is_ok();
        if taken {
            if self.refusing.load(Ordering::Relaxed) {
                self.refusing.store(false, Ordering::Relaxed);
                tracing::info!("audit: the queue has room again; requests are accepted");
            }
            Reserve::Taken
        } else {
            self.count_refusal();
            if !self.refusing.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    capacity = self.settings.capacity,
                    "audit: the queue is full, refusing requests with 503 until the sink catches up"
                );
            }
            Reserve::Full
        }
    }

    /// Takes a slot even when every one is held, for an entry whose action already happened
    /// (a read of the log that was served); `false` when there is no runtime for the writer.
    #[cfg(feature = "admin")]
    pub fn reserve_served(self: &Arc<Self>) -> bool {
        if !self.writer.load(Ordering::Acquire) && !self.start_writer() {
            return false;
        }
        self.held.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// A context for a request's capture, reusing a finished one when there is one.
    pub fn context(&self, config: &Arc<Config>, capture: Capture) -> AuditContext {
        let recycled = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match recycled {
            Some(recycled) => AuditContext::reuse(recycled, config, capture),
            None => AuditContext::new(config.clone(), capture),
        }
    }

    /// Counts a request refused with `503` (queue full, or its intent could not be stored).
    pub fn count_refusal(&self) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::REFUSED).increment(1);
    }

    /// Gives back a slot whose request produced no entry.
    pub fn give_back(&self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queues a finished request's entry; its slot stays held until the entry is stored.
    /// Returns the entry's sequence number, for [`wait_stored`](Self::wait_stored).
    pub fn push(&self, context: AuditContext) -> u64 {
        self.undelivered.fetch_add(1, Ordering::AcqRel);
        let (len, seq) = {
            let mut items = self.items();
            items.list.push(context);
            items.pushed += 1;
            (items.list.len(), items.pushed)
        };
        // Wake the writer when the queue fills from empty (it then lingers for more) and when a
        // full batch has gathered; pushes in between cost no wake-up.
        if len == 1 || len == self.settings.max_batch {
            self.wake.notify_one();
        }
        seq
    }

    /// Waits until the entry pushed as `seq` is stored, for as long as the synchronous mode's
    /// `wait` allows; after that the entry is left to the writer, and the hand-off counted and
    /// logged.
    pub async fn wait_stored(&self, seq: u64) {
        let Some(wait) = self.settings.wait else {
            return;
        };
        // No timer per response: the writer wakes the waiting responses after each group and
        // every tick while a group is being written or retried, and each checks its own
        // deadline then (see docs/decisions/0048).
        let deadline = std::time::Instant::now() + wait;
        loop {
            let delivered = self.delivered.notified();
            tokio::pin!(delivered);
            delivered.as_mut().enable();
            if self.stored.load(Ordering::Acquire) >= seq {
                return;
            }
            if std::time::Instant::now() >= deadline {
                break;
            }
            delivered.await;
        }
        let handed_off = self.counters.handed_off.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::counter!(metric::HANDED_OFF).increment(1);
        if !self.handing_off.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                handed_off,
                "audit: the sink has not stored an entry in time; the response goes out and the \
                 writer keeps retrying the entry until it is stored"
            );
        }
    }

    /// Waits until every queued entry is stored, starting a writer if the last one went away
    /// with its runtime.
    pub async fn flush(self: &Arc<Self>) {
        loop {
            let delivered = self.delivered.notified();
            tokio::pin!(delivered);
            delivered.as_mut().enable();
            if self.undelivered.load(Ordering::Acquire) == 0 {
                return;
            }
            if !self.writer.load(Ordering::Acquire) {
                self.start_writer();
            }
            self.wake.notify_one();
            delivered.await;
        }
    }

    /// How the queue is doing now.
    pub fn stats(&self) -> DeliveryStats {
        let oldest = match self.oldest_in_hand.load(Ordering::Acquire) {
            0 => self
                .items()
                .list
                .first()
                .and_then(AuditContext::captured_at),
            micros => Some(Duration::from_micros(micros)),
        };
        let oldest_queued_ms = oldest.map(|at| now().saturating_sub(at).as_millis() as u64);
        let c = &self.counters;
        DeliveryStats {
            mode: if self.synchronous() {
                "synchronous"
            } else {
                "buffered"
            },
            capacity: self.settings.capacity,
            held: self.held.load(Ordering::Acquire),
            queued: self.undelivered.load(Ordering::Acquire),
            written: c.written.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            handed_off: c.handed_off.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            oldest_queued_ms,
        }
    }

    /// Sends the gauges to the metrics facade.
    fn report_gauges(&self) {
        let oldest = match self.oldest_in_hand.load(Ordering::Acquire) {
            0 => 0.0,
            micros => now()
                .saturating_sub(Duration::from_micros(micros))
                .as_secs_f64(),
        };
        metrics::gauge!(metric::QUEUED).set(self.undelivered.load(Ordering::Acquire) as f64);
        metrics::gauge!(metric::OLDEST_AGE).set(oldest);
    }

    /// Spawns the writer on the current runtime; `false` when there is none.
    fn start_writer(self: &Arc<Self>) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self
            .writer
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            runtime.spawn(write_loop(Writer {
                queue: self.clone(),
                in_hand: 0,
            }));
        }
        true
    }
}

/// The writer task's hold on the queue. When the task ends (its runtime shut down), the next
/// request starts a new one, and entries it had taken but not stored are reported.
struct Writer {
    queue: Arc<Queue>,
    in_hand: usize,
}

impl Drop for Writer {
    fn drop(&mut self) {
        let queue = &self.queue;
        if self.in_hand > 0 {
            tracing::error!(
                entries = self.in_hand,
                "audit: the runtime stopped while the writer held entries it had not stored; \
                 call AuditLayer::flush before shutting down"
            );
            queue.undelivered.fetch_sub(self.in_hand, Ordering::AcqRel);
            queue.held.fetch_sub(self.in_hand, Ordering::AcqRel);
        }
        queue.oldest_in_hand.store(0, Ordering::Release);
        queue.writer.store(false, Ordering::Release);
        // A `flush` waiting on another runtime wakes up, finds entries still queued and
        // starts a writer of its own.
        queue.delivered.notify_waiters();
    }
}

async fn write_loop(mut writer: Writer) {
    let queue = writer.queue.clone();
    let settings = &queue.settings;
    // The contexts being written, in push order.
    let mut batch: Vec<AuditContext> = Vec::new();
    // The entries of the last batch: the next one is written into them, so their text buffers
    // are reused instead of allocated and freed for every entry.
    let mut entries: Vec<AuditEntry> = Vec::new();
    // The ids of the entries in hand that have an intent to clear.
    let mut intents: Vec<Uuid> = Vec::new();
    let mut ticker = Ticker::new(settings);
    loop {
        // Sleep until there is something to write.
        loop {
            let woken = queue.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !queue.items().list.is_empty() {
                break;
            }
            woken.await;
        }
        // Let a batch gather, unless one already has or `flush` is waiting.
        if !settings.linger.is_zero() && queue.items().list.len() < settings.max_batch {
            let _ = tokio::time::timeout(settings.linger, queue.wake.notified()).await;
        }
        let mut last = take(&queue, &mut batch);
        writer.in_hand = batch.len();
        let since = batch.first().and_then(AuditContext::captured_at);
        let since = since.map_or(1, |at| at.as_micros().max(1) as u64);
        queue.oldest_in_hand.store(since, Ordering::Release);
        let mut filled = fill(&batch, &mut entries, 0, &mut intents);
        ticker.restart();

        let mut backoff = FIRST_BACKOFF.min(settings.max_backoff);
        let mut attempt = 1u64;
        while filled > 0 {
            let written = queue.sink.record_slice(&entries[..filled]);
            let Err(error) = ticker.run(&queue, written).await else {
                break;
            };
            failed(&queue, &error, filled, attempt, backoff);
            ticker.run(&queue, tokio::time::sleep(backoff)).await;
            backoff = (backoff * 2).min(settings.max_backoff);
            attempt = attempt.saturating_add(1);
            // What was queued meanwhile joins the retry, so that once the sink is back the
            // whole backlog is written at once and every slot it held comes back together.
            let before = batch.len();
            if before < settings.max_batch {
                last = take(&queue, &mut batch);
                writer.in_hand = batch.len();
                filled = fill(&batch[before..], &mut entries, filled, &mut intents);
            }
        }
        stored(&queue, filled, attempt);
        ticker
            .run(&queue, clear_intents(&batch, &mut intents))
            .await;
        // What the sink has stored need not stay in memory until the next batch.
        for entry in &mut entries[..filled] {
            entry.changes = Vec::new();
            entry.metadata.clear();
        }
        let count = batch.len();
        writer.in_hand = 0;
        queue.oldest_in_hand.store(0, Ordering::Release);
        queue.undelivered.fetch_sub(count, Ordering::AcqRel);
        queue.held.fetch_sub(count, Ordering::AcqRel);
        queue.stored.store(last, Ordering::Release);
        queue.delivered.notify_waiters();
        queue.report_gauges();
        // Keep finished contexts that nobody else holds for the next requests.
        let mut spare = queue.spare.lock().unwrap_or_else(|p| p.into_inner());
        let room = SPARE_LIMIT.saturating_sub(spare.len());
        spare.extend(
            batch
                .drain(..)
                .filter_map(|mut c| c.is_unique().then_some(c))
                .take(room),
        );
        drop(spare);
        batch.clear();
    }
}

/// Wakes the responses waiting for their entries every tick while a group is being written or
/// retried, so that each sees its deadline pass even while the sink hangs or keeps failing.
struct Ticker {
    /// Between two wake-ups; `None` when no response waits (buffered mode).
    every: Option<Duration>,
    next: tokio::time::Instant,
}

impl Ticker {
    fn new(settings: &Settings) -> Self {
        Ticker {
            every: settings
                .wait
                .map(|wait| (wait / TICKS_PER_WAIT).max(MIN_TICK)),
            next: tokio::time::Instant::now(),
        }
    }

    /// Starts counting for a new group.
    fn restart(&mut self) {
        if let Some(every) = self.every {
            self.next = tokio::time::Instant::now() + every;
        }
    }

    /// Runs `work` (a sink call, a wait before retrying), waking the waiting responses at each
    /// tick that passes meanwhile.
    async fn run<F: Future>(&mut self, queue: &Queue, work: F) -> F::Output {
        let Some(every) = self.every else {
            return work.await;
        };
        tokio::pin!(work);
        loop {
            if tokio::time::Instant::now() >= self.next {
                queue.delivered.notify_waiters();
                self.next = tokio::time::Instant::now() + every;
            }
            tokio::select! {
                biased;
                done = &mut work => return done,
                () = tokio::time::sleep_until(self.next) => {}
            }
        }
    }
}

/// Moves queued contexts into `batch`, oldest first, until it holds a full batch; returns the
/// sequence number of the last one moved (the last one taken so far).
fn take(queue: &Queue, batch: &mut Vec<AuditContext>) -> u64 {
    let mut items = queue.items();
    let room = queue.settings.max_batch.saturating_sub(batch.len());
    let moved = if items.list.len() <= room {
        let moved = items.list.len();
        // Moves the elements and leaves the queue's buffer in place for the next pushes.
        batch.append(&mut items.list);
        moved
    } else {
        batch.extend(items.list.drain(..room));
        room
    };
    items.taken += moved as u64;
    items.taken
}

/// Turns `contexts` into entries from `entries[filled]` on (adding entries as needed), noting
/// in `intents` the ids of entries whose intent is to be cleared once they are stored; returns
/// how many entries are filled now.
fn fill(
    contexts: &[AuditContext],
    entries: &mut Vec<AuditEntry>,
    mut filled: usize,
    intents: &mut Vec<Uuid>,
) -> usize {
    for context in contexts {
        if filled == entries.len() {
            entries.push(blank());
        }
        match context.finish_queued(&mut entries[filled]) {
            Some(true) => {
                intents.push(entries[filled].id);
                filled += 1;
            }
            Some(false) => filled += 1,
            None => {}
        }
    }
    filled
}

/// Removes the intents of entries just stored. A failure only leaves them for the next
/// recovery, which finds their entries stored and removes them.
async fn clear_intents(batch: &[AuditContext], ids: &mut Vec<Uuid>) {
    if ids.is_empty() {
        return;
    }
    if let Some(store) = batch.iter().find_map(AuditContext::intent_store)
        && let Err(error) = store.clear_intents(ids).await
    {
        tracing::warn!(%error, intents = ids.len(), "audit: clearing the intents of stored entries failed; the next recovery removes them");
    }
    ids.clear();
}

/// An entry for the writer to fill.
fn blank() -> AuditEntry {
    AuditEntry::with_id(Uuid::nil(), DateTime::UNIX_EPOCH, Action::Create)
}

/// The most finished contexts kept for reuse.
const SPARE_LIMIT: usize = 1_024;

/// Counts and logs a failed attempt to store `entries` entries: every one of the first few,
/// then one in a growing number.
fn failed(queue: &Queue, error: &SinkError, entries: usize, attempt: u64, retry_in: Duration) {
    queue
        .counters
        .failed_attempts
        .fetch_add(1, Ordering::Relaxed);
    metrics::counter!(metric::FAILED_ATTEMPTS).increment(1);
    queue.report_gauges();
    if attempt <= 3 || attempt.is_power_of_two() {
        tracing::error!(
            %error,
            entries,
            attempt,
            retry_in_ms = retry_in.as_millis() as u64,
            "audit: the sink failed to store a batch; it stays queued and is retried"
        );
    }
}

/// Counts `entries` stored entries, after `attempts` attempts.
fn stored(queue: &Queue, entries: usize, attempts: u64) {
    if attempts > 1 {
        tracing::info!(entries, attempts, "audit: the sink is storing again");
    }
    queue.handing_off.store(false, Ordering::Relaxed);
    let count = entries as u64;
    queue.counters.written.fetch_add(count, Ordering::Relaxed);
    metrics::counter!(metric::WRITTEN).increment(count);
}

/// An entry being written to the sink.
pub(crate) type Write = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Writes `entry` to the layer's sink now, logging a failure: for requests served where there
/// is no Tokio runtime to run the writer on.
pub(crate) fn write(entry: AuditEntry, config: Arc<Config>) -> Write {
    Box::pin(async move {
        let id = entry.id;
        // Through the trait object directly: calling on the `Arc` would box the future twice.
        if let Err(error) = config.sink.as_ref().record(entry).await {
            tracing::error!(%error, entry_id = %id, "audit: the sink failed to record an entry; it is lost");
        }
    })
}
