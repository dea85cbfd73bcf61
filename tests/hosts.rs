//! Three hosts, really: three network namespaces joined by a bridge, each with an address of
//! its own, one node in each, TLS on both the client API and the peer protocol. Bookings go
//! through each node; the leader's host is cut off (its link dropped) while the other two
//! serve; the link comes back and the node catches up; a fourth host's node is added at run
//! time and the first leader's removed. Needs root (as CI has) and `ip`; says so and passes
//! without them.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, poll_for, poll_until, run_ticket, ADMIN_PASSWORD, BIN};
use ticket::client::{Client, Consistency};
use ticket::config::Config;

/// Hosts made: three for the first cluster, a fourth for the node added at run time.
const HOSTS: usize = 4;

/// Runs `ip ARGS`, failing the test with what it said when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces, their links and the bridge, and the nodes in them: all removed on drop.
struct Hosts {
    tag: String,
    nodes: Vec<Option<Child>>,
}

impl Hosts {
    fn namespace(&self, i: usize) -> String {
        format!("tkt{}h{i}", self.tag)
    }
    fn bridge(&self) -> String {
        format!("tkt{}br", self.tag)
    }
    /// The host side of host `i`'s link.
    fn link(&self, i: usize) -> String {
        format!("tkt{}v{i}", self.tag)
    }
    fn addr(&self, i: usize) -> String {
        format!("10.251.{}.{i}", self.subnet())
    }
    /// A /24 of its own for this run, so two runs never share addresses.
    fn subnet(&self) -> u32 {
        std::process::id() % 250
    }

    /// Makes hosts 1-4 on a bridge; the test process reaches them through the bridge's
    /// address (.254).
    fn make() -> Hosts {
        let hosts = Hosts {
            tag: format!("{:x}", std::process::id() % 0xffff),
            nodes: Vec::new(),
        };
        let bridge = hosts.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let gateway = format!("10.251.{}.254/24", hosts.subnet());
        ip(&["addr", "add", &gateway, "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 1..=HOSTS {
            let (ns, link) = (hosts.namespace(i), hosts.link(i));
            let inside = format!("{link}n");
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &link, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &ns]);
            ip(&["link", "set", &link, "master", &bridge]);
            ip(&["link", "set", &link, "up"]);
            let addr = format!("{}/24", hosts.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inside]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        hosts
    }

    /// Starts node `i` inside host `i`, logging to `dir/node<i>.log`.
    fn start(&mut self, i: usize, config: &Path, dir: &Path) {
        let log = std::fs::File::create(dir.join(format!("node{i}.log"))).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespace(i), BIN])
            .arg("--config")
            .arg(config)
            .args(["node", "--id", &i.to_string()])
            .env("TICKET_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn,ticket=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a node in its namespace");
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, || None);
        }
        self.nodes[i] = Some(child);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 1..=HOSTS {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.namespace(i)])
                .output();
            let _ = Command::new("ip")
                .args(["link", "del", &self.link(i)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
    }
}

/// Whether this process may make namespaces: root, with `ip` installed.
fn can_make_hosts() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err("`ip` (iproute2) is not installed".into()),
    }
}

/// cluster.toml for the hosts, with the certificates under `pki/` beside it. The fourth is
/// not in the first membership (`bootstrap = false`): it joins at run time.
fn config_text(hosts: &Hosts) -> String {
    let mut text = String::from(
        "data_dir = \"data\"\n\n[raft]\nheartbeat_interval_ms = 50\nelection_timeout_min_ms = 300\n\
         election_timeout_max_ms = 600\n\n[security]\npbkdf2_iterations = 10000\n\
         token_keys = \"pki/token.keys\"\n\n\
         [peer_tls]\nca = \"pki/ca.pem\"\ncert = \"pki/node{id}.pem\"\nkey = \"pki/node{id}.key\"\n\n\
         [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n",
    );
    for i in 1..=HOSTS {
        text.push_str(&format!(
            "\n[[nodes]]\nid = {i}\naddr = \"{0}:60051\"\npeer_advertise = \"{0}:61051\"\n",
            hosts.addr(i)
        ));
        if i == HOSTS {
            text.push_str("bootstrap = false\n");
        }
    }
    text
}

/// A client of node `id` alone, logged in as `user`; the nodes' logs if it cannot log in.
async fn client_of(config: &Config, id: u64, user: &str, password: &str, dir: &Path) -> Client {
    let addr: SocketAddr = config.node(id).expect("node").addr;
    let client = Client::of_nodes(config, &[(id, addr)]);
    let logged_in = poll_until(Duration::from_secs(20), || {
        let mut client = client.clone();
        async move { client.login(user, password).await.ok().map(|_| client) }
    })
    .await;
    logged_in.unwrap_or_else(|| {
        let logs: Vec<String> = (1..=HOSTS)
            .map(|i| {
                let log = std::fs::read_to_string(dir.join(format!("node{i}.log")));
                format!("node {i}:\n{}", log.unwrap_or_default())
            })
            .collect();
        panic!("{user} could not log in on node {id}\n{}", logs.join("\n"))
    })
}

/// Goal: a cluster whose nodes have different addresses, on different network stacks, works
/// as one on loopback does: bookings through each node; the leader's host cut off, the other
/// two elect a leader and serve; the link back, the node catches up with what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_book_lose_one_catch_it_up_then_change_members() {
    if let Err(why) = can_make_hosts() {
        eprintln!("skipped: three network namespaces need root and iproute2 ({why})");
        return;
    }
    let mut hosts = Hosts::make();
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("cluster.toml");
    std::fs::write(&config_path, config_text(&hosts)).expect("write config");
    let cli = |args: &[&str]| {
        let out = run_ticket(&config_path, args, "", &[]);
        assert!(
            out.status.success(),
            "ticket {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let pki = dir.path().join("pki");
    let pki = pki.to_str().expect("utf-8");
    cli(&["cert", "init", "--dir", pki]);
    for i in 1..=HOSTS {
        cli(&["cert", "issue", "--dir", pki, "--node", &i.to_string()]);
    }
    let names: Vec<String> = (1..=HOSTS).map(|i| hosts.addr(i)).collect();
    let mut issue = vec!["cert", "issue", "--dir", pki, "--server"];
    issue.extend(names.iter().map(String::as_str));
    cli(&issue);
    let config = Config::load(&config_path).expect("valid config");
    for i in 1..=3 {
        hosts.start(i, &config_path, dir.path());
    }

    let admin = client_of(&config, 1, "admin", ADMIN_PASSWORD, dir.path()).await;
    admin.create_event("hosts", 3, 6, 18).await.expect("event");
    admin
        .add_user("ana", "password1", false)
        .await
        .expect("ana");
    // A booking through each node, each on its own host.
    let mut on = Vec::new();
    for id in 1..=3 {
        on.push(client_of(&config, id, "ana", "password1", dir.path()).await);
    }
    for (i, client) in on.iter().enumerate() {
        let seat = format!("A{}", i + 1);
        client.reserve("hosts", &[&seat]).await.expect("reserve");
    }
    let status = on[0].cluster_status().await.expect("status");
    let leader = status.leader;
    assert!(leader != 0, "{status:?}");

    // Cut the leader's host off: the other two elect a leader and go on booking.
    let cut = leader as usize;
    ip(&["link", "set", &hosts.link(cut), "down"]);
    let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let serving = &on[others[0] as usize - 1];
    poll_for(
        "a booking while one host is cut off",
        Duration::from_secs(20),
        || {
            let serving = serving.clone();
            async move { serving.reserve("hosts", &["B1"]).await.ok() }
        },
    )
    .await;
    for seat in ["B2", "B3"] {
        on[others[1] as usize - 1]
            .reserve("hosts", &[seat])
            .await
            .expect("the two hosts keep booking");
    }

    // The link back: the cut-off node hears the new leader and catches up.
    ip(&["link", "set", &hosts.link(cut), "up"]);
    let rejoined = on[cut - 1].clone();
    eventually(
        "the rejoined node has every booking",
        Duration::from_secs(30),
        || {
            let rejoined = rejoined.clone();
            async move {
                rejoined
                    .get_seats("hosts", Consistency::Linearizable)
                    .await
                    .is_ok_and(|map| map.event.is_some_and(|e| e.taken == 6))
            }
        },
    )
    .await;
    let status = rejoined.cluster_status().await.expect("status");
    assert!(
        status
            .nodes
            .iter()
            .all(|n| !n.addr.is_empty() && n.addr.starts_with("10.251.")),
        "{status:?}"
    );

    // A fourth host's node joins at run time; the first leader leaves.
    hosts.start(HOSTS, &config_path, dir.path());
    let admin_env = [("TICKET_ADMIN_PASSWORD", ADMIN_PASSWORD)];
    let change = |args: &[&str]| {
        let out = run_ticket(&config_path, args, "", &admin_env);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "ticket {}: {text}\n{err}",
            args.join(" ")
        );
        text
    };
    let added = change(&["cluster", "add", &HOSTS.to_string()]);
    assert!(added.contains("voters 1, 2, 3, 4"), "{added}");
    let removed = change(&["cluster", "remove", &leader.to_string()]);
    assert!(!removed.contains(&leader.to_string()), "{removed}");
    let fourth = client_of(&config, HOSTS as u64, "ana", "password1", dir.path()).await;
    poll_for(
        "a booking through the added node",
        Duration::from_secs(20),
        || {
            let fourth = fourth.clone();
            async move { fourth.reserve("hosts", &["C1"]).await.ok() }
        },
    )
    .await;
    let status = fourth.cluster_status().await.expect("status");
    assert_eq!(status.voters.len(), 3, "{status:?}");
    assert!(
        status.voters.contains(&(HOSTS as u64)) && !status.voters.contains(&leader),
        "{status:?}"
    );
}
