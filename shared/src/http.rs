//! The operations endpoint: `GET /metrics` (Prometheus text) and `GET /health` (JSON).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::Error;

/// The state of a process or of one of its dependencies, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything works.
    Ok,
    /// Serving, with reduced redundancy (one MariaDB master down, say).
    Degraded,
    /// Not serving: `/health` answers 503 so a load balancer stops sending.
    Down,
}

/// One named check in a [`Health`] report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// This check's state.
    pub status: HealthStatus,
    /// A short human-readable reason, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The body of `/health`: an overall status and the checks behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The overall status; 503 when `Down`.
    pub status: HealthStatus,
    /// Named checks, in name order.
    pub checks: BTreeMap<String, Check>,
}

impl Health {
    /// A healthy report with no checks.
    pub fn ok() -> Self {
        Health {
            status: HealthStatus::Ok,
            checks: BTreeMap::new(),
        }
    }

    /// Adds a check; the overall status becomes the worst seen so far.
    pub fn check(mut self, name: &str, status: HealthStatus, detail: Option<String>) -> Self {
        self.status = self.status.max(status);
        self.checks
            .insert(name.to_owned(), Check { status, detail });
        self
    }
}

/// Installs the process-wide Prometheus recorder once; later calls return the same handle.
///
/// If another recorder was installed globally first, the returned handle renders an empty
/// registry and a warning is logged, rather than failing the process.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics is empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        })
        .clone()
}

/// A cheap function reporting the current health; it runs on every `/health` request.
pub type HealthFn = Arc<dyn Fn() -> Health + Send + Sync>;

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    health: HealthFn,
}

/// Serves `/metrics` and `/health` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: PrometheusHandle,
    health: HealthFn,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health_handler))
        .with_state(AppState { metrics, health });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    // install_recorder spawns no upkeep task, so histograms are drained here, per scrape.
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn health_handler(State(state): State<AppState>) -> Response {
    let health = (state.health)();
    let code = match health.status {
        HealthStatus::Ok | HealthStatus::Degraded => StatusCode::OK,
        HealthStatus::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    match serde_json::to_string(&health) {
        Ok(body) => (code, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health report not serializable");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU8, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;

    use super::*;

    /// A raw HTTP/1.1 GET; returns the status code and the body.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(e) => panic!("connect: {e}"),
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        assert!(stream.write_all(request.as_bytes()).await.is_ok());
        let mut reply = String::new();
        assert!(stream.read_to_string(&mut reply).await.is_ok());
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        (status, body.to_owned())
    }

    #[test]
    fn health_takes_the_worst_check() {
        let health = Health::ok()
            .check("mariadb_a", HealthStatus::Down, Some("refused".into()))
            .check("mariadb_b", HealthStatus::Ok, None);
        assert_eq!(health.status, HealthStatus::Down);
        let health = Health::ok().check("mariadb_a", HealthStatus::Degraded, None);
        assert_eq!(health.status, HealthStatus::Degraded);
    }

    #[test]
    fn install_metrics_twice_gives_the_same_registry() {
        let first = install_metrics();
        metrics::counter!("hasip_test_twice_total").increment(1);
        assert!(install_metrics()
            .render()
            .contains("hasip_test_twice_total 1"));
        assert!(first.render().contains("hasip_test_twice_total"));
    }

    #[tokio::test]
    async fn serves_metrics_and_health_over_a_socket() {
        let handle = install_metrics();
        metrics::counter!("hasip_test_http_requests_total").increment(3);

        // 0 ok, 1 degraded, 2 down.
        let state = Arc::new(AtomicU8::new(0));
        let seen = Arc::clone(&state);
        let health: HealthFn = Arc::new(move || match seen.load(Ordering::SeqCst) {
            0 => Health::ok().check("db", HealthStatus::Ok, None),
            1 => Health::ok().check("db", HealthStatus::Degraded, Some("one master".into())),
            _ => Health::ok().check("db", HealthStatus::Down, Some("no master".into())),
        });

        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("local_addr: {e}"),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, handle, health, async {
            let _ = stopped.await;
        }));

        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("hasip_test_http_requests_total 3"), "{body}");

        let (status, body) = get(addr, "/health").await;
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"status":"ok","checks":{"db":{"status":"ok"}}}"#);

        state.store(1, Ordering::SeqCst);
        let (status, body) = get(addr, "/health").await;
        assert_eq!(status, 200);
        assert!(body.contains(r#""status":"degraded""#), "{body}");

        state.store(2, Ordering::SeqCst);
        let (status, body) = get(addr, "/health").await;
        assert_eq!(status, 503);
        assert_eq!(
            body,
            r#"{"status":"down","checks":{"db":{"status":"down","detail":"no master"}}}"#
        );

        let (status, _) = get(addr, "/nothing").await;
        assert_eq!(status, 404);

        assert!(stop.send(()).is_ok());
        let result = server.await;
        assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    }
}
