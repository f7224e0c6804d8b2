//! The binary as a newcomer runs it: it starts on an empty directory, seeds, prints how to get
//! in, serves, and stops cleanly on Ctrl-C (SIGINT).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn starts_seeds_serves_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_integrations-admin"))
        .args(["--addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("DEMO_ADMIN_TOKEN", "cli-test-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !banner.contains("DEMO_ADMIN_TOKEN is set") {
        assert!(Instant::now() < deadline, "no banner after 60 s: {banner}");
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("the service exited early: {banner}");
        }
        banner.push_str(&line);
    }
    assert!(
        banner.contains("admin@acme.example") && banner.contains("acme-admin-demo"),
        "{banner}"
    );
    assert!(
        banner.contains("operator@platform.example") && banner.contains("platform-operator-demo"),
        "the operator, who reads every tenant's log, is among the accounts: {banner}"
    );
    assert!(
        dir.path().join("integrations-admin.db").exists(),
        "the SQLite file is created in the working directory"
    );
    let addr = banner
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(banner.contains(&format!("http://{addr}/login")), "{banner}");

    // The fixed demo token reads the seeded log.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /admin/audit-log/entries?limit=1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer cli-test-token\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"tenant_id\":\"acme\""), "{response}");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after Ctrl-C: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running 20 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("shutting down"), "{rest}");
}

#[test]
fn a_bad_address_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_integrations-admin"))
        .args(["--addr", "not-an-address"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not an address"), "{stderr}");
}

/// A port another process listens on: a clear message and a non-zero exit, before the
/// database is created.
#[test]
fn a_busy_port_is_a_clear_error_before_the_database_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_integrations-admin"))
        .args(["--addr", &addr])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("ADDR")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{addr} is in use; pass --addr or ADDR")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("integrations-admin.db").exists(),
        "the database was created before the address was checked"
    );
    drop(taken);
}

/// A fresh SQLite log in a temporary directory, seeded with the demo data: the directory,
/// its URL, a runtime and the service's state on it.
fn seeded() -> (
    tempfile::TempDir,
    String,
    tokio::runtime::Runtime,
    integrations_admin::AppState,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async {
        let state = integrations_admin::connect(&url).await.unwrap();
        integrations_admin::seed_demo(&state).await.unwrap();
        state
    });
    (dir, url, runtime, state)
}

#[test]
fn verify_reports_each_chain_and_fails_on_a_tampered_entry() {
    use audit_seaorm::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let (_dir, url, runtime, state) = seeded();

    let (code, out) = run(&url, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("tenant acme: ") && out.contains("entries verified"),
        "{out}"
    );
    assert!(!out.contains("BROKEN"), "{out}");

    // An entry of acme edited in place.
    runtime.block_on(async {
        let sql = "UPDATE audit_log SET details = 'nothing to see' WHERE id = \
                   (SELECT id FROM audit_log WHERE tenant_id = 'acme' ORDER BY id LIMIT 1 OFFSET 2)";
        state
            .store
            .connection()
            .execute_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .unwrap();
    });
    let (code, out) = run(&url, &["verify", "--tenant", "acme"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tenant acme: BROKEN") && out.contains("does not match its hash"),
        "{out}"
    );
    let (code, out) = run(&url, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 of"), "{out}");
}

/// The binary, on the database at `url`, logging warnings only.
fn command(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_integrations-admin"));
    command.env("DATABASE_URL", url).env("RUST_LOG", "warn");
    command
}

/// Runs the binary with `args` on `url`; the exit status and standard output.
fn run(url: &str, args: &[&str]) -> (i32, String) {
    let output = command(url).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

/// `scripts/verify_chain.py FILE`: the exit status and standard output.
fn python_verify(file: &std::path::Path) -> (i32, String) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/verify_chain.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(file)
        .output()
        .expect("python3 runs (.ci/run installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn an_exported_chain_is_verified_offline_by_the_binary_and_by_python() {
    let (dir, url, _runtime, _state) = seeded();

    let (code, export) = run(&url, &["export-chain"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = export.lines().collect();
    assert!(lines.len() > 10, "{export}");
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["chain"]["seq"], 1, "{first}");
    assert_eq!(first["chain"]["hash"].as_str().unwrap().len(), 64);
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, &export).unwrap();

    let (code, out) = run(&url, &["verify-export", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("tenant acme: ") && !out.contains("BROKEN"),
        "{out}"
    );
    let (code, out) = python_verify(&file);
    assert_eq!(code, 0, "{out}");
    // Both count the same entries per chain.
    let (_, from_db) = run(&url, &["verify"]);
    for line in out.lines().filter(|l| l.contains("acme")) {
        let count: String = line.chars().filter(char::is_ascii_digit).collect();
        assert!(
            from_db.contains(&format!("tenant acme: {count} entries")),
            "{line} / {from_db}"
        );
    }

    // One tenant alone, as a JSON array, also verifies.
    let (code, acme) = run(&url, &["export-chain", "--tenant", "acme"]);
    assert_eq!(code, 0);
    let array = format!("[{}]", acme.lines().collect::<Vec<_>>().join(","));
    let acme_file = dir.path().join("acme.json");
    std::fs::write(&acme_file, array).unwrap();
    assert_eq!(
        run(&url, &["verify-export", acme_file.to_str().unwrap()]).0,
        0
    );
    assert_eq!(python_verify(&acme_file).0, 0);

    // An entry edited in the file, and an entry left out: each is found by both.
    let mut edited: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    edited[2]["entity_name"] = serde_json::json!("nothing to see");
    let mut dropped: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    dropped.remove(1);
    for (name, entries, reason) in [
        ("edited", edited, "does not match its hash"),
        ("dropped", dropped, "expected 2"),
    ] {
        let tampered = dir.path().join(format!("{name}.ndjson"));
        let text: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        std::fs::write(&tampered, text.join("\n")).unwrap();
        let (code, out) = run(&url, &["verify-export", tampered.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains("BROKEN") && out.contains(reason),
            "{name}: {out}"
        );
        let (code, out) = python_verify(&tampered);
        assert_eq!(code, 1, "{name}: {out}");
    }

    // A file that is not an export is a clear error, status 2.
    let junk = dir.path().join("junk.ndjson");
    std::fs::write(&junk, "{\"not\": \"an entry\"}\n").unwrap();
    assert_eq!(run(&url, &["verify-export", junk.to_str().unwrap()]).0, 2);
}

#[test]
fn erasing_an_actor_keeps_every_chain_verifiable_online_and_offline() {
    use audit_seaorm::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let (dir, url, runtime, state) = seeded();
    let query = |sql: &str| {
        runtime.block_on(async {
            let rows = state
                .store
                .connection()
                .query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
                .await
                .unwrap();
            rows.iter()
                .map(|row| row.try_get_by_index::<Option<String>>(0).unwrap())
                .collect::<Vec<_>>()
        })
    };
    let actor = query(
        "SELECT actor_id FROM audit_log WHERE actor_kind = 'user' AND actor_name IS NOT NULL \
         GROUP BY actor_id ORDER BY COUNT(*) DESC LIMIT 1",
    )[0]
    .clone()
    .unwrap();
    let names_before = query(&format!(
        "SELECT actor_name FROM audit_log WHERE actor_id = '{actor}'"
    ));
    assert!(
        names_before
            .iter()
            .all(|n| n.as_deref() != Some("[ERASED]"))
    );

    let (code, out) = run(&url, &["erase", "--actor", &actor]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("of {} entries", names_before.len())),
        "{out}"
    );
    let names_after = query(&format!(
        "SELECT actor_name FROM audit_log WHERE actor_id = '{actor}'"
    ));
    assert_eq!(names_after.len(), names_before.len());
    assert!(names_after.iter().all(|n| n.as_deref() == Some("[ERASED]")));
    let ips = query(&format!(
        "SELECT ip FROM audit_log WHERE actor_id = '{actor}' AND ip IS NOT NULL"
    ));
    assert!(ips.is_empty());
    let recorded = query("SELECT metadata FROM audit_log WHERE action = 'Erase'");
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].as_deref().unwrap().contains(&actor));

    let (code, out) = run(&url, &["verify"]);
    assert_eq!(code, 0, "{out}");
    let (code, export) = run(&url, &["export-chain"]);
    assert_eq!(code, 0);
    assert!(export.contains("[ERASED]"));
    let file = dir.path().join("erased.ndjson");
    std::fs::write(&file, &export).unwrap();
    assert_eq!(run(&url, &["verify-export", file.to_str().unwrap()]).0, 0);
    let (code, out) = python_verify(&file);
    assert_eq!(code, 0, "{out}");

    // A name written over the marker is found by all three checks.
    runtime.block_on(async {
        let sql = format!(
            "UPDATE audit_log SET actor_name = 'someone' WHERE id = \
             (SELECT id FROM audit_log WHERE actor_id = '{actor}' ORDER BY id LIMIT 1)"
        );
        state
            .store
            .connection()
            .execute_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .unwrap();
    });
    assert_eq!(run(&url, &["verify"]).0, 1);
    let (_, export) = run(&url, &["export-chain"]);
    std::fs::write(&file, &export).unwrap();
    assert_eq!(run(&url, &["verify-export", file.to_str().unwrap()]).0, 1);
    assert_eq!(python_verify(&file).0, 1);

    // `erase` without an actor is a clear error.
    let output = command(&url).arg("erase").output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--actor"));
}

#[test]
fn a_signed_checkpoint_finds_newest_entries_cut_off_with_the_head_moved_back() {
    use audit_seaorm::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let (dir, url, runtime, state) = seeded();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // A key, kept by the operator; checkpoints signed with it, kept apart from the database.
    let (code, key_text) = run(&url, &["checkpoint-key"]);
    assert_eq!(code, 0);
    let secret = key_text
        .lines()
        .find_map(|l| l.strip_prefix("AUDIT_CHECKPOINT_KEY="))
        .unwrap()
        .to_owned();
    let public = key_text
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .to_owned();
    assert_eq!((secret.len(), public.len()), (64, 64));
    let output = command(&url)
        .arg("checkpoint")
        .env("AUDIT_CHECKPOINT_KEY", &secret)
        .output()
        .unwrap();
    assert!(output.status.success());
    let checkpoints = String::from_utf8(output.stdout).unwrap();
    assert!(!checkpoints.contains(&secret));
    let acme: serde_json::Value = checkpoints
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|c| c["tenant_id"] == "acme")
        .unwrap();
    assert!(acme["seq"].as_u64().unwrap() > 3);
    std::fs::write(path("checkpoints.ndjson"), &checkpoints).unwrap();
    let against = [
        "--checkpoints",
        &path("checkpoints.ndjson"),
        "--public-key",
        &public,
    ];
    let verify_against = |extra: &[&str]| {
        let mut args = vec!["verify"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&against);
        run(&url, &args)
    };
    assert_eq!(verify_against(&[]).0, 0);

    // The two newest entries of acme cut off, and the chain's head moved back to match.
    runtime.block_on(async {
        for sql in [
            "DELETE FROM audit_log WHERE tenant_id = 'acme' AND chain_seq > \
             (SELECT MAX(chain_seq) - 2 FROM audit_log WHERE tenant_id = 'acme')",
            "UPDATE audit_chain_head SET \
             seq = (SELECT MAX(chain_seq) FROM audit_log WHERE tenant_id = 'acme'), \
             hash = (SELECT chain_hash FROM audit_log WHERE tenant_id = 'acme' \
                     ORDER BY chain_seq DESC LIMIT 1) \
             WHERE chain_key = 't:acme'",
        ] {
            state
                .store
                .connection()
                .execute_raw(Statement::from_string(DbBackend::Sqlite, sql))
                .await
                .unwrap();
        }
    });
    // Without the checkpoint nothing shows; with it, the cut is found.
    assert_eq!(run(&url, &["verify"]).0, 0);
    let (code, out) = verify_against(&[]);
    assert_eq!(code, 1, "{out}");
    let expected = format!("head is at {}", acme["seq"]);
    assert!(
        out.contains("tenant acme: BROKEN") && out.contains(&expected),
        "{out}"
    );
    assert_eq!(verify_against(&["--tenant", "acme"]).0, 1);
    let (_, export) = run(&url, &["export-chain"]);
    std::fs::write(path("export.ndjson"), &export).unwrap();
    assert_eq!(run(&url, &["verify-export", &path("export.ndjson")]).0, 0);
    let mut args = vec!["verify-export", &path("export.ndjson")]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    args.extend(against.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out) = run(&url, &args);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&expected), "{out}");

    // An altered checkpoint, or another key, is refused outright (status 2).
    let altered = checkpoints.replacen("\"seq\":", "\"seq\":1", 1);
    std::fs::write(path("altered.ndjson"), altered).unwrap();
    let (code, _) = run(
        &url,
        &[
            "verify",
            "--checkpoints",
            &path("altered.ndjson"),
            "--public-key",
            &public,
        ],
    );
    assert_eq!(code, 2);
    let other = "0".repeat(64);
    let (code, _) = run(
        &url,
        &[
            "verify",
            "--checkpoints",
            &path("checkpoints.ndjson"),
            "--public-key",
            &other,
        ],
    );
    assert_eq!(code, 2);
}

#[test]
fn the_service_signs_checkpoints_on_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let key = audit_core::checkpoint::CheckpointKey::generate();
    let file = dir.path().join("checkpoints.ndjson");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_integrations-admin"))
        .args(["--addr", "127.0.0.1:0"])
        .env("DATABASE_URL", &url)
        .env("AUDIT_CHECKPOINT_KEY", key.to_hex())
        .env("AUDIT_CHECKPOINT_FILE", &file)
        .env("AUDIT_CHECKPOINT_EVERY", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // At start and then every second: wait for a second round.
    let deadline = Instant::now() + Duration::from_secs(60);
    let rounds = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let times: std::collections::BTreeSet<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["at"].to_string())
            .collect();
        if times.len() >= 2 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no second round after 60 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    for line in rounds.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let signed = audit_core::checkpoint::SignedCheckpoint::from_json(&value).unwrap();
        signed.verify(&key.public_hex()).unwrap();
    }
    assert!(rounds.contains("\"tenant_id\":\"acme\""), "{rounds}");
    let file = file.to_str().unwrap();
    let (code, out) = run(
        &url,
        &[
            "verify",
            "--checkpoints",
            file,
            "--public-key",
            &key.public_hex(),
        ],
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn purging_by_plan_keeps_every_chain_verifiable_online_and_offline() {
    let (dir, url, runtime, state) = seeded();
    free_tenant_with_old_entries(&runtime, &state);

    let (code, out) = run(&url, &["purge", "--dry-run", "--tenant", "initech"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("tenant initech: 5 entries older than")
            && out.contains("would be deleted (kept 7 days)"),
        "{out}"
    );
    let (code, out) = run(&url, &["purge", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("tenant acme: 0 entries"), "{out}");
    assert!(
        out.contains("(kept 90 days)"),
        "enterprise keeps 90 days: {out}"
    );

    // On legal hold, nothing goes.
    assert_eq!(run(&url, &["hold", "--tenant", "initech"]).0, 1);
    let (code, out) = run(
        &url,
        &["hold", "--tenant", "initech", "--reason", "matter 7"],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&url, &["purge"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("tenant initech: on legal hold (matter 7); 0 entries deleted"),
        "{out}"
    );
    let (code, out) = run(&url, &["release", "--tenant", "initech"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("lifted the legal hold: matter 7"), "{out}");
    let (code, out) = run(&url, &["purge"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("tenant initech: 5 entries older than"),
        "{out}"
    );
    assert!(out.contains("deleted (kept 7 days)"), "{out}");

    // Online and offline, every chain still verifies; the export says where initech's starts.
    let (code, out) = run(&url, &["verify"]);
    assert_eq!(code, 0, "{out}");
    let (code, export) = run(&url, &["export-chain", "--tenant", "initech"]);
    assert_eq!(code, 0);
    let mut lines: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The hold, its release, the purge: 2 recent + 1 hold + 1 release + 1 purge entries.
    assert_eq!(lines[0]["chain_start"]["seq"], 5, "{export}");
    assert_eq!(lines.len(), 1 + 5, "{export}");
    let write = |name: &str, lines: &[serde_json::Value]| {
        let file = dir.path().join(name);
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        std::fs::write(&file, text.join("\n")).unwrap();
        file
    };
    let file = write("initech.ndjson", &lines);
    let (code, out) = run(&url, &["verify-export", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(python_verify(&file).0, 0);

    // Without its start, or with the start moved past the oldest entry kept (deleted from the
    // file): broken for both.
    let without_start = write("no-start.ndjson", &lines[1..]);
    lines[0]["chain_start"]["seq"] = serde_json::json!(6);
    lines[0]["chain_start"]["hash"] = lines[1]["chain"]["hash"].clone();
    lines.remove(1);
    let moved = write("moved-start.ndjson", &lines);
    for (file, reason) in [
        (without_start, "expected 1"),
        (moved, "no purge in it deleted that far"),
    ] {
        let (code, out) = run(&url, &["verify-export", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(reason), "{out}");
        let (code, out) = python_verify(&file);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("BROKEN"), "{out}");
    }
}

/// Adds the tenant `initech` on the free plan (7 days) with five entries ten days old, then
/// two of today.
fn free_tenant_with_old_entries(
    runtime: &tokio::runtime::Runtime,
    state: &integrations_admin::AppState,
) {
    use audit_core::{Action, AuditEntry, AuditSink};
    use audit_seaorm::sea_orm::{ActiveModelTrait, Set};
    use integrations_admin::model::tenant;
    runtime.block_on(async {
        tenant::ActiveModel {
            id: Set("initech".into()),
            name: Set("Initech".into()),
            plan: Set("free".into()),
            active: Set(true),
        }
        .insert(&state.db)
        .await
        .unwrap();
        let entry = |days: i64, n: usize| {
            let mut entry = AuditEntry::builder(Action::Update)
                .tenant("initech")
                .entity("ConnectionProfile", format!("p-{n}"))
                .build();
            entry.occurred_at = chrono::Utc::now() - chrono::Duration::days(days);
            entry
        };
        let old: Vec<AuditEntry> = (0..5).map(|n| entry(10, n)).collect();
        state.store.record_batch(old).await.unwrap();
        let recent: Vec<AuditEntry> = (5..7).map(|n| entry(0, n)).collect();
        state.store.record_batch(recent).await.unwrap();
    });
}

#[test]
fn the_service_purges_on_its_schedule() {
    use audit_core::store::{AuditQuery, AuditStore, Scope};
    let (_dir, url, runtime, state) = seeded();
    free_tenant_with_old_entries(&runtime, &state);
    let mut child = command(&url)
        .args(["--addr", "127.0.0.1:0"])
        .env("AUDIT_RETENTION_EVERY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first round runs at start: wait for initech's old entries to go.
    let deadline = Instant::now() + Duration::from_secs(60);
    let left = loop {
        let left = runtime.block_on(async {
            state
                .store
                .query(&AuditQuery::new(Scope::tenant("initech")))
                .await
                .unwrap()
                .items
        });
        if left.len() == 3 {
            break left;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule did not purge within 60 s: {} entries",
            left.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let purge = left
        .iter()
        .find(|e| e.action == audit_core::Action::Purge)
        .expect("the purge's entry");
    assert_eq!(purge.actor_name.as_deref(), Some("retention"));
    assert_eq!(purge.metadata["retention_days"], 7);
    let (code, out) = run(&url, &["verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_tenants_export_from_the_audit_log_carries_its_links_and_checkpoint() {
    let (dir, url, runtime, mut state) = seeded();
    let key = audit_core::checkpoint::CheckpointKey::generate();
    let checkpoints = dir.path().join("checkpoints.ndjson");
    runtime.block_on(async {
        let (signed, broken) = integrations_admin::sign_checkpoints(&state, &key)
            .await
            .unwrap();
        assert!(broken.is_empty() && !signed.is_empty());
        let lines: Vec<String> = signed.iter().map(|c| c.to_json().to_string()).collect();
        std::fs::write(&checkpoints, lines.join("\n")).unwrap();
    });
    state.checkpoint_file = Some(checkpoints);
    state.demo_admin_token_hash = Some(integrations_admin::auth::sha256_hex("export-token"));
    let (addr, server) =
        runtime.block_on(audit_test_support::serve(integrations_admin::router(state)));
    let download = |format: &str| {
        let url = format!("http://{addr}/admin/audit-log/export.{format}");
        let body = runtime.block_on(async {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth("export-token")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        });
        let file = dir.path().join(format!("acme.{format}"));
        std::fs::write(&file, &body).unwrap();
        (file, body)
    };
    let public_key = key.public_hex();
    for format in ["ndjson", "json"] {
        let (file, body) = download(format);
        assert!(body.contains("\"chain\":{\"hash\":"), "{format}: {body}");
        assert!(body.contains("{\"checkpoint\":"), "{format}: no checkpoint");
        let file = file.to_str().unwrap();
        let (code, out) = run(&url, &["verify-export", file, "--public-key", &public_key]);
        assert_eq!(code, 0, "{format}: {out}");
        assert!(
            out.contains("tenant acme: ") && out.contains("entries verified"),
            "{out}"
        );
        let (code, out) = run(&url, &["verify-export", file]);
        assert_eq!(code, 0, "{format}: {out}");
        assert!(out.contains("give --public-key"), "{out}");
        let (code, out) = python_verify(std::path::Path::new(file));
        assert_eq!(code, 0, "{format}: {out}");
        // Another key does not vouch for the file's checkpoint.
        let other = audit_core::checkpoint::CheckpointKey::generate().public_hex();
        assert_eq!(
            run(&url, &["verify-export", file, "--public-key", &other]).0,
            2
        );
    }
    // An entry edited in the downloaded file is found.
    let (file, body) = download("ndjson");
    let edited: Vec<String> = body
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            if value["chain"]["seq"] == 2 {
                value["details"] = serde_json::json!("nothing happened");
            }
            value.to_string()
        })
        .collect();
    std::fs::write(&file, edited.join("\n")).unwrap();
    let (code, out) = run(&url, &["verify-export", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not match its hash"), "{out}");
    server.abort();
}
