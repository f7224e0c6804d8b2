//! The viewer page in a real browser: headless Chromium driven through chromedriver against the
//! admin router served over TCP, on a seeded `MemoryStore`.
//!
//! It loads the viewer, checks that hostile text renders literally, applies filters, follows
//! "load more", checks that the export links carry the filters (and that the linked file holds
//! what the filter selects), opens an entry's details and checks the old and new values and
//! their colours, copies the entry, reloads with the filters kept in the address, loads 1,000
//! rows to check that the page stays responsive, and sees the access-denied message from a
//! router without a guard.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! chromedriver the test prints a notice and passes, except under `CI=true`, where it fails.
//! `CHROMEDRIVER` and `CHROME_BIN` override where they are looked for;
//! `AUDIT_VIEWER_SCREENSHOTS=<dir>` saves screenshots of the page there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use audit_core::retention::{Period, RetentionPolicy};
use audit_core::{Action, Actor, AuditEntry, AuditSink, Change, MemoryStore};
use audit_tower::admin::{self, Access, NO_GUARD_MESSAGE};
use axum::Router;
use chrono::{TimeZone, Utc};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use http::request::Parts;
use serde_json::{Value, json};

const XSS_NAME: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";
const WAIT: Duration = Duration::from_secs(20);

fn find_chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    let default = Path::new("/usr/bin/chromedriver");
    if default.exists() {
        return Some(default.to_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromedriver"))
            .find(|candidate| candidate.exists())
    })
}

fn chrome_binary() -> Option<String> {
    if let Ok(path) = std::env::var("CHROME_BIN") {
        return Some(path);
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(str::to_owned)
}

/// Seeds tenant `acme` (and a little of `globex`, which must never show):
/// 1,000 `MappingConfig` creations (oldest), 130 `ConnectionProfile` updates with changes,
/// 20 `ApiKey` revocations, and, newest, a `Tenant` whose name is hostile markup.
async fn seed(store: &MemoryStore) {
    let base = Utc.with_ymd_and_hms(2026, 2, 1, 9, 0, 0).unwrap();
    let mut entries = Vec::new();
    let mut minute = 0i64;
    let mut at = || {
        minute += 1;
        base + chrono::Duration::minutes(minute)
    };
    for i in 0..1000 {
        entries.push(
            AuditEntry::builder(Action::Create)
                .tenant("acme")
                .actor(Actor::user("u2", "bulk@acme.example"))
                .entity("MappingConfig", format!("m{i}"))
                .entity_name(format!("Mapping {i}"))
                .occurred_at(at())
                .build(),
        );
    }
    for i in 0..130 {
        entries.push(
            AuditEntry::builder(Action::Update)
                .tenant("acme")
                .actor(Actor::user("u1", "ada@acme.example"))
                .entity("ConnectionProfile", format!("{i}"))
                .entity_name(format!("Profile {i}"))
                .details("host changed")
                .changes(vec![Change::new(
                    "host",
                    json!(format!("old{i}.internal")),
                    json!(format!("new{i}.internal")),
                )])
                .occurred_at(at())
                .ip("192.0.2.10".parse().unwrap())
                .build(),
        );
    }
    for i in 0..20 {
        entries.push(
            AuditEntry::builder(Action::Revoke)
                .tenant("acme")
                .actor(Actor::api_key("k1", "CI deployer"))
                .entity("ApiKey", format!("k{i}"))
                .entity_name(format!("Key {i}"))
                .occurred_at(at())
                .build(),
        );
        entries.push(
            AuditEntry::builder(Action::Delete)
                .tenant("globex")
                .entity("ConnectionProfile", format!("g{i}"))
                .entity_name("GLOBEX SECRET")
                .occurred_at(at())
                .build(),
        );
    }
    entries.push(
        AuditEntry::builder(Action::Update)
            .tenant("acme")
            .entity("Tenant", "acme")
            .entity_name(XSS_NAME)
            .details("<b>bold?</b>")
            .occurred_at(at())
            .build(),
    );
    store.record_batch(entries).await.unwrap();
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start(path: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

/// Evaluates `expression` in the page until it is true, or fails with the page's state.
async fn wait_until(client: &Client, what: &str, expression: &str) {
    let script = format!("return !!({expression});");
    let deadline = Instant::now() + WAIT;
    loop {
        if client.execute(&script, vec![]).await.unwrap() == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let state = client
                .execute(
                    "return [document.body.dataset.state, \
                     document.getElementById('message').textContent, \
                     document.querySelectorAll('#rows tr').length];",
                    vec![],
                )
                .await
                .unwrap_or(Value::Null);
            panic!("timed out waiting for {what}; page state, message, rows: {state}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Scrolls the element to the middle of the window, as a user would, and clicks it. (WebDriver
/// scrolls it only to the top edge, where the sticky table header covers it.)
async fn click_row_button(client: &Client, css: &str) {
    let script = format!("document.querySelector({css:?}).scrollIntoView({{block: 'center'}});");
    client.execute(&script, vec![]).await.unwrap();
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// With `AUDIT_VIEWER_SCREENSHOTS=<dir>`, saves a PNG of the page, for looking at the layout.
async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("AUDIT_VIEWER_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

async fn eval(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

fn rgb(css: &str) -> (u32, u32, u32) {
    let inner = css
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')');
    let parts: Vec<u32> = inner
        .split(',')
        .take(3)
        .map(|p| p.trim().parse().unwrap())
        .collect();
    (parts[0], parts[1], parts[2])
}

const ROWS: &str = "document.querySelectorAll('#rows tr').length";
const READY: &str = "document.body.dataset.state === 'ready'";
/// Whether every row shown is a connection profile (the filter of the steps from step 2 on).
const ONLY_PROFILES: &str = "Array.from(document.querySelectorAll('#rows td.entity-type'))\
                             .every(td => td.textContent === 'ConnectionProfile')";

/// First page: newest first, 100 rows, hostile text shown as text.
async fn the_first_page_shows_the_newest_100_rows_and_hostile_text_as_text(
    client: &Client,
    base: &str,
) {
    client
        .goto(&format!("{base}/admin/audit-log"))
        .await
        .unwrap();
    wait_until(
        client,
        "the first page",
        &format!("{READY} && {ROWS} === 100"),
    )
    .await;
    let first = eval(
        client,
        "return document.querySelector('#rows tr td.entity-name').textContent;",
    )
    .await;
    assert_eq!(
        first,
        json!(XSS_NAME),
        "the newest entry, rendered literally"
    );
    wait_until(
        client,
        "the retention period",
        "!document.getElementById('retention').hidden",
    )
    .await;
    assert_eq!(
        eval(
            client,
            "return document.getElementById('retention').textContent;"
        )
        .await,
        json!("Entries are kept for 90 days, then deleted.")
    );
    assert_eq!(
        eval(
            client,
            "return [window.__xss === undefined, document.querySelectorAll('#rows img, #rows script, #rows b').length];"
        )
        .await,
        json!([true, 0])
    );
    let status = client.find(Locator::Id("status")).await.unwrap();
    assert_eq!(
        status.text().await.unwrap(),
        "Showing 100 entries; more are available"
    );
    let names: Value = eval(
        client,
        "return Array.from(document.querySelectorAll('#rows td.entity-name')).map(td => td.textContent);",
    )
    .await;
    assert!(
        !names.to_string().contains("GLOBEX"),
        "another tenant's entries"
    );

    screenshot(client, "list").await;
}

/// Filters: entity type and action (multi-selects), applied with the button.
async fn filters_apply_with_the_button(client: &Client) {
    let entity_type = client.find(Locator::Id("f-entity-type")).await.unwrap();
    entity_type
        .select_by_value("ConnectionProfile")
        .await
        .unwrap();
    let action = client.find(Locator::Id("f-action")).await.unwrap();
    action.select_by_value("Update").await.unwrap();
    client
        .find(Locator::Id("f-q"))
        .await
        .unwrap()
        .send_keys("profile")
        .await
        .unwrap();
    client
        .find(Locator::Id("apply-filters"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        client,
        "the filtered first page",
        &format!("{READY} && {ROWS} === 100 && {ONLY_PROFILES}"),
    )
    .await;
}

/// Export links carry the filters, and the linked file holds what they select.
async fn export_links_carry_the_filters(client: &Client, base: &str) {
    for format in ["csv", "json", "ndjson"] {
        let link = client
            .find(Locator::Id(&format!("export-{format}")))
            .await
            .unwrap();
        let href = link.prop("href").await.unwrap().unwrap();
        assert!(
            href.starts_with(&format!("{base}/admin/audit-log/export.{format}?")),
            "{href}"
        );
        for part in [
            "entity_type=ConnectionProfile",
            "action=Update",
            "q=profile",
        ] {
            assert!(href.contains(part), "{href} lacks {part}");
        }
    }
    let csv_lines = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.getElementById('export-csv').href)
               .then(r => r.text())
               .then(t => done(t.split('\\r\\n').filter(Boolean).length), e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(csv_lines, json!(131), "header and 130 profile updates");
}

/// Load more follows the cursor.
async fn load_more_follows_the_cursor(client: &Client) {
    let more = client.find(Locator::Id("load-more")).await.unwrap();
    assert!(more.is_displayed().await.unwrap());
    more.click().await.unwrap();
    wait_until(
        client,
        "the second page",
        &format!(
            "{READY} && {ROWS} === 130 && {ONLY_PROFILES} && \
             document.getElementById('load-more').hidden"
        ),
    )
    .await;
    assert_eq!(
        client
            .find(Locator::Id("status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Showing 130 entries",
        "no more pages"
    );
}

/// Details: old value in red, new value in green, and a copy button.
async fn details_show_old_values_in_red_and_new_in_green_and_the_address_keeps_the_filters(
    client: &Client,
) {
    click_row_button(client, "#rows tr:first-child button.open").await;
    wait_until(
        client,
        "the details dialog",
        "document.getElementById('details').open && \
         document.querySelector('#changes td.change-old') !== null",
    )
    .await;
    screenshot(client, "details").await;
    let old = client
        .find(Locator::Css("#changes td.change-old"))
        .await
        .unwrap();
    let new = client
        .find(Locator::Css("#changes td.change-new"))
        .await
        .unwrap();
    let field = client
        .find(Locator::Css("#changes td.change-field"))
        .await
        .unwrap();
    assert_eq!(field.text().await.unwrap(), "host");
    assert_eq!(old.text().await.unwrap(), "old129.internal");
    assert_eq!(new.text().await.unwrap(), "new129.internal");
    let (r, g, b) = rgb(&old.css_value("color").await.unwrap());
    assert!(r > g + 60 && r > b + 60, "old value is red: {r},{g},{b}");
    let (r, g, b) = rgb(&new.css_value("color").await.unwrap());
    assert!(g > r + 40 && g > b + 40, "new value is green: {r},{g},{b}");
    let (r, g, b) = rgb(&old.css_value("background-color").await.unwrap());
    assert!(r > g && r > b, "old background is reddish: {r},{g},{b}");
    let (r, g, b) = rgb(&new.css_value("background-color").await.unwrap());
    assert!(g > r && g > b, "new background is greenish: {r},{g},{b}");
    client
        .find(Locator::Id("copy"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        client,
        "the copy confirmation",
        "document.getElementById('copy-status').textContent === 'Copied'",
    )
    .await;
    client
        .find(Locator::Id("close-details"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        client,
        "the dialog to close",
        "!document.getElementById('details').open",
    )
    .await;

    // The applied filters are in the address: a reload (or a shared link) keeps them.
    let address = client.current_url().await.unwrap();
    let query = address.query().unwrap_or("");
    assert!(query.contains("entity_type=ConnectionProfile"), "{address}");
    client.refresh().await.unwrap();
    wait_until(
        client,
        "the reloaded, still filtered page",
        &format!(
            "{READY} && {ROWS} === 100 && {ONLY_PROFILES} && \
             document.getElementById('f-q').value === 'profile' && \
             document.querySelector('#f-action option[value=Update]').selected"
        ),
    )
    .await;
}

/// 1,000 rows on screen stay responsive: each page renders quickly, and details open.
async fn a_thousand_rows_stay_responsive(client: &Client) {
    client
        .find(Locator::Id("reset-filters"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        client,
        "the reset list",
        &format!("{READY} && {ROWS} === 100"),
    )
    .await;
    let entity_type = client.find(Locator::Id("f-entity-type")).await.unwrap();
    entity_type.select_by_value("MappingConfig").await.unwrap();
    client
        .find(Locator::Id("apply-filters"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let only_mappings = "Array.from(document.querySelectorAll('#rows td.entity-type'))\
                         .every(td => td.textContent === 'MappingConfig')";
    wait_until(
        client,
        "the mapping configs",
        &format!("{READY} && {ROWS} === 100 && {only_mappings}"),
    )
    .await;
    for page in 2..=10 {
        let started = Instant::now();
        client
            .find(Locator::Id("load-more"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_until(
            client,
            "another page",
            &format!("{READY} && {ROWS} === {}", page * 100),
        )
        .await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "page {page} took {took:?}");
    }
    let status = client.find(Locator::Id("status")).await.unwrap(); // the page was reloaded
    assert_eq!(status.text().await.unwrap(), "Showing 1000 entries");
    let started = Instant::now();
    click_row_button(client, "#rows tr:last-child button.open").await;
    wait_until(
        client,
        "details of the 1000th row",
        "document.getElementById('details').open && \
         document.getElementById('details-title').textContent.includes('Mapping 0')",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A router without a guard: the page says access is denied, with the reason.
async fn a_router_without_a_guard_shows_why_access_is_denied(client: &Client, base: &str) {
    client
        .goto(&format!("{base}/locked/audit-log"))
        .await
        .unwrap();
    wait_until(
        client,
        "the access-denied message",
        "document.body.dataset.state === 'error'",
    )
    .await;
    let message = client.find(Locator::Id("message")).await.unwrap();
    assert!(message.is_displayed().await.unwrap());
    let text = message.text().await.unwrap();
    assert!(text.starts_with("Access denied."), "{text}");
    assert!(text.contains(NO_GUARD_MESSAGE), "{text}");
    assert_eq!(eval(client, &format!("return {ROWS};")).await, json!(0));
}

/// The steps run in order in one browser: each starts where the one before left the page.
async fn the_viewer_flow(client: &Client, base: &str) {
    the_first_page_shows_the_newest_100_rows_and_hostile_text_as_text(client, base).await;
    filters_apply_with_the_button(client).await;
    export_links_carry_the_filters(client, base).await;
    load_more_follows_the_cursor(client).await;
    details_show_old_values_in_red_and_new_in_green_and_the_address_keeps_the_filters(client).await;
    a_thousand_rows_stay_responsive(client).await;
    a_router_without_a_guard_shows_why_access_is_denied(client, base).await;
}

async fn run(driver_path: &Path) {
    let store = MemoryStore::new();
    seed(&store).await;
    let app = Router::new()
        .nest(
            "/admin/audit-log",
            admin::router(store.clone())
                .guard(|_: &Parts| Access::tenant("acme"))
                // Offered before any row of them is loaded (mapping configs are all old).
                .entity_types(["ApiKey", "ConnectionProfile", "MappingConfig", "Tenant"])
                .retention({
                    let policy = RetentionPolicy::new(Period::Days(365));
                    policy.set_tenant("acme", Period::Days(90));
                    policy
                })
                .into_router(),
        )
        .nest("/locked/audit-log", admin::router(store).into_router());
    let (addr, server) = audit_test_support::serve(app).await;

    let driver = Driver::start(driver_path).await;
    let profile = tempfile::tempdir().unwrap();
    let mut options = json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            format!("--user-data-dir={}", profile.path().display()),
        ],
    });
    if let Some(binary) = chrome_binary() {
        options["binary"] = json!(binary);
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), options);
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromedriver session");

    let base = format!("http://{addr}");
    let outcome = std::panic::AssertUnwindSafe(the_viewer_flow(&client, &base))
        .catch_unwind()
        .await;
    // Close the browser whatever happened, so no Chromium outlives the test.
    let _ = client.close().await;
    drop(driver.child);
    server.abort();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_works_in_headless_chromium() {
    let Some(driver) = find_chromedriver() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "chromedriver is missing under CI=true: install Debian's chromium and \
                 chromium-driver (.ci/run does) or set CHROMEDRIVER"
            );
        }
        eprintln!(
            "SKIPPED the_viewer_works_in_headless_chromium: chromedriver not found \
             (apt-get install chromium chromium-driver, or set CHROMEDRIVER)"
        );
        return;
    };
    tokio::time::timeout(Duration::from_secs(240), run(&driver))
        .await
        .expect("the browser test finished within 240 s");
}
