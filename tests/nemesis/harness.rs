//! A 3-node cluster of real `ticket node` processes with a proxy on every peer link, the
//! clients that load it while a nemesis injects faults, and the final read after healing.
//!
//! Each node reads its own copy of cluster.toml, in which every peer's peer address is the
//! proxy for that one link (node A dialing node B), so a link can be cut, slowed or lossy on its
//! own. Clients dial the nodes directly.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ticket::client::{Client, ClientError, Consistency, RequestId};
use ticket::config::Config;
use ticket::pb::booking::v1::{GetSeatsReply, Role, SeatStatus};

use super::checker::{self, CancelTarget, Event, History, Op, Outcome, Snapshot};
use super::proxy::Link;
use crate::common::{poll_for, poll_until};

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub const BIN: &str = env!("CARGO_BIN_EXE_ticket");
pub const EVENT: &str = "nem";
/// The rows the reservation clients ask for.
const ROWS: u32 = 4;
/// Rows behind them that only holders name (best available takes any free seat, the front
/// rows first): the checkout has room while the reservation clients keep rows A-D full.
const CHECKOUT_ROWS: u32 = 2;
const SEATS_PER_ROW: u32 = 10;
const ADMIN_PASSWORD: &str = "admin-secret";
pub const USER_PASSWORD: &str = "password1";
/// The election timeout the nodes run with, in ms (min; max is twice that).
pub const ELECTION_TIMEOUT_MS: u64 = 300;
/// How long a client waits for one operation, retries included.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(1_500);
/// `[booking]` of the nodes: holds of 1-3 s (asked for by each hold) run out while the faults
/// do, and no hold outlives `HOLD_MAX_MS`, extensions included.
pub const HOLD_MS: u64 = 2_000;
pub const HOLD_MAX_MS: u64 = 4_000;
/// The door staff's user name.
pub const DOOR: &str = "door";
/// How long a write through a node of the healed cluster may take.
const WRITE_AFTER_HEAL: Duration = Duration::from_secs(10);

/// `n` free loopback ports, each held by a listener until the caller drops them: whatever
/// else the harness binds meanwhile (the proxies) cannot be handed one of them.
pub fn reserve_addrs(n: usize) -> (Vec<SocketAddr>, Vec<TcpListener>) {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect();
    (addrs, listeners)
}

pub struct Settings {
    pub snapshot_threshold: u64,
    pub keep_after_snapshot: u64,
    /// A fourth node, listed with `bootstrap = false` and not started: the membership
    /// nemesis adds it, and removes others, at run time.
    pub spare: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            snapshot_threshold: 2_000,
            keep_after_snapshot: 200,
            spare: false,
        }
    }
}

/// The spare node's id.
pub const SPARE: u64 = 4;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ids: Vec<u64>,
    pub listen: BTreeMap<u64, SocketAddr>,
    pub links: BTreeMap<(u64, u64), Link>,
    pub client_config: Config,
    /// Where each node's own peer listener is (no proxy in between).
    pub peer_listen: BTreeMap<u64, SocketAddr>,
    /// Nodes known to be out of the membership: healing leaves them stopped.
    pub left: BTreeSet<u64>,
    children: BTreeMap<u64, Child>,
    paused: BTreeSet<u64>,
}

fn settings_text(settings: &Settings) -> String {
    format!(
        "data_dir = \"data\"\n\n[raft]\nheartbeat_interval_ms = 50\n\
         election_timeout_min_ms = {ELECTION_TIMEOUT_MS}\nelection_timeout_max_ms = {}\n\
         snapshot_threshold = {}\nkeep_after_snapshot = {}\n\n\
         [security]\ntoken_ttl_secs = 3600\npbkdf2_iterations = 10000\n\n\
         [booking]\nhold_ms = {HOLD_MS}\nhold_max_ms = {HOLD_MAX_MS}\n",
        ELECTION_TIMEOUT_MS * 2,
        settings.snapshot_threshold,
        settings.keep_after_snapshot
    )
}

impl Cluster {
    /// Writes the configuration files and starts every node.
    pub async fn start(settings: Settings) -> Cluster {
        let mut cluster = Cluster::configure(settings).await;
        for id in cluster.ids.clone() {
            if !cluster.left.contains(&id) {
                cluster.start_node(id);
            }
        }
        cluster
    }

    /// Writes one cluster.toml per node (peers behind proxies) and one for clients, and
    /// starts the proxies; no node yet.
    pub async fn configure(settings: Settings) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ids: Vec<u64> = if settings.spare {
            vec![1, 2, 3, SPARE]
        } else {
            vec![1, 2, 3]
        };
        let spare = |id: u64| {
            if settings.spare && id == SPARE {
                "bootstrap = false\n"
            } else {
                ""
            }
        };
        // Held until the proxies are bound, so that none of them takes a node's port.
        let (addrs, held) = reserve_addrs(ids.len() * 2);
        let listen: BTreeMap<u64, SocketAddr> = ids
            .iter()
            .copied()
            .zip(addrs[..ids.len()].to_vec())
            .collect();
        // Peers talk on their own listeners; the proxies sit on those links only.
        let peer_listen: BTreeMap<u64, SocketAddr> = ids
            .iter()
            .copied()
            .zip(addrs[ids.len()..].to_vec())
            .collect();
        let mut links = BTreeMap::new();
        for &from in &ids {
            for &to in &ids {
                if from != to {
                    links.insert((from, to), Link::start(peer_listen[&to]).await);
                }
            }
        }
        drop(held);
        let base = settings_text(&settings);
        for &me in &ids {
            let mut text = base.clone();
            for &id in &ids {
                let peer = if id == me {
                    peer_listen[&id]
                } else {
                    links[&(me, id)].addr
                };
                text.push_str(&format!(
                    "\n[[nodes]]\nid = {id}\naddr = \"{}\"\npeer_advertise = \"{peer}\"\n{}",
                    listen[&id],
                    spare(id)
                ));
            }
            std::fs::write(dir.path().join(format!("node{me}.toml")), text).expect("write");
        }
        let mut text = base;
        for &id in &ids {
            text.push_str(&format!(
                "\n[[nodes]]\nid = {id}\naddr = \"{}\"\npeer_advertise = \"{}\"\n{}",
                listen[&id],
                peer_listen[&id],
                spare(id)
            ));
        }
        let client_path = dir.path().join("client.toml");
        std::fs::write(&client_path, text).expect("write");
        let client_config = Config::load(&client_path).expect("client config");
        let left = if settings.spare {
            BTreeSet::from([SPARE])
        } else {
            BTreeSet::new()
        };
        Cluster {
            dir,
            ids,
            listen,
            links,
            client_config,
            peer_listen,
            left,
            children: BTreeMap::new(),
            paused: BTreeSet::new(),
        }
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join("data").join(format!("node{id}"))
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}.log"))
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    pub fn start_node(&mut self, id: u64) {
        self.spawn_node(id, false);
    }

    /// Starts node `id` to join the cluster (`--join`): empty if it is known to have left
    /// (its data is wiped; nothing it held is needed once its removal committed), else with
    /// what it has.
    pub fn start_joining(&mut self, id: u64) {
        self.kill(id);
        if self.left.remove(&id) {
            let _ = std::fs::remove_dir_all(self.data_dir(id));
        }
        self.spawn_node(id, true);
    }

    fn spawn_node(&mut self, id: u64, join: bool) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("open log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(self.dir.path().join(format!("node{id}.toml")))
            .args(["node", "--id", &id.to_string()])
            .args(join.then_some("--join"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log)
            .env("RUST_LOG", "warn,ticket=info")
            // The seed makes the first admin from it.
            .env("TICKET_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .spawn()
            .expect("spawn node");
        self.children.insert(id, child);
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.children.contains_key(&id)
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        self.paused.remove(&id);
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().expect("wait").is_none() {
                assert!(Instant::now() < deadline, "node {id} ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Waits for a node to exit on its own: whether it exited with success, or `None` if it
    /// still runs at the deadline.
    pub async fn wait_exit(&mut self, id: u64, timeout: Duration) -> Option<bool> {
        let child = self.children.get_mut(&id).expect("node was started");
        let exited = poll_until(timeout, || {
            std::future::ready(child.try_wait().expect("wait").map(|s| s.success()))
        })
        .await;
        if exited.is_some() {
            self.children.remove(&id);
        }
        exited
    }

    pub fn pause(&mut self, id: u64) {
        if let Some(child) = self.children.get(&id) {
            signal(child, libc::SIGSTOP);
            self.paused.insert(id);
        }
    }

    pub fn resume(&mut self, id: u64) {
        if let Some(child) = self.children.get(&id) {
            signal(child, libc::SIGCONT);
        }
        self.paused.remove(&id);
    }

    /// Cuts both directions between two nodes.
    pub fn cut(&self, a: u64, b: u64) {
        self.links[&(a, b)].cut();
        self.links[&(b, a)].cut();
    }

    pub fn slow_all(&self, delay_ms: u64, loss_per_mille: u64) {
        for link in self.links.values() {
            link.slow(delay_ms, loss_per_mille);
        }
    }

    /// Ends every fault: links healed, paused nodes resumed, stopped nodes restarted.
    pub fn heal(&mut self) {
        for link in self.links.values() {
            link.heal();
        }
        for id in self.paused.clone() {
            self.resume(id);
        }
        for id in self.ids.clone() {
            if !self.is_running(id) && !self.left.contains(&id) {
                self.start_node(id);
            }
        }
    }

    /// The live membership's voters and learners, as the cluster reports it.
    pub async fn members(&self) -> Option<BTreeSet<u64>> {
        let status = self.client().cluster_status().await.ok()?;
        (!status.voters.is_empty())
            .then(|| status.voters.into_iter().chain(status.learners).collect())
    }

    pub fn client(&self) -> Client {
        Client::from_config(&self.client_config)
    }

    pub fn node_client(&self, id: u64) -> Client {
        Client::new(&[(id, self.listen[&id])])
    }

    /// The leader the cluster reports, if any answers.
    pub async fn leader(&self) -> Option<u64> {
        let status = self.client().cluster_status().await.ok()?;
        (status.leader != 0).then_some(status.leader)
    }

    /// Polls until every node answers, one leads, and all have applied the same index.
    /// At the deadline the test fails with the end of every node's log.
    pub async fn wait_converged(&self, timeout: Duration) {
        let client = &self.client();
        let converged = poll_until(timeout, || async move {
            let status = client.cluster_status().await.ok()?;
            // Only members: a node removed at run time is out of it.
            let members: Vec<_> = status
                .nodes
                .iter()
                .filter(|n| !n.membership.is_empty())
                .collect();
            let first = members.first().map(|n| n.applied_index);
            let converged = status.leader != 0
                && !members.is_empty()
                && members.iter().all(|n| n.reachable)
                && members.iter().all(|n| Some(n.applied_index) == first);
            converged.then_some(())
        })
        .await;
        if converged.is_none() {
            panic!(
                "timed out after {timeout:?} waiting for the cluster to converge\n{}",
                self.log_tails()
            );
        }
    }

    /// The last lines of every node's log, for a failure's message.
    fn log_tails(&self) -> String {
        let logs: Vec<String> = self
            .ids
            .iter()
            .map(|&id| {
                format!(
                    "--- node{id} (last lines)\n{}",
                    last_lines(&self.log(id), 20)
                )
            })
            .collect();
        logs.join("\n")
    }

    /// Whether the healed cluster makes progress, as a majority that is healthy must: every
    /// hold still live runs out (the leader sweeps it once its expiry passes; nothing else is
    /// written by then), and a write through each node commits. None if so; otherwise what
    /// stalled, with the holds left, the nodes' view and the ends of their logs.
    pub async fn stall_after_heal(&self, admin_token: &str) -> Option<String> {
        self.wait_converged(Duration::from_secs(60)).await;
        let mut admin = self.client();
        admin.set_token("admin", admin_token).expect("token");
        let lapse = Duration::from_millis(HOLD_MAX_MS) + Duration::from_secs(10);
        // In this order: a write would end the holds that are due itself.
        let mut stalls: Vec<String> = self
            .wait_holds_lapsed(&admin, lapse)
            .await
            .err()
            .into_iter()
            .collect();
        let members = self.members().await.unwrap_or_default();
        for &id in &members {
            let mut through = self.node_client(id).with_call_timeout(WRITE_AFTER_HEAL);
            through.set_token("admin", admin_token).expect("token");
            let name = format!("after-heal-{id}");
            if let Err(e) = through.create_event(&name, 1, 1, 1).await {
                stalls.push(format!(
                    "a write through node {id} did not commit within {WRITE_AFTER_HEAL:?}: {e}"
                ));
            }
        }
        if stalls.is_empty() {
            return None;
        }
        let status = admin.cluster_status().await;
        Some(format!(
            "{}\nstatus: {status:?}\n{}",
            stalls.join("\n"),
            self.log_tails()
        ))
    }

    /// Polls until no seat is held; at the deadline, which seats are still held, and until
    /// when.
    async fn wait_holds_lapsed(&self, admin: &Client, timeout: Duration) -> Result<(), String> {
        let held = |reply: &GetSeatsReply| -> Vec<String> {
            reply
                .seats
                .iter()
                .filter(|s| is_held(s.status))
                .map(|s| {
                    format!(
                        "{} {} of {} until {}",
                        s.id, s.hold_id, s.holder, s.hold_expires_at_ms
                    )
                })
                .collect()
        };
        let lapsed = poll_until(timeout, || async move {
            let reply = admin
                .get_seats(EVENT, Consistency::Linearizable)
                .await
                .ok()?;
            held(&reply).is_empty().then_some(())
        })
        .await;
        if lapsed.is_some() {
            return Ok(());
        }
        let left = match admin.get_seats(EVENT, Consistency::Linearizable).await {
            Ok(reply) => format!("{:?} at index {}", held(&reply), reply.applied_index),
            Err(e) => format!("unknown: {e}"),
        };
        Err(format!(
            "holds still held {timeout:?} after the load ended (now {} ms): {left}",
            ticket::clock::now_ms()
        ))
    }

    /// Makes the admin, the users c0..c(n-1) and the event; returns the admin's token.
    pub async fn prepare(&self, users: usize) -> String {
        let client = self.client();
        let admin = poll_for("the first admin", Duration::from_secs(20), || {
            let mut admin = client.clone();
            async move {
                admin.login("admin", ADMIN_PASSWORD).await.ok()?;
                Some(admin)
            }
        })
        .await;
        admin
            .create_event(EVENT, ROWS + CHECKOUT_ROWS, SEATS_PER_ROW, Self::seats())
            .await
            .expect("event");
        for i in 0..users {
            admin
                .add_user(&format!("c{i}"), USER_PASSWORD, false)
                .await
                .expect("add user");
        }
        admin.token().expect("token").to_string()
    }

    /// Makes the checkout's users: the holders h0..h(n-1), and door staff.
    pub async fn prepare_checkout(&self, admin_token: &str, holders: usize) -> Vec<String> {
        let mut admin = self.client();
        admin.set_token("admin", admin_token).expect("token");
        admin
            .add_user_with_role(DOOR, USER_PASSWORD, Role::Door)
            .await
            .expect("add the door staff");
        let mut names = Vec::new();
        for i in 0..holders {
            let name = format!("h{i}");
            admin
                .add_user(&name, USER_PASSWORD, false)
                .await
                .expect("add a holder");
            names.push(name);
        }
        names
    }

    /// Every seat of the event.
    fn seats() -> u32 {
        (ROWS + CHECKOUT_ROWS) * SEATS_PER_ROW
    }

    /// The seats the reservation clients ask for: rows A-D.
    pub fn seat_ids() -> Vec<String> {
        Cluster::all_seat_ids()
            .into_iter()
            .take((ROWS * SEATS_PER_ROW) as usize)
            .collect()
    }

    /// Every seat of the event, rows A-F.
    pub fn all_seat_ids() -> Vec<String> {
        let rows = ticket::domain::SeatMap::default_row_labels(ROWS + CHECKOUT_ROWS);
        (0..Self::seats())
            .map(|i| {
                format!(
                    "{}{}",
                    rows[(i / SEATS_PER_ROW) as usize],
                    i % SEATS_PER_ROW + 1
                )
            })
            .collect()
    }

    /// The final state, once healed (and, after `stall_after_heal`, with no hold left to run
    /// out under the reads): a linearizable read, and each node's own state once it has
    /// applied at least as far.
    pub async fn final_states(&self, admin_token: &str) -> (Snapshot, BTreeMap<u64, Snapshot>) {
        self.wait_converged(Duration::from_secs(60)).await;
        let mut admin = self.client();
        admin.set_token("admin", admin_token).expect("token");
        let reply = admin
            .get_seats(EVENT, Consistency::Linearizable)
            .await
            .expect("final read");
        let final_state = snapshot(&reply);
        let mut by_node = BTreeMap::new();
        let members = self.members().await.expect("the membership");
        for &id in &members {
            let mut client = self.node_client(id);
            client.set_token("admin", admin_token).expect("token");
            let (client, wanted) = (&client, final_state.applied_index);
            let state = poll_for(
                &format!("node {id} to catch up"),
                Duration::from_secs(30),
                || async move {
                    let reply = client.get_seats(EVENT, Consistency::Stale).await.ok()?;
                    (reply.applied_index >= wanted).then(|| snapshot(&reply))
                },
            )
            .await;
            by_node.insert(id, state);
        }
        (final_state, by_node)
    }

    /// Every ticket of `users` at the end, by (booking, seat), with its check-in if any.
    pub async fn final_tickets(
        &self,
        users: &[String],
    ) -> BTreeMap<(String, String), Option<checker::CheckedIn>> {
        let mut tickets = BTreeMap::new();
        for user in users {
            let mut client = self.client();
            client.login(user, USER_PASSWORD).await.expect("log in");
            let reply = client.my_tickets().await.expect("final tickets");
            for t in reply.tickets {
                let done = (t.checked_in_at_ms != 0).then(|| checker::CheckedIn {
                    at_ms: t.checked_in_at_ms,
                    by: t.checked_in_by.clone(),
                });
                tickets.insert((t.booking_id, t.seat), done);
            }
        }
        tickets
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child this process spawned and has not reaped.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

fn is_held(status: i32) -> bool {
    status == SeatStatus::Held as i32 || status == SeatStatus::HeldByYou as i32
}

/// The seats taken, as an admin reads them: a held seat holds its hold (`hd-N`).
pub fn snapshot(reply: &GetSeatsReply) -> Snapshot {
    Snapshot {
        applied_index: reply.applied_index,
        held: reply
            .seats
            .iter()
            .filter(|s| s.status != SeatStatus::Free as i32)
            .map(|s| {
                let booking = match is_held(s.status) {
                    true => s.hold_id.clone(),
                    false => s.booking_id.clone(),
                };
                let holding = checker::Holding {
                    user: s.holder.clone(),
                    booking,
                };
                (s.id.clone(), holding)
            })
            .collect(),
    }
}

/// A refusal means it did not happen; anything else may or may not have.
pub fn classify<T>(result: Result<T, ClientError>) -> Outcome<T> {
    let e = match result {
        Ok(value) => return Outcome::Ok(value),
        Err(e) => e,
    };
    let said = format!("{:?}: {}", e.code(), e.message());
    match e {
        ClientError::Invalid { .. }
        | ClientError::NotFound { .. }
        | ClientError::Refused { .. }
        | ClientError::PermissionDenied { .. }
        | ClientError::Unauthenticated { .. } => Outcome::Failed(said),
        ClientError::Throttled { .. }
        | ClientError::Unavailable { .. }
        | ClientError::UnknownOutcome { .. }
        | ClientError::NoNodeAnswered(_)
        | ClientError::Other(_) => Outcome::Unknown(said),
    }
}

/// The shared clock and log of a run.
pub struct Recorder {
    start: Instant,
    /// The wall clock when `start` was taken, in Unix µs.
    start_unix_us: u64,
    events: Mutex<Vec<Event>>,
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What the wall and monotonic clocks may disagree by beyond their measured drift.
const CLOCK_SLACK_US: u64 = 10_000;

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            start_unix_us: unix_us(),
            events: Mutex::new(Vec::new()),
        })
    }

    pub fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// How event times map to the nodes' log time: the wall clock at the start, and the
    /// drift between the two clocks measured now, plus a margin.
    pub fn clock(&self) -> checker::Clock {
        let elapsed = self.now();
        let wall = unix_us().saturating_sub(self.start_unix_us);
        checker::Clock {
            origin_unix_us: self.start_unix_us,
            slack_us: wall.abs_diff(elapsed) + CLOCK_SLACK_US,
        }
    }

    pub fn record(&self, client: usize, invoke: u64, op: Op) {
        let complete = self.now();
        self.events.lock().expect("lock").push(Event {
            client,
            invoke,
            complete,
            op,
        });
    }

    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().expect("lock"))
    }
}

/// One client's loop until `until`: a seeded mix of multi-seat reservations, cancels, retries
/// of the same request id, and reads (linearizable and stale).
pub async fn client_loop(
    cluster_ids: Vec<(u64, SocketAddr)>,
    i: usize,
    seed: u64,
    admin_token: String,
    recorder: Arc<Recorder>,
    until: Instant,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let user = format!("c{i}");
    // A short deadline, as an impatient client has: calls caught in a fault end unknown.
    let mut me = Client::new(&cluster_ids).with_call_timeout(CALL_TIMEOUT);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(s) = me.login(&user, USER_PASSWORD).await {
        assert!(Instant::now() < deadline, "{user} cannot log in: {s}");
    }
    let mut reader = Client::new(&cluster_ids).with_call_timeout(CALL_TIMEOUT);
    reader.set_token("admin", &admin_token).expect("token");
    let seats = Cluster::seat_ids();
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The last reservation's id stays awaited (a session id of `me`'s) until the next one,
    // so that its retry must get its first outcome back.
    let mut last_reserve: Option<(Arc<RequestId>, Vec<String>)> = None;
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let roll = rng.random_range(0..100);
        let invoke = recorder.now();
        match roll {
            // Reservations of 1-3 seats, and retries of the last one with its request id.
            0..=49 => {
                let (request_id, wanted) = match (&last_reserve, roll >= 40) {
                    (Some(last), true) => last.clone(),
                    _ => {
                        let count = rng.random_range(1..=3);
                        let mut wanted: Vec<String> = Vec::new();
                        while wanted.len() < count {
                            let seat = seats[rng.random_range(0..seats.len())].clone();
                            if !wanted.contains(&seat) {
                                wanted.push(seat);
                            }
                        }
                        (Arc::new(me.request_id()), wanted)
                    }
                };
                last_reserve = Some((request_id.clone(), wanted.clone()));
                reserve(
                    &me,
                    &recorder,
                    i,
                    &user,
                    &request_id,
                    wanted,
                    &mut held,
                    invoke,
                )
                .await;
            }
            50..=69 => {
                let target = match held.keys().next().cloned() {
                    Some(booking) if rng.random_bool(0.5) => CancelTarget::Booking(booking),
                    Some(booking) => {
                        let seats = &held[&booking];
                        CancelTarget::Seats(vec![seats[rng.random_range(0..seats.len())].clone()])
                    }
                    None => {
                        CancelTarget::Seats(vec![seats[rng.random_range(0..seats.len())].clone()])
                    }
                };
                let request_id = format!("{user}-{n}");
                let result = match &target {
                    CancelTarget::Booking(b) => me.cancel_booking_with_id(&request_id, b).await,
                    CancelTarget::Seats(s) => {
                        let s: Vec<&str> = s.iter().map(String::as_str).collect();
                        me.cancel_seats_with_id(&request_id, EVENT, &s).await
                    }
                };
                let result = classify(result.map(|r| r.seats));
                if let Outcome::Ok(freed) = &result {
                    for seats in held.values_mut() {
                        seats.retain(|s| !freed.contains(s));
                    }
                    held.retain(|_, seats| !seats.is_empty());
                }
                recorder.record(
                    i,
                    invoke,
                    Op::Cancel {
                        user: user.clone(),
                        request_id,
                        target,
                        result,
                    },
                );
            }
            70..=89 => {
                let result = reader.get_seats(EVENT, Consistency::Linearizable).await;
                let op = Op::Read {
                    linearizable: true,
                    result: classify(result.map(|r| snapshot(&r))),
                };
                recorder.record(i, invoke, op);
            }
            _ => {
                let (id, addr) = cluster_ids[rng.random_range(0..cluster_ids.len())];
                let mut node = Client::new(&[(id, addr)]).with_call_timeout(CALL_TIMEOUT);
                node.set_token("admin", &admin_token).expect("token");
                let result = node.get_seats(EVENT, Consistency::Stale).await;
                let op = Op::Read {
                    linearizable: false,
                    result: classify(result.map(|r| snapshot(&r))),
                };
                recorder.record(i, invoke, op);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn reserve(
    me: &Client,
    recorder: &Recorder,
    i: usize,
    user: &str,
    request_id: &str,
    wanted: Vec<String>,
    held: &mut BTreeMap<String, Vec<String>>,
    invoke: u64,
) {
    let seats: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let result = me.reserve_with_id(request_id, EVENT, &seats).await;
    let result = classify(result.map(|r| r.booking.map(|b| b.id).unwrap_or_default()));
    if let Outcome::Ok(booking) = &result {
        held.insert(booking.clone(), wanted.clone());
    }
    recorder.record(
        i,
        invoke,
        Op::Reserve {
            user: user.to_string(),
            request_id: request_id.to_string(),
            seats: wanted,
            result,
        },
    );
}

/// Prints the summary line and the history around each violation; returns the violations.
pub fn judge(name: &str, seed: u64, history: &History) -> Vec<checker::Violation> {
    let violations = checker::check(history);
    if let Ok(path) = std::env::var("NEMESIS_DUMP") {
        let mut text = String::new();
        for (i, e) in history.events.iter().enumerate() {
            text.push_str(&format!("#{i} {e:?}\n"));
        }
        text.push_str(&format!("final {:?}\n", history.final_state));
        let _ = std::fs::write(path, text);
    }
    let c = history.counts();
    println!(
        "nemesis {name}: ops={} ok={} failed={} unknown={} violations={} seed={seed}",
        c.ops,
        c.ok,
        c.failed,
        c.unknown,
        violations.len()
    );
    println!("nemesis {name} checkout: {}", history.checkout_counts());
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &violations {
        *by_rule.entry(v.rule).or_default() += 1;
    }
    if !by_rule.is_empty() {
        println!("nemesis {name} violations by rule: {by_rule:?}");
    }
    for v in violations.iter().take(10) {
        println!("{}", history.excerpt(v));
    }
    violations
}

/// Waits a fault's length. The schedule is timed on purpose; nothing synchronises on it.
pub async fn hold_for(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

pub fn seed() -> u64 {
    std::env::var("NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// Seconds of load per scenario (NEMESIS_SECONDS; 60 by default).
pub fn load_seconds() -> u64 {
    std::env::var("NEMESIS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}
