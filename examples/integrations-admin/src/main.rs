//! `cargo run -p integrations-admin`: the demo service on SQLite, seeded on first start.
//!
//! `--addr HOST:PORT` or `ADDR` picks the address (default `127.0.0.1:3000`); `DATABASE_URL`
//! picks the database (default: the SQLite file `integrations-admin.db` in the working
//! directory); `DEMO_ADMIN_TOKEN` fixes a bearer token for the demo administrator.
//! `AUDIT_DELIVERY` is `synchronous` (default) or `buffered`, `AUDIT_QUEUE_CAPACITY` the
//! audit queue's slots; `AUDIT_DATABASE_URL` gives the audit store a connection of its own to
//! the same database. `AUDIT_NATS_URL` (such as `nats://127.0.0.1:4222`) publishes entries
//! through JetStream, with a forwarder into the database in this process unless
//! `AUDIT_FORWARDER=off`.
//!
//! Alerts on sensitive actions (an API key revoked or deleted; five failed logins within ten
//! minutes for one account or from one address) are logged as `WARN` events on the target
//! `audit::alert`; with `AUDIT_ALERT_WEBHOOK_URL` and `AUDIT_ALERT_WEBHOOK_SECRET` they are
//! also posted there as JSON signed with that secret (`X-Audit-Signature`, see
//! `audit_alerts::webhook`).
//!
//! `integrations-admin forward` runs only a forwarder from JetStream (`AUDIT_NATS_URL`) into
//! the database, until Ctrl-C or SIGTERM. `integrations-admin verify [--tenant ID]` checks the
//! log's hash chains in the database and exits with status 1 when one is broken.
//! `integrations-admin export-chain [--tenant ID]` writes the chains, entries with their links,
//! as NDJSON to standard output; `integrations-admin verify-export FILE` checks such a file
//! (or a JSON array of the same entries) offline, without the database.
//! `integrations-admin erase --actor ID` erases a person's personal data from the log (their
//! actor name, IP address and user agent in every entry of theirs), keeping the chains
//! verifiable, and records the erasure.
//! `integrations-admin checkpoint-key` makes an Ed25519 key for checkpoints;
//! `integrations-admin checkpoint` (with `AUDIT_CHECKPOINT_KEY`) verifies every chain and
//! prints a signed checkpoint of each intact one as NDJSON, to be kept apart from the
//! database; the service itself appends them to `AUDIT_CHECKPOINT_FILE` at start and every
//! `AUDIT_CHECKPOINT_EVERY` seconds (default 3,600) when that and the key are set; `verify` and `verify-export` take `--checkpoints FILE --public-key HEX` to find a
//! chain cut short or rewritten since.

use std::net::SocketAddr;
use std::time::Duration;

use audit_core::IntentStore;

use tracing_subscriber::EnvFilter;

const DEFAULT_ADDR: &str = "127.0.0.1:3000";
const DEFAULT_DATABASE: &str = "sqlite://integrations-admin.db?mode=rwc";

/// What the command line asks for.
enum Command {
    /// Serve the API on this address.
    Serve(SocketAddr),
    /// Run a JetStream forwarder into the database, alone.
    Forward,
    /// Verify the hash chains of the log: one tenant's, or all; against checkpoints if given.
    Verify(Option<String>, Option<Trusted>),
    /// Write the hash chains, entries with their links, as NDJSON: one tenant's, or all.
    ExportChain(Option<String>),
    /// Verify the chains in an exported file; against checkpoints if given.
    VerifyExport(String, Option<Trusted>),
    /// Make a checkpoint key.
    CheckpointKey,
    /// Sign a checkpoint of every intact chain.
    Checkpoint,
    /// Erase an actor's personal data from the log.
    Erase(String),
    /// Purge what the plans no longer keep: one tenant, or every chain; a dry run only counts.
    Purge(Option<String>, bool),
    /// Place a legal hold on a tenant (with the reason), or lift it (`None`).
    Hold(String, Option<String>),
}

const USAGE: &str = "usage: integrations-admin [--addr HOST:PORT]\n       integrations-admin forward\n       integrations-admin verify [--tenant ID] [--checkpoints FILE --public-key HEX]\n       integrations-admin export-chain [--tenant ID] > FILE\n       integrations-admin verify-export FILE [--public-key HEX [--checkpoints FILE]]\n       integrations-admin checkpoint-key\n       integrations-admin checkpoint  (AUDIT_CHECKPOINT_KEY=HEX)\n       integrations-admin erase --actor ID\n       integrations-admin purge [--tenant ID] [--dry-run]\n       integrations-admin hold --tenant ID --reason TEXT\n       integrations-admin release --tenant ID\n\nenv: ADDR, DATABASE_URL, DEMO_ADMIN_TOKEN, AUDIT_DELIVERY, AUDIT_QUEUE_CAPACITY, AUDIT_DATABASE_URL, AUDIT_NATS_URL, AUDIT_FORWARDER, AUDIT_ALERT_WEBHOOK_URL, AUDIT_ALERT_WEBHOOK_SECRET, AUDIT_CHECKPOINT_KEY, AUDIT_CHECKPOINT_FILE, AUDIT_CHECKPOINT_EVERY, AUDIT_RETENTION_DAYS, AUDIT_RETENTION_EVERY, RUST_LOG";

fn command_from_args() -> Result<Command, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = std::env::var("ADDR").ok();
    let mut forward = false;
    let mut verify = false;
    let mut export = false;
    let mut file = None;
    let mut erase = false;
    let mut actor = None;
    let mut checkpoints = None;
    let mut public_key = None;
    let mut checkpoint = false;
    let mut checkpoint_key = false;
    let mut tenant = None;
    let mut purge = false;
    let mut dry_run = false;
    let mut hold = false;
    let mut release = false;
    let mut reason = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                addr = Some(
                    args.next()
                        .ok_or("--addr needs a value such as 127.0.0.1:3000")?,
                )
            }
            other if other.starts_with("--addr=") => {
                addr = Some(other["--addr=".len()..].to_owned())
            }
            "forward" => forward = true,
            "verify" => verify = true,
            "export-chain" => export = true,
            "verify-export" => {
                file = Some(
                    args.next()
                        .ok_or("verify-export needs the exported file's path")?,
                )
            }
            "erase" => erase = true,
            "checkpoint" => checkpoint = true,
            "checkpoint-key" => checkpoint_key = true,
            "--checkpoints" if verify || file.is_some() => {
                checkpoints = Some(args.next().ok_or("--checkpoints needs a file")?);
            }
            "--public-key" if verify || file.is_some() => {
                public_key = Some(args.next().ok_or("--public-key needs 64 hex digits")?);
            }
            "--actor" if erase => {
                actor = Some(args.next().ok_or("--actor needs an actor id")?);
            }
            "purge" => purge = true,
            "hold" => hold = true,
            "release" => release = true,
            "--dry-run" if purge => dry_run = true,
            "--reason" if hold => {
                reason = Some(args.next().ok_or("--reason needs a text")?);
            }
            "--tenant" if verify || export || purge || hold || release => {
                tenant = Some(args.next().ok_or("--tenant needs a tenant id")?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    if forward {
        return Ok(Command::Forward);
    }
    let trusted = match (checkpoints, public_key) {
        (file @ Some(_), Some(public_key)) => Some(Trusted { file, public_key }),
        // An export may carry its checkpoints itself.
        (None, Some(public_key)) if file.is_some() => Some(Trusted {
            file: None,
            public_key,
        }),
        (None, None) => None,
        _ => return Err("--checkpoints and --public-key go together".to_owned()),
    };
    if checkpoint_key {
        return Ok(Command::CheckpointKey);
    }
    if checkpoint {
        return Ok(Command::Checkpoint);
    }
    if verify {
        return Ok(Command::Verify(tenant, trusted));
    }
    if export {
        return Ok(Command::ExportChain(tenant));
    }
    if let Some(file) = file {
        return Ok(Command::VerifyExport(file, trusted));
    }
    if erase {
        return actor
            .map(Command::Erase)
            .ok_or_else(|| "erase needs --actor ID".to_owned());
    }
    if purge {
        return Ok(Command::Purge(tenant, dry_run));
    }
    if hold || release {
        let tenant = tenant.ok_or("hold and release need --tenant ID")?;
        return match (hold, reason) {
            (true, Some(reason)) if !reason.trim().is_empty() => {
                Ok(Command::Hold(tenant, Some(reason)))
            }
            (true, _) => Err("hold needs --reason TEXT (a case or matter reference)".to_owned()),
            (false, _) => Ok(Command::Hold(tenant, None)),
        };
    }
    let text = addr.unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    text.parse()
        .map(Command::Serve)
        .map_err(|_| format!("{text:?} is not an address such as 127.0.0.1:3000"))
}

/// `integrations-admin forward`: a forwarder from JetStream into the database until stopped.
async fn forward(
    database_url: &str,
    options: &integrations_admin::AuditOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let url = options
        .nats_url
        .as_deref()
        .ok_or("`forward` needs AUDIT_NATS_URL, such as nats://127.0.0.1:4222")?;
    let shutdown = shutdown_signal();
    let state = integrations_admin::connect(database_url).await?;
    let jetstream = integrations_admin::jetstream(url).await?;
    let running = integrations_admin::forwarder(&jetstream, &state).await?;
    println!("forwarding audit entries from JetStream ({url}) into the database");
    shutdown.await;
    running.stop().await?;
    println!("stopped");
    Ok(())
}

/// `integrations-admin verify [--tenant ID]`: checks the hash chains of the log in the
/// database; exits with status 1 when a link is broken.
async fn verify(
    database_url: &str,
    tenant: Option<String>,
    trusted: Option<Trusted>,
) -> Result<(), Box<dyn std::error::Error>> {
    let state = integrations_admin::connect(database_url).await?;
    let checkpoints = match &trusted {
        Some(trusted) => trusted.read(&[]),
        None => Vec::new(),
    };
    let mut tenants = match tenant {
        Some(tenant) => vec![Some(tenant)],
        None => state.store.chained_tenants().await?,
    };
    // A chain the checkpoints know of but the database no longer has was removed whole.
    if trusted.is_some() && tenants.len() != 1 {
        for checkpoint in &checkpoints {
            if !tenants.contains(&checkpoint.tenant_id) {
                tenants.push(checkpoint.tenant_id.clone());
            }
        }
    }
    let mut reports = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let report = match checkpoints.iter().find(|c| c.tenant_id == tenant) {
            Some(checkpoint) => {
                state
                    .store
                    .verify_chain_against(tenant.as_deref(), checkpoint)
                    .await?
            }
            None => state.store.verify_chain(tenant.as_deref()).await?,
        };
        reports.push(report);
    }
    report_chains(&reports);
    Ok(())
}

/// Checkpoints to verify against: a file of signed checkpoints and the public key to trust.
struct Trusted {
    /// A file of signed checkpoints, one JSON object a line; `None` for those an export holds.
    file: Option<String>,
    public_key: String,
}

impl Trusted {
    /// The newest checkpoint of each chain among those of the file and `embedded` (the
    /// `{"checkpoint": …}` lines of an export), each checked against the public key; exits with
    /// status 2 when the file cannot be read or a signature does not verify.
    fn read(&self, embedded: &[serde_json::Value]) -> Vec<audit_core::checkpoint::Checkpoint> {
        use audit_core::checkpoint::SignedCheckpoint;
        let name = self.file.as_deref().unwrap_or("the export's checkpoints");
        let fail = |message: String| -> ! {
            eprintln!("{name}: {message}");
            std::process::exit(2)
        };
        let mut values: Vec<(usize, serde_json::Value)> = Vec::new();
        if let Some(file) = &self.file {
            let text = std::fs::read_to_string(file).unwrap_or_else(|e| fail(e.to_string()));
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let value = serde_json::from_str(line)
                    .unwrap_or_else(|e| fail(format!("line {}: {e}", n + 1)));
                values.push((n + 1, value));
            }
        }
        values.extend(embedded.iter().cloned().enumerate());
        let mut newest: Vec<audit_core::checkpoint::Checkpoint> = Vec::new();
        for (n, value) in values {
            let signed = SignedCheckpoint::from_json(&value)
                .unwrap_or_else(|e| fail(format!("checkpoint {n}: {e}")));
            if let Err(e) = signed.verify(&self.public_key) {
                fail(format!("checkpoint {n}: {e}"));
            }
            let checkpoint = signed.checkpoint;
            match newest
                .iter_mut()
                .find(|c| c.tenant_id == checkpoint.tenant_id)
            {
                Some(kept) if kept.seq >= checkpoint.seq => {}
                Some(kept) => *kept = checkpoint,
                None => newest.push(checkpoint),
            }
        }
        newest
    }
}

/// `integrations-admin checkpoint`: verifies every chain and prints a checkpoint of each
/// intact one, signed with `AUDIT_CHECKPOINT_KEY`, one JSON object a line; exits with status 1,
/// signing nothing, when a chain is broken.
async fn checkpoint(database_url: &str) -> Result<(), Box<dyn std::error::Error>> {
    use audit_core::checkpoint::CheckpointKey;
    let key = std::env::var("AUDIT_CHECKPOINT_KEY")
        .map_err(|_| "`checkpoint` needs AUDIT_CHECKPOINT_KEY (see `checkpoint-key`)")?;
    let key = CheckpointKey::from_hex(&key)?;
    let state = integrations_admin::connect(database_url).await?;
    let (signed, broken) = integrations_admin::sign_checkpoints(&state, &key).await?;
    if let Some(broken) = broken.first() {
        eprintln!(
            "not signing: the chain of {:?} is broken: {:?}",
            broken.tenant_id, broken.broken
        );
        std::process::exit(1);
    }
    for checkpoint in signed {
        println!("{}", checkpoint.to_json());
    }
    Ok(())
}

/// Prints what verifying each chain found; exits with status 1 when one is broken.
fn report_chains(reports: &[audit_core::chain::ChainReport]) {
    let mut broken = 0;
    for report in reports {
        let name = match &report.tenant_id {
            Some(tenant) => format!("tenant {tenant}"),
            None => "entries without a tenant".to_owned(),
        };
        let older = if report.unchained > 0 {
            format!(
                " ({} older entries were stored before chaining began)",
                report.unchained
            )
        } else {
            String::new()
        };
        match &report.broken {
            None => println!("{name}: {} entries verified{older}", report.checked),
            Some(reason) => {
                broken += 1;
                println!(
                    "{name}: BROKEN after {} verified entries: {reason}",
                    report.checked
                );
            }
        }
    }
    if reports.is_empty() {
        println!("no chained entries");
    }
    if broken > 0 {
        println!("{broken} of {} chains broken", reports.len());
        std::process::exit(1);
    }
}

/// `integrations-admin export-chain [--tenant ID]`: every entry of the chains with its link,
/// one JSON object a line, chain after chain, each in order from its first entry (after a
/// `chain_start` line for a chain a purge shortened).
async fn export_chain(
    database_url: &str,
    tenant: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    const PAGE: u64 = 1_000;
    let state = integrations_admin::connect(database_url).await?;
    let tenants = match tenant {
        Some(tenant) => vec![Some(tenant)],
        None => state.store.chained_tenants().await?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for tenant in tenants {
        // A chain a purge shortened starts after its last deleted entry: say where, so the
        // export verifies from there.
        let (mut after, hash) = state.store.chain_start(tenant.as_deref()).await?;
        if after > 0 {
            let start = audit_core::chain::linked_json_start(tenant.as_deref(), after, &hash);
            serde_json::to_writer(&mut out, &start)?;
            out.write_all(b"\n")?;
        }
        loop {
            let page = state
                .store
                .chain_page(tenant.as_deref(), after, PAGE)
                .await?;
            let Some((_, last)) = page.last() else {
                break;
            };
            after = last.seq;
            for (entry, link) in &page {
                serde_json::to_writer(&mut out, &audit_core::chain::linked_json(entry, link))?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `integrations-admin verify-export FILE`: checks the chains in an export (NDJSON, or a JSON
/// array) without the database; exits with status 1 when a link is broken, 2 when the file
/// cannot be read.
fn verify_export(file: &str, trusted: Option<Trusted>) -> Result<(), Box<dyn std::error::Error>> {
    let unreadable = |message: String| -> ! {
        eprintln!("{file}: {message}");
        std::process::exit(2)
    };
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| unreadable(e.to_string()));
    let values: Vec<serde_json::Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).unwrap_or_else(|e| unreadable(e.to_string()))
    } else {
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .enumerate()
            .map(|(n, line)| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| unreadable(format!("line {}: {e}", n + 1)))
            })
            .collect()
    };
    let mut starts = Vec::new();
    let mut entries = Vec::new();
    let mut embedded = Vec::new();
    let mut unlinked = 0;
    for mut value in values {
        if let Some(start) = audit_core::chain::from_linked_json_start(&value) {
            starts.push(start.unwrap_or_else(|e| unreadable(e.to_string())));
        } else if let Some(checkpoint) = value.get_mut("checkpoint") {
            embedded.push(checkpoint.take());
        } else if value.get("chain").is_none() && value.get("id").is_some() {
            // An entry stored before chaining began: nothing to check it against.
            unlinked += 1;
        } else {
            entries.push(
                audit_core::chain::from_linked_json(value)
                    .unwrap_or_else(|e| unreadable(e.to_string())),
            );
        }
    }
    if unlinked > 0 {
        println!("{unlinked} entries without a link (stored before chaining began) not checked");
    }
    let mut reports = audit_core::chain::verify_export(&entries, &starts);
    if trusted.is_none() && !embedded.is_empty() {
        println!(
            "the file holds {} signed checkpoints: give --public-key HEX to check against them",
            embedded.len()
        );
    }
    if let Some(trusted) = trusted {
        for checkpoint in trusted.read(&embedded) {
            let index = match reports
                .iter()
                .position(|r| r.tenant_id == checkpoint.tenant_id)
            {
                Some(index) => index,
                None => {
                    reports.push(audit_core::chain::ChainReport::new(
                        checkpoint.tenant_id.clone(),
                    ));
                    reports.len() - 1
                }
            };
            let link_at = entries
                .iter()
                .find(|(e, l)| e.tenant_id == checkpoint.tenant_id && l.seq == checkpoint.seq)
                .map(|(_, l)| l);
            audit_core::chain::check_against(&mut reports[index], link_at, &checkpoint);
        }
    }
    report_chains(&reports);
    Ok(())
}

/// `integrations-admin erase --actor ID`: erases the actor's personal data from every entry of
/// theirs and records the erasure as an `Erase` entry by this command.
async fn erase(database_url: &str, actor_id: &str) -> Result<(), Box<dyn std::error::Error>> {
    use audit_core::{Action, Actor, AuditEntry, AuditSink};
    let state = integrations_admin::connect(database_url).await?;
    let erased = state.store.erase_actor(actor_id).await?;
    let record = AuditEntry::builder(Action::Erase)
        .actor(Actor::system("integrations-admin erase"))
        .entity_type("AuditLog")
        .details(format!(
            "erased the personal data of {erased} audit entries"
        ))
        .metadata("erased_actor_id", actor_id)
        .metadata("entries", erased)
        .build();
    state.store.record(record).await?;
    println!("erased the personal data of {erased} entries of actor {actor_id}");
    Ok(())
}

/// The service's state with its retention policy: the default from `AUDIT_RETENTION_DAYS`
/// and every tenant's plan.
async fn with_retention(
    database_url: &str,
) -> Result<integrations_admin::AppState, Box<dyn std::error::Error>> {
    let state = integrations_admin::connect(database_url).await?;
    state
        .retention
        .set_default(integrations_admin::retention::default_period_from_env()?);
    integrations_admin::retention::load_plans(&state).await?;
    Ok(state)
}

/// `integrations-admin purge [--tenant ID] [--dry-run]`: deletes what the tenants' plans no
/// longer keep (every chain, or one tenant's), or counts it.
async fn purge(
    database_url: &str,
    tenant: Option<String>,
    dry_run: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use audit_core::retention::PurgeRequest;
    let state = with_retention(database_url).await?;
    let now = chrono::Utc::now();
    let reports = match &tenant {
        Some(tenant) => match PurgeRequest::by_policy(&state.retention, Some(tenant), now) {
            Some(request) => vec![state.store.purge(&request.dry_run(dry_run)).await?],
            None => {
                println!("tenant {tenant}: entries are kept forever; nothing to purge");
                return Ok(());
            }
        },
        None => {
            state
                .store
                .purge_expired(&state.retention, now, dry_run)
                .await?
        }
    };
    for report in &reports {
        let name = match &report.tenant_id {
            Some(tenant) => format!("tenant {tenant}"),
            None => "entries without a tenant".to_owned(),
        };
        let kept = state.retention.period(report.tenant_id.as_deref());
        let before = report.before.format("%Y-%m-%d %H:%M:%S UTC");
        match (&report.held, dry_run) {
            (Some(hold), _) => println!(
                "{name}: on legal hold ({}); {} entries deleted",
                hold.reason, report.deleted
            ),
            (None, true) => println!(
                "{name}: {} entries older than {before} would be deleted (kept {kept})",
                report.matched
            ),
            (None, false) => println!(
                "{name}: {} entries older than {before} deleted (kept {kept})",
                report.deleted
            ),
        }
    }
    if reports.is_empty() {
        println!("nothing to purge: every tenant's entries are kept forever");
    }
    Ok(())
}

/// `integrations-admin hold --tenant ID --reason TEXT` / `release --tenant ID`: places or lifts
/// a legal hold, recorded in the tenant's log.
async fn hold(
    database_url: &str,
    tenant: &str,
    reason: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    use audit_core::retention::LegalHold;
    use audit_core::{Action, Actor, AuditEntry, AuditSink};
    let state = integrations_admin::connect(database_url).await?;
    let standing = state.store.legal_hold(Some(tenant)).await?;
    let placed = reason
        .map(|reason| LegalHold::new(Some(tenant), &reason).placed_by("integrations-admin hold"));
    state
        .store
        .set_legal_hold(Some(tenant), placed.as_ref())
        .await?;
    let (action, details, change) = match (&placed, &standing) {
        (Some(placed), _) => (
            Action::Create,
            format!("placed a legal hold: {}", placed.reason),
            audit_core::Change::new(
                "reason",
                serde_json::Value::Null,
                placed.reason.clone().into(),
            ),
        ),
        (None, Some(lifted)) => (
            Action::Delete,
            format!("lifted the legal hold: {}", lifted.reason),
            audit_core::Change::new(
                "reason",
                lifted.reason.clone().into(),
                serde_json::Value::Null,
            ),
        ),
        (None, None) => {
            println!("tenant {tenant}: no legal hold stands");
            return Ok(());
        }
    };
    let record = AuditEntry::builder(action)
        .actor(Actor::system("integrations-admin hold"))
        .tenant(tenant)
        .entity("LegalHold", tenant)
        .entity_name("Legal hold")
        .details(details.clone())
        .changes(vec![change])
        .build();
    state.store.record(record).await?;
    println!("tenant {tenant}: {details}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let command = command_from_args()?;
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE.to_owned());
    let audit_options = integrations_admin::AuditOptions::from_env()?;
    let addr = match command {
        Command::Serve(addr) => addr,
        Command::Forward => return forward(&database_url, &audit_options).await,
        Command::Verify(tenant, trusted) => return verify(&database_url, tenant, trusted).await,
        Command::ExportChain(tenant) => return export_chain(&database_url, tenant).await,
        Command::VerifyExport(file, trusted) => return verify_export(&file, trusted),
        Command::CheckpointKey => {
            let key = audit_core::checkpoint::CheckpointKey::generate();
            println!("AUDIT_CHECKPOINT_KEY={}", key.to_hex());
            println!("public key: {}", key.public_hex());
            return Ok(());
        }
        Command::Checkpoint => return checkpoint(&database_url).await,
        Command::Erase(actor) => return erase(&database_url, &actor).await,
        Command::Purge(tenant, dry_run) => return purge(&database_url, tenant, dry_run).await,
        Command::Hold(tenant, reason) => return hold(&database_url, &tenant, reason).await,
    };
    // The address first: a port in use is said before the database is created or migrated.
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!("{addr} is in use; pass --addr or ADDR");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}; pass --addr or ADDR");
            std::process::exit(1);
        }
    };
    let default_period = integrations_admin::retention::default_period_from_env()?;
    let purge_every = integrations_admin::retention::schedule_from_env()?;
    let audit_url = std::env::var("AUDIT_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let mut state = integrations_admin::connect_with(&database_url, audit_url.as_deref()).await?;
    let token = std::env::var("DEMO_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    state.demo_admin_token_hash = token.as_deref().map(integrations_admin::auth::sha256_hex);
    // Intents left by a process that died mid-request become entries of outcome `unknown`.
    // Any age: this is the only instance. (Replicas would pass an age no request reaches.)
    let recovered = state.store.recover_intents(Duration::ZERO).await?;
    if recovered > 0 {
        println!("recovered {recovered} audit intents of requests a previous run did not finish");
    }
    let demo = integrations_admin::seed_demo(&state).await?;
    state.retention.set_default(default_period);
    integrations_admin::retention::load_plans(&state).await?;
    let shutdown = shutdown_signal();
    let local = listener.local_addr()?;

    println!("integrations-admin listening on http://{local}");
    println!(
        "audit log viewer: http://{local}/login (sign in as an administrator; the viewer opens)"
    );
    match demo {
        Some(demo) => {
            println!("seeded demo data; accounts (email / password / role):");
            for t in &demo.tenants {
                for u in [&t.admin, &t.member] {
                    println!(
                        "  {:<24} {:<22} {} of {}",
                        u.email, u.password, u.role, t.name
                    );
                }
                println!("  API key {} ({})", t.api_key.0, t.api_key.1);
            }
            let o = &demo.operator;
            println!(
                "  {:<24} {:<22} {} (every tenant's audit log)",
                o.email, o.password, o.role
            );
        }
        None => println!(
            "database already seeded; demo accounts are admin@acme.example / acme-admin-demo and friends"
        ),
    }
    if let Some(token) = &token {
        println!(
            "DEMO_ADMIN_TOKEN is set: `Authorization: Bearer {token}` acts as admin@acme.example"
        );
    }

    let integrations_admin::Audit {
        layer: audit,
        forwarder,
        alerts,
    } = integrations_admin::start_audit(&mut state, &audit_options).await?;
    if let Some(options) = &audit_options.alerts {
        match &options.webhook {
            Some(webhook) => println!(
                "alerts on revoked or deleted API keys and repeated failed logins: logged, and posted to {}",
                webhook.url
            ),
            None => println!(
                "alerts on revoked or deleted API keys and repeated failed logins: logged (set AUDIT_ALERT_WEBHOOK_URL and AUDIT_ALERT_WEBHOOK_SECRET to post them)"
            ),
        }
    }
    if let Some(url) = &audit_options.nats_url {
        println!(
            "audit entries go through JetStream at {url}{}",
            if forwarder.is_some() {
                ", forwarded into the database by this process"
            } else {
                "; run `integrations-admin forward` to store them"
            }
        );
    }
    let schedule = integrations_admin::CheckpointSchedule::from_env()?;
    state.checkpoint_file = schedule.as_ref().map(|s| s.file.clone());
    let checkpoints = schedule.map(|schedule| {
        println!(
            "signing checkpoints of the audit log's chains every {} s into {}",
            schedule.every.as_secs(),
            schedule.file.display()
        );
        schedule.spawn(state.clone())
    });
    let purges = purge_every.map(|every| {
        println!(
            "purging audit entries past their plan's retention (default {default_period}) every {} s",
            every.as_secs()
        );
        integrations_admin::retention::spawn_schedule(state.clone(), every)
    });
    let app = integrations_admin::router_with(state, audit.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    // Requests have all been answered; store what the audit writer still holds.
    if tokio::time::timeout(Duration::from_secs(10), audit.flush())
        .await
        .is_err()
    {
        eprintln!("the audit store did not take the last entries within 10 s");
        std::process::exit(1);
    }
    // Alerts on the last entries, delivered or given up on (a failing webhook's retries).
    if let Some(alerts) = alerts
        && tokio::time::timeout(Duration::from_secs(10), alerts.flush())
            .await
            .is_err()
    {
        eprintln!("alerts were still being delivered after 10 s; the rest are not sent");
    }
    if let Some(forwarder) = forwarder {
        forwarder.stop().await?;
    }
    if let Some(checkpoints) = checkpoints {
        checkpoints.abort();
    }
    if let Some(purges) = purges {
        purges.abort();
    }
    println!("stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM (what container platforms and `kill` send). Made before the banner is
/// printed, so a signal sent as soon as the service says it listens is not missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match terminate.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = terminate => {}
        }
        println!("shutting down");
    }
}
