//! NATS for the JetStream tests: the shared server's URL (`AUDIT_TEST_NATS_URL`), and
//! servers a test starts, kills and restarts itself (one node, or a three-node cluster).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::in_ci;

/// The URL of the NATS server (with JetStream) named by `AUDIT_TEST_NATS_URL`, or `None` with a
/// notice when it is not set. Under `CI=true` a missing URL panics.
pub fn nats_url() -> Option<String> {
    match std::env::var("AUDIT_TEST_NATS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !in_ci(),
                "AUDIT_TEST_NATS_URL is not set but CI=true: the JetStream tests must run in CI"
            );
            eprintln!(
                "NOTICE: JetStream tests SKIPPED because AUDIT_TEST_NATS_URL is not set \
                 (such as nats://127.0.0.1:4222, a server started with -js)"
            );
            None
        }
    }
}

/// The `nats-server` binary: `NATS_SERVER` if set, else the first `nats-server` found on
/// `PATH`, `/usr/sbin` or `/usr/local/bin`; `None` (a panic under `CI=true`) when there is none.
pub fn nats_server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            !in_ci(),
            "nats-server is not installed but CI=true: the JetStream fault tests must run in CI"
        );
        eprintln!("NOTICE: JetStream fault tests SKIPPED: no nats-server (set NATS_SERVER)");
    }
    found
}

/// `n` distinct free loopback ports: all are bound at once, then released, so no two are the
/// same.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One `nats-server -js` process the test owns, on loopback ports, with its store in a
/// temporary directory that outlives kills and restarts.
#[derive(Debug)]
pub struct NatsNode {
    /// The client port.
    pub port: u16,
    args: Vec<String>,
    binary: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the process with SIGKILL (no clean shutdown) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again, with the same ports and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        wait_listening(self.port);
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen on {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// NATS servers with JetStream a test starts: one, or a cluster of three. Dropping it kills
/// them and deletes their stores; when the test is failing, it first prints what each server
/// logged last.
#[derive(Debug)]
pub struct NatsServers {
    /// The servers.
    pub nodes: Vec<NatsNode>,
    _dir: tempfile::TempDir,
}

impl NatsServers {
    /// One server, or `None` when there is no `nats-server` (see [`nats_server_binary`]).
    pub fn single() -> Option<Self> {
        Self::start(1)
    }

    /// A three-node JetStream cluster on loopback ports, or `None` when there is no
    /// `nats-server`. JetStream elects its leaders a few seconds after the start: retry the
    /// first stream creation.
    pub fn cluster() -> Option<Self> {
        Self::start(3)
    }

    /// `count` servers named `n0`, `n1`, ..., routed to each other when more than one, each
    /// with its store in a directory of its own.
    fn start(count: usize) -> Option<Self> {
        let binary = nats_server_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2 * count);
        let (clients, routes) = ports.split_at(count);
        let route_list = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let port = clients[i];
            let log = dir.path().join(format!("n{i}.log"));
            let mut args = vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "-n".into(),
                format!("n{i}"),
                "-js".into(),
                "-sd".into(),
                dir.path().join(format!("n{i}")).display().to_string(),
                "-l".into(),
                log.display().to_string(),
            ];
            if count > 1 {
                args.extend([
                    "--cluster_name".into(),
                    "c".into(),
                    "-cluster".into(),
                    format!("nats://127.0.0.1:{route}"),
                    "-routes".into(),
                    route_list.clone(),
                ]);
            }
            nodes.push(NatsNode {
                port,
                args,
                binary: binary.clone(),
                log,
                child: None,
            });
        }
        for node in &mut nodes {
            node.spawn();
        }
        Some(NatsServers { nodes, _dir: dir })
    }

    /// The last lines each server logged, for a failing test's output.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!(
                "--- n{i} ({}) ---\n{}\n",
                node.url(),
                tail.join("\n")
            ));
        }
        out
    }

    /// Every server's client URL, comma-separated (what `async_nats::connect` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for NatsServers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("nats-server logs:\n{}", self.log_tails());
        }
    }
}
