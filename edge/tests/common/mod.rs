//! The shared harness of the edge's integration tests: an edge on 127.0.0.1 port 0,
//! fake registrars (Rust sockets, answer / stay silent / 503), a fake core, and sipp
//! runs. Every test uses only 127.0.0.0/8.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hasip::sip::builder::response_to;
use hasip::sip::typed::Contacts;
use hasip::sip::{HeaderName, Limits, Message, Method};
use hasip_edge::config::EdgeConfig;
use hasip_edge::Edge;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The flow token secret of every test edge.
pub const SECRET: &str = "test secret shared by the edges, 32+";

/// A running edge.
pub struct TestEdge {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub internal: SocketAddr,
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The config of a test edge; `extra` is appended TOML (whole sections).
pub fn config(registrars: &[SocketAddr], extra: &str) -> EdgeConfig {
    let addrs: Vec<String> = registrars.iter().map(|a| format!("\"{a}\"")).collect();
    let toml = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\
         [sip]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\n\
         internal = \"udp:127.0.0.1:0\"\n\
         [flow_token]\nsecret = \"{SECRET}\"\n\
         [registrars]\naddrs = [{}]\nfailover_timeout_ms = 1000\n{extra}{}",
        addrs.join(", "),
        // Every phone of a test shares 127.0.0.1: rate limits only where a test sets them.
        if extra.contains("[protection]") {
            ""
        } else {
            "[protection]\nmax_requests = 0\n"
        },
    );
    hasip::config::load_str(&toml, "HASIP_EDGE_TEST_UNSET").unwrap_or_else(|e| panic!("{e}"))
}

/// Starts an edge in front of `registrars`.
pub async fn start_edge(config: EdgeConfig) -> TestEdge {
    // RUST_LOG=hasip_edge=debug shows the edge's logs in a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let edge = Edge::bind(config).await.unwrap_or_else(|e| panic!("{e}"));
    let udp = find(&edge, hasip::transport::Transport::Udp);
    let tcp = find(&edge, hasip::transport::Transport::Tcp);
    let internal = edge.internal_addr();
    let http = edge.http_addr().unwrap_or_else(|| panic!("http bound"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = edge
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    TestEdge {
        udp,
        tcp,
        internal,
        http,
        stop: Some(stop),
        task: Some(task),
    }
}

fn find(edge: &Edge, transport: hasip::transport::Transport) -> SocketAddr {
    edge.sip_addrs()
        .iter()
        .find(|s| s.transport == transport)
        .map(|s| s.addr)
        .unwrap_or_else(|| panic!("no {transport} socket"))
}

pub fn parse(data: &[u8]) -> Message {
    Message::parse(Bytes::copy_from_slice(data), &Limits::default())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(data)))
}

/// How a fake registrar behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 to everything; a REGISTER's 200 lists its Contacts with `expires`.
    Answer,
    /// Never answers.
    Silent,
    /// 503 to REGISTER, 200 to OPTIONS.
    Unavailable,
}

/// A registrar on a Rust socket that records the REGISTERs it saw.
pub struct FakeRegistrar {
    pub addr: SocketAddr,
    pub mode: Arc<Mutex<Mode>>,
    pub registers: Arc<Mutex<Vec<Message>>>,
    /// Where each request came from.
    pub sources: Arc<Mutex<Vec<SocketAddr>>>,
    /// Expiry granted to each binding.
    pub expires: u32,
    task: JoinHandle<()>,
}

impl FakeRegistrar {
    pub async fn start(mode: Mode, expires: u32) -> FakeRegistrar {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = socket.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mode = Arc::new(Mutex::new(mode));
        let registers = Arc::new(Mutex::new(Vec::new()));
        let sources = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(
            socket,
            Arc::clone(&mode),
            Arc::clone(&registers),
            Arc::clone(&sources),
            expires,
        ));
        FakeRegistrar {
            addr,
            mode,
            registers,
            sources,
            expires,
            task,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    pub fn sources(&self) -> Vec<SocketAddr> {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn registers(&self) -> Vec<Message> {
        self.registers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Closes the socket: the registrar is gone.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for FakeRegistrar {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: UdpSocket,
    mode: Arc<Mutex<Mode>>,
    registers: Arc<Mutex<Vec<Message>>>,
    sources: Arc<Mutex<Vec<SocketAddr>>>,
    expires: u32,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(request) = Message::parse(
            Bytes::copy_from_slice(buf.get(..len).unwrap_or_default()),
            &Limits::default(),
        ) else {
            continue;
        };
        if !request.is_request() || request.method() == Some(Method::Ack) {
            continue;
        }
        sources.lock().unwrap_or_else(|e| e.into_inner()).push(from);
        let current = *mode.lock().unwrap_or_else(|e| e.into_inner());
        let is_register = request.method() == Some(Method::Register);
        if is_register {
            registers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(request.clone());
        }
        let response = match (current, is_register) {
            (Mode::Silent, _) => continue,
            (Mode::Unavailable, true) => {
                response_to(&request, 503, "Service Unavailable", Some("r")).build()
            }
            (_, true) => {
                let mut builder = response_to(&request, 200, "OK", Some("r"));
                if let Ok(Contacts::List(list)) = request.contacts() {
                    for contact in list {
                        builder = builder.header(
                            HeaderName::Contact,
                            &format!("<{}>;expires={expires}", contact.uri()),
                        );
                    }
                }
                builder.build()
            }
            (_, false) => response_to(&request, 200, "OK", Some("r")).build(),
        };
        let _ = socket.send_to(&response, from).await;
    }
}

/// Receives one datagram within `wait`, skipping CRLF keepalives.
pub async fn recv_sip(socket: &UdpSocket, wait: Duration) -> Option<(Message, SocketAddr)> {
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (len, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let data = buf.get(..len).unwrap_or_default();
        if data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            continue;
        }
        return Some((parse(data), from));
    }
}

/// Sends `request` from `phone` to `to` and returns the first SIP answer (5 s at most).
pub async fn ask(phone: &UdpSocket, to: SocketAddr, request: &str) -> (Message, SocketAddr) {
    phone
        .send_to(request.as_bytes(), to)
        .await
        .unwrap_or_else(|e| panic!("sending to {to}: {e}"));
    recv_sip(phone, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer from {to}"))
}

/// A REGISTER from a phone at `local` for `user`.
pub fn register(user: &str, local: SocketAddr, transport: &str, expires: u32) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{:x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@example.com>;tag=f{user}\r\n\
         To: <sip:{user}@example.com>\r\n\
         Call-ID: reg-{user}-{:x}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         Expires: {expires}\r\n\
         Content-Length: 0\r\n\r\n",
        rand::random::<u64>(),
        rand::random::<u32>(),
    )
}

/// A MESSAGE from the core toward a phone, routed by the Path the registrar stored.
pub fn message_from_core(core: SocketAddr, route: &str, call_id: &str, to_user: &str) -> String {
    format!(
        "MESSAGE sip:{to_user}@192.168.1.50:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {core};branch=z9hG4bK{:x};rport\r\n\
         Max-Forwards: 70\r\n\
         Route: {route}\r\n\
         From: <sip:core@example.com>;tag=core1\r\n\
         To: <sip:{to_user}@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 7 MESSAGE\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: 5\r\n\r\nhello",
        rand::random::<u64>(),
    )
}

/// The sipp binary; fails the test with the install hint when it is missing.
pub fn sipp() -> PathBuf {
    match Command::new("sipp").arg("-v").output() {
        Ok(_) => PathBuf::from("sipp"),
        Err(_) => {
            panic!("sipp is missing: apt-get install sip-tester (scripts/install-deps installs it)")
        }
    }
}

/// A sipp scenario file of these tests.
pub fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
        .display()
        .to_string()
}

/// Runs sipp to completion off the async threads.
pub async fn run_sipp(args: Vec<String>) -> Output {
    let bin = sipp();
    tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("sipp: {e}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A sipp UAS registrar running in the background; killed on drop.
pub struct SippRegistrar {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl SippRegistrar {
    pub fn start(port: u16) -> SippRegistrar {
        let child = Command::new(sipp())
            .args([
                "-sf",
                &scenario("registrar_uas.xml"),
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-aa",
                "-nostdin",
                "-bind_local",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("sipp: {e}"));
        SippRegistrar {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SippRegistrar {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free UDP port on 127.0.0.1 (bound and released; good enough for a test).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// GETs a path of the edge's HTTP endpoint.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body
}

/// Waits for a condition, polling, for at most `wait`.
pub async fn eventually(wait: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}
