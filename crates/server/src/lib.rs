//! Wiring of the self-hosted monitor: builds the running application from configuration.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::net::SocketAddr;

pub mod commands;
pub mod config;
pub mod run;
pub mod storage;
pub mod telemetry;
pub mod writer;

use actix_web::{App, HttpServer, dev::ServerHandle, web};

/// A built application, ready to run.
pub struct Application {
    addr: SocketAddr,
    server: actix_web::dev::Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Pending connections the kernel queues for the HTTP listener (capped by the kernel's
/// `net.core.somaxconn`); a burst of clients waits in the queue instead of being refused.
pub const LISTEN_BACKLOG: i32 = 2048;

/// A TCP listener on `bind` with `backlog` pending connections. `std`'s `bind` listens with a
/// fixed backlog of 128, and actix's own backlog setting applies only to addresses it binds
/// itself, not to a listener handed to it: so the socket is made here.
pub fn listener(bind: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&bind.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

impl Application {
    /// Binds the HTTP listener on `bind` (port 0 picks a free port) and serves the API, `/ws`
    /// and the dashboard from `state`.
    pub fn build(
        bind: SocketAddr,
        workers: usize,
        state: web::Data<kamiyo_api::ApiState>,
    ) -> anyhow::Result<Self> {
        let listener = listener(bind, LISTEN_BACKLOG)
            .map_err(|e| anyhow::anyhow!("binding the HTTP listener on {bind}: {e}"))?;
        let addr = listener.local_addr()?;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::Compress::default())
                .configure(kamiyo_api::configure(state.clone()))
        })
        .workers(workers.max(1))
        // The binaries own the signals: one Ctrl-C stops the pipeline and the server together.
        .disable_signals()
        .shutdown_timeout(5)
        .max_connection_rate(1024)
        // Answers go out when written: with Nagle's algorithm on, a write made while an
        // earlier one is unacknowledged waits for the client's (delayed, up to 40 ms) ACK.
        .tcp_nodelay(true)
        .listen(listener)?
        .run();
        Ok(Self { addr, server })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped.
    pub async fn run(self) -> anyhow::Result<()> {
        self.server.await?;
        Ok(())
    }
}
