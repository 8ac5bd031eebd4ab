//! The listening socket and the shutdown sequence.
//!
//! Connections are served by hyper's HTTP/1 with a header-read timeout (a client that trickles
//! its headers is dropped after `--read-timeout`); at most [`MAX_CONNECTIONS`] are open at once
//! (more are closed on accept). Shutdown: the first SIGINT/SIGTERM stops accepting and asks
//! every connection to close after its current response; running requests get
//! `--shutdown-timeout` seconds to finish, then they are cancelled (streams end with an error
//! event) and whatever is left (half-open connections) is dropped. A second signal exits at
//! once.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Timeouts of the listener.
#[derive(Clone, Copy, Debug)]
pub struct ListenTimes {
    /// Longest wait for a request's headers (and, in the handlers, its body).
    pub read: Duration,
    /// How long running requests may go on after the first shutdown signal.
    pub shutdown: Duration,
}

/// Serves `router` on `listener` until a shutdown signal, then drains as described in the
/// module doc. `cancel_all` is called when the drain deadline passes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    signals: Signals,
    t: ListenTimes,
    cancel_all: impl FnOnce(),
) {
    let (drain_tx, drain_rx) = watch::channel(false);
    signals.spawn(drain_tx);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // every connection task holds a receiver: `closed()` resolves when the last one ends
    let (open_tx, open_rx) = watch::channel(());
    let mut drain = drain_rx.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    // over the limit: close at once rather than queue without bound
                    let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                    let conn = connection(stream, router.clone(), t.read, drain_rx.clone(), slot);
                    let open = open_rx.clone();
                    tokio::spawn(async move {
                        conn.await;
                        drop(open);
                    });
                }
                // out of file descriptors and the like: let connections close, then retry
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = drain.wait_for(|d| *d) => break,
        }
    }
    drop(listener);
    drop(open_rx);
    eprintln!(
        "lode: shutting down: no new connections; running requests have {} s to finish",
        t.shutdown.as_secs_f64()
    );
    if tokio::time::timeout(t.shutdown, open_tx.closed())
        .await
        .is_err()
    {
        eprintln!("lode: shutdown deadline passed: cancelling what still runs");
        cancel_all();
        // let the cancelled streams write their last event; half-open connections stay behind
        let _ = tokio::time::timeout(Duration::from_secs(1), open_tx.closed()).await;
    }
}

/// One connection; asked to close after its current response once the drain starts.
async fn connection(
    stream: TcpStream,
    router: Router,
    read_timeout: Duration,
    mut drain: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = drain.wait_for(|d| *d), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// SIGINT and SIGTERM, registered before the server says it is listening (a signal sent
/// right after that line is never lost).
pub struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must run inside the runtime.
    pub fn register() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the next signal; returns the exit status it calls for (128 + number).
    async fn next(&mut self) -> i32 {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => 130,
                _ = self.term.recv() => 143,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            130
        }
    }

    /// The first signal sets `drain`; the second ends the process at once.
    fn spawn(mut self, drain: watch::Sender<bool>) {
        tokio::spawn(async move {
            let code = self.next().await;
            eprintln!("lode: signal received (send it again to exit at once)");
            let _ = drain.send(true);
            let code = self.next().await.max(code);
            eprintln!("lode: second signal: exiting now");
            std::process::exit(code);
        });
    }
}
