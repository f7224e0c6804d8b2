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

/// `integrations-admin verify` on a database, with `DATABASE_URL` pointing at it.
fn verify(url: &str, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_integrations-admin"))
        .arg("verify")
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn verify_reports_each_chain_and_fails_on_a_tampered_entry() {
    use audit_seaorm::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async {
        let state = integrations_admin::connect(&url).await.unwrap();
        integrations_admin::seed_demo(&state).await.unwrap();
        state
    });

    let (code, out) = verify(&url, &[]);
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
    let (code, out) = verify(&url, &["--tenant", "acme"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tenant acme: BROKEN") && out.contains("does not match its hash"),
        "{out}"
    );
    let (code, out) = verify(&url, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 of"), "{out}");
}
