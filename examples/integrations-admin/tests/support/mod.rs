//! What the fault tests share: the service binary as a child process, a load of creations over
//! real HTTP, and the check of what the database holds after.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_core::{Action, Outcome};
use audit_seaorm::SeaOrmStore;
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, Database, Statement};

/// Held by each fault test while it runs: they measure how fast the service recovers, which
/// means little while two of them share the machine's cores.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The bearer token the service is started with; it acts as the demo administrator of `acme`.
pub const TOKEN: &str = "fault-test-token";

/// The service binary, running.
pub struct Service {
    child: Child,
    base: String,
    output: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Starts the binary on a free loopback port with `env` and waits until it serves.
    pub fn start(env: &[(&str, &str)]) -> Service {
        Self::run(&["--addr", "127.0.0.1:0"], env, "listening on http://")
    }

    /// Starts `integrations-admin forward` with `env` and waits until it forwards.
    pub fn forward(env: &[(&str, &str)]) -> Service {
        Self::run(&["forward"], env, "forwarding audit entries")
    }

    /// Runs the binary with `args` until it prints `ready` (the text after it, if an address,
    /// is the base URL).
    fn run(args: &[&str], env: &[(&str, &str)], ready_line: &'static str) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_integrations-admin"))
            .args(args)
            .current_dir(dir.path())
            .env("DEMO_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let (ready, started) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn({
            let output = output.clone();
            move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split(ready_line).nth(1) {
                        let _ = ready.send(rest.trim().to_owned());
                    }
                    output.lock().unwrap().push_str(&line);
                    output.lock().unwrap().push('\n');
                }
            }
        });
        let addr = started
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("not ready after 60 s: {}", output.lock().unwrap()));
        Service {
            child,
            base: format!("http://{addr}"),
            output,
            _dir: dir,
        }
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`) and waits for the process to exit; unless
    /// killed, it must exit cleanly within 30 s.
    pub fn stop(mut self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if std::env::var("FAULTS_DEBUG").is_ok() {
            eprintln!("{}", self.output.lock().unwrap());
        }
        if signal != "KILL" {
            assert!(
                status.success(),
                "exit after SIG{signal}: {status}\n{}",
                self.output.lock().unwrap()
            );
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the clients saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// The ids of the profiles answered `201 Created`.
    pub created: Vec<String>,
    /// When the last `201` came back.
    pub last_created: Option<Instant>,
    /// When each `503` came back.
    pub refused: Vec<Instant>,
    /// Other statuses.
    pub other: Vec<u16>,
    /// Requests that got no response (the connection failed or closed).
    pub unanswered: usize,
}

/// A kind of object the load creates.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The route that creates one.
    pub path: &'static str,
    /// Its table.
    pub table: &'static str,
    /// Its entity type in the audit log.
    pub entity_type: &'static str,
}

/// API keys: recorded by the audit layer through its queue.
pub const API_KEYS: Target = Target {
    path: "/api-keys",
    table: "api_keys",
    entity_type: "ApiKey",
};

/// Tenants: an intent is stored before the handler runs, then the entry goes through the
/// queue.
pub const TENANTS: Target = Target {
    path: "/tenants",
    table: "tenants",
    entity_type: "Tenant",
};

/// Connection profiles: created in the request's transaction, committed with the entry.
pub const PROFILES: Target = Target {
    path: "/connection-profiles",
    table: "connection_profiles",
    entity_type: "ConnectionProfile",
};

/// `clients` concurrent clients send `total` creations of `target` between them, each pausing
/// `pause` after every response; a client stops early when three requests in a row get no
/// answer (the service is gone).
pub async fn load(
    base: &str,
    target: Target,
    total: usize,
    clients: usize,
    pause: Duration,
) -> Tally {
    load_counting(base, target, total, clients, pause, Arc::default()).await
}

/// [`load`], adding one to `answered` for every `201` as it comes back, so that a test can
/// act once the load is under way (see [`until_answered`]).
pub async fn load_counting(
    base: &str,
    target: Target,
    total: usize,
    clients: usize,
    pause: Duration,
    answered: Arc<AtomicUsize>,
) -> Tally {
    // Names (and request ids) differ from one load to the next on the same database.
    static LOADS: AtomicUsize = AtomicUsize::new(0);
    let tag = LOADS.fetch_add(1, Ordering::SeqCst);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, next, tally, base, answered) = (
            http.clone(),
            next.clone(),
            tally.clone(),
            base.to_owned(),
            answered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut unanswered_in_a_row = 0;
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    break;
                }
                let sent = http
                    .post(format!("{base}{}", target.path))
                    .bearer_auth(TOKEN)
                    .header("x-request-id", format!("load-{tag}-{n}"))
                    .json(&serde_json::json!({"name": format!("load-{tag}-{n}"), "host": "h.example"}))
                    .send()
                    .await;
                let response = match sent {
                    Ok(response) => {
                        unanswered_in_a_row = 0;
                        response
                    }
                    Err(_) => {
                        tally.lock().unwrap().unanswered += 1;
                        // The service is gone (stopped or killed): this client is done.
                        unanswered_in_a_row += 1;
                        if unanswered_in_a_row == 3 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let status = response.status().as_u16();
                match status {
                    201 => match response.json::<serde_json::Value>().await {
                        Ok(body) => {
                            let id = body["id"].as_str().unwrap().to_owned();
                            let mut tally = tally.lock().unwrap();
                            tally.created.push(id);
                            tally.last_created = Some(Instant::now());
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => tally.lock().unwrap().unanswered += 1,
                    },
                    503 => {
                        tally.lock().unwrap().refused.push(Instant::now());
                        // As a client honouring `Retry-After` would, if less patiently.
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    other => tally.lock().unwrap().other.push(other),
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(tally).unwrap().into_inner().unwrap()
}

/// Two loads of 8 clients each (`first`, `second`) against `service`, killed with SIGKILL
/// once both are under way (6 answers each; on a busy machine SQLite can keep one kind of
/// request waiting for its write lock for a while) and `then` later. Returns what each load saw.
pub async fn killed_under_two_loads(
    service: Service,
    first: Target,
    second: Target,
    then: Duration,
) -> (Tally, Tally) {
    let base = service.base().to_owned();
    let answered = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let loads = async {
        tokio::join!(
            load_counting(
                &base,
                first,
                1_000_000,
                8,
                Duration::ZERO,
                answered[0].clone()
            ),
            load_counting(
                &base,
                second,
                1_000_000,
                8,
                Duration::ZERO,
                answered[1].clone()
            ),
        )
    };
    let kill = async {
        until_answered(&[&answered[0], &answered[1]], 6, Duration::from_secs(30)).await;
        tokio::time::sleep(then).await;
        tokio::task::spawn_blocking(move || service.stop("KILL"))
            .await
            .unwrap();
    };
    let (tallies, ()) = tokio::join!(loads, kill);
    tallies
}

/// Waits until every counter of [`load_counting`] has reached `at_least`: a kill that comes
/// before each load has had answers would test nothing. Panics after `limit`, with the counts.
pub async fn until_answered(counters: &[&AtomicUsize], at_least: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let counts: Vec<usize> = counters.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        if counts.iter().all(|&n| n >= at_least) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the loads had {counts:?} answers after {limit:?}, fewer than {at_least} each"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Tally {
    /// Adds what `other` saw.
    pub fn add(&mut self, other: Tally) {
        self.created.extend(other.created);
        self.refused.extend(other.refused);
        self.other.extend(other.other);
        self.unanswered += other.unanswered;
        self.last_created = self.last_created.max(other.last_created);
    }
}

/// The service's `GET /admin/audit-log/health`.
pub async fn health(base: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{base}/admin/audit-log/health"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Checks the database after a load: every object created has exactly one `Create` entry
/// (found by the request id, which is the object's name, so entries made from an intent count
/// too), every entry names its actor and tenant (one made from an intent too), every `201` is
/// a stored object, no entry id repeats, and no object
/// exists that no `201` accounts for beyond the requests that got no answer (a `503` changed
/// nothing). Returns the entries' outcomes, counted.
pub async fn verify(url: &str, target: Target, tally: &Tally) -> HashMap<Outcome, usize> {
    check(url, target, tally, true).await
}

/// [`verify`], promising less for objects whose request got no answer: every `201` has
/// exactly one entry, and no object has two, but an object whose request was cut off by a kill
/// may have none (what a service promises when its entries are delivered after the change
/// commits, through JetStream without an intent).
pub async fn verify_answered(url: &str, target: Target, tally: &Tally) -> HashMap<Outcome, usize> {
    check(url, target, tally, false).await
}

async fn check(
    url: &str,
    target: Target,
    tally: &Tally,
    every_row: bool,
) -> HashMap<Outcome, usize> {
    let db = Database::connect(url).await.unwrap();
    let backend = db.get_database_backend();
    let rows: HashMap<String, String> = db
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT id, name FROM {} WHERE name LIKE 'load-%'",
                target.table
            ),
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.try_get::<String>("", "id").unwrap(),
                row.try_get::<String>("", "name").unwrap(),
            )
        })
        .collect();
    let store = SeaOrmStore::new(db.clone());
    let query = AuditQuery::new(Scope::All)
        .entity_type(target.entity_type)
        .action(Action::Create);
    let entries: Vec<_> = store
        .export(&query)
        .map(|entry| entry.unwrap())
        .collect()
        .await;
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    let mut ids = HashSet::new();
    let mut outcomes = HashMap::new();
    for entry in &entries {
        assert!(ids.insert(entry.id), "entry {} is stored twice", entry.id);
        // An entry made from an intent too: the caller was known when the intent was stored.
        assert!(
            entry.actor_id.is_some() && entry.tenant_id.is_some(),
            "an entry ({:?}) names no actor or tenant: {entry:?}",
            entry.outcome
        );
        if let Some(request) = entry.request_id.as_deref() {
            *per_request.entry(request).or_default() += 1;
        }
        *outcomes.entry(entry.outcome).or_default() += 1;
    }
    for created in &tally.created {
        assert!(
            rows.contains_key(created),
            "a 201 for {created} left no row"
        );
    }
    let answered: HashSet<&str> = tally.created.iter().map(String::as_str).collect();
    let without_entry: Vec<(&String, usize)> = rows
        .iter()
        .filter(|(id, name)| {
            let count = per_request.get(name.as_str()).copied().unwrap_or(0);
            let must_have = every_row || answered.contains(id.as_str());
            count > 1 || (must_have && count == 0)
        })
        .map(|(_, name)| (name, per_request.get(name.as_str()).copied().unwrap_or(0)))
        .collect();
    assert!(
        without_entry.is_empty(),
        "{} of {} created objects do not have exactly one entry (name, entries): {:?}",
        without_entry.len(),
        rows.len(),
        &without_entry[..without_entry.len().min(5)]
    );
    assert!(
        rows.len() <= tally.created.len() + tally.unanswered,
        "{} objects for {} created and {} unanswered requests: a refused request changed something",
        rows.len(),
        tally.created.len(),
        tally.unanswered
    );
    assert!(
        tally.other.is_empty(),
        "unexpected statuses: {:?}",
        tally.other
    );
    db.close().await.unwrap();
    outcomes
}

/// Waits until the store holds a `Create` entry of `target`'s type for every `201` in
/// `tally` (a forwarder drains JetStream into it), 60 s at most.
pub async fn until_forwarded(url: &str, target: Target, tally: &Tally) {
    let db = Database::connect(url).await.unwrap();
    let store = SeaOrmStore::new(db.clone());
    let query = AuditQuery::new(Scope::All)
        .entity_type(target.entity_type)
        .action(Action::Create);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: HashSet<String> = store
            .export(&query)
            .map(|entry| entry.unwrap().entity_id.unwrap_or_default())
            .collect()
            .await;
        let missing = tally
            .created
            .iter()
            .filter(|id| !stored.contains(*id))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} answered requests still without an entry after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.close().await.unwrap();
}

/// The address of the PostgreSQL server in `url`.
pub fn postgres_addr(url: &str) -> SocketAddr {
    let host_port = host_port(url);
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    with_port.replace("localhost", "127.0.0.1").parse().unwrap()
}

/// `url` with its host and port replaced by `addr`.
pub fn through(url: &str, addr: SocketAddr) -> String {
    url.replacen(host_port(url), &addr.to_string(), 1)
}

fn host_port(url: &str) -> &str {
    let after_scheme = url.split_once("://").unwrap().1;
    let authority = after_scheme.split('/').next().unwrap();
    authority.rsplit('@').next().unwrap()
}
