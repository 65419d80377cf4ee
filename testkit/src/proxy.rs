//! A TCP relay in front of a real server that a test can stall: it keeps
//! accepting connections but passes no byte either way, as a server stopped
//! with SIGSTOP or behind a dead network path does. It fakes nothing of the
//! server's protocol; the server behind it is the real one.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A relay on 127.0.0.1, dropped with the test.
pub struct StallingProxy {
    pub addr: SocketAddr,
    stalled: Arc<watch::Sender<bool>>,
    accept: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    /// Relays connections on a free port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let stalled = Arc::new(watch::channel(false).0);
        let flag = stalled.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.subscribe();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::join!(
                            relay(client_read, server_write, flag.clone()),
                            relay(server_read, client_write, flag)
                        );
                    }
                });
            }
        });
        Self {
            addr,
            stalled,
            accept,
        }
    }

    /// Relays to the server of an `http://host:port` URL.
    ///
    /// # Panics
    /// When the URL names no reachable address.
    pub async fn in_front_of(url: &str) -> Self {
        let target = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("{url} names no address"));
        Self::start(target).await
    }

    /// `http://` + the relay's address, for an HTTP server behind it.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on no byte passes, on old connections or new ones.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Bytes pass again.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to`, holding each chunk while stalled.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if stalled.wait_for(|stalled| !*stalled).await.is_err() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if stalled.wait_for(|stalled| !*stalled).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
