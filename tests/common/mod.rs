//! A cluster of real `ticket node` processes on free loopback ports, in a temporary
//! directory, for the integration tests. Every wait polls a condition against a deadline.

#![allow(dead_code)]

pub mod terminal;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ticket::client::Client;
use ticket::config::Config;
use ticket::pb::booking::v1::ClusterStatusReply;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub const BIN: &str = env!("CARGO_BIN_EXE_ticket");
pub const ADMIN_PASSWORD: &str = "admin-secret";

/// Settings a test may change from the defaults below.
#[derive(Clone)]
pub struct Options {
    pub nodes: usize,
    pub snapshot_threshold: u64,
    pub snapshot_log_bytes: u64,
    pub keep_after_snapshot: u64,
    pub token_ttl_secs: u64,
    pub pbkdf2_iterations: u32,
    /// The first admin's password, given to the nodes as TICKET_ADMIN_PASSWORD; None starts
    /// a cluster without an admin (made later with the setup code).
    pub first_admin_password: Option<String>,
    /// TLS on the client API (the suite runs with it on, as a cluster across machines must).
    pub tls: bool,
    /// `[booking] hold_ms` and `hold_max_ms`.
    pub hold_ms: u64,
    pub hold_max_ms: u64,
    /// Each node serves /metrics, /healthz and /readyz on a port of its own.
    pub metrics: bool,
    /// The nodes log one JSON object a line (`TICKET_LOG_FORMAT=json`).
    pub json_logs: bool,
    /// How many of the last `nodes` are listed with `bootstrap = false`: not in the first
    /// membership, not started by `start`, added at run time.
    pub joining: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            snapshot_threshold: 20_000,
            snapshot_log_bytes: 64 * 1024 * 1024,
            keep_after_snapshot: 1_000,
            token_ttl_secs: 3_600,
            pbkdf2_iterations: 10_000,
            first_admin_password: Some(ADMIN_PASSWORD.to_string()),
            tls: true,
            hold_ms: 600_000,
            hold_max_ms: 1_800_000,
            metrics: false,
            json_logs: false,
            joining: 0,
        }
    }
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: Config,
    pub options: Options,
    children: BTreeMap<u64, Child>,
}

/// Runs `ticket --config CONFIG ARGS...` to its end with `stdin` written to it and `env` set
/// (a variable with an empty value is removed).
pub fn run_ticket(
    config: &std::path::Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    use std::io::Write;
    let mut command = Command::new(BIN);
    command.arg("--config").arg(config).args(args);
    for (name, value) in env {
        match value.is_empty() {
            true => command.env_remove(name),
            false => command.env(name, value),
        };
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ticket");
    // A command that does not read stdin may have exited already: a broken pipe is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("wait")
}

/// Ports the OS says are free now (bound to port 0, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// cluster.toml for `ports` (two a node, then the assistant's), with a metrics port a node
/// from `metrics_ports` when it has one.
pub fn config_text(ports: &[u16], metrics_ports: &[u16], options: &Options) -> String {
    let mut text = format!(
        "data_dir = \"data\"\n\n[raft]\nheartbeat_interval_ms = 50\nelection_timeout_min_ms = 300\n\
         election_timeout_max_ms = 600\nsnapshot_threshold = {}\nsnapshot_log_bytes = {}\n\
         keep_after_snapshot = {}\n\n\
         [security]\ntoken_ttl_secs = {}\npbkdf2_iterations = {}\n\n\
         [booking]\nhold_ms = {}\nhold_max_ms = {}\n",
        options.snapshot_threshold,
        options.snapshot_log_bytes,
        options.keep_after_snapshot,
        options.token_ttl_secs,
        options.pbkdf2_iterations,
        options.hold_ms,
        options.hold_max_ms
    );
    let (ask, ports) = ports.split_last().expect("ports");
    text.push_str(&format!("\n[assistant]\nlisten = \"127.0.0.1:{ask}\"\n"));
    // The page on any free port: whoever starts it prints where it is.
    text.push_str("\n[web]\nlisten = \"127.0.0.1:0\"\n");
    if options.tls {
        text.push_str(
            "\n[tls]\nca = \"tls/ca.pem\"\ncert = \"tls/server.pem\"\nkey = \"tls/server.key\"\n",
        );
    }
    // Two ports a node: the client API, then the peer listener.
    for (i, pair) in ports.chunks(2).enumerate() {
        text.push_str(&format!(
            "\n[[nodes]]\nid = {}\naddr = \"127.0.0.1:{}\"\npeer_advertise = \"127.0.0.1:{}\"\n",
            i + 1,
            pair[0],
            pair[1]
        ));
        if let Some(port) = metrics_ports.get(i) {
            text.push_str(&format!("metrics_listen = \"127.0.0.1:{port}\"\n"));
        }
        if i + options.joining >= options.nodes {
            text.push_str("bootstrap = false\n");
        }
    }
    text
}

impl TestCluster {
    /// Writes cluster.toml and starts every node.
    pub fn start(options: Options) -> TestCluster {
        let mut cluster = TestCluster::configure(options);
        let ids: Vec<u64> = cluster
            .config
            .nodes
            .iter()
            .filter(|n| n.bootstrap)
            .map(|n| n.id)
            .collect();
        for id in ids {
            cluster.start_node(id);
        }
        cluster
    }

    /// Writes cluster.toml without starting anything.
    pub fn configure(options: Options) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        // Two ports a node (clients, peers), and the last for the assistant's /ask; then one a
        // node for metrics when asked. Taken at once, so no two are the same.
        let metrics = if options.metrics { options.nodes } else { 0 };
        let ports = free_ports(options.nodes * 2 + 1 + metrics);
        let (ports, metrics_ports) = ports.split_at(options.nodes * 2 + 1);
        let config_path = dir.path().join("cluster.toml");
        if options.tls {
            // The client API's certificate, for the loopback address clients dial.
            let tls = dir.path().join("tls");
            ticket::pki::init_ca(&tls).expect("a CA for the client API");
            let server = ticket::pki::Subject::Server(vec!["127.0.0.1".into(), "localhost".into()]);
            ticket::pki::issue(&tls, &server, &tls).expect("a server certificate");
        }
        let text = config_text(ports, metrics_ports, &options);
        std::fs::write(&config_path, text).expect("write config");
        let config = Config::load(&config_path).expect("valid test config");
        TestCluster {
            dir,
            config_path,
            config,
            options,
            children: BTreeMap::new(),
        }
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}.log"))
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    pub fn node_command(&self, id: u64) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&self.config_path)
            .arg("node")
            .arg("--id")
            .arg(id.to_string())
            .stdin(Stdio::null())
            .env(
                "RUST_LOG",
                std::env::var("TEST_NODE_LOG").unwrap_or_else(|_| "warn,ticket=info".into()),
            );
        if self.options.json_logs {
            command.env("TICKET_LOG_FORMAT", "json");
        } else {
            command.env_remove("TICKET_LOG_FORMAT");
        }
        match &self.options.first_admin_password {
            Some(password) => command.env("TICKET_ADMIN_PASSWORD", password),
            None => command.env_remove("TICKET_ADMIN_PASSWORD"),
        };
        command
    }

    pub fn start_node(&mut self, id: u64) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("open node log");
        let child = self
            .node_command(id)
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn ticket node");
        self.children.insert(id, child);
    }

    pub fn pid(&self, id: u64) -> u32 {
        self.children[&id].id()
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `within` for the exit; returns its status and how long it took.
    pub fn terminate(&mut self, id: u64, within: Duration) -> (ExitStatus, Duration) {
        let mut child = self.children.remove(&id).expect("node is running");
        let started = Instant::now();
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > within {
                let _ = child.kill();
                panic!("node {id} did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn addr(&self, id: u64) -> SocketAddr {
        self.config.node(id).expect("node in config").addr
    }

    /// A client of every node.
    pub fn client(&self) -> Client {
        Client::from_config(&self.config)
    }

    /// A client of one node only: it never moves to another.
    pub fn node_client(&self, id: u64) -> Client {
        Client::of_nodes(&self.config, &[(id, self.addr(id))])
    }

    /// A raw gRPC channel to node `id`'s client API, over TLS when the cluster has it, once the
    /// node accepts connections.
    pub async fn channel(&self, id: u64) -> tonic::transport::Channel {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
        let addr = self.addr(id);
        let endpoint = match &self.config.tls {
            Some(tls) => {
                let ca = std::fs::read_to_string(&tls.ca).expect("read the CA");
                Endpoint::from_shared(format!("https://{addr}"))
                    .expect("endpoint")
                    .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
                    .expect("tls")
            }
            None => Endpoint::from_shared(format!("http://{addr}")).expect("endpoint"),
        };
        // A node may still be opening its listener after the cluster has a leader.
        poll_for("the client API to accept", Duration::from_secs(10), || {
            let endpoint = endpoint.clone();
            async move { endpoint.connect().await.ok() }
        })
        .await
    }

    /// Polls the cluster until `check` accepts its status.
    pub async fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&ClusterStatusReply) -> bool,
    ) -> ClusterStatusReply {
        let client = &self.client();
        let check = &check;
        poll_for(what, timeout, || async move {
            let status = client.cluster_status().await.ok()?;
            check(&status).then_some(status)
        })
        .await
    }

    /// Waits for a leader, and for the cluster's seeding (token key, demo event).
    pub async fn wait_leader(&self, timeout: Duration) -> u64 {
        let status = self
            .wait_status("a leader", timeout, |s| s.leader != 0)
            .await;
        status.leader
    }

    /// A client logged in as the first admin, which the cluster made from the password its
    /// nodes were given when it was seeded.
    pub async fn admin(&self) -> Client {
        let client = self.client();
        poll_for("the first admin", Duration::from_secs(10), || {
            let mut client = client.clone();
            async move {
                client.login("admin", ADMIN_PASSWORD).await.ok()?;
                Some(client)
            }
        })
        .await
    }

    /// Starts a cluster with the first admin and the prototype's `user1`/`mysecret`.
    pub async fn with_user1(options: Options) -> TestCluster {
        let cluster = TestCluster::start(options);
        cluster.wait_leader(Duration::from_secs(5)).await;
        cluster.admin().await;
        cluster
            .client()
            .add_user("user1", "mysecret", false)
            .await
            .expect("user1");
        cluster
    }

    /// Registers a customer and returns a client logged in as it.
    pub async fn customer(&self, name: &str) -> Client {
        let mut client = self.client();
        client
            .add_user(name, "password1", false)
            .await
            .expect("add customer");
        client
            .login(name, "password1")
            .await
            .expect("customer login");
        client
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How often a wait re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `check` until it yields a value, or `None` once `timeout` has passed. The one place a
/// test waits: on a condition, with a deadline, never for a fixed time.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Like [`poll_until`], failing the test at the deadline.
pub async fn poll_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_until(timeout, check).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls an async condition until it holds, failing the test at the deadline.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll_for(what, timeout, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// `ticket web` against a test cluster, on a free port. Dropping it stops it.
pub struct WebServer {
    child: Child,
    pub addr: SocketAddr,
    /// "http" or "https".
    pub scheme: String,
}

impl WebServer {
    /// Starts the page's server and waits (with a deadline) until it says where it listens.
    pub fn start(cluster: &TestCluster) -> WebServer {
        WebServer::start_with(&cluster.config_path)
    }

    /// The same with another cluster.toml (HTTPS settings, say); `url` then says https.
    pub fn start_with(config_path: &std::path::Path) -> WebServer {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config_path)
            .args(["web", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ticket web");
        let stdout = child.stdout.take().expect("stdout");
        // The first line names the address; a reader thread keeps the deadline honest.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("ticket web said where it listens");
        let (scheme, rest) = line
            .split_once("://")
            .map(|(before, rest)| (before.rsplit(' ').next().unwrap_or(before), rest))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let addr = rest
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        WebServer {
            child,
            addr,
            scheme: scheme.to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer channel to node `to` of `cluster`, showing `cert`/`key` and trusting `ca`.
pub async fn peer_channel(
    cluster: &TestCluster,
    to: u64,
    ca: &str,
    cert: &str,
    key: &str,
) -> Result<Channel, tonic::transport::Error> {
    let addr = cluster.config.node(to).expect("node").peer_advertise;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name(ticket::pki::node_name(to));
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
}

pub fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PEM texts of node `id` in the cluster's own PKI: (ca, cert, key).
pub fn node_identity(cluster: &TestCluster, id: u64) -> (String, String, String) {
    let (cert, key) = cluster.config.peer_tls.node_files(id);
    (read(&cluster.config.peer_tls.ca), read(&cert), read(&key))
}
