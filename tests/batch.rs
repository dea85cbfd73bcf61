//! ReserveBatch against real nodes: many people's bookings in one call, each with its own
//! request id, its own user and its own outcome.

mod common;

use std::time::Duration;

use common::{Options, TestCluster, WebServer};
use ticket::client::Consistency;
use ticket::pb::booking::v1::BatchedReserve;
use tonic::Code;

fn reserve(token: &str, request_id: &str, seat: &str) -> BatchedReserve {
    BatchedReserve {
        request_id: request_id.into(),
        token: token.into(),
        event: "gig".into(),
        seats: vec![seat.into()],
    }
}

/// Goal: one call books for two people at once, each booking in its own name; a taken seat,
/// a bad token and a malformed seat are refused in their own outcomes (with the code their
/// own Reserve would get) while the rest are made; a retried request id gives its first
/// outcome; an empty or oversized batch is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_books_for_many_people_each_with_its_own_outcome() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(10)).await;
    let admin = cluster.admin().await;
    admin.create_event("gig", 2, 10, 10).await.expect("event");
    let ana = cluster.customer("ana").await;
    let ben = cluster.customer("ben").await;
    ben.reserve("gig", &["B1"]).await.expect("ben's first seat");
    let (a, b) = (
        ana.token().expect("token").to_string(),
        ben.token().expect("token").to_string(),
    );

    let gateway = cluster.client();
    let reply = gateway
        .reserve_batch(vec![
            reserve(&a, "a-1", "A1"),
            reserve(&b, "b-1", "A2"),
            reserve(&a, "a-2", "B1"),
            reserve("not-a-token", "x-1", "A3"),
            reserve(&b, "b-2", "Z99"),
            reserve(&a, "a-3", "A4"),
        ])
        .await
        .expect("the batch");
    let outcomes = &reply.outcomes;
    assert_eq!(outcomes.len(), 6, "{reply:?}");
    let booked = |i: usize| outcomes[i].booking.clone().expect("booked");
    assert_eq!(booked(0).user, "ana");
    assert_eq!(booked(0).seats, ["A1"]);
    assert_eq!(booked(1).user, "ben");
    assert_eq!(booked(5).seats, ["A4"]);
    let refused = |i: usize| (Code::from(outcomes[i].code), outcomes[i].message.clone());
    assert_eq!(refused(2).0, Code::FailedPrecondition, "{:?}", refused(2));
    assert!(refused(2).1.contains("B1"), "{:?}", refused(2));
    assert_eq!(refused(3).0, Code::Unauthenticated, "{:?}", refused(3));
    assert_eq!(refused(4).0, Code::NotFound, "{:?}", refused(4));
    assert!(reply.applied_index > 0);

    // What the batch made is what the cluster holds.
    let seats = admin
        .get_seats("gig", Consistency::Linearizable)
        .await
        .expect("seats");
    let holder = |id: &str| {
        seats
            .seats
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.holder.clone())
            .expect("seat")
    };
    assert_eq!(
        (holder("A1"), holder("A2"), holder("A3"), holder("A4")),
        ("ana".into(), "ben".into(), String::new(), "ana".into())
    );

    // A retry: the first outcome, not a second booking or a "taken".
    let again = gateway
        .reserve_batch(vec![reserve(&a, "a-1", "A1")])
        .await
        .expect("the retry");
    assert_eq!(
        again.outcomes[0].booking.as_ref().map(|b| b.id.clone()),
        Some(booked(0).id)
    );

    for size in [0, ticket::limits::BATCH_RESERVES_MAX + 1] {
        let reserves = (0..size)
            .map(|i| reserve(&a, &format!("big-{i}"), "A9"))
            .collect();
        let whole = gateway.reserve_batch(reserves).await.expect_err("refused");
        assert_eq!(whole.code(), Code::InvalidArgument, "{whole}");
    }
}

/// How many calls of client API method `rpc` the cluster's nodes timed, all nodes together.
async fn rpc_calls(cluster: &TestCluster, rpc: &str) -> f64 {
    let mut calls = 0.0;
    for node in &cluster.config.nodes {
        let addr = node.metrics_listen.expect("metrics on");
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("/metrics")
            .text()
            .await
            .expect("body");
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("Prometheus text");
        calls += scrape
            .samples
            .iter()
            .filter(|s| s.metric == "ticket_rpc_seconds")
            .filter(|s| s.labels.get("rpc") == Some(rpc))
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count),
                _ => 0.0,
            })
            .sum::<f64>();
    }
    calls
}

/// Goal: the page's server carries its users' reserves to the cluster in ReserveBatch calls:
/// 48 reserves at once from three people all succeed, each in its own name, in fewer calls
/// than reserves, and not one through the single Reserve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_sends_its_users_bookings_in_batches() {
    let cluster = TestCluster::start(Options {
        metrics: true,
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(10)).await;
    let admin = cluster.admin().await;
    admin.create_event("gig", 4, 16, 16).await.expect("event");
    let web = WebServer::start(&cluster);
    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for name in ["ana", "ben", "cy"] {
        let reply: serde_json::Value = http
            .post(web.url("/api/register"))
            .json(&serde_json::json!({ "user": name, "password": "password1" }))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        tokens.push(reply["token"].as_str().expect("token").to_string());
    }
    let labels = ["A", "B", "C"];
    let posts = (0..48).map(|i| {
        let (http, web) = (http.clone(), &web);
        let who = i % 3;
        let token = tokens[who].clone();
        let seat = format!("{}{}", labels[who], i / 3 + 1);
        async move {
            let reply = http
                .post(web.url("/api/events/gig/reserve"))
                .bearer_auth(token)
                .json(&serde_json::json!({ "seats": [seat] }))
                .send()
                .await
                .expect("reserve");
            let status = reply.status();
            let body: serde_json::Value = reply.json().await.expect("json");
            (status, body, who)
        }
    });
    for (status, body, who) in futures::future::join_all(posts).await {
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        assert_eq!(body["booking"]["user"], ["ana", "ben", "cy"][who], "{body}");
    }
    let batches = rpc_calls(&cluster, "ReserveBatch").await;
    let singles = rpc_calls(&cluster, "Reserve").await;
    println!("48 page reserves went in {batches} ReserveBatch calls");
    assert!((1.0..48.0).contains(&batches), "{batches} batch calls");
    assert_eq!(singles, 0.0, "a page reserve went through Reserve");
}

/// Goal (exactly-once whatever the load): a request of the client library's session is
/// retried after more than `DEDUPE_ENTRIES_MAX` other requests have gone through the cluster
/// (the table of free-form ids has turned over) and still books once, giving its first
/// booking back; a free-form id retried as late acts again (the limit the README states);
/// once the session acknowledges the answer, a replay of the id is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_table_turned_over_books_once() {
    use futures::StreamExt;

    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(10)).await;
    let admin = cluster.admin().await;
    admin.create_event("gig", 2, 10, 10).await.expect("event");
    let ana = cluster.customer("ana").await;
    let bo = cluster.customer("bo").await;

    let id = ana.request_id();
    assert!(id.starts_with('~'), "not a session id: {}", &*id);
    let first = ana
        .reserve_with_id(&id, "gig", &["A1"])
        .await
        .expect("A1")
        .booking
        .expect("a booking");
    ana.reserve_with_id("ana-free-form", "gig", &["A2"])
        .await
        .expect("A2");

    // Bo asks for A1 over and over: each refused, each remembered under its own id.
    let token = bo.token().expect("token").to_string();
    let gateway = cluster.client();
    let others = ticket::limits::DEDUPE_ENTRIES_MAX + 1;
    let calls = (0..others).step_by(128).map(|from| {
        let batch: Vec<BatchedReserve> = (from..(from + 128).min(others))
            .map(|n| reserve(&token, &format!("bo-{n}"), "A1"))
            .collect();
        let gateway = gateway.clone();
        async move { gateway.reserve_batch(batch).await.map(|r| r.outcomes.len()) }
    });
    let carried: usize = futures::stream::iter(calls)
        .buffer_unordered(8)
        .map(|done| done.expect("a batch"))
        .fold(0, |sum, n| async move { sum + n })
        .await;
    assert_eq!(carried, others);

    let again = ana
        .reserve_with_id(&id, "gig", &["A1"])
        .await
        .expect("the retry gets its first answer")
        .booking
        .expect("a booking");
    assert_eq!(again.id, first.id, "the retry booked again");
    let free = ana
        .reserve_with_id("ana-free-form", "gig", &["A2"])
        .await
        .expect_err("a free-form id this old is forgotten, so it acts again");
    assert_eq!(free.code(), Code::FailedPrecondition, "{free}");

    let replay = id.to_string();
    drop(id);
    ana.reserve("gig", &["A3"])
        .await
        .expect("A3, acknowledging A1");
    let refused = ana
        .reserve_with_id(&replay, "gig", &["A1"])
        .await
        .expect_err("an acknowledged id replayed");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    let mine = ana.my_bookings().await.expect("bookings");
    assert_eq!(mine.bookings.len(), 3, "{mine:?}");
}
