//! Building and running the HTTP server.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{error::QueryPayloadError, web, App, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::{routes, ApiError, AppState};

/// A bound, not yet running, API server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `listen` (use port 0 in tests) and builds the server.
    pub fn build(listen: &str, state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::QueryConfig::default().error_handler(|_: QueryPayloadError, _| {
                    // A fixed message: the parser's text would echo client input.
                    ApiError::Invalid("Malformed or unsupported query parameters".into()).into()
                }))
                .configure(routes::configure)
                .wrap(actix_web::middleware::from_fn(crate::observe::observe))
        })
        .shutdown_timeout(30)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Application { port, server })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let handle = self.server.handle();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.stop(true).await;
        });
        self.server.await
    }
}
