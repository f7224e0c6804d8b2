//! How entries reach the sink: written before the response (the default), or through the
//! bounded queue of [`Buffered`] delivery.
//!
//! Buffered, a request the layer records takes a slot in the queue *before* its handler runs; when no slot is free the request is refused with `503 Service Unavailable` and the
//! handler never runs, so no change ever happens without room for its entry. When the response is
//! ready the request's capture goes into the queue as it is, and the response is returned at
//! once. A writer task, spawned on the Tokio runtime the first time it is needed, takes what has
//! gathered, builds the `AuditEntry`s (into the entries of its previous batch, reusing their
//! buffers) and hands them to the sink in batches, retrying a failed batch with exponential
//! backoff until it is stored. Slots are
//! given back only once their entries are stored, so a sink that stays down fills the queue
//! and the layer starts refusing requests rather than losing entries.
//!
//! Call [`AuditLayer::flush`](crate::AuditLayer::flush) at shutdown, after the server has
//! stopped taking requests: entries still queued when the process exits are lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use audit_core::{Action, AuditEntry, AuditSink};
use chrono::DateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::capture::Capture;
use crate::config::Config;
use crate::context::AuditContext;

/// Settings of the buffered delivery mode; see [`AuditLayer::buffered`](crate::AuditLayer::buffered).
///
/// A request the layer records takes a slot in the queue before its handler runs; when no slot
/// is free it is refused with `503 Service Unavailable` and `Retry-After: 1`, and the handler
/// never runs, so no change happens without room for its entry. When the response is ready the
/// capture is queued and the response returned at once. A writer task on the Tokio runtime
/// builds the entries and hands them to the sink in batches, retrying a failed batch with
/// exponential backoff until it is stored; slots are given back only then, so a sink that stays
/// down fills the queue and the layer refuses requests rather than losing entries. Entries
/// still queued when the process exits are lost: call
/// [`AuditLayer::flush`](crate::AuditLayer::flush) after the server has stopped.
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
    /// `BENCHMARKS.md`), 20 ms of lingering, backoff up to 30 s.
    fn default() -> Self {
        Buffered {
            capacity: 8_192,
            max_batch: 1_000,
            linger: Duration::from_millis(20),
            max_backoff: Duration::from_secs(30),
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

    /// The most entries handed to the sink in one `record_batch` call (at least 1).
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

    /// The longest wait between two attempts to store a failed batch (the first wait is 50 ms,
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

/// The answer to a request for a slot.
pub(crate) enum Reserve {
    /// A slot is held; give it back with [`Queue::push`] or [`Queue::give_back`].
    Taken,
    /// Every slot is taken: refuse the request.
    Full,
    /// No Tokio runtime to run the writer on: deliver this entry synchronously.
    NoRuntime,
}

/// The queue of one layer (shared by its clones).
pub(crate) struct Queue {
    settings: Buffered,
    sink: Arc<dyn AuditSink>,
    items: Mutex<Vec<AuditContext>>,
    /// Finished contexts kept for reuse by later requests.
    spare: Mutex<Vec<AuditContext>>,
    /// Slots held: by requests in flight, queued entries and entries being written.
    held: AtomicUsize,
    /// Entries queued or being written.
    undelivered: AtomicUsize,
    /// Whether a writer task is alive.
    writer: AtomicBool,
    /// Whether the last request for a slot was refused (to log only the first refusal).
    refusing: AtomicBool,
    /// Wakes the writer.
    wake: Notify,
    /// Tells `flush` callers that entries were delivered.
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
    pub fn new(settings: Buffered, sink: Arc<dyn AuditSink>) -> Self {
        Queue {
            settings,
            sink,
            items: Mutex::new(Vec::new()),
            spare: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            undelivered: AtomicUsize::new(0),
            writer: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            wake: Notify::new(),
            delivered: Notify::new(),
        }
    }

    fn items(&self) -> MutexGuard<'_, Vec<AuditContext>> {
        // Pushing and taking leave the Vec whole, so a poisoned lock still holds good data.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
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
            }
            Reserve::Taken
        } else {
            if !self.refusing.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    capacity = self.settings.capacity,
                    "audit: the queue is full, refusing requests with 503 until the sink catches up"
                );
            }
            Reserve::Full
        }
    }

    /// A context for a request's capture, reusing a finished one when there is one.
    pub fn context(&self, config: &Arc<Config>, capture: Capture) -> AuditContext {
        let recycled = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match recycled {
            Some(recycled) => AuditContext::reuse(recycled, config, capture),
            None => AuditContext::new(config.clone(), capture),
        }
    }

    /// Gives back a slot whose request produced no entry.
    pub fn give_back(&self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queues a finished request's entry; its slot stays held until the entry is stored.
    pub fn push(&self, context: AuditContext) {
        self.undelivered.fetch_add(1, Ordering::AcqRel);
        let len = {
            let mut items = self.items();
            items.push(context);
            items.len()
        };
        // Wake the writer when the queue fills from empty (it then lingers for more) and when a
        // full batch has gathered; pushes in between cost no wake-up.
        if len == 1 || len == self.settings.max_batch {
            self.wake.notify_one();
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
        queue.writer.store(false, Ordering::Release);
        // A `flush` waiting on another runtime wakes up, finds entries still queued and
        // starts a writer of its own.
        queue.delivered.notify_waiters();
    }
}

async fn write_loop(mut writer: Writer) {
    let queue = writer.queue.clone();
    let settings = &queue.settings;
    let mut spent: Vec<AuditContext> = Vec::new();
    // The entries of the last batch: the next one is written into them, so their text buffers
    // are reused instead of allocated and freed for every entry.
    let mut entries: Vec<AuditEntry> = Vec::new();
    loop {
        // Sleep until there is something to write.
        loop {
            let woken = queue.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !queue.items().is_empty() {
                break;
            }
            woken.await;
        }
        // Let a batch gather, unless one already has or `flush` is waiting.
        if !settings.linger.is_zero() && queue.items().len() < settings.max_batch {
            let _ = tokio::time::timeout(settings.linger, queue.wake.notified()).await;
        }
        // Swap in the emptied buffer of the last round, so pushes never grow a new Vec.
        let mut taken = std::mem::replace(&mut *queue.items(), std::mem::take(&mut spent));
        writer.in_hand = taken.len();
        for batch in taken.chunks(settings.max_batch) {
            let mut filled = 0;
            for context in batch {
                if filled == entries.len() {
                    entries.push(blank());
                }
                if context.finish_queued(&mut entries[filled]) {
                    filled += 1;
                }
            }
            deliver(&*queue.sink, &entries[..filled], settings.max_backoff).await;
            // What the sink has stored need not stay in memory until the next batch.
            for entry in &mut entries[..filled] {
                entry.changes = Vec::new();
                entry.metadata.clear();
            }
            let count = batch.len();
            writer.in_hand -= count;
            queue.undelivered.fetch_sub(count, Ordering::AcqRel);
            queue.held.fetch_sub(count, Ordering::AcqRel);
            queue.delivered.notify_waiters();
        }
        // Keep finished contexts that nobody else holds for the next requests.
        {
            let mut spare = queue.spare.lock().unwrap_or_else(|p| p.into_inner());
            let room = SPARE_LIMIT.saturating_sub(spare.len());
            spare.extend(
                taken
                    .drain(..)
                    .filter_map(|mut c| c.is_unique().then_some(c))
                    .take(room),
            );
        }
        taken.clear();
        spent = taken;
    }
}

/// An entry for the writer to fill.
fn blank() -> AuditEntry {
    AuditEntry::with_id(Uuid::nil(), DateTime::UNIX_EPOCH, Action::Create)
}

/// The most finished contexts kept for reuse.
const SPARE_LIMIT: usize = 1_024;

/// Stores `entries`, retrying with exponential backoff until the sink takes them.
async fn deliver(sink: &dyn AuditSink, entries: &[AuditEntry], max_backoff: Duration) {
    if entries.is_empty() {
        return;
    }
    let mut backoff = Duration::from_millis(50).min(max_backoff);
    let mut attempt = 1u32;
    while let Err(error) = sink.record_slice(entries).await {
        tracing::error!(
            %error,
            entries = entries.len(),
            attempt,
            retry_in_ms = backoff.as_millis() as u64,
            "audit: the sink failed to store a batch; it stays queued and is retried"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
        attempt = attempt.saturating_add(1);
    }
}

/// An entry being written to the sink.
pub(crate) type Write = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Writes `entry` to the layer's sink now, logging a failure: the synchronous mode, and the
/// admin router's records of its reads.
pub(crate) fn write(entry: AuditEntry, config: Arc<Config>) -> Write {
    Box::pin(async move {
        let id = entry.id;
        // Through the trait object directly: calling on the `Arc` would box the future twice.
        if let Err(error) = config.sink.as_ref().record(entry).await {
            tracing::error!(%error, entry_id = %id, "audit: the sink failed to record an entry");
        }
    })
}
