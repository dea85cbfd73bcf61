//! Proving it under faults: each scenario runs a 3-node cluster (the membership one a fourth
//! node too, added and others removed as it goes) of real `ticket node`
//! processes under 16 concurrent reservation clients, 4 checkout holders and a door (see
//! `nemesis/checkout.rs`) for `NEMESIS_SECONDS` (60 by default) while a nemesis injects one
//! kind of fault, then heals everything, lets the last holds run out, reads the final state
//! and tickets, and checks the recorded history (see `nemesis/checker.rs`). `NEMESIS_SEED`
//! replays a client mix and fault schedule; the timing of real processes is not
//! reproducible.
//!
//! Run it alone: `cargo test --release --test nemesis -- --test-threads=1`.

mod common;

mod nemesis {
    pub mod checker;
    pub mod checkout;
    pub mod harness;
    pub mod proxy;
}

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::poll_for;
use nemesis::checker::{History, Op};
use nemesis::harness::{self, hold_for, Cluster, Recorder, Settings, ELECTION_TIMEOUT_MS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ticket::client::Consistency;

const CLIENTS: usize = 16;
/// Checkout clients besides: holders, and one door.
const HOLDERS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// kill -9 of the leader or of a random node, restarted after 0-5 s.
    Kill,
    /// SIGSTOP of the leader or of a random node for longer than the election timeout.
    Pause,
    /// The leader cut off from both peers, or a bridge: two nodes that cannot talk to each
    /// other but both can to the third.
    Partition,
    /// Every peer link delayed 10-50 ms per chunk, with 0.1-1 % of chunks resetting.
    Slow,
    /// Every node killed and restarted together.
    RestartAll,
    /// A membership change, while any other fault of the step holds: the spare node (wiped
    /// if it left before) joins and is added, or, when all four are members, one of them (the
    /// leader half the time) is removed and stopped. Refusals and failures are logged, not
    /// judged: what is judged is that no acknowledged operation is lost meanwhile.
    Membership,
}

/// How many membership changes succeeded in a run.
#[derive(Default)]
struct Changes {
    added: usize,
    removed: usize,
}

async fn change_membership(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    admin_token: &str,
    changes: &mut Changes,
) {
    let Some(members) = cluster.members().await else {
        println!("membership: no status, no change");
        return;
    };
    let mut admin = cluster.client();
    admin.set_token("admin", admin_token).expect("token");
    let spare = cluster.ids.iter().copied().find(|id| !members.contains(id));
    if let Some(spare) = spare {
        cluster.start_joining(spare);
        let node = cluster.node_client(spare);
        let started = common::poll_until(Duration::from_secs(10), || {
            let node = node.clone();
            async move { node.cluster_status().await.ok() }
        })
        .await;
        if started.is_none() {
            println!("membership: {spare} did not start");
            return;
        }
        let peer = cluster.peer_listen[&spare].to_string();
        // Asked again while the learner catches up (each call goes on where the last left
        // off), a few times at most: a step is not a wait.
        for _ in 0..3 {
            match admin.add_node(spare, &peer).await {
                Ok(reply) if reply.promoted => {
                    changes.added += 1;
                    println!("membership: added {spare}: voters {:?}", reply.voters);
                    break;
                }
                Ok(reply) => println!(
                    "membership: {spare} still a learner ({} of {})",
                    reply.applied_index, reply.leader_index
                ),
                Err(e) => {
                    println!("membership: adding {spare}: {e}");
                    break;
                }
            }
        }
        return;
    }
    let leader = cluster.leader().await;
    let voters: Vec<u64> = members.iter().copied().collect();
    let victim = match leader {
        Some(leader) if rng.random_bool(0.5) => leader,
        _ => voters[rng.random_range(0..voters.len())],
    };
    match admin.remove_node(victim, false).await {
        Ok(reply) => {
            changes.removed += 1;
            let role = if Some(victim) == leader {
                " (the leader)"
            } else {
                ""
            };
            println!(
                "membership: removed {victim}{role}: voters {:?}",
                reply.voters
            );
            cluster.kill(victim);
            cluster.left.insert(victim);
        }
        Err(e) => println!("membership: removing {victim}: {e}"),
    }
}

/// Applies the faults of one step, holds them, then heals everything.
async fn step(cluster: &mut Cluster, rng: &mut StdRng, faults: &[Fault], run: &mut Run) {
    let leader = cluster.leader().await;
    let running: Vec<u64> = cluster
        .ids
        .iter()
        .copied()
        .filter(|id| !cluster.left.contains(id))
        .collect();
    let random = running[rng.random_range(0..running.len())];
    let victim = match leader {
        Some(leader) if rng.random_bool(0.5) => leader,
        _ => random,
    };
    let mut hold_ms = 0;
    for fault in faults {
        let ms = match fault {
            Fault::Kill => {
                cluster.kill(victim);
                rng.random_range(0..5_000)
            }
            Fault::Pause => {
                cluster.pause(victim);
                ELECTION_TIMEOUT_MS * 2 + rng.random_range(0..2_000)
            }
            Fault::Partition => {
                let others: Vec<u64> = running.iter().copied().filter(|&id| id != victim).collect();
                if rng.random_bool(0.5) {
                    // The victim (often the leader) alone in the minority.
                    for &other in &others {
                        cluster.cut(victim, other);
                    }
                } else {
                    // A bridge: the victim still talks to both, they not to each other.
                    cluster.cut(others[0], others[1]);
                }
                rng.random_range(3_000..6_000)
            }
            Fault::Slow => {
                cluster.slow_all(rng.random_range(10..50), rng.random_range(1..10));
                rng.random_range(4_000..8_000)
            }
            Fault::RestartAll => {
                for id in cluster.ids.clone() {
                    cluster.kill(id);
                }
                rng.random_range(0..2_000)
            }
            Fault::Membership => {
                change_membership(cluster, rng, &run.admin_token, &mut run.changes).await;
                0
            }
        };
        hold_ms = hold_ms.max(ms);
    }
    hold_for(hold_ms).await;
    cluster.heal();
    // A quiet spell, so that progress between faults is part of the history.
    hold_for(rng.random_range(1_000..3_000)).await;
}

/// What a run carries from step to step.
struct Run {
    admin_token: String,
    changes: Changes,
}

async fn run(name: &str, pick: impl Fn(&mut StdRng) -> Vec<Fault>) {
    run_with(name, Settings::default(), pick).await;
}

async fn run_with(name: &str, settings: Settings, pick: impl Fn(&mut StdRng) -> Vec<Fault>) {
    let seed = harness::seed();
    let spare = settings.spare;
    let mut cluster = Cluster::start(settings).await;
    cluster.wait_converged(Duration::from_secs(30)).await;
    let token = cluster.prepare(CLIENTS).await;
    let holders = cluster.prepare_checkout(&token, HOLDERS).await;

    let recorder = Recorder::new();
    let until = Instant::now() + Duration::from_secs(harness::load_seconds());
    let addrs: Vec<(u64, SocketAddr)> = cluster
        .ids
        .iter()
        .map(|&id| (id, cluster.listen[&id]))
        .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(harness::client_loop(
                addrs.clone(),
                i,
                seed,
                token.clone(),
                recorder.clone(),
                until,
            ))
        })
        .collect();
    let (to_door, at_door) = tokio::sync::mpsc::unbounded_channel();
    let mut checkout: Vec<_> = holders
        .iter()
        .enumerate()
        .map(|(i, user)| {
            tokio::spawn(nemesis::checkout::holder_loop(
                addrs.clone(),
                CLIENTS + i,
                user.clone(),
                seed,
                recorder.clone(),
                to_door.clone(),
                until,
            ))
        })
        .collect();
    drop(to_door);
    checkout.push(tokio::spawn(nemesis::checkout::door_loop(
        addrs.clone(),
        CLIENTS + HOLDERS,
        seed,
        recorder.clone(),
        at_door,
        until,
    )));

    let mut rng = StdRng::seed_from_u64(seed);
    let mut run = Run {
        admin_token: token.clone(),
        changes: Changes::default(),
    };
    while Instant::now() < until {
        let faults = pick(&mut rng);
        step(&mut cluster, &mut rng, &faults, &mut run).await;
    }
    cluster.heal();
    for client in clients.into_iter().chain(checkout) {
        client.await.expect("client task");
    }

    let stall = cluster.stall_after_heal(&token).await;
    let (final_state, final_by_node) = cluster.final_states(&token).await;
    let final_tickets = cluster.final_tickets(&holders).await;
    let history = History {
        events: recorder.take(),
        final_state,
        final_by_node,
        final_tickets,
        clock: recorder.clock(),
    };
    let violations = harness::judge(name, seed, &history);
    let moved_on = if stall.is_some() {
        "stalled"
    } else {
        "moved on"
    };
    println!("nemesis {name} once healed: {moved_on}");
    assert!(
        violations.is_empty(),
        "nemesis {name}: {} violations (seed {seed})",
        violations.len()
    );
    // The cluster made progress: faults come and go, a majority is healthy between them.
    let booked = history
        .events
        .iter()
        .filter(|e| matches!(&e.op, Op::Reserve { result, .. } if result.ok().is_some()))
        .count();
    assert!(
        booked > 0,
        "nemesis {name}: no reservation succeeded (seed {seed})"
    );
    let confirmed = history
        .events
        .iter()
        .filter(|e| matches!(&e.op, Op::Confirm { result, .. } if result.ok().is_some()))
        .count();
    let checked_in = history
        .events
        .iter()
        .filter(|e| matches!(&e.op, Op::CheckIn { result, .. } if result.ok().is_some()))
        .count();
    assert!(
        confirmed > 0 && checked_in > 0,
        "nemesis {name}: {confirmed} holds confirmed, {checked_in} tickets checked in (seed {seed})"
    );
    if spare {
        println!(
            "nemesis {name}: {} nodes added, {} removed",
            run.changes.added, run.changes.removed
        );
        assert!(
            run.changes.added > 0 && run.changes.removed > 0,
            "nemesis {name}: no membership change succeeded (seed {seed})"
        );
    }
    // Safety first (above), then liveness: the healed cluster must move on.
    if let Some(stall) = stall {
        panic!("nemesis {name}: the healed cluster made no progress (seed {seed}):\n{stall}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_kill() {
    run("kill", |_| vec![Fault::Kill]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_pause() {
    run("pause", |_| vec![Fault::Pause]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_partition() {
    run("partition", |_| vec![Fault::Partition]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_slow() {
    run("slow", |_| vec![Fault::Slow]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_restart_all() {
    run("restart-all", |_| vec![Fault::RestartAll]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_mixed() {
    run("mixed", |rng| {
        let all = [
            Fault::Kill,
            Fault::Pause,
            Fault::Partition,
            Fault::Slow,
            Fault::RestartAll,
        ];
        let first = all[rng.random_range(0..all.len())];
        let second = all[rng.random_range(0..all.len())];
        if first == second {
            vec![first]
        } else {
            vec![first, second]
        }
    })
    .await;
}

/// Membership changes under load, each step's change made while another fault (or none)
/// holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_membership() {
    let settings = Settings {
        spare: true,
        ..Settings::default()
    };
    run_with("membership", settings, |rng| {
        let others = [Fault::Kill, Fault::Pause, Fault::Partition, Fault::Slow];
        if rng.random_bool(0.5) {
            vec![Fault::Membership]
        } else {
            vec![others[rng.random_range(0..others.len())], Fault::Membership]
        }
    })
    .await;
}

/// A node's log segments, oldest first.
fn segments(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut segments: Vec<_> = std::fs::read_dir(data.join("wal"))
        .expect("the node's log")
        .map(|item| item.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments
}

/// Flips one byte inside every stored copy of `needle` in `path`; returns how many.
fn flip(path: &std::path::Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).expect("read store");
    let mut flipped = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let i = at + i;
        bytes[i + needle.len() / 2] ^= 0x20;
        flipped += 1;
        at = i + needle.len();
    }
    std::fs::write(path, bytes).expect("write store");
    flipped
}

/// Goal: a flipped byte in a stopped node's log is caught by its checksum on restart; the
/// node refuses to start and serves nothing, and the other two keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_log_entry_stops_the_node_and_the_others_serve() {
    let mut cluster = Cluster::start(Settings::default()).await;
    cluster.wait_converged(Duration::from_secs(30)).await;
    let token = cluster.prepare(1).await;
    let mut admin = cluster.client();
    admin.set_token("admin", &token).expect("token");
    admin
        .add_user("corruption-witness", "password1", false)
        .await
        .expect("user");
    cluster.wait_converged(Duration::from_secs(30)).await;

    cluster.stop(3);
    let flipped: usize = segments(&cluster.data_dir(3))
        .iter()
        .map(|segment| flip(segment, b"corruption-witness"))
        .sum();
    assert!(flipped > 0, "the user's entry is not in node 3's log");
    cluster.start_node(3);
    let exited = cluster.wait_exit(3, Duration::from_secs(20)).await;
    let log = cluster.log(3);
    assert_eq!(
        exited,
        Some(false),
        "node 3 started on a corrupt log:\n{log}"
    );
    assert!(
        log.to_lowercase().contains("corrupt"),
        "no clear error:\n{log}"
    );

    let booked = admin
        .reserve(harness::EVENT, &["A1"])
        .await
        .expect("the others serve");
    assert!(booked.booking.is_some());
}

/// Goal: a write torn at the tail of a stopped node's log (its last record cut short, as a
/// crash mid-write leaves it) is dropped on restart: nothing in it was acknowledged. The node
/// keeps everything before it, catches up on the rest and serves every booking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_write_at_a_logs_tail_is_dropped_and_the_node_catches_up() {
    let mut cluster = Cluster::start(Settings::default()).await;
    cluster.wait_converged(Duration::from_secs(30)).await;
    let token = cluster.prepare(1).await;
    let mut admin = cluster.client();
    admin.set_token("admin", &token).expect("token");
    let seats = ["A1", "A2", "A3", "A4", "A5"];
    for seat in seats {
        admin
            .reserve(harness::EVENT, &[seat])
            .await
            .expect("reserve");
    }
    cluster.wait_converged(Duration::from_secs(30)).await;

    // A follower's: a real torn write holds only what was never acknowledged, but the test
    // tears the last record whatever it holds, and a leader that lost an acknowledged entry
    // would be restored as leader (openraft 0.9) without it.
    let status = admin.cluster_status().await.expect("status");
    let torn = [1, 2, 3]
        .into_iter()
        .find(|&id| id != status.leader)
        .expect("a follower");
    cluster.stop(torn);
    let newest = segments(&cluster.data_dir(torn)).pop().expect("a segment");
    let bytes = std::fs::read(&newest).expect("read the segment");
    let end = bytes.iter().rposition(|b| *b != 0).expect("data") + 1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .expect("open the segment")
        .set_len((end - 3) as u64)
        .expect("tear the last record");
    cluster.start_node(torn);
    cluster.wait_converged(Duration::from_secs(30)).await;
    let log = cluster.log(torn);
    assert!(
        log.contains("dropped a torn write"),
        "no word of it:\n{log}"
    );
    let mut on_torn = cluster.node_client(torn);
    on_torn.set_token("admin", &token).expect("token");
    let seen = on_torn
        .get_seats(harness::EVENT, Consistency::Stale)
        .await
        .expect("the node serves");
    for seat in seats {
        let s = seen.seats.iter().find(|s| s.id == seat).expect("seat");
        assert_ne!(s.holder, "", "node {torn} lost {seat}");
    }
}

/// Goal: the same for the snapshot store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_snapshot_stops_the_node_and_the_others_serve() {
    let settings = Settings {
        snapshot_threshold: 20,
        keep_after_snapshot: 5,
        ..Settings::default()
    };
    let mut cluster = Cluster::start(settings).await;
    cluster.wait_converged(Duration::from_secs(30)).await;
    let token = cluster.prepare(1).await;
    let mut admin = cluster.client();
    admin.set_token("admin", &token).expect("token");
    admin
        .add_user("corruption-witness", "password1", false)
        .await
        .expect("user");
    for seat in Cluster::seat_ids().iter().take(30) {
        admin
            .reserve(harness::EVENT, &[seat])
            .await
            .expect("reserve");
    }
    let client = &cluster.client();
    poll_for(
        "a snapshot on node 3",
        Duration::from_secs(30),
        || async move {
            let status = client.cluster_status().await.ok()?;
            let node3 = status.nodes.iter().find(|n| n.id == 3)?;
            let settled = status
                .nodes
                .iter()
                .all(|n| n.applied_index == node3.applied_index);
            (node3.snapshot_index > 0 && settled).then_some(())
        },
    )
    .await;

    cluster.stop(3);
    let flipped = flip(
        &cluster.data_dir(3).join("snapshot.redb"),
        b"corruption-witness",
    );
    assert!(flipped > 0, "the user is not in node 3's snapshot");
    cluster.start_node(3);
    let exited = cluster.wait_exit(3, Duration::from_secs(20)).await;
    let log = cluster.log(3);
    assert_eq!(
        exited,
        Some(false),
        "node 3 started on a corrupt snapshot:\n{log}"
    );
    assert!(
        log.to_lowercase().contains("corrupt"),
        "no clear error:\n{log}"
    );

    let seats = admin
        .get_seats(harness::EVENT, Consistency::Linearizable)
        .await
        .expect("the others serve");
    assert_eq!(seats.event.expect("event").taken, 30);
}

/// A tmpfs mounted for one test, unmounted when dropped (after the nodes are stopped).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Goal: a node whose disk is full acknowledges nothing it did not persist, stops with a
/// clear error while the other two keep serving, and once space is freed it restarts and
/// catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_without_losing_a_booking_and_it_recovers() {
    // Node 3 keeps its data on a small tmpfs from the start. Its log's segments are
    // preallocated, so appending alone may not need more room; snapshots every 200 entries
    // do, however many bookings share an entry (the leader gathers more of them into one
    // entry the more clients wait).
    let mut cluster = Cluster::configure(Settings {
        snapshot_threshold: 200,
        ..Settings::default()
    })
    .await;
    let data = cluster.data_dir(3);
    let tmpfs = Tmpfs::mount(&data, "16m");
    for id in cluster.ids.clone() {
        cluster.start_node(id);
    }
    cluster.wait_converged(Duration::from_secs(30)).await;
    let token = cluster.prepare(1).await;
    cluster.wait_converged(Duration::from_secs(30)).await;

    // Fill the disk, then book from 16 clients until node 3 needs room it does not have.
    let filler = data.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let mut admin = cluster.client();
    admin.set_token("admin", &token).expect("token");
    admin
        .create_event("big", 100, 100, 10_000)
        .await
        .expect("event");
    let labels = ticket::domain::SeatMap::default_row_labels(100);
    let stop = Arc::new(AtomicBool::new(false));
    let booked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..16u32 {
        let mut client = cluster.client();
        client.set_token("admin", &token).expect("token");
        let (stop, booked, labels) = (stop.clone(), booked.clone(), labels.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..625u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = c * 625 + n;
                let seat = format!("{}{}", labels[(i / 100) as usize], i % 100 + 1);
                if client.reserve("big", &[&seat]).await.is_ok() {
                    booked.lock().expect("lock").push(seat);
                }
            }
        }));
    }
    let exited = cluster.wait_exit(3, Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client");
    }
    let booked = booked.lock().expect("lock").clone();
    let log = cluster.log(3);
    assert_eq!(exited, Some(false), "node 3 on a full disk:\n{log}");
    assert!(
        !booked.is_empty(),
        "the two healthy nodes acknowledged nothing"
    );
    assert!(
        log.contains("No space left on device"),
        "no clear error:\n{log}"
    );

    // Free the space; node 3 restarts and agrees on every seat.
    std::fs::remove_file(&filler).expect("free space");
    cluster.start_node(3);
    cluster.wait_converged(Duration::from_secs(30)).await;
    let expected = admin
        .get_seats("big", Consistency::Linearizable)
        .await
        .expect("seats");
    let mut on3 = cluster.node_client(3);
    on3.set_token("admin", &token).expect("token");
    let seen = on3
        .get_seats("big", Consistency::Stale)
        .await
        .expect("node 3 serves");
    assert_eq!(seen.seats, expected.seats);
    for seat in &booked {
        let s = seen.seats.iter().find(|s| &s.id == seat).expect("seat");
        assert_ne!(s.holder, "", "node 3 lost {seat}");
    }
    for id in cluster.ids.clone() {
        cluster.kill(id);
    }
    drop(tmpfs);
}
