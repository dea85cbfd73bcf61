//! The cluster as a whole: real `ticket node` processes talking gRPC over loopback.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, node_identity, peer_channel, poll_for, Options, TestCluster, BIN};
use ticket::client::{Client, ClientError, Consistency};
use ticket::pb::booking::v1::SeatStatus;
use ticket::pb::raft::v1::raft_client::RaftClient;
use ticket::pb::raft::v1::Empty;
use tonic::Code;

fn seat_status(reply: &ticket::pb::booking::v1::GetSeatsReply, seat: &str) -> SeatStatus {
    let seat = reply
        .seats
        .iter()
        .find(|s| s.id == seat)
        .expect("seat exists");
    SeatStatus::try_from(seat.status).expect("known status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_is_elected_within_two_seconds_and_every_node_agrees() {
    let started = Instant::now();
    let cluster = TestCluster::start(Options::default());
    let leader = cluster.wait_leader(Duration::from_secs(2)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    // `ticket status --json` asked of each node alone gives the same leader and term.
    let mut views = BTreeSet::new();
    for node in &cluster.config.nodes {
        let mut text = format!("[[nodes]]\nid = {}\naddr = \"{}\"\n", node.id, node.addr);
        if cluster.options.tls {
            text.push_str(
                "[tls]\nca = \"tls/ca.pem\"\ncert = \"tls/server.pem\"\nkey = \"tls/server.key\"\n",
            );
        }
        let path = cluster.dir.path().join(format!("only{}.toml", node.id));
        std::fs::write(&path, text).expect("write config");
        let out = std::process::Command::new(BIN)
            .args([
                "--config",
                path.to_str().expect("utf-8 path"),
                "status",
                "--json",
            ])
            .output()
            .expect("run ticket status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(json["leader"], leader);
        // The node asked reports every node of the cluster it belongs to.
        let nodes = json["nodes"].as_array().expect("nodes array");
        assert_eq!(nodes.len(), 3);
        for node in nodes {
            for key in ["id", "addr", "role", "reachable", "applied_index"] {
                assert!(node.get(key).is_some(), "missing {key}");
            }
        }
        views.insert((json["leader"].to_string(), json["term"].to_string()));
    }
    // And the full status names all three.
    let status = cluster.client().cluster_status().await.expect("status");
    assert_eq!(status.nodes.len(), 3);
    assert!(status.nodes.iter().all(|n| n.reachable));
    assert_eq!(
        status.nodes.iter().filter(|n| n.role == "leader").count(),
        1
    );
    assert_eq!(views.len(), 1, "nodes disagree: {views:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_through_a_follower_is_seen_by_every_node_and_tokens_work_anywhere() {
    let cluster = TestCluster::start(Options::default());
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let follower = cluster
        .config
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.admin().await;
    cluster
        .client()
        .add_user("user1", "mysecret", false)
        .await
        .expect("add user1");

    // Log in on the follower only, book through it.
    let mut on_follower = cluster.node_client(follower);
    on_follower
        .login("user1", "mysecret")
        .await
        .expect("login on follower");
    let booked = on_follower
        .reserve("demo", &["S2"])
        .await
        .expect("reserve via follower");
    let booking = booked.booking.expect("booking");
    assert_eq!(booking.seats, vec!["S2"]);

    // The same token works on every node, and each sees the booking as user1's.
    let token = on_follower.token().expect("token").to_string();
    for node in &cluster.config.nodes {
        let mut client = cluster.node_client(node.id);
        client.set_token("user1", &token).expect("set token");
        let seats = client
            .get_seats("demo", Consistency::Linearizable)
            .await
            .expect("seats");
        assert_eq!(
            seat_status(&seats, "S2"),
            SeatStatus::Mine,
            "node {}",
            node.id
        );
        let mine = client.my_bookings().await.expect("my bookings");
        assert_eq!(mine.bookings.len(), 1, "node {}", node.id);
        // A stale read on each node also catches up.
        eventually("stale read shows S2 taken", Duration::from_secs(5), || {
            let client = cluster.node_client(node.id);
            async move {
                client
                    .get_seats("demo", Consistency::Stale)
                    .await
                    .is_ok_and(|s| seat_status(&s, "S2") == SeatStatus::Taken)
            }
        })
        .await;
    }

    // The prototype's demo flow ends with a cancel; the seat is free again everywhere.
    on_follower
        .cancel_seats("demo", &["S2"])
        .await
        .expect("cancel");
    let seats = cluster
        .client()
        .get_seats("demo", Consistency::Linearizable)
        .await
        .expect("seats");
    assert_eq!(seat_status(&seats, "S2"), SeatStatus::Free);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_booking() {
    let mut cluster = TestCluster::start(Options::default());
    let old_leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let admin = cluster.admin().await;
    admin
        .create_event("hall", 40, 50, 2_000)
        .await
        .expect("event");
    let token = admin.token().expect("token").to_string();

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..16u32 {
        let mut client = cluster.client();
        client.set_token("admin", &token).expect("token");
        let acknowledged = acknowledged.clone();
        let times = times.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let rows = ticket::domain::SeatMap::default_row_labels(40);
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 100 {
                // Client c books seats c*100.. of the 2,000: distinct across clients.
                let i = c * 100 + n;
                let seat = format!("{}{}", rows[(i / 50) as usize], i % 50 + 1);
                if client.reserve("hall", &[&seat]).await.is_ok() {
                    acknowledged.lock().expect("lock").push(seat);
                    times.lock().expect("lock").push(Instant::now());
                }
                n += 1;
            }
        }));
    }
    eventually(
        "some bookings before the kill",
        Duration::from_secs(10),
        || {
            let n = acknowledged.lock().expect("lock").len();
            async move { n >= 50 }
        },
    )
    .await;

    let killed_at = Instant::now();
    cluster.kill(old_leader);
    let status = cluster
        .wait_status("a new leader", Duration::from_secs(3), |s| {
            s.leader != 0 && s.leader != old_leader
        })
        .await;
    let new_leader = status.leader;
    assert!(
        killed_at.elapsed() < Duration::from_secs(3),
        "election took {:?}",
        killed_at.elapsed()
    );

    // Booking continues under the new leader.
    let before = acknowledged.lock().expect("lock").len();
    eventually(
        "bookings after the failover",
        Duration::from_secs(10),
        || {
            let n = acknowledged.lock().expect("lock").len();
            async move { n >= before + 50 }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    // The longest time without an acknowledged booking from the kill on: 1.0 s in most runs
    // here, 1.8 s in one of five (`ticket bench`, on a cluster of its own, measures about
    // 0.7 s). 3 s is no stall until a client's 5 s wait runs out, with room for a loaded
    // machine.
    let mut times = times.lock().expect("lock").clone();
    times.sort();
    let gap = times
        .iter()
        .scan(killed_at, |last, &t| {
            let gap = t.saturating_duration_since(*last);
            *last = (*last).max(t);
            Some(gap)
        })
        .max()
        .unwrap_or_default();
    println!("no booking acknowledged for {gap:?} after the leader was killed");
    assert!(gap < Duration::from_secs(3), "bookings stopped for {gap:?}");

    // Every acknowledged booking is on every surviving node...
    let survivors: Vec<u64> = cluster
        .config
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|&id| id != old_leader)
        .collect();
    for &id in &survivors {
        let mut client = cluster.node_client(id);
        client.set_token("admin", &token).expect("token");
        let seats = client
            .get_seats("hall", Consistency::Linearizable)
            .await
            .expect("seats");
        for seat in &acknowledged {
            assert_eq!(
                seat_status(&seats, seat),
                SeatStatus::Mine,
                "node {id} lost {seat}"
            );
        }
    }

    // ...and the killed node, restarted, converges to the same seats.
    cluster.start_node(old_leader);
    let leader_seats = {
        let mut client = cluster.node_client(new_leader);
        client.set_token("admin", &token).expect("token");
        client
            .get_seats("hall", Consistency::Linearizable)
            .await
            .expect("seats")
    };
    let target = leader_seats.applied_index;
    eventually(
        "the restarted node catches up",
        Duration::from_secs(15),
        || {
            let mut client = cluster.node_client(old_leader);
            let token = token.clone();
            let expected = leader_seats.seats.clone();
            async move {
                let _ = client.set_token("admin", &token);
                match client.get_seats("hall", Consistency::Stale).await {
                    Ok(s) => s.applied_index >= target && s.seats == expected,
                    Err(_) => false,
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_and_restarting_every_node_keeps_users_events_and_bookings() {
    let mut cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let admin = cluster.admin().await;
    admin.create_event("gala", 3, 10, 5).await.expect("event");
    let mut user = cluster.customer("ana").await;
    let booked = user.reserve("gala", &["A1", "B2"]).await.expect("reserve");
    let booking_id = booked.booking.expect("booking").id;

    // SIGTERM: each node exits 0 well within 5 s.
    for id in [1, 2, 3] {
        let (status, took) = cluster.terminate(id, Duration::from_secs(5));
        assert!(status.success(), "node {id} exited with {status}");
        assert!(took < Duration::from_secs(5), "node {id} took {took:?}");
    }
    for id in [1, 2, 3] {
        cluster.start_node(id);
    }
    cluster.wait_leader(Duration::from_secs(10)).await;

    // The old token still works (the signing key survived), and so does a fresh login.
    let mine = user.my_bookings().await.expect("bookings with old token");
    assert_eq!(mine.bookings.len(), 1);
    assert_eq!(mine.bookings[0].id, booking_id);
    user.login("ana", "password1")
        .await
        .expect("login after restart");
    let events = user.list_events().await.expect("events");
    let gala = events
        .events
        .iter()
        .find(|e| e.name == "gala")
        .expect("gala survived");
    assert_eq!((gala.taken, gala.free), (2, 28));
    // The restarted cluster did not re-initialize: still one admin, and it can log in.
    let mut again = cluster.client();
    again
        .login("admin", common::ADMIN_PASSWORD)
        .await
        .expect("admin login");
    assert_eq!(
        again
            .add_user("admin", "whatever1", true)
            .await
            .expect_err("exists")
            .code(),
        Code::FailedPrecondition
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_racing_for_one_seat_make_exactly_one_winner() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    cluster.admin().await;
    let mut racers = Vec::new();
    for i in 0..50 {
        racers.push(cluster.customer(&format!("racer{i}")).await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|client| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                client
                    .reserve("demo", &["S7"])
                    .await
                    .map(|_| ())
                    .map_err(|s| s.code())
            })
        })
        .collect();
    let mut wins = 0;
    let mut taken = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => wins += 1,
            Err(Code::FailedPrecondition) => taken += 1,
            Err(code) => panic!("unexpected {code:?}"),
        }
    }
    assert_eq!((wins, taken), (1, 49));
}

/// Goal: a log of few entries but many bytes is snapshotted (and so compacted) by its size:
/// with an entry threshold no run reaches, every node still snapshots once its log has taken
/// `snapshot_log_bytes`, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_is_snapshotted_by_its_size_as_well_as_its_entries() {
    let options = Options {
        snapshot_threshold: 1_000_000,
        snapshot_log_bytes: 64 * 1024,
        ..Options::default()
    };
    let cluster = TestCluster::start(options);
    cluster.wait_leader(Duration::from_secs(5)).await;
    let admin = cluster.admin().await;
    admin
        .create_event("hall", 40, 80, 3_200)
        .await
        .expect("event");
    let token = admin.token().expect("token").to_string();
    let labels = ticket::domain::SeatMap::default_row_labels(40);
    let mut tasks = Vec::new();
    for c in 0..8u32 {
        let mut client = cluster.client();
        client.set_token("admin", &token).expect("token");
        let labels = labels.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..300u32 {
                let i = c * 300 + n;
                let seat = format!("{}{}", labels[(i / 80) as usize], i % 80 + 1);
                client.reserve("hall", &[&seat]).await.expect("reserve");
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    let client = cluster.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client.cluster_status().await.expect("status");
        if status.nodes.len() == 3 && status.nodes.iter().all(|n| n.snapshot_index > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every node snapshotted within 20 s: {:?}\n{}",
            status.nodes,
            cluster.log(1)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in [1, 2, 3] {
        let log = cluster.log(id);
        assert!(
            log.contains("asking for a snapshot: the log has grown"),
            "node {id} gave no reason:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_the_compaction_point_catches_up_by_snapshot() {
    let options = Options {
        snapshot_threshold: 500,
        keep_after_snapshot: 50,
        ..Options::default()
    };
    let mut cluster = TestCluster::start(options);
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let lagging = cluster
        .config
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != leader)
        .expect("follower");
    let admin = cluster.admin().await;
    admin
        .create_event("arena", 100, 60, 6_000)
        .await
        .expect("event");
    let token = admin.token().expect("token").to_string();
    let status = cluster.client().cluster_status().await.expect("status");
    let lagging_last = status
        .nodes
        .iter()
        .find(|n| n.id == lagging)
        .expect("lagging")
        .last_log_index;
    cluster.kill(lagging);

    // 5,000 bookings by 10 concurrent clients while the node is down.
    let labels = ticket::domain::SeatMap::default_row_labels(100);
    let mut tasks = Vec::new();
    for c in 0..10u32 {
        let mut client = cluster.client();
        client.set_token("admin", &token).expect("token");
        let labels = labels.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..500u32 {
                let i = c * 500 + n;
                let seat = format!("{}{}", labels[(i / 60) as usize], i % 60 + 1);
                client.reserve("arena", &[&seat]).await.expect("reserve");
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    // Compaction happened on the nodes that stayed up, past what the stopped node has: it can
    // only catch up by a snapshot. (Concurrent bookings share log entries, so 5,000 bookings
    // take fewer than 5,000 entries.)
    let status = cluster.client().cluster_status().await.expect("status");
    let leader_status = status
        .nodes
        .iter()
        .find(|n| n.id == status.leader)
        .expect("leader");
    assert!(
        leader_status.snapshot_index > lagging_last + 50,
        "the log was not compacted past node {lagging}'s index {lagging_last}: {leader_status:?}"
    );

    cluster.start_node(lagging);
    let target = leader_status.applied_index;
    let mut expected_client = cluster.node_client(status.leader);
    expected_client.set_token("admin", &token).expect("token");
    let expected = expected_client
        .get_seats("arena", Consistency::Linearizable)
        .await
        .expect("seats");
    eventually(
        "the lagging node catches up",
        Duration::from_secs(20),
        || {
            let mut client = cluster.node_client(lagging);
            let token = token.clone();
            async move {
                let _ = client.set_token("admin", &token);
                client
                    .get_seats("arena", Consistency::Stale)
                    .await
                    .is_ok_and(|s| s.applied_index >= target)
            }
        },
    )
    .await;
    let mut client = cluster.node_client(lagging);
    client.set_token("admin", &token).expect("token");
    let caught_up = client
        .get_seats("arena", Consistency::Stale)
        .await
        .expect("seats");
    assert_eq!(caught_up.seats, expected.seats);
    assert_eq!(caught_up.event.expect("event").taken, 5_000);
    assert!(
        cluster.log(lagging).contains("snapshot installed"),
        "{}",
        cluster.log(lagging)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_id_books_once_and_only_the_owner_may_cancel() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    cluster.admin().await;
    let owner = cluster.customer("owner").await;
    let other = cluster.customer("other").await;

    let first = owner
        .reserve_with_id("req-1", "demo", &["S3"])
        .await
        .expect("first");
    let retry = owner
        .reserve_with_id("req-1", "demo", &["S3"])
        .await
        .expect("retry");
    assert_eq!(
        first.booking, retry.booking,
        "the retry returns the first result"
    );
    // Even with other seats, the same id returns the first result and books nothing new.
    let odd = owner
        .reserve_with_id("req-1", "demo", &["S4"])
        .await
        .expect("same id");
    assert_eq!(odd.booking, first.booking);
    let mine = owner.my_bookings().await.expect("bookings");
    assert_eq!(mine.bookings.len(), 1);
    assert_eq!(mine.bookings[0].seats, vec!["S3"]);

    // Someone else may neither cancel the seat nor the booking.
    let booking_id = first.booking.expect("booking").id;
    assert_eq!(
        other
            .cancel_seats("demo", &["S3"])
            .await
            .expect_err("not owner")
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        other
            .cancel_booking(&booking_id)
            .await
            .expect_err("not owner")
            .code(),
        Code::PermissionDenied
    );
    let seats = owner
        .get_seats("demo", Consistency::Linearizable)
        .await
        .expect("seats");
    assert_eq!(seat_status(&seats, "S3"), SeatStatus::Mine);
    // The owner may.
    owner
        .cancel_booking(&booking_id)
        .await
        .expect("owner cancels");
    assert!(owner
        .my_bookings()
        .await
        .expect("bookings")
        .bookings
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_specific_error_and_changes_nothing() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let admin = cluster.admin().await;
    let user = cluster.customer("user1").await;
    user.reserve("demo", &["S1"])
        .await
        .expect("a booking to keep");
    let before_seats = admin
        .get_seats("demo", Consistency::Linearizable)
        .await
        .expect("seats");
    let before_events = admin.list_events().await.expect("events");
    let before_mine = user.my_bookings().await.expect("bookings");

    let long = "x".repeat(10_000);
    // Far past the per-request bound, yet inside the client API's 64 KiB message limit (a
    // larger request is refused before it is decoded: see tests/security.rs).
    let many: Vec<String> = (1..=1_000).map(|i| format!("S{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let cases: Vec<(&str, Result<_, ClientError>, Code)> = vec![
        (
            "unknown event",
            user.reserve("nope", &["S1"]).await.map(|_| ()),
            Code::NotFound,
        ),
        (
            "unknown seat",
            user.reserve("demo", &["S11"]).await.map(|_| ()),
            Code::NotFound,
        ),
        (
            "unknown row",
            user.reserve("demo", &["Q1"]).await.map(|_| ()),
            Code::NotFound,
        ),
        (
            "empty seat id",
            user.reserve("demo", &[""]).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "no seats",
            user.reserve("demo", &[]).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "long seat id",
            user.reserve("demo", &[&long]).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "long event",
            user.reserve(&long, &["S1"]).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "long request id",
            user.reserve_with_id(&long, "demo", &["S5"])
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "empty request id",
            user.reserve_with_id("", "demo", &["S5"]).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "1,000 seats",
            user.reserve("demo", &many).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "duplicate seats",
            user.reserve("demo", &["S5", "s5"]).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "taken seat",
            user.reserve("demo", &["S1", "S6"]).await.map(|_| ()),
            Code::FailedPrecondition,
        ),
        (
            "cancel a free seat",
            user.cancel_seats("demo", &["S9"]).await.map(|_| ()),
            Code::FailedPrecondition,
        ),
        (
            "unknown booking",
            user.cancel_booking("bk-999999").await.map(|_| ()),
            Code::NotFound,
        ),
        (
            "event by a customer",
            user.create_event("mine", 1, 1, 1).await.map(|_| ()),
            Code::PermissionDenied,
        ),
        (
            "admin by a customer",
            user.add_user("boss", "password1", true).await.map(|_| ()),
            Code::PermissionDenied,
        ),
        (
            "short password",
            user.add_user("shorty", "abc", false).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "bad user name",
            user.add_user("a b", "password1", false).await.map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "event too big",
            admin
                .create_event("huge", 10_000, 10_000, 1)
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "event exists",
            admin.create_event("demo", 1, 1, 1).await.map(|_| ()),
            Code::FailedPrecondition,
        ),
    ];
    for (what, result, code) in cases {
        let status = result.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {}", status.message());
        assert!(!status.message().is_empty(), "{what}: no message");
    }

    // Wrong password, forged and missing tokens.
    let mut wrong = cluster.client();
    let status = wrong
        .login("user1", "not-it")
        .await
        .expect_err("wrong password");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = wrong
        .login("nobody", "whatever")
        .await
        .expect_err("unknown user");
    assert_eq!(status.code(), Code::Unauthenticated);
    let token = user.token().expect("token");
    let forged = token.replacen("user1", "admin", 1);
    let mut forger = cluster.client();
    forger.set_token("admin", &forged).expect("set token");
    let status = forger.reserve("demo", &["S8"]).await.expect_err("forged");
    assert_eq!(status.code(), Code::Unauthenticated);
    let anonymous = cluster.client();
    let status = anonymous
        .reserve("demo", &["S8"])
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);

    // Nothing changed.
    assert_eq!(
        admin
            .get_seats("demo", Consistency::Linearizable)
            .await
            .expect("seats")
            .seats,
        before_seats.seats
    );
    assert_eq!(
        admin.list_events().await.expect("events").events,
        before_events.events
    );
    assert_eq!(
        user.my_bookings().await.expect("bookings").bookings,
        before_mine.bookings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let cluster = TestCluster::start(Options {
        nodes: 1,
        token_ttl_secs: 1,
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(5)).await;
    let user = cluster.customer("brief").await;
    user.my_bookings().await.expect("fresh token works");
    eventually("the token expires", Duration::from_secs(5), || {
        let user = &user;
        async move {
            matches!(user.my_bookings().await, Err(s) if s.code() == Code::Unauthenticated && s.message().contains("expired"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_data_directory_is_refused() {
    let mut cluster = TestCluster::start(Options {
        nodes: 1,
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(5)).await;
    let out = cluster
        .node_command(1)
        .output()
        .expect("run a second node 1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    // The first one still serves.
    let client: Client = cluster.node_client(1);
    client.list_events().await.expect("first node still serves");
    let (status, _) = cluster.terminate(1, Duration::from_secs(5));
    assert!(status.success());
}

#[test]
fn a_malformed_cluster_toml_is_refused_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("[[nodes]]\nid = 1\naddr = \"127.0.0.1:1\"\nport = 3\n", ":4:", "port"),
        ("[[nodes]]\nid = 1\naddr = \"127.0.0.1:1\"\n[[nodes]]\nid = 1\naddr = \"127.0.0.1:2\"\n", ":5:", "nodes[1].id"),
        ("[[nodes]]\nid = 1\naddr = \"127.0.0.1:1\"\n[[nodes]]\nid = 2\naddr = \"127.0.0.1:1\"\n", ":6:", "nodes[1].addr"),
        ("[[nodes]]\nid = 1\naddr = \"nowhere\"\n", ":3:", "nodes[0].addr"),
        ("[[nodes]\nid = 1\n", ":1:", ""),
    ];
    for (text, line, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).expect("write");
        let out = std::process::Command::new(BIN)
            .args(["--config", path.to_str().expect("utf-8"), "status"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("bad.toml{line}")),
            "{text}: {stderr}"
        );
        assert!(stderr.contains(&format!("key `{key}")), "{text}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_its_figures_as_json() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    cluster.admin().await;
    let out = tokio::process::Command::new(BIN)
        .args([
            "--config",
            cluster.config_path.to_str().expect("utf-8"),
            "bench",
            "--clients",
            "4",
            "--seconds",
            "1",
            "--json",
        ])
        .env("TICKET_PASSWORD", common::ADMIN_PASSWORD)
        .output()
        .await
        .expect("run bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for key in [
        "bookings_per_sec",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "errors",
        "max_gap_ms",
        "full_rate_after_gap_ms",
        "per_second",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert!(json["bookings_per_sec"].as_f64().expect("number") > 0.0);
    assert_eq!(json["errors"], serde_json::json!({}));
    assert_eq!(json["mode"], "unary");

    // Checkout mode: each booking is a hold and its confirm, and the report says so.
    let out = tokio::process::Command::new(BIN)
        .args([
            "--config",
            cluster.config_path.to_str().expect("utf-8"),
            "bench",
            "--mode",
            "checkout",
            "--clients",
            "4",
            "--seconds",
            "1",
            "--json",
        ])
        .env("TICKET_PASSWORD", common::ADMIN_PASSWORD)
        .output()
        .await
        .expect("run bench --mode checkout");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["mode"], "checkout", "{json}");
    assert_eq!(json["errors"], serde_json::json!({}));
    let holds = json["holds"].as_u64().expect("holds");
    let bookings = json["bookings"].as_u64().expect("bookings");
    assert!(bookings > 0, "{json}");
    // Every booking was a confirmed hold; at most one hold per client was left unconfirmed.
    assert!(holds >= bookings && holds <= bookings + 4, "{json}");
    assert!(json["holds_per_sec"].as_f64().expect("number") > 0.0);
    assert!(json["confirms_per_sec"].as_f64().expect("number") > 0.0);
}

/// Goal: the write path batches. Concurrent reservations share log entries (one append, one
/// fsync, one AppendEntries each), and every client still gets its own outcome back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bookings_share_log_entries_and_each_gets_its_own_outcome() {
    let cluster = TestCluster::start(Options::default());
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let admin = cluster.admin().await;
    admin
        .create_event("batch", 8, 40, 320)
        .await
        .expect("event");
    let token = admin.token().expect("token").to_string();
    let last_log_index = |status: &ticket::pb::booking::v1::ClusterStatusReply| {
        status
            .nodes
            .iter()
            .find(|n| n.id == leader)
            .expect("leader")
            .last_log_index
    };
    let before = last_log_index(&cluster.client().cluster_status().await.expect("status"));

    const CLIENTS: u32 = 64;
    const EACH: u32 = 4;
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS as usize));
    let labels = ticket::domain::SeatMap::default_row_labels(8);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = cluster.client();
        client.set_token("admin", &token).expect("token");
        client.prefer(leader);
        let (start, labels) = (start.clone(), labels.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            for n in 0..EACH {
                let i = c * EACH + n;
                let seat = format!("{}{}", labels[(i / 40) as usize], i % 40 + 1);
                let reply = client.reserve("batch", &[&seat]).await.expect("reserve");
                let booking = reply.booking.expect("booking");
                assert_eq!(
                    booking.seats,
                    vec![seat],
                    "an outcome went to the wrong client"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    let after = last_log_index(&cluster.client().cluster_status().await.expect("status"));
    let bookings = u64::from(CLIENTS * EACH);
    let entries = after - before;
    assert!(
        entries < bookings / 2,
        "{bookings} bookings took {entries} log entries"
    );
    let seats = admin
        .get_seats("batch", Consistency::Linearizable)
        .await
        .expect("seats");
    assert_eq!(seats.event.expect("event").taken as u64, bookings);
}

/// Goal: `grpcurl` and load balancers work against any node: the standard health and
/// reflection services answer on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_grpc_health_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    for node in &cluster.config.nodes {
        let channel = cluster.channel(node.id).await;
        // SERVING once the node knows the leader (tests/operations.rs has the rest).
        eventually("SERVING", Duration::from_secs(10), || {
            let channel = channel.clone();
            async move {
                let check = HealthCheckRequest {
                    service: "booking.v1.BookingService".into(),
                };
                let health = HealthClient::new(channel).check(check).await;
                health.is_ok_and(|h| h.into_inner().status() == ServingStatus::Serving)
            }
        })
        .await;

        let list = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::once(list))
            .await
            .expect("reflection")
            .into_inner();
        let reply = replies.message().await.expect("reply").expect("one reply");
        let Some(MessageResponse::ListServicesResponse(services)) = reply.message_response else {
            panic!("unexpected reflection reply on node {}", node.id);
        };
        let names: Vec<&str> = services.service.iter().map(|s| s.name.as_str()).collect();
        assert!(
            names.contains(&"booking.v1.BookingService"),
            "node {}: {names:?}",
            node.id
        );
        let names = list_services_v1alpha(cluster.channel(node.id).await).await;
        assert!(
            names.iter().any(|n| n == "booking.v1.BookingService"),
            "node {} over v1alpha: {names:?}",
            node.id
        );
        assert!(
            !names.iter().any(|n| n.starts_with("raft")),
            "the peer protocol is not listed: {names:?}"
        );
    }
}

/// The services a node lists to a client that speaks only reflection v1alpha, as Python's
/// grpcio-reflection, evans and older grpcurl builds do.
async fn list_services_v1alpha(channel: tonic::transport::Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;

    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(list))
        .await
        .expect("reflection v1alpha answers")
        .into_inner();
    let reply = replies.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(services)) = reply.message_response else {
        panic!("unexpected v1alpha reflection reply");
    };
    services.service.into_iter().map(|s| s.name).collect()
}

/// openraft 0.9 restarts a node that led before as leader of the same term, and its first
/// read index is then `max(first entry of its term, commit index it remembers)`. The commit
/// index is written without waiting for its fsync, so after kill -9 it may be older than
/// bookings already acknowledged, and a read at that index misses them (found by the
/// restart-all nemesis: a read at index 24 missed bk-1). Here the lost commit index is made
/// certain by removing it from the stopped leader's store; the read index the restarted
/// leader gives a peer must still cover every acknowledged booking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_restarted_without_its_commit_index_gives_no_stale_read_index() {
    let mut cluster = TestCluster::start(Options::default());
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let admin = cluster.admin().await;
    admin.create_event("gala", 2, 5, 10).await.expect("event");
    let user = cluster.customer("ana").await;
    for seat in ["A1", "A2", "A3", "B1"] {
        user.reserve("gala", &[seat]).await.expect("reserve");
    }
    let status = cluster.client().cluster_status().await.expect("status");
    let acknowledged = status
        .nodes
        .iter()
        .map(|n| n.applied_index)
        .max()
        .unwrap_or(0);
    let follower = if leader == 1 { 2 } else { 1 };
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    let committed = cluster
        .dir
        .path()
        .join("data")
        .join(format!("node{leader}"))
        .join("wal")
        .join("committed");
    std::fs::remove_file(&committed).expect("remove the leader's commit index");
    cluster.start_node(leader);
    // Asked while the leader is alone, the read index is fixed before the follower is back to
    // raise the commit index; it is confirmed once the follower answers.
    let (ca, cert, key) = node_identity(&cluster, follower);
    let channel = poll_for(
        "the restarted leader's peer port",
        Duration::from_secs(10),
        || async { peer_channel(&cluster, leader, &ca, &cert, &key).await.ok() },
    )
    .await;
    let ask = tokio::spawn(async move {
        let mut peer = RaftClient::new(channel);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match peer.read_index(Empty {}).await {
                Ok(reply) => return reply.into_inner().index,
                // Not confirmed yet: the follower is still starting.
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(status) => panic!("no read index within 20 s: {status}"),
            }
        }
    });
    cluster.start_node(follower);
    let index = ask.await.expect("read index task");
    assert!(
        index >= acknowledged,
        "read index {index} is behind {acknowledged}, the last acknowledged booking's"
    );
}
