//! A loopback TCP proxy in front of a real service, to inject network faults:
//! `cut` drops every open connection and refuses new ones until `restore`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

/// The proxy; dropped, it stops accepting.
pub struct TcpProxy {
    /// Where clients connect instead of the service.
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    /// Bumped by `cut`: connections of an older generation close themselves.
    generation: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Proxies `127.0.0.1:PORT` to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let down = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (d, g) = (down.clone(), generation.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let my_gen = g.load(Ordering::SeqCst);
                let g = g.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (mut c, mut s) = (client, server);
                    let pump = tokio::io::copy_bidirectional(&mut c, &mut s);
                    let cut = async {
                        while g.load(Ordering::SeqCst) == my_gen {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = pump => {}
                        _ = cut => {}
                    }
                });
            }
        });
        TcpProxy { addr, down, generation, accept }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}
