//! Starting and stopping the gateway: spool, queue, workers, the DIMSE listener and the HTTP
//! listener; shutdown stops the listeners, lets associations and requests in flight finish,
//! and lets each worker finish its job.

use crate::config::{Config, ConfigError};
use crate::pipeline::{self, Shared};
use crate::queue::Queue;
use crate::spool::{Incoming, Spool};
use axum::serve::ListenerExt;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;
use umbra_dimse::{
    AssociationInfo, RejectReason, Scp, ScpConfig, Status, StoreHandler, StoreRequest, StoreSink,
};

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    dimse: Option<(umbra_dimse::ShutdownHandle, JoinHandle<std::io::Result<()>>)>,
    http: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    /// Address the DIMSE listener is bound to.
    pub dimse_addr: Option<SocketAddr>,
    /// Address the HTTP listener is bound to.
    pub http_addr: Option<SocketAddr>,
}

/// Starting failed: one line for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError(e.0)
    }
}

/// Receives C-STORE data sets into the spool.
struct SpoolHandler {
    shared: Arc<Shared>,
    min_free: u64,
}

impl SpoolHandler {
    fn disk_ok(&self) -> bool {
        self.shared
            .spool
            .free_bytes()
            .is_ok_and(|b| b >= self.min_free)
    }
}

impl StoreHandler for SpoolHandler {
    fn refused(&self, _why: &str) {
        self.shared.metrics.refused();
    }

    fn accept_association(&self, info: &AssociationInfo) -> Result<(), RejectReason> {
        if self.disk_ok() {
            Ok(())
        } else {
            tracing::error!(
                calling_ae = info.calling_ae,
                "association refused: the spool's disk is nearly full"
            );
            self.shared.metrics.refused();
            Err(RejectReason::LocalLimitExceeded)
        }
    }

    fn begin(
        &self,
        assoc: &AssociationInfo,
        req: &StoreRequest,
    ) -> Result<Box<dyn StoreSink>, Status> {
        if !self.disk_ok() {
            self.shared.metrics.refused();
            return Err(Status(0xA700));
        }
        let mut incoming = self.shared.spool.receive().map_err(|e| {
            tracing::error!("cannot write to the spool: {e}");
            Status(0xA700)
        })?;
        // the caller goes into the meta group's Source AE Title: recovery after a crash reads
        // it back for routing (the engine writes its own meta group on every copy)
        let head = umbra_dimse::part10_header(
            &req.sop_class_uid,
            &req.sop_instance_uid,
            &req.transfer_syntax_uid,
            &assoc.calling_ae,
        );
        incoming.write_all(&head).map_err(|_| Status(0xA700))?;
        Ok(Box::new(SpoolSink {
            incoming,
            shared: self.shared.clone(),
            calling_ae: assoc.calling_ae.clone(),
        }))
    }
}

struct SpoolSink {
    incoming: Incoming,
    shared: Arc<Shared>,
    calling_ae: String,
}

impl Write for SpoolSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.incoming.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.incoming.flush()
    }
}

impl StoreSink for SpoolSink {
    fn commit(self: Box<Self>) -> Status {
        let SpoolSink {
            incoming,
            shared,
            calling_ae,
        } = *self;
        match shared.store(incoming, "dimse", &calling_ae) {
            Ok(_) => Status(0x0000),
            Err(e) => {
                tracing::error!("cannot make a received object durable: {e}");
                Status(0xA700)
            }
        }
    }

    fn abort(self: Box<Self>) {
        // dropping `incoming` gives its log segment back as it was (nothing was recorded)
    }

    fn reads_direct(&self, n: usize) -> bool {
        self.incoming.has_room(n)
    }

    fn read_from(&mut self, from: &mut dyn std::io::Read, n: usize) -> std::io::Result<()> {
        self.incoming.read_from(from, n)
    }
}

impl Gateway {
    /// Opens the spool and queue, recovers what a killed process left, and starts workers and
    /// listeners.
    pub fn start(config: &Config) -> Result<Gateway, StartError> {
        let spool = Spool::open(&config.spool).map_err(|e| {
            StartError(format!("cannot open spool {}: {e}", config.spool.display()))
        })?;
        let queue = Queue::open(&spool.queue_path())
            .map_err(|e| StartError(format!("cannot open the queue: {e}")))?;
        // half of min_free is never taken by received objects: the queue's room
        spool.set_reserve(config.retention.min_free_mib.saturating_mul(1 << 20) / 2);
        let shared = Arc::new(Shared::new(config, spool, queue)?);
        let recovered = shared.recover().map_err(StartError)?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "objects received before a crash were queued again"
            );
        }
        let min_free = config.retention.min_free_mib.saturating_mul(1 << 20);

        let mut dimse = None;
        let mut dimse_addr = None;
        if let Some(d) = &config.dimse {
            let mut c = ScpConfig::new(d.ae_title.clone());
            c.allowed_calling = d.allowed_calling.clone();
            c.allowed_addresses = d
                .allowed_addresses
                .as_ref()
                .map(|v| {
                    v.iter()
                        .map(|n| crate::config::parse_net(n))
                        .collect::<Result<_, _>>()
                })
                .transpose()?;
            c.max_pdu = d.max_pdu;
            if let Some(t) = &d.tls {
                #[cfg(feature = "tls")]
                {
                    c.tls = Some(crate::tls::server_config(t)?);
                }
                #[cfg(not(feature = "tls"))]
                crate::tls::server_config(t)?;
            }
            c.dimse_timeout = Duration::from_secs(d.timeout_seconds.max(1));
            c.association_timeout = Duration::from_secs(d.association_timeout_seconds.max(1));
            let scp = Scp::new(
                c,
                SpoolHandler {
                    shared: shared.clone(),
                    min_free,
                },
            );
            let l = umbra_dimse::Listener::bind(d.listen, scp, d.max_associations)
                .map_err(|e| StartError(format!("cannot listen on {}: {e}", d.listen)))?;
            dimse_addr = l.local_addr().ok();
            dimse = Some(
                l.spawn()
                    .map_err(|e| StartError(format!("cannot start the DIMSE listener: {e}")))?,
            );
        }

        let mut http = None;
        let mut http_addr = None;
        if let Some(h) = &config.http {
            let token = match &h.token_file {
                Some(f) => Some(Arc::<str>::from(crate::config::read_token(f)?)),
                None => None,
            };
            let state = crate::http::HttpState {
                shared: shared.clone(),
                token,
                min_free,
                max_body: h.max_body_mib.saturating_mul(1 << 20),
            };
            let app = crate::http::router(state);
            #[cfg(feature = "tls")]
            let https = h.tls.as_ref().map(crate::tls::server_config).transpose()?;
            #[cfg(not(feature = "tls"))]
            if let Some(t) = &h.tls {
                crate::tls::server_config(t)?;
            }
            let std_listener = std::net::TcpListener::bind(h.listen)
                .map_err(|e| StartError(format!("cannot listen on {}: {e}", h.listen)))?;
            std_listener
                .set_nonblocking(true)
                .map_err(|e| StartError(e.to_string()))?;
            http_addr = std_listener.local_addr().ok();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| StartError(format!("cannot start the HTTP runtime: {e}")))?;
            let handle = std::thread::Builder::new()
                .name("umbra-http".into())
                .spawn(move || {
                    rt.block_on(async move {
                        let listener = match tokio::net::TcpListener::from_std(std_listener) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!("HTTP listener: {e}");
                                return;
                            }
                        };
                        let stop = async {
                            let _ = rx.await;
                        };
                        // answers go out at once, not after Nagle's delay
                        let nodelay = |tcp: &mut tokio::net::TcpStream| {
                            let _ = tcp.set_nodelay(true);
                        };
                        #[cfg(feature = "tls")]
                        let served = match https {
                            Some(config) => {
                                let l = crate::http::TlsListener::new(listener, config);
                                axum::serve(l, app).with_graceful_shutdown(stop).await
                            }
                            None => {
                                axum::serve(listener.tap_io(nodelay), app)
                                    .with_graceful_shutdown(stop)
                                    .await
                            }
                        };
                        #[cfg(not(feature = "tls"))]
                        let served = axum::serve(listener.tap_io(nodelay), app)
                            .with_graceful_shutdown(stop)
                            .await;
                        if let Err(e) = served {
                            tracing::error!("HTTP listener: {e}");
                        }
                    });
                })
                .map_err(|e| StartError(e.to_string()))?;
            http = Some((tx, handle));
        }

        // a worker spends much of its time waiting for its destination's answer, so there are
        // more workers than CPUs by default (each is one association per destination)
        let n = config
            .workers
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .max(4)
            })
            .max(1);
        let workers = (0..n)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("umbra-worker-{i}"))
                    .spawn(move || pipeline::worker(&s))
                    .map_err(|e| StartError(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(
            dimse = ?dimse_addr,
            http = ?http_addr,
            workers = n,
            "gateway started"
        );
        Ok(Gateway {
            shared,
            workers,
            dimse,
            http,
            dimse_addr,
            http_addr,
        })
    }

    /// The shared state (spool, queue, metrics), for tests and the binary's status output.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops listening, waits for associations and requests in flight, then stops the workers
    /// after their current jobs. Work still queued stays in the spool for the next start, and
    /// objects not yet taken by a worker are queued for it.
    pub fn shutdown(mut self) {
        if let Some((stop, thread)) = self.dimse.take() {
            stop.shutdown();
            let _ = thread.join();
        }
        if let Some((tx, h)) = self.http.take() {
            let _ = tx.send(());
            let _ = h.join();
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.notify();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // records still waiting (each worker wrote them as it stopped; this is for one that
        // could not), then objects received but not yet taken by a worker: the next start
        // routes them
        self.shared.record_now();
        if let Err(e) = self.shared.flush_fresh() {
            // still in the spool's log: recovery at the next start queues them
            tracing::error!("queue: {e}");
        }
        tracing::info!("gateway stopped");
    }
}
