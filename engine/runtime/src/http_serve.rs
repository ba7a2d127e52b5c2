//! Serving HTTP (the HTTP source and the admin API) with the limits a hostile or broken client must
//! not get past: a bounded number of connections and a deadline for a request's headers. `axum::serve`
//! has neither (hyper's header timeout needs a timer it does not install), so a client opening
//! thousands of silent connections would use up the process's file descriptors, and with them every
//! channel's sockets and files.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Connections served at once by one HTTP listener; more are accepted and closed at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request's body once its headers are in.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `stop` resolves, then lets requests in flight finish for up to
/// `drain`. `what` names the listener in logs.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    what: &str,
    stop: impl Future<Output = ()>,
    drain: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    warn!(listener = what, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            warn!(listener = what, %peer, max = MAX_CONNECTIONS, "too many connections; closing the new one");
            continue;
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let connection = graceful.watch(
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone())),
        );
        let what = what.to_owned();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(listener = what, %peer, error = %e, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            listener = what,
            "HTTP requests still in flight at the end of the drain were dropped"
        );
    }
}
