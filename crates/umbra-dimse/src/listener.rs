//! A TCP listener that serves each association on its own thread, up to a bound, and shuts
//! down cleanly: stop accepting, let in-flight associations finish.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::scp::Scp;

/// How long a connection refused for lack of capacity may take to send its A-ASSOCIATE-RQ.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts live threads; waiters are woken when the count changes.
#[derive(Default)]
struct Counter {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Counter {
    /// Takes a slot if fewer than `max` are taken.
    fn try_acquire(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot(self.clone()))
    }

    fn current(&self) -> usize {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_zero(&self) {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self.changed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A taken slot, given back on drop (also when the thread panics).
struct Slot(Arc<Counter>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut n = self.0.count.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

/// Stops a [`Listener`] from another thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    stop: Arc<AtomicBool>,
    wake: SocketAddr,
}

impl ShutdownHandle {
    /// Stops accepting new connections. In-flight associations go on to their end; the
    /// listener's `run` returns once they have.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the blocking accept
        let _ = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
    }
}

/// A bound storage SCP listener.
pub struct Listener {
    listener: TcpListener,
    scp: Arc<Scp>,
    max_associations: usize,
    stop: Arc<AtomicBool>,
    active: Arc<Counter>,
    refusing: Arc<Counter>,
}

impl Listener {
    /// Binds `addr` for `scp`, serving at most `max_associations` associations at once; more
    /// are rejected with A-ASSOCIATE-RJ (transient, local limit exceeded).
    pub fn bind(addr: impl ToSocketAddrs, scp: Scp, max_associations: usize) -> io::Result<Self> {
        Ok(Listener {
            listener: TcpListener::bind(addr)?,
            scp: Arc::new(scp),
            max_associations: max_associations.max(1),
            stop: Arc::new(AtomicBool::new(false)),
            active: Arc::default(),
            refusing: Arc::default(),
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops this listener.
    pub fn shutdown_handle(&self) -> io::Result<ShutdownHandle> {
        let mut wake = self.listener.local_addr()?;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Ok(ShutdownHandle {
            stop: self.stop.clone(),
            wake,
        })
    }

    /// Associations being served now.
    pub fn active_associations(&self) -> usize {
        self.active.current()
    }

    /// Accepts connections until shut down, then waits for in-flight associations.
    pub fn run(self) -> io::Result<()> {
        info!(addr = ?self.listener.local_addr().ok(), ae_title = %self.scp.config().ae_title, "listening");
        for conn in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let socket = match conn {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    // e.g. out of file descriptors: do not spin
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            self.dispatch(socket);
        }
        info!("listener stopped; waiting for associations in flight");
        self.active.wait_zero();
        self.refusing.wait_zero();
        Ok(())
    }

    /// Runs the listener on its own thread.
    pub fn spawn(self) -> io::Result<(ShutdownHandle, JoinHandle<io::Result<()>>)> {
        let handle = self.shutdown_handle()?;
        let thread = std::thread::Builder::new()
            .name("dimse-listener".into())
            .spawn(move || self.run())?;
        Ok((handle, thread))
    }

    fn dispatch(&self, socket: TcpStream) {
        if let Some(slot) = self.active.try_acquire(self.max_associations) {
            let scp = self.scp.clone();
            let spawned = std::thread::Builder::new()
                .name("dimse-association".into())
                .spawn(move || {
                    let _slot = slot;
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        scp.serve_tcp(socket)
                    }));
                    if outcome.is_err() {
                        error!("association thread panicked");
                    }
                });
            if let Err(e) = spawned {
                error!(error = %e, "could not start an association thread");
            }
            return;
        }
        // Over capacity: answer with a transient rejection on a short-lived thread, as many
        // at once as associations are allowed; beyond that, close the connection.
        let Some(slot) = self.refusing.try_acquire(self.max_associations) else {
            warn!("over capacity: connection closed");
            self.scp.handler().refused("over capacity");
            return;
        };
        warn!(
            max = self.max_associations,
            "over capacity: rejecting association"
        );
        let scp = self.scp.clone();
        let _ = std::thread::Builder::new()
            .name("dimse-refusal".into())
            .spawn(move || {
                let _slot = slot;
                let _ = scp.refuse_tcp(socket, REFUSAL_TIMEOUT);
            });
    }
}
