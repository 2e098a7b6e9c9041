//! A loopback TCP proxy a test controls: pass traffic through, delay it, or
//! cut every connection and refuse new ones.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const PASS: u8 = 0;
const DELAY: u8 = 1;
const CUT: u8 = 2;

/// A proxy from a loopback port to `upstream`, running until dropped.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    mode: Arc<AtomicU8>,
    delay: Duration,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
    turns: Arc<Turns>,
}

/// Round trips seen: a client's bytes that follow the server's (or come
/// first) begin one. Meant for one client connection at a time.
#[derive(Default)]
struct Turns {
    count: AtomicUsize,
    /// 1 when the client spoke last, 2 when the server did.
    last: AtomicU8,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`host:port`); `delay` is what [`Proxy::delay`] adds.
    pub async fn start(upstream: String, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("address").port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let (cut, _) = watch::channel(0u64);
        let turns = Arc::new(Turns::default());
        let task = {
            let (mode, cut, turns) = (mode.clone(), cut.clone(), turns.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if mode.load(Ordering::SeqCst) == CUT {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let (mode, cut_rx) = (mode.clone(), cut.subscribe());
                    tokio::spawn(pipe(client, server, mode, delay, cut_rx, turns.clone()));
                }
            })
        };
        Self {
            port,
            mode,
            delay,
            cut,
            task,
            turns,
        }
    }

    /// Round trips since the last call (see `Turns`), after letting replies
    /// arrive.
    pub async fn round_trips(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.turns.last.store(0, Ordering::SeqCst);
        self.turns.count.swap(0, Ordering::SeqCst)
    }

    /// Forward traffic as it comes.
    pub fn pass(&self) {
        self.mode.store(PASS, Ordering::SeqCst);
    }

    /// Hold every chunk of traffic for the proxy's delay before forwarding it.
    pub fn delay(&self) {
        let _ = self.delay;
        self.mode.store(DELAY, Ordering::SeqCst);
    }

    /// Close every open connection and refuse new ones.
    pub fn cut(&self) {
        self.mode.store(CUT, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mode: Arc<AtomicU8>,
    delay: Duration,
    mut cut: watch::Receiver<u64>,
    turns: Arc<Turns>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = {
        let mode = mode.clone();
        let turns = turns.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if turns.last.swap(1, Ordering::SeqCst) != 1 {
                    turns.count.fetch_add(1, Ordering::SeqCst);
                }
                if mode.load(Ordering::SeqCst) == DELAY {
                    tokio::time::sleep(delay).await;
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            turns.last.store(2, Ordering::SeqCst);
            if mode.load(Ordering::SeqCst) == DELAY {
                tokio::time::sleep(delay).await;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
}
