//! The whole stack in one test process: the harness's MariaDB pair, `dbsync watch`, two
//! registrars and an edge in front of them, all on free loopback ports, and sipp as the
//! phones. Each registrar runs on its own runtime thread, so killing one drops every
//! socket and task it has at once, as `kill -9` would.

// Each stack test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context};
use hasip::digest::{self, Algorithm};
use hasip::transport::Transport;
use hasip_edge::config::EdgeConfig;
use hasip_edge::Edge;
use hasip_registrar::config::RegistrarConfig;
use hasip_registrar::Registrar;
use hasip_tests::mariadb_server::row_value;
use hasip_tests::{MariaDbPair, MariaDbServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "../dbsync_support/mod.rs"]
pub mod dbsync_support;

/// The domain every test user registers in.
pub const DOMAIN: &str = "example.com";
/// The nonce secret the registrars share.
const NONCE_SECRET: &str = "stack-test-nonce-secret-0123456789";
/// The flow token secret of the edge.
const FLOW_SECRET: &str = "stack-test-flow-token-secret-0123456789";
/// Bound of every wait.
pub const LIMIT: Duration = Duration::from_secs(60);

/// How many users a load test registers: the issue's 10,000 in a release build, fewer
/// in a debug build (where the in-process edge and registrars are several times slower),
/// or `HASIP_STACK_USERS`.
pub fn user_count(release: usize, debug: usize) -> usize {
    per_build("HASIP_STACK_USERS", release, debug)
}

/// The REGISTER rate of a load test: `release` in a release build, `debug` in a debug
/// build (where the stack would fall behind a phone's retransmissions), or
/// `HASIP_STACK_RATE`.
pub fn load_rate(release: u32, debug: u32) -> u32 {
    per_build("HASIP_STACK_RATE", release, debug)
}

/// The environment variable `var` if set, else the value for this kind of build.
fn per_build<T: std::str::FromStr>(var: &str, release: T, debug: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            debug
        } else {
            release
        })
}

/// `count` test users: name and password.
pub fn users(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("u{i:05}"), format!("pw{i}")))
        .collect()
}

/// Adds `users` to `subscriber` on A (they replicate), with all three HA1 columns.
pub async fn add_subscribers(pair: &MariaDbPair, users: &[(String, String)]) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    let mut conn = pair.a.conn().await?;
    for chunk in users.chunks(500) {
        let rows = vec!["(?, ?, '', ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO subscriber (username, domain, password, ha1, ha1b, ha1_sha256) VALUES {rows}"
        );
        let mut params: Vec<mysql_async::Value> = Vec::with_capacity(chunk.len() * 5);
        for (user, password) in chunk {
            params.push(user.as_str().into());
            params.push(DOMAIN.into());
            params.push(digest::ha1(Algorithm::Md5, user, DOMAIN, password).into());
            params.push(
                digest::ha1(
                    Algorithm::Md5,
                    &format!("{user}@{DOMAIN}"),
                    DOMAIN,
                    password,
                )
                .into(),
            );
            params.push(digest::ha1(Algorithm::Sha256, user, DOMAIN, password).into());
        }
        conn.exec_drop(sql, params).await?;
    }
    conn.disconnect().await.ok();
    Ok(())
}

/// A registrar configuration for the pair, bound to free loopback ports.
fn registrar_config(pair: &MariaDbPair) -> anyhow::Result<RegistrarConfig> {
    let toml = format!(
        r#"
        [http]
        listen = "127.0.0.1:0"
        [sip]
        listen = ["udp:127.0.0.1:0"]
        domains = ["{DOMAIN}"]
        trusted = ["127.0.0.0/8"]
        untrusted = "reject"
        [auth]
        enabled = true
        nonce_secret = "{NONCE_SECRET}"
        # sipp 3.6 answers only the first challenge, and only MD5.
        algorithms = ["MD5", "SHA-256"]
        [expires]
        min = 60
        max = 7200
        default = 3600
        max_contacts = 16
        [store]
        masters = ["{}", "{}"]
        shards = 4
        timeout_ms = 1000
        probe_interval_ms = 200
        retry_after_secs = 1
        [cleanup]
        interval_secs = 3600
        [proxy]
        # Calls come through the edge: the caller is the address it stamped on the Via.
        edge_networks = ["127.0.0.0/8"]
        # sipp answers only the first challenge, and only MD5.
        algorithms = ["MD5", "SHA-256"]
        "#,
        pair.a.app_url(),
        pair.b.app_url(),
    );
    Ok(RegistrarConfig::load_str(
        &toml,
        "HASIP_REGISTRAR_STACK_TEST_UNUSED",
    )?)
}

/// A registrar on a runtime of its own, on its own thread.
pub struct RegistrarProcess {
    /// Its UDP socket.
    pub udp: SocketAddr,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RegistrarProcess {
    /// Binds and runs a registrar on a fresh two-thread runtime.
    fn start(config: RegistrarConfig) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<SocketAddr>>();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let bound = runtime.block_on(Registrar::bind(config));
            let registrar = match bound {
                Ok(registrar) => registrar,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let udp = registrar
                .sip_addrs()
                .iter()
                .find(|spec| spec.transport == Transport::Udp)
                .map(|spec| spec.addr)
                .context("the registrar has no UDP socket");
            let _ = ready_tx.send(udp);
            runtime.spawn(registrar.run(std::future::pending()));
            // Blocks this thread, not the runtime's workers, until the kill.
            let _ = kill_rx.recv();
            // Drops every task (and with them every socket and database connection)
            // without letting any run to its end: the in-process equivalent of SIGKILL.
            // The bound only waits for the worker threads to finish dropping them.
            runtime.shutdown_timeout(Duration::from_secs(5));
        });
        let udp = ready_rx
            .recv_timeout(LIMIT)
            .context("the registrar did not start")??;
        Ok(Self {
            udp,
            kill: Some(kill_tx),
            thread: Some(thread),
        })
    }

    /// Kills the registrar: every socket closes, nothing is answered any more.
    pub fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RegistrarProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a test changes in the edge's set-up.
#[derive(Clone, Debug, Default)]
pub struct EdgeOptions {
    /// Public UDP sockets on these addresses too (besides 127.0.0.1), such as a NAT
    /// lab's host side.
    pub listen_also: Vec<IpAddr>,
    /// The NAT keepalive interval; the edge's default when `None`.
    pub keepalive_interval_ms: Option<u64>,
}

/// The edge in the test's runtime.
pub struct EdgeTask {
    /// The phones' UDP socket on 127.0.0.1.
    pub udp: SocketAddr,
    /// Every public UDP socket: `udp`, then one per [`EdgeOptions::listen_also`].
    pub public_udp: Vec<SocketAddr>,
    /// The socket Path names.
    pub internal: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// The whole stack.
pub struct Stack {
    /// The MariaDB pair.
    pub pair: MariaDbPair,
    /// The registrars.
    pub registrars: Vec<RegistrarProcess>,
    /// The edge.
    pub edge: EdgeTask,
    /// dbsync's configuration.
    pub dbsync: hasip_dbsync::Config,
    watcher: Option<dbsync_support::Watcher>,
}

impl Stack {
    /// Starts the pair, adds `users`, starts `dbsync watch`, two registrars and the edge.
    pub async fn start(users: &[(String, String)]) -> anyhow::Result<Self> {
        Self::start_with(users, 2).await
    }

    /// [`Self::start`] with dbsync's periodic reconcile every `reconcile_s` seconds.
    pub async fn start_with(users: &[(String, String)], reconcile_s: u64) -> anyhow::Result<Self> {
        Self::start_full(users, reconcile_s, &EdgeOptions::default()).await
    }

    /// [`Self::start`] with the edge set up as `edge` says.
    pub async fn start_with_edge(
        users: &[(String, String)],
        edge: &EdgeOptions,
    ) -> anyhow::Result<Self> {
        Self::start_full(users, 2, edge).await
    }

    async fn start_full(
        users: &[(String, String)],
        reconcile_s: u64,
        edge: &EdgeOptions,
    ) -> anyhow::Result<Self> {
        // Silent unless RUST_LOG asks (e.g. RUST_LOG=hasip_dbsync=info,hasip_edge=warn).
        let _ = hasip::telemetry::init(&hasip::config::LogConfig {
            level: "off".to_owned(),
            ..Default::default()
        });
        let pair = MariaDbPair::start().await?;
        add_subscribers(&pair, users).await?;
        pair.wait_replicated().await?;
        let mut dbsync = dbsync_support::config(&pair);
        dbsync.reconcile_interval_s = reconcile_s;
        let watcher = dbsync_support::start_watch(dbsync.clone());
        let registrars = vec![
            RegistrarProcess::start(registrar_config(&pair)?)?,
            RegistrarProcess::start(registrar_config(&pair)?)?,
        ];
        let edge = start_edge(&[registrars[0].udp, registrars[1].udp], edge).await?;
        Ok(Self {
            pair,
            registrars,
            edge,
            dbsync,
            watcher: Some(watcher),
        })
    }

    /// Stops the edge and dbsync (bounded) and kills the registrars.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.edge.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(LIMIT, &mut self.edge.task)
            .await
            .context("the edge did not stop")?
            .context("the edge task panicked")?;
        for registrar in &mut self.registrars {
            registrar.kill();
        }
        if let Some(watcher) = self.watcher.take() {
            watcher.stop().await?;
        }
        Ok(())
    }
}

async fn start_edge(registrars: &[SocketAddr], options: &EdgeOptions) -> anyhow::Result<EdgeTask> {
    // The issue's 1 s failover timer; 3 s in a debug build, whose registrars can take
    // longer than a second to answer on a busy machine without being dead.
    let failover_ms: u64 = if cfg!(debug_assertions) { 3000 } else { 1000 };
    let addrs: Vec<String> = registrars.iter().map(|a| format!("\"{a}\"")).collect();
    let listen: Vec<String> = std::iter::once(IpAddr::from([127, 0, 0, 1]))
        .chain(options.listen_also.iter().copied())
        .map(|ip| format!("\"udp:{ip}:0\""))
        .collect();
    let keepalive = options
        .keepalive_interval_ms
        .map(|ms| format!("[keepalive]\ninterval_ms = {ms}\n"))
        .unwrap_or_default();
    let toml = format!(
        r#"
        [http]
        listen = "127.0.0.1:0"
        [sip]
        listen = [{}]
        internal = "udp:127.0.0.1:0"
        [flow_token]
        secret = "{FLOW_SECRET}"
        [registrars]
        addrs = [{}]
        failover_timeout_ms = {failover_ms}
        [health]
        probe_interval_ms = 500
        probe_timeout_ms = {failover_ms}
        [protection]
        # sipp sends every phone's REGISTER from one address.
        max_requests = 0
        {keepalive}
        "#,
        listen.join(", "),
        addrs.join(", ")
    );
    let config: EdgeConfig = hasip::config::load_str(&toml, "HASIP_EDGE_STACK_TEST_UNUSED")?;
    config.validate()?;
    let edge = Edge::bind(config).await?;
    let public_udp: Vec<SocketAddr> = edge
        .sip_addrs()
        .iter()
        .filter(|spec| spec.transport == Transport::Udp)
        .map(|spec| spec.addr)
        .collect();
    let udp = *public_udp.first().context("the edge has no UDP socket")?;
    let internal = edge.internal_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = edge
            .run(async {
                let _ = stopped.await;
            })
            .await
        {
            eprintln!("edge failed: {e}");
        }
    });
    Ok(EdgeTask {
        udp,
        public_udp,
        internal,
        stop: Some(stop),
        task,
    })
}

/// One sipp run: REGISTER with digest auth through the edge for each user of the
/// injection file, every phone from one local port.
pub struct Sipp {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    /// The local port every REGISTER comes from.
    pub port: u16,
}

/// The sipp scenario: REGISTER, 401, REGISTER with credentials, 200; each 200 OK is
/// logged with its user, so the test knows exactly which registrations succeeded.
const SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="hasip stack register">
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[field1] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[field1]>;tag=[pid]S[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
      Expires: 3600
      User-Agent: sipp-stack
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true" />
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[field1] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[field1]>;tag=[pid]S[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
      [field3]
      Expires: 3600
      User-Agent: sipp-stack
      Content-Length: 0

    ]]>
  </send>
  <recv response="200">
    <action>
      <log message="registered [field0]" />
    </action>
  </recv>
</scenario>
"#;

/// The sipp binary, or an error saying how to install it.
pub fn sipp_binary() -> anyhow::Result<PathBuf> {
    ["/usr/bin/sipp", "/usr/local/bin/sipp"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("sipp is not installed: run `apt-get install sip-tester` (scripts/install-deps)")
}

pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Sipp {
    /// Starts sipp registering every user of `users` once through `edge`, at `rate`
    /// REGISTER transactions per second.
    pub fn start(edge: SocketAddr, users: &[(String, String)], rate: u32) -> anyhow::Result<Self> {
        Self::start_from(edge, users, rate, free_udp_port()?)
    }

    /// [`Self::start`] from local port `port`: a second run from the same port refreshes
    /// the same bindings (same Contact) instead of adding new ones.
    pub fn start_from(
        edge: SocketAddr,
        users: &[(String, String)],
        rate: u32,
        port: u16,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("hasip-sipp-").tempdir()?;
        let mut csv = String::from("SEQUENTIAL\n");
        for (user, password) in users {
            csv.push_str(&format!(
                "{user};{DOMAIN};{password};[authentication username={user} password={password}]\n"
            ));
        }
        std::fs::write(dir.path().join("users.csv"), csv)?;
        std::fs::write(dir.path().join("register.xml"), SCENARIO)?;
        let child = tokio::process::Command::new(sipp_binary()?)
            .current_dir(dir.path())
            .arg(edge.to_string())
            .args(["-sf", "register.xml", "-inf", "users.csv"])
            .args(["-t", "u1", "-i", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .arg("-m")
            .arg(users.len().to_string())
            .arg("-r")
            .arg(rate.to_string())
            .args([
                "-l",
                "2000",
                "-nostdin",
                "-timeout",
                "100s",
                "-timeout_error",
            ])
            // A transaction that waits 8 s for its answer counts as failed.
            .args(["-recv_timeout", "8000"])
            // The kernel's default socket buffer overflows under a burst of answers
            // (the drops are sipp's own, and each costs a 500 ms retransmission).
            .args(["-buff_size", "4194304"])
            .args(["-trace_err", "-trace_logs", "-trace_stat", "-fd", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting sipp")?;
        Ok(Self { child, dir, port })
    }

    /// Starts sipp on the repository scenario `scenario` (in `tests/tests/sipp/`) from
    /// local port `port`, with `args` after it. `launcher` is the sipp command itself:
    /// `Command::new(sipp_binary()?)`, or sipp inside a namespace. sipp runs in a temp
    /// dir of its own, where it leaves its logs.
    pub fn scenario(
        mut launcher: std::process::Command,
        scenario: &str,
        port: u16,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("hasip-sipp-").tempdir()?;
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(scenario);
        // sipp names its log files after the scenario file: a copy keeps them in `dir`.
        std::fs::copy(&source, dir.path().join(scenario))
            .with_context(|| format!("copying {}", source.display()))?;
        launcher
            .current_dir(dir.path())
            .args(["-sf", scenario, "-p"])
            .arg(port.to_string())
            .args(args)
            .args(["-nostdin", "-trace_err", "-trace_logs", "-trace_msg"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = tokio::process::Command::from(launcher)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting sipp on {scenario}"))?;
        Ok(Self { child, dir, port })
    }

    /// Waits (bounded) for sipp to end; returns its outcome.
    pub async fn finish(self) -> anyhow::Result<SippResult> {
        let Sipp { child, dir, port } = self;
        let output: Output =
            tokio::time::timeout(Duration::from_secs(150), child.wait_with_output())
                .await
                .context("sipp did not finish within 150 s")??;
        let logs = read_logs(dir.path(), "_logs.log");
        let registered = logs
            .lines()
            .filter_map(|line| line.trim().strip_prefix("registered "))
            .map(str::to_owned)
            .collect();
        Ok(SippResult {
            success: output.status.success(),
            registered,
            logs,
            errors: read_logs(dir.path(), "_errors.log"),
            messages: read_logs(dir.path(), "_messages.log"),
            stats: read_logs(dir.path(), ".csv"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            port,
        })
    }
}

fn read_logs(dir: &Path, suffix: &str) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(suffix) && name != "users.csv" {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    text
}

/// What a sipp run did.
pub struct SippResult {
    /// sipp's exit status was 0: every call succeeded.
    pub success: bool,
    /// The users whose REGISTER got a 200 OK.
    pub registered: BTreeSet<String>,
    /// What the scenario's `<log>` actions wrote.
    pub logs: String,
    /// sipp's error log.
    pub errors: String,
    /// Every message sipp sent and received, where the run traced them.
    pub messages: String,
    /// sipp's statistics file.
    pub stats: String,
    /// sipp's screen.
    pub stdout: String,
    /// The local port of the phones.
    pub port: u16,
}

impl SippResult {
    /// The first message of `method` sipp received, from its message trace.
    pub fn received_request(&self, method: &str) -> Option<&str> {
        // Each trace entry: a dashed line with the time, "UDP message received [N] bytes :",
        // a blank line, then the message.
        self.messages
            .split("\n-----")
            .filter_map(|entry| entry.split_once("message received")?.1.split_once("\n\n"))
            .map(|(_, message)| message)
            .find(|message| message.starts_with(&format!("{method} ")))
    }

    /// Everything sipp said, for a failing assertion.
    pub fn report(&self) -> String {
        // sipp logs every late retransmission of a finished call as a "dead call" event;
        // those are harmless and would crowd out the events that explain a failure.
        let mut events: Vec<String> = Vec::new();
        for line in self.errors.lines() {
            let starts_event = line.len() > 11
                && line.as_bytes().get(4) == Some(&b'-')
                && line.as_bytes().get(10) == Some(&b'\t');
            match events.last_mut() {
                Some(event) if !starts_event => {
                    event.push('\n');
                    event.push_str(line);
                }
                _ => events.push(line.to_owned()),
            }
        }
        let errors: String = events
            .iter()
            .filter(|event| !event.contains("Dead call"))
            .flat_map(|event| [event.as_str(), "\n"])
            .collect::<String>()
            .chars()
            .take(4000)
            .collect();
        let screen: String = self
            .stdout
            .chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let messages: String = self.messages.chars().take(12000).collect();
        format!(
            "--- sipp screen (end)\n{screen}\n--- sipp errors (start)\n{errors}\n\
             --- sipp messages (start)\n{messages}"
        )
    }
}

/// One live binding as stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    /// The user.
    pub username: String,
    /// The Contact URI.
    pub contact: String,
    /// The Path.
    pub path: Option<String>,
    /// Where the REGISTER came from.
    pub received: Option<String>,
}

/// Every live binding on `server`, by user.
pub async fn live_bindings(server: &MariaDbServer) -> anyhow::Result<Vec<Binding>> {
    let rows = server
        .query_rows(
            "SELECT username, contact, path, received FROM location \
             WHERE domain = ? AND expires > NOW(6) ORDER BY username, contact",
            (DOMAIN,),
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Binding {
                username: row_value(row, 0)?,
                contact: row_value(row, 1)?,
                path: row_value(row, 2)?,
                received: row_value(row, 3)?,
            })
        })
        .collect()
}

/// Checks that every user in `registered` has exactly its sipp binding on both masters:
/// the Path through the edge's internal socket, and received naming sipp's address.
pub async fn assert_bindings(
    stack: &Stack,
    registered: &BTreeSet<String>,
    sipp_port: u16,
) -> anyhow::Result<()> {
    stack.pair.wait_replicated_within(LIMIT).await?;
    let on_a = live_bindings(&stack.pair.a).await?;
    let on_b = live_bindings(&stack.pair.b).await?;
    if on_a != on_b {
        bail!(
            "the masters differ: {} live bindings on A, {} on B",
            on_a.len(),
            on_b.len()
        );
    }
    let by_user: std::collections::BTreeMap<&str, &Binding> =
        on_a.iter().map(|b| (b.username.as_str(), b)).collect();
    let internal = stack.edge.internal.to_string();
    let phone = format!("127.0.0.1:{sipp_port}");
    let mut missing = Vec::new();
    for user in registered {
        let Some(binding) = by_user.get(user.as_str()) else {
            missing.push(user.clone());
            continue;
        };
        let path = binding.path.as_deref().unwrap_or_default();
        if !path.contains(&format!("@{internal};lr")) {
            bail!("{user}: Path {path:?} does not name the edge's internal socket {internal}");
        }
        // The registrar records the hop it heard from, the edge; the phone's own address
        // travels in the Path's flow token.
        let received = binding.received.as_deref().unwrap_or_default();
        if received != format!("sip:{internal}") {
            bail!("{user}: received {received:?} is not the edge's sip:{internal}");
        }
        if !binding.contact.contains(&phone) {
            bail!("{user}: contact {:?} is not sipp's", binding.contact);
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} registered users have no binding, e.g. {:?}",
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Waits (bounded) until dbsync's checksum finds both masters identical, with both
/// replicas running and caught up: what the periodic reconcile must bring about.
pub async fn wait_identical(stack: &Stack) -> anyhow::Result<()> {
    let cfg = stack.dbsync.clone();
    let pair = &stack.pair;
    dbsync_support::wait_for("both masters checksum-identical", LIMIT, || {
        let cfg = cfg.clone();
        async move {
            pair.wait_replicated_within(LIMIT).await?;
            let (mut a, mut b) = dbsync_support::connect(&cfg).await?;
            let results = hasip_dbsync::checksum::run(&cfg, &mut a, &mut b, false).await;
            a.close().await;
            b.close().await;
            Ok(results?.iter().all(|t| t.identical()))
        }
    })
    .await?;
    dbsync_support::assert_identical(pair, &stack.dbsync).await?;
    Ok(())
}
