//! Membership at run time, with real node processes: a node added and the leader removed
//! while 16 clients book (nothing acknowledged is lost; the leader hands over first), a dead node replaced, changes that
//! would lose quorum refused unless forced, and a joining node that never starts a cluster
//! of its own.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{poll_until, run_ticket, Options, TestCluster, ADMIN_PASSWORD};
use ticket::client::{Client, Consistency};
use ticket::pb::booking::v1::ClusterStatusReply;

/// `ticket cluster ARGS...` as the first admin: (success, stdout, stderr).
fn cluster_command(cluster: &TestCluster, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["cluster"];
    all.extend_from_slice(args);
    let out = run_ticket(
        &cluster.config_path,
        &all,
        "",
        &[("TICKET_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ticket_status(cluster: &TestCluster) -> String {
    let out = run_ticket(&cluster.config_path, &["status"], "", &[]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bookers that reserve one seat at a time until stopped, keeping the seats acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    booked: Arc<Mutex<Vec<String>>>,
    /// When each booking was acknowledged.
    times: Arc<Mutex<Vec<Instant>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    const EVENT: &'static str = "gala";

    async fn start(cluster: &TestCluster, clients: u32) -> Load {
        let admin = cluster.admin().await;
        admin
            .create_event(Load::EVENT, 100, 100, 10_000)
            .await
            .expect("event");
        let labels = ticket::domain::SeatMap::default_row_labels(100);
        let stop = Arc::new(AtomicBool::new(false));
        let booked: Arc<Mutex<Vec<String>>> = Arc::default();
        let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let tasks = (0..clients)
            .map(|c| {
                let (client, stop, booked) = (admin.clone(), stop.clone(), booked.clone());
                let times = times.clone();
                let labels = labels.clone();
                tokio::spawn(async move {
                    for n in 0..(10_000 / clients) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = c * (10_000 / clients) + n;
                        let seat = format!("{}{}", labels[(i / 100) as usize], i % 100 + 1);
                        if client.reserve(Load::EVENT, &[&seat]).await.is_ok() {
                            booked.lock().expect("lock").push(seat);
                            times.lock().expect("lock").push(Instant::now());
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            booked,
            times,
            tasks,
        }
    }

    /// The longest time after `since` in which no booking was acknowledged.
    fn longest_gap_since(&self, since: Instant) -> Duration {
        let mut times: Vec<Instant> = self.times.lock().expect("lock").clone();
        times.retain(|&t| t >= since);
        times.sort();
        let mut last = since;
        let mut gap = Duration::ZERO;
        for t in times {
            gap = gap.max(t - last);
            last = t;
        }
        gap
    }

    /// Prints the longest time without an acknowledged booking since `since`, while `what`
    /// happened, and fails if it is `bound` or more.
    fn assert_gap_since(&self, since: Instant, bound: Duration, what: &str, log: &str) {
        let gap = self.longest_gap_since(since);
        println!("longest time without an acknowledged booking while {what}: {gap:?}");
        assert!(
            gap < bound,
            "bookings stopped for {gap:?} while {what}\n{log}"
        );
    }

    fn acknowledged(&self) -> usize {
        self.booked.lock().expect("lock").len()
    }

    /// Waits until `more` further bookings were acknowledged: the cluster is serving.
    async fn progress(&self, more: usize, what: &str) {
        let target = self.acknowledged() + more;
        let done = poll_until(Duration::from_secs(30), || {
            std::future::ready((self.acknowledged() >= target).then_some(()))
        })
        .await;
        assert!(done.is_some(), "no bookings acknowledged {what}");
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("booker");
        }
        let booked = self.booked.lock().expect("lock").clone();
        booked
    }
}

/// Every seat in `booked` is taken in node `id`'s own (stale) view, once it has caught up
/// with the leader.
async fn has_every_booking(cluster: &TestCluster, id: u64, booked: &[String]) {
    let admin = cluster.admin().await;
    let expected = admin
        .get_seats(Load::EVENT, Consistency::Linearizable)
        .await
        .expect("seats");
    let mut on_node: Client = cluster.node_client(id);
    on_node
        .set_token("admin", admin.token().expect("token"))
        .expect("token");
    let seen = poll_until(Duration::from_secs(30), || {
        let on_node = on_node.clone();
        let expected = expected.seats.clone();
        async move {
            let seen = on_node
                .get_seats(Load::EVENT, Consistency::Stale)
                .await
                .ok()?;
            (seen.seats == expected).then_some(seen)
        }
    })
    .await
    .unwrap_or_else(|| panic!("node {id} never agreed with the leader on the seats"));
    for seat in booked {
        let s = seen.seats.iter().find(|s| &s.id == seat).expect("seat");
        assert_ne!(
            s.holder, "",
            "node {id} lost the acknowledged booking of {seat}"
        );
    }
}

fn voters(status: &ClusterStatusReply) -> Vec<u64> {
    status.voters.clone()
}

/// Goal: under 16 booking clients, a node started with `--join` is added (a learner first,
/// a voter once caught up), then the leader itself is removed; the cluster keeps serving,
/// nothing acknowledged is lost, the new node has every booking, and `ticket status` says
/// how the live membership differs from cluster.toml.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_and_the_leader_removed_under_load_lose_nothing() {
    let mut cluster = TestCluster::start(Options {
        nodes: 4,
        joining: 1,
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(10)).await;
    let load = Load::start(&cluster, 16).await;
    load.progress(50, "before the change").await;

    cluster.start_node(4);
    let status = cluster
        .wait_status("node 4 answering", Duration::from_secs(10), |s| {
            s.nodes.iter().any(|n| n.id == 4 && n.reachable)
        })
        .await;
    assert_eq!(voters(&status), [1, 2, 3]);
    let node4 = status.nodes.iter().find(|n| n.id == 4).expect("node 4");
    assert_eq!(node4.membership, "", "{status:?}");
    assert_eq!(node4.applied_index, 0, "a joining node started a cluster");
    assert!(
        ticket_status(&cluster).contains("not members: 4"),
        "{}",
        ticket_status(&cluster)
    );

    let (ok, out, err) = cluster_command(&cluster, &["add", "4"]);
    assert!(ok, "add failed:\n{out}\n{err}\n{}", cluster.log(4));
    assert!(out.contains("voters 1, 2, 3, 4"), "{out}");
    load.progress(50, "after node 4 was added").await;

    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let removing = Instant::now();
    let (successor, _, _) = remove_leader(&cluster, leader).await;
    let status = cluster
        .wait_status("the leader", Duration::from_secs(10), |s| s.leader != 0)
        .await;
    assert_eq!(status.voters.len(), 3, "{status:?}");
    assert!(status.voters.contains(&4), "{status:?}");
    load.progress(50, "after the leader was removed").await;
    // Four voters: the leader and its successor are not a majority, so the successor waits
    // for the other voters' leases (600 ms here) to run out before it campaigns.
    let what = format!("the leader handed over to {successor} and left (four voters)");
    load.assert_gap_since(
        removing,
        Duration::from_secs(3),
        &what,
        &cluster.log(leader),
    );
    let booked = load.stop().await;

    let text = ticket_status(&cluster);
    assert!(
        text.contains(&format!("not members: {leader}")),
        "status does not say node {leader} left:\n{text}"
    );
    has_every_booking(&cluster, 4, &booked).await;
    cluster.kill(leader);
}

/// `ticket cluster remove LEADER`: it must say which node the leader handed over to, that
/// node must lead, and the old leader must be gone from the voters. Returns the successor
/// and the terms before and after.
async fn remove_leader(cluster: &TestCluster, leader: u64) -> (u64, u64, u64) {
    let term_before = cluster
        .wait_status("a leader", Duration::from_secs(10), |s| s.leader == leader)
        .await
        .term;
    let (ok, out, err) = cluster_command(cluster, &["remove", &leader.to_string()]);
    assert!(ok, "removing the leader failed:\n{out}\n{err}");
    let successor: u64 = out
        .split("handed leadership to node ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no handover reported:\n{out}\n{err}\n{}",
                cluster.log(leader)
            )
        });
    assert_ne!(successor, leader, "{out}");
    let status = cluster
        .wait_status(
            "the successor leading, the old leader gone",
            Duration::from_secs(20),
            |s| s.leader == successor && !s.voters.contains(&leader),
        )
        .await;
    (successor, term_before, status.term)
}

/// Goal: a leader removing itself hands leadership to another voter first (three voters:
/// the leader's vote and the successor's own are a majority), so bookings under 16 clients
/// pause for an election round trip, well under the election timeout that a leader
/// stepping down would leave them waiting for, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_removing_itself_hands_over_first() {
    let mut cluster = TestCluster::start(Options::default());
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let load = Load::start(&cluster, 16).await;
    load.progress(50, "before the removal").await;
    let removing = Instant::now();
    let (successor, term_before, term_after) = remove_leader(&cluster, leader).await;
    // One election, won by the successor at the first try.
    assert_eq!(term_after, term_before + 1);
    load.progress(50, "after the leader left").await;
    // Without the handover: the removal commits, the leader steps down, and the others wait
    // out its lease (600 ms) and an election timeout (300 to 600 ms): over 900 ms.
    let what = format!("the leader handed over to {successor} and left (three voters)");
    load.assert_gap_since(
        removing,
        Duration::from_millis(900),
        &what,
        &cluster.log(leader),
    );
    let booked = load.stop().await;
    has_every_booking(&cluster, successor, &booked).await;
    cluster.kill(leader);
}

/// Goal: with a follower dead, `ticket cluster replace` puts a new node in its place: the
/// new one catches up and votes, the dead one is gone, bookings from before are on the new
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_by_a_new_one() {
    let mut cluster = TestCluster::start(Options {
        nodes: 4,
        joining: 1,
        ..Options::default()
    });
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let load = Load::start(&cluster, 4).await;
    load.progress(30, "at first").await;
    let dead = [1, 2, 3]
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.kill(dead);
    load.progress(30, "with a node dead").await;

    cluster.start_node(4);
    let (ok, out, err) = cluster_command(&cluster, &["replace", &dead.to_string(), "4"]);
    assert!(ok, "replace failed:\n{out}\n{err}");
    let booked = load.stop().await;
    let status = cluster
        .wait_status("the new membership", Duration::from_secs(10), |s| {
            s.voters.contains(&4) && !s.voters.contains(&dead)
        })
        .await;
    assert_eq!(status.voters.len(), 3, "{status:?}");
    has_every_booking(&cluster, 4, &booked).await;
}

/// Goal: a removal that would leave voters unable to form a quorum (too few of them, or too
/// few that answer) is refused with a clear reason and changes nothing; `--force` does it,
/// with a warning, and the one voter left still takes bookings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_that_would_lose_quorum_are_refused_unless_forced() {
    let mut cluster = TestCluster::start(Options::default());
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let admin = cluster.admin().await;
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    let (a, b) = (others[0], others[1]);
    cluster.kill(b);

    // {leader, b} would remain, and b does not answer.
    let (ok, out, err) = cluster_command(&cluster, &["remove", &a.to_string()]);
    assert!(!ok, "removed {a} though {b} is dead:\n{out}");
    assert!(err.contains("only") && err.contains("--force"), "{err}");

    let (ok, out, err) = cluster_command(&cluster, &["remove", &b.to_string()]);
    assert!(ok, "removing the dead node failed:\n{out}\n{err}");
    assert!(out.contains("voters"), "{out}");

    // Two of three already gone would be one: fewer than a majority of two.
    let (ok, out, err) = cluster_command(&cluster, &["remove", &a.to_string()]);
    assert!(!ok, "removed a second node without --force:\n{out}");
    assert!(err.contains("refused") && err.contains("--force"), "{err}");
    let status = cluster
        .wait_status("two voters", Duration::from_secs(5), |s| {
            s.voters.len() == 2
        })
        .await;
    assert!(status.voters.contains(&a), "{status:?}");

    let (ok, out, err) = cluster_command(&cluster, &["remove", &a.to_string(), "--force"]);
    assert!(ok, "a forced removal failed:\n{out}\n{err}");
    assert!(err.contains("warning: forced"), "{err}");
    let status = cluster
        .wait_status("one voter", Duration::from_secs(10), |s| {
            s.voters == [leader] && s.leader == leader
        })
        .await;
    assert_eq!(status.voters, [leader]);
    admin
        .create_event("after", 2, 2, 4)
        .await
        .expect("the last voter takes writes");
}

/// Goal: a node started with `--join` never makes a cluster of its own, even alone: it
/// waits, without a leader, to be added; the same node without the flag elects itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_never_starts_a_cluster_of_its_own() {
    let cluster = TestCluster::configure(Options {
        nodes: 1,
        ..Options::default()
    });
    let log = std::fs::File::create(cluster.log_path(1)).expect("log");
    let mut joining = cluster
        .node_command(1)
        .arg("--join")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn");
    let client = cluster.client();
    let answered = poll_until(Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.cluster_status().await.ok() }
    })
    .await
    .expect("the node answers");
    assert_eq!(answered.leader, 0);
    // Long enough for an election (the timeout is at most 600 ms): none may happen.
    let elected = poll_until(Duration::from_secs(3), || {
        let client = client.clone();
        async move {
            let status = client.cluster_status().await.ok()?;
            (status.leader != 0).then_some(status)
        }
    })
    .await;
    let _ = joining.kill();
    let _ = joining.wait();
    assert!(elected.is_none(), "a joining node led: {elected:?}");
    assert!(cluster.log(1).contains("joining"), "{}", cluster.log(1));

    // Without --join, the same empty node starts the cluster cluster.toml describes.
    let mut cluster = cluster;
    cluster.start_node(1);
    cluster.wait_leader(Duration::from_secs(10)).await;
}
