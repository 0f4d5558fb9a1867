//! What the registrar's SIP tests share: a registrar run in-process on 127.0.0.1:0
//! against the harness's MariaDB pair, subscribers, a raw-socket phone speaking
//! through the hasip parser, sipp, and row checks on both masters.

#![allow(dead_code)] // reason: each test file uses a different part of this module

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use hasip::digest::{self, Algorithm};
use hasip::sip::auth::Challenge;
use hasip::sip::{HeaderName, Limits, Message};
use hasip::transport::Transport;
use hasip_registrar::config::RegistrarConfig;
use hasip_registrar::Registrar;
use hasip_tests::mariadb_server::row_value;
use hasip_tests::{MariaDbPair, MariaDbServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The domain every test registers in.
pub const DOMAIN: &str = "example.com";
/// The nonce secret shared by the registrars of a test.
pub const SECRET: &str = "test-secret-0123456789abcdef-xyz";
/// How long a phone waits for a response.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Options of a test registrar's configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether digest auth is on.
    pub auth: bool,
    /// The challenges offered.
    pub algorithms: &'static str,
    /// The trusted networks.
    pub trusted: &'static str,
    /// `drop` or `reject`.
    pub untrusted: &'static str,
    /// Most live bindings per AoR.
    pub max_contacts: usize,
    /// The nonce lifetime.
    pub nonce_max_age_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: false,
            algorithms: r#"["SHA-256", "MD5"]"#,
            trusted: r#"["127.0.0.0/8"]"#,
            untrusted: "reject",
            max_contacts: 4,
            nonce_max_age_secs: 300,
        }
    }
}

/// A registrar configuration for `masters`, written as TOML so the test also goes
/// through the loader.
pub fn config(masters: &[String], options: &Options) -> anyhow::Result<RegistrarConfig> {
    let masters: Vec<String> = masters.iter().map(|m| format!("\"{m}\"")).collect();
    let toml = format!(
        r#"
        [http]
        listen = "127.0.0.1:0"
        [sip]
        listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
        domains = ["{DOMAIN}"]
        trusted = {trusted}
        untrusted = "{untrusted}"
        [auth]
        enabled = {auth}
        nonce_secret = "{SECRET}"
        nonce_max_age_secs = {max_age}
        algorithms = {algorithms}
        [expires]
        min = 60
        max = 7200
        default = 3600
        max_contacts = {max_contacts}
        [store]
        masters = [{masters}]
        shards = 4
        timeout_ms = 1000
        probe_interval_ms = 200
        retry_after_secs = 7
        [cleanup]
        interval_secs = 3600
        "#,
        trusted = options.trusted,
        untrusted = options.untrusted,
        auth = options.auth,
        max_age = options.nonce_max_age_secs,
        algorithms = options.algorithms,
        max_contacts = options.max_contacts,
        masters = masters.join(", "),
    );
    RegistrarConfig::load_str(&toml, "HASIP_REGISTRAR_TEST_UNUSED").map_err(anyhow::Error::from)
}

/// The masters of `pair` in order A, B.
pub fn masters(pair: &MariaDbPair) -> Vec<String> {
    vec![pair.a.app_url(), pair.b.app_url()]
}

/// A registrar running in this test's runtime.
pub struct Running {
    /// Its UDP socket.
    pub udp: SocketAddr,
    /// Its TCP listener.
    pub tcp: SocketAddr,
    /// Its `/metrics` and `/health` address.
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), hasip_registrar::Error>>,
}

impl Running {
    /// Binds and runs a registrar with `config`.
    pub async fn start(config: RegistrarConfig) -> anyhow::Result<Running> {
        let registrar = Registrar::bind(config).await?;
        let addr = |transport| {
            registrar
                .sip_addrs()
                .iter()
                .find(|spec| spec.transport == transport)
                .map(|spec| spec.addr)
                .context("no socket for a transport")
        };
        let udp = addr(Transport::Udp)?;
        let tcp = addr(Transport::Tcp)?;
        let http = registrar.http_addr().context("no http address")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(registrar.run(async {
            let _ = stopped.await;
        }));
        Ok(Running {
            udp,
            tcp,
            http,
            stop: Some(stop),
            task,
        })
    }

    /// Stops the registrar and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }

    /// `GET path` on the HTTP endpoint: status and body.
    pub async fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = TcpStream::connect(self.http).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await?;
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .context("no HTTP status")?;
        Ok((status, body.to_owned()))
    }
}

/// Adds `user` with `password` to `subscriber` on A (all three HA1 columns).
pub async fn add_subscriber(pair: &MariaDbPair, user: &str, password: &str) -> anyhow::Result<()> {
    pair.a
        .exec(
            "INSERT INTO subscriber (username, domain, password, ha1, ha1b, ha1_sha256) \
             VALUES (?, ?, '', ?, ?, ?)",
            (
                user,
                DOMAIN,
                digest::ha1(Algorithm::Md5, user, DOMAIN, password),
                digest::ha1(
                    Algorithm::Md5,
                    &format!("{user}@{DOMAIN}"),
                    DOMAIN,
                    password,
                ),
                digest::ha1(Algorithm::Sha256, user, DOMAIN, password),
            ),
        )
        .await?;
    Ok(())
}

/// One live `location` row as the tests check it; rows compare equal without
/// `remaining`, which depends on when each server was asked.
#[derive(Debug, Clone)]
pub struct Row {
    /// The Contact URI.
    pub contact: String,
    /// The Path, as received.
    pub path: Option<String>,
    /// The source the REGISTER came from.
    pub received: Option<String>,
    /// Our socket.
    pub socket: Option<String>,
    /// Seconds left (rounded down), from the server's clock.
    pub remaining: i64,
    /// q as stored.
    pub q: f32,
    /// CSeq of the last write.
    pub cseq: i64,
    /// `+sip.instance`.
    pub instance: Option<String>,
    /// reg-id.
    pub reg_id: i64,
    /// `expires` as text, microseconds included.
    pub expires: String,
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.contact,
            &self.path,
            &self.received,
            &self.socket,
            self.q,
            self.cseq,
            &self.instance,
            self.reg_id,
            &self.expires,
        ) == (
            &other.contact,
            &other.path,
            &other.received,
            &other.socket,
            other.q,
            other.cseq,
            &other.instance,
            other.reg_id,
            &other.expires,
        )
    }
}

/// The live rows of `user` on `server`, by contact.
pub async fn live_rows(server: &MariaDbServer, user: &str) -> anyhow::Result<Vec<Row>> {
    let rows = server
        .query_rows(
            "SELECT contact, path, received, socket, \
             TIMESTAMPDIFF(SECOND, NOW(6), expires), q, cseq, instance, reg_id, \
             CAST(expires AS CHAR) \
             FROM location WHERE username = ? AND domain = ? AND expires > NOW(6) \
             ORDER BY contact",
            (user, DOMAIN),
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Row {
                contact: row_value(row, 0)?,
                path: row_value(row, 1)?,
                received: row_value(row, 2)?,
                socket: row_value(row, 3)?,
                remaining: row_value(row, 4)?,
                q: row_value(row, 5)?,
                cseq: row_value(row, 6)?,
                instance: row_value(row, 7)?,
                reg_id: row_value(row, 8)?,
                expires: row_value(row, 9)?,
            })
        })
        .collect()
}

/// How many live bindings `server` holds in all.
pub async fn live_count(server: &MariaDbServer) -> anyhow::Result<u64> {
    server
        .query_value("SELECT COUNT(*) FROM location WHERE expires > NOW(6)", ())
        .await
}

/// A REGISTER for `user` with the given Call-ID, CSeq and extra header lines
/// (each ending in CRLF), over `transport` from `local`.
pub fn register(
    user: &str,
    call_id: &str,
    cseq: u32,
    transport: Transport,
    local: SocketAddr,
    extra: &str,
) -> String {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{call_id}x{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{DOMAIN}>;tag=t{cseq}\r\n\
         To: <sip:{user}@{DOMAIN}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         User-Agent: hasip-test\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// A phone on one UDP socket or TCP connection, reading replies with the hasip parser.
pub enum Phone {
    /// Over UDP to the registrar's socket.
    Udp {
        /// Our socket.
        socket: UdpSocket,
        /// The registrar.
        to: SocketAddr,
    },
    /// Over one TCP connection.
    Tcp {
        /// The connection.
        stream: TcpStream,
        /// Bytes read beyond the last message.
        buffer: Vec<u8>,
    },
}

impl Phone {
    /// A UDP phone talking to `to`.
    pub async fn udp(to: SocketAddr) -> anyhow::Result<Phone> {
        Phone::udp_on("127.0.0.1:0".parse()?, to).await
    }

    /// A UDP phone on the socket `local`, talking to `to`.
    pub async fn udp_on(local: SocketAddr, to: SocketAddr) -> anyhow::Result<Phone> {
        let socket = UdpSocket::bind(local).await?;
        Ok(Phone::Udp { socket, to })
    }

    /// A TCP phone connected to `to`.
    pub async fn tcp(to: SocketAddr) -> anyhow::Result<Phone> {
        let stream = TcpStream::connect(to).await?;
        Ok(Phone::Tcp {
            stream,
            buffer: Vec::new(),
        })
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        match self {
            Phone::Udp { .. } => Transport::Udp,
            Phone::Tcp { .. } => Transport::Tcp,
        }
    }

    /// Our address.
    pub fn local(&self) -> anyhow::Result<SocketAddr> {
        Ok(match self {
            Phone::Udp { socket, .. } => socket.local_addr()?,
            Phone::Tcp { stream, .. } => stream.local_addr()?,
        })
    }

    /// Sends `text`.
    pub async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        match self {
            Phone::Udp { socket, to } => {
                socket.send_to(text.as_bytes(), *to).await?;
            }
            Phone::Tcp { stream, .. } => stream.write_all(text.as_bytes()).await?,
        }
        Ok(())
    }

    /// The next final response (100 Trying skipped), within [`ANSWER_WITHIN`].
    pub async fn recv(&mut self) -> anyhow::Result<Message> {
        loop {
            let message = tokio::time::timeout(ANSWER_WITHIN, self.recv_any())
                .await
                .context("no response in time")??;
            if message.status_code().is_some_and(|c| c >= 200) {
                return Ok(message);
            }
        }
    }

    /// Whether nothing arrives within `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.recv_any()).await.is_err()
    }

    async fn recv_any(&mut self) -> anyhow::Result<Message> {
        match self {
            Phone::Udp { socket, .. } => {
                let mut buf = vec![0u8; 65536];
                let (n, _) = socket.recv_from(&mut buf).await?;
                buf.truncate(n);
                Ok(Message::parse(Bytes::from(buf), &Limits::default())?)
            }
            Phone::Tcp { stream, buffer } => loop {
                if let Some(len) = framed_len(buffer) {
                    let rest = buffer.split_off(len);
                    let message = std::mem::replace(buffer, rest);
                    return Ok(Message::parse(Bytes::from(message), &Limits::default())?);
                }
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed");
                }
                buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
            },
        }
    }

    /// Sends `text` and returns the final response.
    pub async fn ask(&mut self, text: &str) -> anyhow::Result<Message> {
        self.send(text).await?;
        self.recv().await
    }

    /// REGISTERs `user` (extra header lines in `extra`) and returns the final response.
    pub async fn register(
        &mut self,
        user: &str,
        call_id: &str,
        cseq: u32,
        extra: &str,
    ) -> anyhow::Result<Message> {
        let text = register(user, call_id, cseq, self.transport(), self.local()?, extra);
        self.ask(&text).await
    }
}

/// The length of the first whole message in `buffer` (headers + Content-Length).
fn framed_len(buffer: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(buffer).ok()?;
    let end = text.find("\r\n\r\n")? + 4;
    let head = text.get(..end)?;
    let body = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim().eq_ignore_ascii_case("content-length") || name.trim() == "l")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    (buffer.len() >= end + body).then_some(end + body)
}

/// The status code of a response (0 for a request).
pub fn status(message: &Message) -> u16 {
    message.status_code().unwrap_or(0)
}

/// The Contact values of a response.
pub fn contacts(message: &Message) -> Vec<String> {
    message
        .header_values(&HeaderName::Contact)
        .map(str::to_owned)
        .collect()
}

/// An Authorization value answering the first challenge of `response` offering
/// `algorithm`, for `user` with `password`.
pub fn answer(
    response: &Message,
    algorithm: Algorithm,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let challenge = response
        .www_authenticates()
        .filter_map(Result::ok)
        .find(|c| c.algorithm_or_default().as_str() == algorithm.as_str())
        .context("no challenge for the algorithm")?;
    Ok(authorization(&challenge, algorithm, user, password))
}

/// The Authorization value answering `challenge` with qop=auth.
pub fn authorization(
    challenge: &Challenge<'_>,
    algorithm: Algorithm,
    user: &str,
    password: &str,
) -> String {
    let uri = format!("sip:{DOMAIN}");
    let ha1 = digest::ha1(algorithm, user, &challenge.realm, password);
    let response = digest::response(
        algorithm,
        &ha1,
        &challenge.nonce,
        "0a4f113b",
        "00000001",
        Some("auth"),
        "REGISTER",
        &uri,
    );
    format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
        challenge.realm,
        challenge.nonce,
        algorithm.as_str()
    )
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The sipp binary, or an error saying how to install it.
pub fn sipp() -> anyhow::Result<PathBuf> {
    let candidates = ["/usr/bin/sipp", "/usr/local/bin/sipp"];
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Ok(found);
    }
    bail!("sipp is not installed: run `apt-get install sip-tester`")
}

/// Writes a sipp injection file of `users` into `dir`: user;domain;password and the
/// `[authentication]` keyword built from them (sipp expands no fields inside it).
pub fn users_csv(dir: &Path, users: &[(String, String)]) -> anyhow::Result<PathBuf> {
    let mut text = String::from("SEQUENTIAL\n");
    for (user, password) in users {
        text.push_str(&format!(
            "{user};{DOMAIN};{password};[authentication username={user} password={password}]\n"
        ));
    }
    let path = dir.join("users.csv");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs sipp scenario `scenario` (a file of `sipp/registrar/`) `calls` times against
/// `target` over `transport`, with `users` injected; fails unless every call succeeds.
pub async fn run_sipp(
    scenario: &str,
    target: SocketAddr,
    transport: Transport,
    csv: &Path,
    calls: usize,
) -> anyhow::Result<()> {
    let sipp = sipp()?;
    let scenario_path = repo_root().join("sipp/registrar").join(scenario);
    let dir = csv.parent().context("csv has no directory")?;
    let mode = match transport {
        Transport::Udp => "u1",
        Transport::Tcp => "t1",
    };
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(sipp)
            .current_dir(dir)
            .arg(target.to_string())
            .arg("-sf")
            .arg(&scenario_path)
            .arg("-inf")
            .arg(csv)
            .args(["-t", mode, "-i", "127.0.0.1", "-m"])
            .arg(calls.to_string())
            .args([
                "-r",
                "50",
                "-l",
                "20",
                "-nostdin",
                "-timeout",
                "60s",
                "-timeout_error",
            ])
            .args(["-trace_err", "-trace_screen"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("sipp did not finish in time")??;
    if !output.status.success() {
        let mut logs = String::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    logs.push_str(&format!(
                        "--- {}\n{}\n",
                        path.display(),
                        std::fs::read_to_string(&path).unwrap_or_default()
                    ));
                }
            }
        }
        bail!(
            "sipp {scenario} failed ({}):\n{}\n{}\n{logs}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
