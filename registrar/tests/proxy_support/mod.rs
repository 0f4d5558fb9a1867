//! What the proxy tests share: a registrar's proxy on a loopback UDP socket over a
//! store on the MariaDB pair, bindings and subscribers, and sipp processes.

#![allow(dead_code)] // reason: each test binary uses a different part of this module

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use hasip::digest::{self, Algorithm};
use hasip::endpoint::{Endpoint, EndpointConfig, Incoming};
use hasip::transport::{ListenSpec, TransportOptions, Transports};
use hasip_registrar::binding::Aor;
use hasip_registrar::proxy::{Proxy, ProxyConfig};
use hasip_registrar::register::{
    ContactSpec, ContactsSpec, ExpiresPolicy, Outcome, RegisterRequest,
};
use hasip_registrar::store::{Store, StoreConfig};
use hasip_tests::MariaDbPair;
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The served domain.
pub const DOMAIN: &str = "example.com";
/// The nonce secret every registrar of a test shares.
pub const SECRET: &[u8] = b"proxy-test-nonce-secret-0123456789";
/// The longest any sipp process may run.
pub const SIPP_LIMIT: Duration = Duration::from_secs(40);

/// The store's configuration over the pair, `first` being the master tried first.
pub fn store_config(pair: &MariaDbPair, a_first: bool) -> StoreConfig {
    let (a, b) = (pair.a.app_url(), pair.b.app_url());
    StoreConfig {
        masters: if a_first { vec![a, b] } else { vec![b, a] },
        shards: 2,
        probe_interval_ms: 200,
        ..StoreConfig::default()
    }
}

/// Starts a store over the pair.
pub fn store(pair: &MariaDbPair, a_first: bool) -> anyhow::Result<Store> {
    let policy = ExpiresPolicy {
        min: 60,
        max: 7200,
        default: 3600,
        max_contacts: 12,
    };
    Store::start(&store_config(pair, a_first), policy).context("starting the store")
}

/// The proxy configuration of the tests: example.com, authentication on, Timer C short.
pub fn proxy_config() -> ProxyConfig {
    ProxyConfig {
        domains: vec![DOMAIN.into()],
        timer_c_secs: 3,
        algorithms: vec!["MD5".into()],
        ..ProxyConfig::default()
    }
}

/// One registrar's proxy on a loopback UDP socket.
pub struct Registrar {
    /// Where it listens.
    pub addr: SocketAddr,
    transports: Transports,
    task: JoinHandle<()>,
}

impl Registrar {
    /// Starts the proxy over `store`, dispatching what the endpoint hands up the way
    /// the registrar's SIP shell does for everything but REGISTER.
    pub async fn start(store: Store, config: &ProxyConfig) -> anyhow::Result<Registrar> {
        let spec: ListenSpec = "udp:127.0.0.1:0".parse().map_err(anyhow::Error::msg)?;
        let (transports, inbound) = Transports::bind(&[spec], TransportOptions::default())
            .await
            .context("binding the registrar's socket")?;
        let addr = transports
            .local_addrs()
            .first()
            .map(|s| s.addr)
            .context("no bound socket")?;
        let (endpoint, mut incoming) =
            Endpoint::start(transports.clone(), inbound, EndpointConfig::default());
        let proxy = Proxy::new(config, SECRET, endpoint, store).context("proxy config")?;
        let task = tokio::spawn(async move {
            while let Some(event) = incoming.recv().await {
                let proxy = proxy.clone();
                match event {
                    Incoming::Request { request, flow, txn } => {
                        tokio::spawn(async move { proxy.handle(request, flow, txn).await });
                    }
                    Incoming::Ack { ack, .. } => {
                        tokio::spawn(async move { proxy.forward_ack(ack).await });
                    }
                    Incoming::StrayResponse { response, .. } => {
                        tokio::spawn(async move { proxy.forward_stray_response(response).await });
                    }
                    _ => {}
                }
            }
        });
        Ok(Registrar {
            addr,
            transports,
            task,
        })
    }

    /// Stops it: the socket closes and nothing more is handled.
    pub fn stop(&self) {
        self.task.abort();
        self.transports.shutdown();
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A contact to register.
pub struct Reg<'a> {
    /// The user.
    pub user: &'a str,
    /// The Contact URI.
    pub contact: String,
    /// The Path, if any.
    pub path: Option<String>,
    /// q in thousandths.
    pub q: Option<u16>,
    /// The REGISTER's Call-ID (one per phone).
    pub call_id: &'a str,
    /// The source the REGISTER came from (`received`), for a phone without Path.
    pub received: Option<String>,
}

/// Writes a binding through the store, as a REGISTER would.
pub async fn register(store: &Store, reg: Reg<'_>) -> anyhow::Result<()> {
    register_flow(store, reg, None).await
}

/// Writes an RFC 5626 binding (`+sip.instance` and `reg-id`) through the store; the
/// Path must end its first hop with `;ob`.
pub async fn register_flow(
    store: &Store,
    reg: Reg<'_>,
    flow: Option<(&str, u32)>,
) -> anyhow::Result<()> {
    let has_ob = reg
        .path
        .as_deref()
        .and_then(|p| p.split('>').next())
        .is_some_and(|first| first.contains(";ob"));
    let request = RegisterRequest {
        aor: Aor::new(reg.user, DOMAIN),
        call_id: reg.call_id.to_owned(),
        cseq: 1,
        expires_header: None,
        contacts: ContactsSpec::List(vec![ContactSpec {
            uri: reg.contact,
            expires_param: Some(600),
            q: reg.q,
            instance: flow.map(|(instance, _)| instance.to_owned()),
            reg_id: flow.map(|(_, reg_id)| reg_id),
        }]),
        path: reg.path,
        received: reg.received,
        user_agent: "proxy-test".to_owned(),
        socket: None,
        path_first_hop_has_ob: has_ob,
    };
    match store.register(request, None).await.context("register")? {
        Outcome::Accept(_) => Ok(()),
        Outcome::Reject(r) => bail!("binding refused: {} {}", r.code, r.reason),
    }
}

/// Adds a subscriber with its three HA1 columns.
pub async fn add_subscriber(pair: &MariaDbPair, user: &str, password: &str) -> anyhow::Result<()> {
    let ha1 = digest::ha1(Algorithm::Md5, user, DOMAIN, password);
    let ha1b = digest::ha1(
        Algorithm::Md5,
        &format!("{user}@{DOMAIN}"),
        DOMAIN,
        password,
    );
    let ha1_sha256 = digest::ha1(Algorithm::Sha256, user, DOMAIN, password);
    pair.a
        .exec(
            "INSERT INTO subscriber (username, domain, password, ha1, ha1b, ha1_sha256) \
             VALUES (?, ?, '', ?, ?, ?)",
            (user, DOMAIN, ha1, ha1b, ha1_sha256),
        )
        .await?;
    Ok(())
}

/// A free loopback UDP port (free when asked; sipp binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("probing for a free port")?;
    Ok(socket.local_addr()?.port())
}

/// `n` distinct free loopback UDP ports.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let sockets = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").context("probing for a free port"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    sockets.iter().map(|s| Ok(s.local_addr()?.port())).collect()
}

/// The scenario file `name` under registrar/tests/sipp.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// Fails with the install hint when sipp is not on the PATH.
pub fn require_sipp() -> anyhow::Result<()> {
    match std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) => bail!("sipp is missing ({e}): apt-get install sip-tester"),
    }
}

/// A running sipp.
pub struct Sipp {
    name: String,
    child: Child,
    logs: PathBuf,
}

impl Sipp {
    fn spawn(name: &str, logs: &TempDir, args: &[String]) -> anyhow::Result<Sipp> {
        let dir = logs.path().to_path_buf();
        let mut cmd = Command::new("sipp");
        cmd.args(args)
            .args(["-nostdin", "-trace_err", "-trace_msg"])
            .arg("-error_file")
            .arg(dir.join(format!("{name}.err")))
            .arg("-message_file")
            .arg(dir.join(format!("{name}.msg")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .context("sipp is missing: apt-get install sip-tester")?;
        Ok(Sipp {
            name: name.to_owned(),
            child,
            logs: dir,
        })
    }

    /// A phone (UAS) on `port` playing `scenario`; returns once its socket is bound.
    pub async fn phone(
        name: &str,
        logs: &TempDir,
        scenario_name: &str,
        port: u16,
    ) -> anyhow::Result<Sipp> {
        let args = vec![
            "-sf".into(),
            scenario(scenario_name).display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-timeout_error".into(),
        ];
        let sipp = Sipp::spawn(name, logs, &args)?;
        wait_bound(port).await?;
        Ok(sipp)
    }

    /// A caller (UAC) calling `user` through `registrar`, with extra sipp arguments.
    pub fn caller(
        name: &str,
        logs: &TempDir,
        scenario_name: &str,
        registrar: SocketAddr,
        user: &str,
        extra: &[&str],
    ) -> anyhow::Result<Sipp> {
        let mut args = vec![
            registrar.to_string(),
            "-sf".into(),
            scenario(scenario_name).display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_port()?.to_string(),
            "-s".into(),
            user.into(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-timeout_error".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Sipp::spawn(name, logs, &args)
    }

    /// Waits (bounded) for sipp to end and fails unless every call succeeded.
    pub async fn success(mut self) -> anyhow::Result<()> {
        let status = tokio::time::timeout(SIPP_LIMIT, self.child.wait()).await;
        let status = match status {
            Ok(s) => s.context("waiting for sipp")?,
            Err(_) => {
                self.child.kill().await.ok();
                bail!(
                    "sipp {} did not finish in {SIPP_LIMIT:?}\n{}",
                    self.name,
                    self.logs()
                );
            }
        };
        if !status.success() {
            bail!("sipp {} failed ({status})\n{}", self.name, self.logs());
        }
        Ok(())
    }

    /// The error and message logs, for a failure message.
    fn logs(&self) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.logs.join(format!("{}.{ext}", self.name)))
                .unwrap_or_default()
        };
        format!(
            "--- errors ---\n{}\n--- messages ---\n{}",
            read("err"),
            read("msg")
        )
    }
}

/// Waits until something has bound loopback UDP `port` (sipp started listening).
async fn wait_bound(port: u16) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Read the socket table rather than probe with a bind, which could steal the
        // port from sipp.
        let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
        let needle = format!(":{port:04X} ");
        if table.lines().skip(1).any(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|local| format!("{local} ").ends_with(&needle))
        }) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("sipp did not bind port {port} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
