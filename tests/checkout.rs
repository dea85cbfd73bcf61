//! Checkout on a real cluster: holds that lapse and come back to watchers, late confirms,
//! confirms across a leader kill, best available with prices, tickets checked in once.

mod common;

use std::time::Duration;

use common::{eventually, Options, TestCluster};
use ticket::client::{Client, Consistency};
use ticket::pb::booking::v1 as pb;
use tonic::Code;

/// A hold request for `seats` of `event` lasting `duration_ms` (0: the cluster's default).
fn hold_of(event: &str, seats: &[&str], duration_ms: u64) -> pb::HoldRequest {
    pb::HoldRequest {
        event: event.into(),
        seats: seats.iter().map(|s| s.to_string()).collect(),
        duration_ms,
        ..Default::default()
    }
}

fn status_of(reply: &pb::GetSeatsReply, seat: &str) -> pb::SeatStatus {
    let seat = reply.seats.iter().find(|s| s.id == seat).expect("seat");
    pb::SeatStatus::try_from(seat.status).expect("known status")
}

/// A client of node `id` that carries `client`'s login.
fn as_on_node(cluster: &TestCluster, client: &Client, id: u64) -> Client {
    let mut on_node = cluster.node_client(id);
    let (Some(user), Some(token)) = (client.user(), client.token()) else {
        panic!("not logged in")
    };
    on_node.set_token(user, token).expect("token");
    on_node
}

/// An event with a priced front row and rear rows, as an admin creates it.
async fn priced_event(admin: &Client, name: &str) {
    let category = |name: &str, price_minor, covers: &[&str]| pb::Category {
        name: name.into(),
        price_minor,
        covers: covers.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    admin
        .create_event_from(pb::CreateEventRequest {
            name: name.into(),
            rows: 3,
            seats_per_row: 6,
            max_seats_per_user: 8,
            categories: vec![
                category("front", 8_000, &["A"]),
                category("rear", 4_500, &["B-C"]),
            ],
            currency: "EUR".into(),
            ..Default::default()
        })
        .await
        .expect("create the priced event");
}

// A hold nobody confirms gives its seat back by itself: a watcher on another node sees it
// free within a second of the expiry, and the late confirm is refused with when it expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_hold_comes_back_to_watchers_and_a_late_confirm_is_refused() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let ana = cluster.customer("ana").await;
    let held = ana
        .hold(hold_of("demo", &["S2"], 1_500))
        .await
        .expect("hold S2")
        .hold
        .expect("a hold");
    assert_eq!(held.seats, ["S2"]);
    assert!(held.id.starts_with("hd-"), "{}", held.id);

    // The holder sees it held by them, with the hold; someone else only that it is held.
    let mine = ana
        .get_seats("demo", Consistency::Linearizable)
        .await
        .expect("seats");
    assert_eq!(status_of(&mine, "S2"), pb::SeatStatus::HeldByYou);
    let seat = mine.seats.iter().find(|s| s.id == "S2").expect("S2");
    assert_eq!(
        (seat.hold_id.as_str(), seat.hold_expires_at_ms),
        (held.id.as_str(), held.expires_at_ms)
    );
    let bo = cluster.customer("bo").await;
    let theirs = bo
        .get_seats("demo", Consistency::Linearizable)
        .await
        .expect("seats");
    assert_eq!(status_of(&theirs, "S2"), pb::SeatStatus::Held);
    let seat = theirs.seats.iter().find(|s| s.id == "S2").expect("S2");
    assert!(
        seat.holder.is_empty() && seat.hold_id.is_empty(),
        "{seat:?}"
    );
    let taken = bo.reserve("demo", &["S2"]).await.expect_err("held by ana");
    assert_eq!(taken.code(), Code::FailedPrecondition);
    assert!(taken.message().contains("held"), "{}", taken.message());

    // A watcher on a node other than the one the hold was made through.
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let other = cluster
        .config
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != leader)
        .expect("a follower");
    let mut watch = as_on_node(&cluster, &bo, other).watch_seats("demo", 0);
    let first = watch.next().await.expect("the first update");
    assert_eq!(
        status_of(
            &pb::GetSeatsReply {
                seats: first.seats,
                ..Default::default()
            },
            "S2"
        ),
        pb::SeatStatus::Held
    );
    let freed_at = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let update = watch.next().await.expect("an update");
            let free = update.seats.iter().any(|s| {
                s.id == "S2" && pb::SeatStatus::try_from(s.status) == Ok(pb::SeatStatus::Free)
            });
            if free {
                return ticket::clock::now_ms();
            }
        }
    })
    .await
    .expect("S2 came back within 10 s");
    let late_by_ms = freed_at.saturating_sub(held.expires_at_ms);
    assert!(
        late_by_ms <= 1_000,
        "the watcher saw S2 free {late_by_ms} ms after the hold's expiry"
    );

    let late = ana
        .confirm_hold(&held.id, "")
        .await
        .expect_err("the hold expired");
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert!(late.message().contains("expired at"), "{}", late.message());
    assert!(ana
        .my_bookings()
        .await
        .expect("bookings")
        .bookings
        .is_empty());
    // The seat is anyone's again.
    bo.reserve("demo", &["S2"]).await.expect("bo reserves S2");
}

// A confirm sent as the leader dies: the hold survives the failover, and the confirm retried
// with its request id books the seats once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_retried_across_a_leader_kill_books_once() {
    let mut cluster = TestCluster::with_user1(Options::default()).await;
    let ana = cluster.customer("ana").await;
    let held = ana
        .hold(hold_of("demo", &["S4", "S5"], 0))
        .await
        .expect("hold")
        .hold
        .expect("a hold");
    // The default length from cluster.toml: ten minutes.
    assert_eq!(held.expires_at_ms - held.created_at_ms, 600_000);
    // The confirm goes to the leader, which is killed while it is in flight: its fate is
    // unknown to the client, and the retry through the other nodes must book exactly once.
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let on_leader = as_on_node(&cluster, &ana, leader);
    let request_id = "confirm-across-the-kill";
    let hold_id = held.id.clone();
    let in_flight = tokio::spawn(async move {
        on_leader
            .confirm_hold_with_id(request_id, &hold_id, "pay-1")
            .await
    });
    cluster.kill(leader);
    let in_flight = tokio::time::timeout(Duration::from_secs(60), in_flight)
        .await
        .expect("the confirm sent to the killed leader ends")
        .expect("task");
    let first = ana
        .confirm_hold_with_id(request_id, &held.id, "pay-1")
        .await
        .expect("confirmed after the failover");
    if let Ok(acknowledged) = in_flight {
        assert_eq!(
            acknowledged.booking, first.booking,
            "one outcome for one request id"
        );
    }
    let again = ana
        .confirm_hold_with_id(request_id, &held.id, "pay-1")
        .await
        .expect("the retry gets the first outcome");
    let (first, again) = (
        first.booking.expect("booking"),
        again.booking.expect("booking"),
    );
    assert_eq!(first, again);
    assert_eq!(first.id, held.id.replace("hd-", "bk-"));
    assert_eq!(first.payment_ref, "pay-1");
    let bookings = ana.my_bookings().await.expect("bookings").bookings;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    assert_eq!(bookings[0].seats, ["S4", "S5"]);
    assert!(ana.my_holds().await.expect("holds").holds.is_empty());
}

// Best available in a priced event: the category asked for, no seat stranded, the total of
// the seats' prices; seats show their category and price.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_available_holds_priced_seats_together_without_an_orphan() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let admin = cluster.admin().await;
    priced_event(&admin, "hall").await;
    let ana = cluster.customer("ana").await;
    let best = |count, category: &str| pb::HoldRequest {
        event: "hall".into(),
        best_count: count,
        category: category.into(),
        ..Default::default()
    };
    let front = ana
        .hold(best(2, ""))
        .await
        .expect("best 2")
        .hold
        .expect("hold");
    assert_eq!(front.seats, ["A3", "A4"]);
    assert_eq!(
        (front.total_minor, front.currency.as_str()),
        (16_000, "EUR")
    );
    // Four of six in row B: the centre (B2-B5) would strand B1 and B6.
    let rear = ana
        .hold(best(4, "rear"))
        .await
        .expect("best 4 rear")
        .hold
        .expect("hold");
    assert_eq!(rear.seats, ["B1", "B2", "B3", "B4"]);
    assert_eq!(rear.total_minor, 18_000);
    let seats = ana
        .get_seats("hall", Consistency::Linearizable)
        .await
        .expect("seats");
    let a1 = seats.seats.iter().find(|s| s.id == "A1").expect("A1");
    assert_eq!((a1.category.as_str(), a1.price_minor), ("front", 8_000));
    let event = seats.event.expect("event");
    assert_eq!(event.categories.len(), 2);
    assert_eq!(event.currency, "EUR");
    let booking = ana
        .confirm_hold(&rear.id, "")
        .await
        .expect("confirm")
        .booking
        .expect("booking");
    assert_eq!(
        (booking.total_minor, booking.currency.as_str()),
        (18_000, "EUR")
    );
    let none = ana.hold(best(7, "")).await.expect_err("no 7 together");
    assert_eq!(none.code(), Code::FailedPrecondition);
    assert!(
        none.message().contains("no 7 seats together"),
        "{}",
        none.message()
    );
    let unknown = ana
        .hold(best(1, "balcony"))
        .await
        .expect_err("no such category");
    assert_eq!(unknown.code(), Code::NotFound);
}

// A ticket is checked in once: a second scan through another node is refused with when and
// by whom; a forged code and a customer at the door are refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_checks_in_once_and_a_second_scan_on_another_node_is_refused() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let admin = cluster.admin().await;
    admin
        .add_user_with_role("door1", "door-password", pb::Role::Door)
        .await
        .expect("door staff");
    let mut door = cluster.node_client(1);
    door.login("door1", "door-password")
        .await
        .expect("door login");
    let ana = cluster.customer("ana").await;
    let held = ana
        .hold(hold_of("demo", &["S7"], 0))
        .await
        .expect("hold")
        .hold
        .expect("hold");
    ana.confirm_hold(&held.id, "").await.expect("confirm");
    let tickets = ana.my_tickets().await.expect("tickets").tickets;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let code = tickets[0].code.clone();
    assert_eq!(tickets[0].seat, "S7");

    let refused = ana
        .check_in(&code)
        .await
        .expect_err("a customer is not door staff");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let done = door.check_in(&code).await.expect("first scan");
    assert_eq!((done.seat.as_str(), done.by.as_str()), ("S7", "door1"));
    let door_on_2 = as_on_node(&cluster, &door, 2);
    let second = door_on_2.check_in(&code).await.expect_err("second scan");
    assert_eq!(second.code(), Code::FailedPrecondition);
    assert!(
        second.message().contains("checked in already") && second.message().contains("by door1"),
        "{}",
        second.message()
    );
    let used = ana.my_tickets().await.expect("tickets").tickets;
    assert_eq!(used[0].checked_in_by, "door1");

    let mut forged = code.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let bad = door.check_in(&forged).await.expect_err("forged");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let other_seat = code.replace(".S7.", ".S8.");
    let bad = door
        .check_in(&other_seat)
        .await
        .expect_err("another seat's code");
    assert_eq!(bad.code(), Code::InvalidArgument);
    // A cancelled booking's tickets are void.
    let booking = held.id.replace("hd-", "bk-");
    ana.cancel_booking(&booking).await.expect("cancel");
    let held = ana
        .hold(hold_of("demo", &["S9"], 0))
        .await
        .expect("hold")
        .hold
        .expect("hold");
    ana.confirm_hold(&held.id, "").await.expect("confirm");
    let code = ana.my_tickets().await.expect("tickets").tickets[0]
        .code
        .clone();
    ana.cancel_booking(&held.id.replace("hd-", "bk-"))
        .await
        .expect("cancel");
    let void = door.check_in(&code).await.expect_err("void");
    assert_eq!(void.code(), Code::FailedPrecondition);
    assert!(void.message().contains("void"), "{}", void.message());
}

// Every checkout command with bad input is refused with its code and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checkout_requests_are_refused_with_their_code_and_change_nothing() {
    let cluster = TestCluster::with_user1(Options {
        hold_ms: 60_000,
        hold_max_ms: 120_000,
        ..Options::default()
    })
    .await;
    let ana = cluster.customer("ana").await;
    let bo = cluster.customer("bo").await;
    let held = ana
        .hold(hold_of("demo", &["S1"], 0))
        .await
        .expect("hold")
        .hold
        .expect("hold");
    let before = ana
        .get_seats("demo", Consistency::Linearizable)
        .await
        .expect("seats")
        .seats;
    let best = |count| pb::HoldRequest {
        best_count: count,
        ..Default::default()
    };
    let cases: Vec<(&str, Code, Result<(), ticket::client::ClientError>)> = vec![
        (
            "an unknown hold",
            Code::NotFound,
            ana.confirm_hold("hd-999", "").await.map(drop),
        ),
        (
            "someone else's hold",
            Code::PermissionDenied,
            bo.confirm_hold(&held.id, "").await.map(drop),
        ),
        (
            "someone else's release",
            Code::PermissionDenied,
            bo.release_hold(&held.id).await.map(drop),
        ),
        (
            "not a hold id",
            Code::InvalidArgument,
            ana.release_hold("hold-one").await.map(drop),
        ),
        (
            "an unknown hold extended",
            Code::NotFound,
            ana.extend_hold("hd-999", 1_000).await.map(drop),
        ),
        (
            "someone else's hold extended",
            Code::PermissionDenied,
            bo.extend_hold(&held.id, 1_000).await.map(drop),
        ),
        (
            "an unknown hold released",
            Code::NotFound,
            ana.release_hold("hd-999").await.map(drop),
        ),
        (
            "an unknown event",
            Code::NotFound,
            ana.hold(hold_of("nowhere", &["S3"], 0)).await.map(drop),
        ),
        (
            "a hold too long",
            Code::InvalidArgument,
            ana.hold(hold_of("demo", &["S3"], 3_600_000))
                .await
                .map(drop),
        ),
        (
            "a count of 0",
            Code::InvalidArgument,
            ana.hold(best(0)).await.map(drop),
        ),
        (
            "a count over the limit",
            Code::InvalidArgument,
            ana.hold(best(17)).await.map(drop),
        ),
        (
            "seats and a count",
            Code::InvalidArgument,
            ana.hold(pb::HoldRequest {
                best_count: 2,
                ..hold_of("demo", &["S3"], 0)
            })
            .await
            .map(drop),
        ),
        (
            "a held seat",
            Code::FailedPrecondition,
            bo.hold(hold_of("demo", &["S1"], 0)).await.map(drop),
        ),
        (
            "an unknown seat",
            Code::NotFound,
            ana.hold(hold_of("demo", &["S11"], 0)).await.map(drop),
        ),
        (
            "a bad payment reference",
            Code::InvalidArgument,
            ana.confirm_hold(&held.id, "has spaces").await.map(drop),
        ),
        (
            "not a ticket",
            Code::InvalidArgument,
            ana.check_in("tk1.demo.S1.1.1.xyz").await.map(drop),
        ),
    ];
    for (what, code, result) in cases {
        let error = result.expect_err(what);
        assert_eq!(error.code(), code, "{what}: {error}");
        assert!(!error.message().is_empty(), "{what}");
    }
    let after = ana
        .get_seats("demo", Consistency::Linearizable)
        .await
        .expect("seats")
        .seats;
    assert_eq!(before, after, "a refusal changed the seats");
    let holds = ana.my_holds().await.expect("holds").holds;
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].expires_at_ms, held.expires_at_ms);
    // Extending goes as far as the maximum and no further.
    let extended = ana
        .extend_hold(&held.id, 600_000)
        .await
        .expect("extend")
        .hold
        .expect("hold");
    assert_eq!(extended.expires_at_ms, held.latest_expiry_ms);
    let at_max = ana
        .extend_hold(&held.id, 0)
        .await
        .expect_err("at its maximum");
    assert_eq!(at_max.code(), Code::FailedPrecondition);
    // Released, the seat is free and the hold is over.
    ana.release_hold(&held.id).await.expect("release");
    eventually("S1 free", Duration::from_secs(5), || {
        let ana = ana.clone();
        async move {
            let seats = ana.get_seats("demo", Consistency::Linearizable).await;
            seats.is_ok_and(|s| status_of(&s, "S1") == pb::SeatStatus::Free)
        }
    })
    .await;
    let gone = ana.confirm_hold(&held.id, "").await.expect_err("released");
    assert_eq!(gone.code(), Code::FailedPrecondition);
}
