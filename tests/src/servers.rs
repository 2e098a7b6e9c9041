//! Test-owned `redis-server` processes on loopback ports: a single server a
//! test may kill and restart, and a three-master Cluster. Each stops on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "t87s-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `redis-server` this test owns.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    extra: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with `extra` arguments (`--maxmemory` and the like).
    pub fn start(extra: &[&str]) -> Self {
        let mut server = Self {
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: scratch_dir("redis"),
            child: None,
        };
        server.restart();
        server
    }

    /// Starts a server that speaks only TLS on its port, with the
    /// certificate and key at `cert` and `key` (clients need no certificate).
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let port = free_port();
        let mut server = Self {
            port,
            extra: vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                cert.display().to_string(),
                "--tls-key-file".into(),
                key.display().to_string(),
                "--tls-ca-cert-file".into(),
                cert.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            dir: scratch_dir("redis-tls"),
            child: None,
        };
        server.restart();
        server
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL): the store vanishes mid-run.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill on the PATH");
            assert!(status.success(), "kill {signal} failed");
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        self.child = Some(child);
        wait_for_port(self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster on loopback ports.
pub struct RedisCluster {
    /// The masters' ports.
    pub ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Child>,
}

impl RedisCluster {
    /// Starts three `redis-server --cluster-enabled yes` and joins them.
    pub fn start() -> Self {
        let dir = scratch_dir("cluster");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut children = Vec::new();
        for port in &ports {
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node dir");
            children.push(cluster_node(*port, &node_dir));
        }
        let cluster = Self {
            ports,
            dir,
            children,
        };
        for port in &cluster.ports {
            wait_for_port(*port);
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli on the PATH");
        assert!(status.success(), "redis-cli --cluster create failed");
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all_ok = self.ports.iter().all(|port| {
                Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if all_ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the test cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Restarts, empty, the master that holds `key` (the node keeps its
    /// identity and slots; its data is gone, as after a crash without
    /// persistence), and waits for the cluster to be whole again. Returns
    /// its port.
    pub fn restart_master_holding(&mut self, key: &str) -> u16 {
        let holder = self
            .ports
            .iter()
            .position(|port| {
                Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "exists", key])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
                    .unwrap_or(false)
            })
            .expect("a master holds the key");
        let port = self.ports[holder];
        let child = &mut self.children[holder];
        let _ = child.kill();
        let _ = child.wait();
        *child = cluster_node(port, &self.dir.join(port.to_string()));
        wait_for_port(port);
        self.wait_ok();
        port
    }

    /// The seed URLs.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}

/// One Cluster node on `port`, keeping its cluster state in `dir` (no data
/// is persisted).
fn cluster_node(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on the PATH")
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli MONITOR` on a test-owned server: every command the server
/// runs, as seen from outside. A command a script runs is marked `lua`, so
/// what clients sent (round trips) and what scripts did can be told apart.
pub struct Monitor {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Monitor {
    /// Starts monitoring the server on `port` (returns once it is on).
    pub fn start(port: u16) -> Self {
        use std::io::BufRead;
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "monitor"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli on the PATH");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line == "OK" {
                        let _ = ready_tx.send(());
                        continue;
                    }
                    lines.lock().expect("monitor lines").push(line);
                }
            });
        }
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("MONITOR started");
        Self { child, lines }
    }

    /// Forgets what was seen so far (after letting it arrive).
    pub fn reset(&self) {
        std::thread::sleep(Duration::from_millis(150));
        self.lines.lock().expect("monitor lines").clear();
    }

    /// The commands clients sent since the last reset, upper-case names only
    /// (each is one round trip), after letting them arrive.
    pub fn sent(&self) -> Vec<String> {
        self.seen(false)
            .into_iter()
            .filter_map(|words| words.into_iter().next())
            .collect()
    }

    /// The commands scripts ran since the last reset, with their arguments.
    pub fn scripted(&self) -> Vec<String> {
        self.seen(true)
            .into_iter()
            .map(|words| words.join(" "))
            .collect()
    }

    /// The commands clients sent since the last reset, each as its words
    /// (the name upper-case, the arguments unquoted).
    pub fn sent_words(&self) -> Vec<Vec<String>> {
        self.seen(false)
    }

    fn seen(&self, scripted: bool) -> Vec<Vec<String>> {
        std::thread::sleep(Duration::from_millis(150));
        self.lines
            .lock()
            .expect("monitor lines")
            .iter()
            .filter(|line| line.contains(" lua] ") == scripted)
            .filter_map(|line| line.split_once("] ").map(|(_, command)| command))
            .map(|command| {
                if scripted {
                    vec![command.to_owned()]
                } else {
                    // MONITOR quotes every word; keys and numbers hold no
                    // spaces or quotes.
                    let mut words: Vec<String> = command
                        .split(' ')
                        .map(|w| w.trim_matches('"').to_owned())
                        .collect();
                    if let Some(name) = words.first_mut() {
                        *name = name.to_ascii_uppercase();
                    }
                    words
                }
            })
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
