//! The API's HTTP/1.1 server: hyper's connection builder (instead of `axum::serve`, which sets no
//! timer and so no header timeout), with a header-read timeout, a cap on open connections and
//! graceful shutdown.
//!
//! * **Header timeout:** a connection that does not finish a request's headers within
//!   `header_timeout` — a slowloris client, or a keep-alive connection left idle — is closed by
//!   hyper.
//! * **Connection cap:** at most `max_connections` connections are served at once; one accepted
//!   beyond that is closed at once (counted in `rumgate_api_connections_refused_total`), so a
//!   flood of sockets cannot exhaust file descriptors or memory.
//! * The whole-request timeout and the body limits are middleware in [`super`], because they
//!   answer with the JSON error body.
//!
//! HTTP/2 is not offered: the node sits behind a reverse proxy or on loopback, where HTTP/1.1 is
//! what both speak, and hyper's header timeout covers HTTP/1 only.

use crate::metrics::Metrics;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// A place under the connection cap, released when the last holder drops it.
#[derive(Clone)]
pub struct ConnectionPermit(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Connection-level limits of the API server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A request's headers must arrive within this long (also the keep-alive idle limit).
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl ServerLimits {
    /// The connection-level limits `api.*` configures.
    pub fn from_config(a: &crate::config::ApiConfig) -> Self {
        Self {
            header_timeout: std::time::Duration::from_millis(a.header_timeout_ms),
            max_connections: a.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `cancel`; then stops accepting, asks every connection to
/// finish its current request and waits for them (the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "accepting an API connection failed");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics.api_connections_refused.inc();
            tracing::debug!(%remote, max = limits.max_connections, "API connection refused: at the cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Shared with every request of the connection, so that a WebSocket (which outlives
        // the HTTP connection hyper hands over) keeps its place under the cap.
        let permit = ConnectionPermit(Arc::new(permit));
        let held = permit.clone();
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req.extensions_mut().insert(held.clone());
                req
            });
        let open = metrics.api_connections.clone();
        let cancel = cancel.clone();
        connections.spawn(async move {
            open.inc();
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "API connection ended with an error");
            }
            open.dec();
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
}
