//! The page's server (`ticket web`) against a cluster of real node processes: the assets,
//! every JSON route with its success and its errors, the live seat stream (server-sent
//! events fed by the `WatchSeats` RPC) and the cluster stream, through failures.

mod common;

use std::time::Duration;

use common::{TestCluster, WebServer};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticket::pb::booking::v1 as pb;
use ticket::pb::booking::v1::SeatStatus;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Sends `body` (if any) to `path` with `token` (if any); returns the status and JSON body.
async fn call(
    web: &WebServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http().request(method, web.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the web server answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (status, value)
}

async fn get(web: &WebServer, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    call(web, reqwest::Method::GET, path, token, None).await
}

async fn post(
    web: &WebServer,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    call(web, reqwest::Method::POST, path, token, Some(body)).await
}

async fn login(web: &WebServer, user: &str, password: &str) -> String {
    let (status, body) = post(
        web,
        "/api/login",
        None,
        json!({ "user": user, "password": password }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().expect("token").to_string()
}

/// An error reply: the status, a code and a message a person can read.
fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str, says: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    let message = got.1["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "expected the message to say {says:?}: {message:?}"
    );
}

fn seat<'a>(seats: &'a Value, id: &str) -> &'a Value {
    seats
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no seat {id} in {seats}"))
}

/// A server-sent-event stream read by hand: `(event name, data as JSON)` at a time.
struct Events {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buffer: String,
}

impl Events {
    async fn open(web: &WebServer, path: &str, token: Option<&str>) -> Events {
        let mut request = reqwest::Client::new().get(web.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Events {
            body: Box::pin(response.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or a panic after `timeout`.
    async fn next(&mut self, timeout: Duration) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let message: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in message.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return (name, data);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("an event within the deadline")
                .expect("the stream stays open")
                .expect("a chunk");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one satisfies `check`.
    async fn until(&mut self, timeout: Duration, check: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (name, data) = self.next(left).await;
            if check(&name, &data) {
                return data;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_whole_with_nothing_from_elsewhere() {
    let cluster = TestCluster::with_user1(Default::default()).await;
    let web = WebServer::start(&cluster);
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let response = http().get(web.url(path)).send().await.expect("asset");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let content_type = headers["content-type"].to_str().unwrap_or_default();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap_or_default();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        let body = response.text().await.expect("body");
        assert!(body.len() > 500, "{path} is a real asset");
        // Nothing is fetched from the internet: no absolute URL in any asset.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} names an outside address"
        );
    }
    let missing = get(&web, "/api/nothing-here", None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "NOT_FOUND", "no such");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_route_answers_and_refuses_as_the_cluster_does() {
    let cluster = TestCluster::with_user1(Default::default()).await;
    cluster.customer("user2").await;
    let web = WebServer::start(&cluster);

    // Login: a token; a wrong password, a malformed body and a bad name are refused.
    let token = login(&web, "user1", "mysecret").await;
    let other = login(&web, "user2", "password1").await;
    let admin = login(&web, "admin", common::ADMIN_PASSWORD).await;
    let wrong = post(
        &web,
        "/api/login",
        None,
        json!({"user": "user1", "password": "nope"}),
    )
    .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED, "{}", wrong.1);
    assert_eq!(wrong.1["code"], "UNAUTHENTICATED");
    let malformed = post(&web, "/api/login", None, json!({"name": "user1"})).await;
    assert_error(
        &malformed,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "send {",
    );
    let bad_name = post(
        &web,
        "/api/login",
        None,
        json!({"user": "no spaces allowed", "password": "x"}),
    )
    .await;
    assert_eq!(bad_name.0, StatusCode::BAD_REQUEST, "{}", bad_name.1);

    // Events and seats, with and without a token.
    let (status, events) = get(&web, "/api/events", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(events["events"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["name"] == "demo" && e["free"] == 10)));
    let (status, seats) = get(&web, "/api/events/demo/seats", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seats["seats"].as_array().map(Vec::len), Some(10));
    assert_eq!(seats["event"]["name"], "demo");
    assert!(seats["applied_index"].as_u64().is_some_and(|i| i > 0));
    let unknown = get(&web, "/api/events/nosuch/seats", None).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND", "nosuch");
    let forged = get(
        &web,
        "/api/events/demo/seats",
        Some("user1.99999999999.AAAA"),
    )
    .await;
    assert_eq!(forged.0, StatusCode::UNAUTHORIZED, "{}", forged.1);

    // Reserve: needs a token; books; a retry with the same request id books once.
    let body = json!({"seats": ["S2", "S3"], "request_id": "page-1"});
    let anonymous = post(&web, "/api/events/demo/reserve", None, body.clone()).await;
    assert_error(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "log in",
    );
    let (status, booked) = post(&web, "/api/events/demo/reserve", Some(&token), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{booked}");
    assert_eq!(booked["booking"]["seats"], json!(["S2", "S3"]));
    let booking = booked["booking"]["id"].as_str().expect("id").to_string();
    let (status, again) = post(&web, "/api/events/demo/reserve", Some(&token), body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again["booking"]["id"],
        booking.as_str(),
        "a retry books once"
    );
    // Taken, unknown seat, malformed seat, too many, unknown event.
    let taken = post(
        &web,
        "/api/events/demo/reserve",
        Some(&other),
        json!({"seats": ["S3"]}),
    )
    .await;
    assert_error(&taken, StatusCode::CONFLICT, "FAILED_PRECONDITION", "S3");
    let no_seat = post(
        &web,
        "/api/events/demo/reserve",
        Some(&other),
        json!({"seats": ["S99"]}),
    )
    .await;
    assert_error(&no_seat, StatusCode::NOT_FOUND, "NOT_FOUND", "S99");
    let no_list = post(
        &web,
        "/api/events/demo/reserve",
        Some(&other),
        json!({"seats": "S4"}),
    )
    .await;
    assert_error(
        &no_list,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "seats",
    );
    let empty = post(
        &web,
        "/api/events/demo/reserve",
        Some(&other),
        json!({"seats": []}),
    )
    .await;
    assert_eq!(empty.0, StatusCode::BAD_REQUEST, "{}", empty.1);
    let nowhere = post(
        &web,
        "/api/events/nosuch/reserve",
        Some(&other),
        json!({"seats": ["S1"]}),
    )
    .await;
    assert_error(&nowhere, StatusCode::NOT_FOUND, "NOT_FOUND", "nosuch");

    // Seats as each caller sees them: mine for the holder, taken without a name for others,
    // the holder's name for an admin.
    let (_, mine) = get(&web, "/api/events/demo/seats", Some(&token)).await;
    assert_eq!(seat(&mine["seats"], "S2")["status"], "mine");
    let (_, theirs) = get(&web, "/api/events/demo/seats", Some(&other)).await;
    assert_eq!(seat(&theirs["seats"], "S2")["status"], "taken");
    assert!(seat(&theirs["seats"], "S2").get("holder").is_none());
    let (_, admins) = get(&web, "/api/events/demo/seats", Some(&admin)).await;
    assert_eq!(seat(&admins["seats"], "S2")["holder"], "user1");

    // My bookings.
    let anonymous = get(&web, "/api/bookings", None).await;
    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED);
    let (status, bookings) = get(&web, "/api/bookings", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bookings["bookings"][0]["id"], booking.as_str());

    // Cancel seats: not someone else's; mine, yes.
    let not_yours = post(
        &web,
        "/api/events/demo/cancel",
        Some(&other),
        json!({"seats": ["S2"]}),
    )
    .await;
    assert_error(
        &not_yours,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "holder",
    );
    let (status, freed) = post(
        &web,
        "/api/events/demo/cancel",
        Some(&token),
        json!({"seats": ["S3"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{freed}");
    assert_eq!(freed["seats"], json!(["S3"]));
    let not_reserved = post(
        &web,
        "/api/events/demo/cancel",
        Some(&token),
        json!({"seats": ["S3"]}),
    )
    .await;
    assert_eq!(not_reserved.0, StatusCode::CONFLICT, "{}", not_reserved.1);

    // Cancel a booking: unknown, someone else's, then mine (with and without a body).
    let unknown = post(
        &web,
        "/api/bookings/bk-9999/cancel",
        Some(&token),
        json!({}),
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND", "bk-9999");
    let path = format!("/api/bookings/{booking}/cancel");
    let theirs = post(&web, &path, Some(&other), json!({})).await;
    assert_eq!(theirs.0, StatusCode::FORBIDDEN, "{}", theirs.1);
    let (status, freed) = call(&web, reqwest::Method::POST, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{freed}");
    assert_eq!(freed["seats"], json!(["S2"]));

    // The cluster: every node, the leader, each node's lag.
    let (status, health) = get(&web, "/api/cluster", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(health["leader"].as_u64().is_some_and(|l| l > 0), "{health}");
    assert_eq!(health["nodes"].as_array().map(Vec::len), Some(3));

    // The assistant, as on /ask.
    let (status, answer) = post(
        &web,
        "/api/ask",
        Some(&token),
        json!({"q": "Is seat S2 available?"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["answer"].as_str().is_some_and(|a| a.contains("S2")),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_stream_shows_changes_live_and_resumes_from_an_index() {
    let cluster = TestCluster::with_user1(Default::default()).await;
    let web = WebServer::start(&cluster);
    let token = login(&web, "user1", "mysecret").await;
    let booker = cluster.customer("user2").await;

    // The first event is the whole map.
    let mut events = Events::open(&web, "/api/events/demo/watch", Some(&token)).await;
    let (name, first) = events.next(Duration::from_secs(10)).await;
    assert_eq!(name, "seats");
    assert_eq!(first["reset"], true);
    assert_eq!(first["seats"].as_array().map(Vec::len), Some(10));
    let start = first["applied_index"].as_u64().expect("index");

    // Someone else books: the watcher sees just that seat turn taken, soon.
    booker.reserve("demo", &["S7"]).await.expect("reserve");
    let change = events
        .until(Duration::from_secs(5), |_, d| {
            d["reset"] == false && !d["seats"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    assert_eq!(
        change["seats"],
        json!([{"id": "S7", "row": "S", "status": "taken", "category": "", "price_minor": 0}])
    );
    let after = change["applied_index"].as_u64().expect("index");
    assert!(after > start);

    // Resuming from the first index brings only what changed since, not the whole map.
    let mut resumed = Events::open(
        &web,
        &format!("/api/events/demo/watch?from={start}"),
        Some(&token),
    )
    .await;
    let (_, caught_up) = resumed.next(Duration::from_secs(10)).await;
    assert_eq!(caught_up["reset"], false);
    assert_eq!(seat(&caught_up["seats"], "S7")["status"], "taken");
    assert_eq!(caught_up["seats"].as_array().map(Vec::len), Some(1));

    // Refusals come before the stream starts, as errors.
    let unknown = get(&web, "/api/events/nosuch/watch", Some(&token)).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND", "nosuch");
    let bad_from = get(&web, "/api/events/demo/watch?from=minus-one", Some(&token)).await;
    assert_eq!(bad_from.0, StatusCode::BAD_REQUEST, "{}", bad_from.1);
}

/// Goal: a watch survives the death of the node that serves it, resuming on another from
/// where it was, and then sees bookings made after the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_watch_moves_to_another_node_when_its_node_dies() {
    let mut cluster = TestCluster::with_user1(Default::default()).await;
    let mut watcher = cluster.client();
    watcher.login("user1", "mysecret").await.expect("login");
    let booker = cluster.customer("user2").await;
    // Watch through a follower, so that killing it leaves a quorum.
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let follower = [1, 2, 3]
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    watcher.prefer(follower);
    let mut watch = watcher.watch_seats("demo", 0);
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("first update in time")
        .expect("first update");
    assert!(first.reset);
    assert_eq!(first.seats.len(), 10);

    cluster.kill(follower);
    booker
        .reserve("demo", &["S4"])
        .await
        .expect("reserve after the kill");
    // Updates come as they are applied; wait (with a deadline) for the one showing S4.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let seen = loop {
        let reply = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("S4 shown taken within the deadline")
            .expect("the watch goes on on another node");
        let taken = SeatStatus::Taken as i32;
        if reply
            .seats
            .iter()
            .any(|s| s.id == "S4" && s.status == taken)
        {
            break reply;
        }
    };
    // The watcher is not the holder: it is told the seat is taken, not by whom.
    assert!(seen.seats.iter().all(|s| s.holder.is_empty()));
    assert!(watch.index() >= seen.applied_index);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_stream_follows_an_election() {
    let mut cluster = TestCluster::with_user1(Default::default()).await;
    let web = WebServer::start(&cluster);
    let mut events = Events::open(&web, "/api/cluster/watch", None).await;
    let first = events
        .until(Duration::from_secs(10), |name, d| {
            name == "cluster" && d["leader"].as_u64().is_some_and(|l| l > 0)
        })
        .await;
    let old = first["leader"].as_u64().expect("leader");
    cluster.kill(old);
    let after = events
        .until(Duration::from_secs(15), |_, d| {
            d["leader"].as_u64().is_some_and(|l| l > 0 && l != old)
        })
        .await;
    let dead = after["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == old))
        .expect("the dead node is listed");
    assert_eq!(dead["reachable"], false, "{after}");
}

/// Goal: with `[web] cert` and `key` the page and its API are served over HTTPS, verified
/// against the cluster's CA; without them, plain text is refused off loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_over_tls_and_plain_text_only_on_loopback() {
    let cluster = TestCluster::with_user1(common::Options::default()).await;
    let tls = cluster.dir.path().join("tls");
    let text = std::fs::read_to_string(&cluster.config_path).expect("config");
    let text = text.replace(
        "[web]\n",
        "[web]\ncert = \"tls/server.pem\"\nkey = \"tls/server.key\"\n",
    );
    let https_config = cluster.dir.path().join("https.toml");
    std::fs::write(&https_config, text).expect("write");
    let web = WebServer::start_with(&https_config);
    assert_eq!(web.scheme, "https");
    let url = web.url("/");
    let ca = std::fs::read(tls.join("ca.pem")).expect("ca");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca pem"))
        .build()
        .expect("client");
    let reply = https
        .post(format!("{url}api/login"))
        .json(&serde_json::json!({ "user": "user1", "password": "mysecret" }))
        .send()
        .await
        .expect("an HTTPS request");
    assert_eq!(reply.status().as_u16(), 200);
    // Plain HTTP to the TLS port gets nothing readable.
    let plain = url.replacen("https://", "http://", 1);
    let refused = reqwest::Client::new()
        .get(format!("{plain}api/events"))
        .send()
        .await;
    assert!(
        refused.map_or(true, |r| !r.status().is_success()),
        "plain text was served"
    );
    drop(web);

    // Off loopback without a certificate: refused, with the reason.
    let out = common::run_ticket(
        &cluster.config_path,
        &["web", "--listen", "0.0.0.0:0"],
        "",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plain text"), "{err}");
}

/// Goal: a throttled request through the page's API is a 429 with Retry-After (the page can
/// wait that long), and a sentence that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_logins_are_429_with_retry_after() {
    let cluster = TestCluster::with_user1(common::Options::default()).await;
    let web = WebServer::start(&cluster);
    let http = reqwest::Client::new();
    let mut last = None;
    for _ in 0..8 {
        let reply = http
            .post(web.url("/api/login"))
            .json(&json!({ "user": "user1", "password": "not-the-password" }))
            .send()
            .await
            .expect("login");
        if reply.status() == StatusCode::TOO_MANY_REQUESTS {
            last = Some(reply);
            break;
        }
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    }
    let reply = last.expect("the sixth failure in a row is throttled");
    let wait: u64 = reply
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=300).contains(&wait), "{wait}");
    let body: Value = reply.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("try again in")),
        "{body}"
    );
}

/// An event with a priced front row and rear rows, made by the first admin.
async fn priced_event(cluster: &TestCluster, name: &str) {
    let category = |name: &str, price_minor, covers: &[&str]| pb::Category {
        name: name.into(),
        price_minor,
        covers: covers.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    cluster
        .admin()
        .await
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

/// Goal: a hold through the page's API is the caller's, shown held by you to them and held
/// to others; listed with the node's clock; extended, confirmed with a payment reference
/// into a booking of the same number; and refused with the cluster's status when it is
/// someone else's, unknown, or confirmed already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_through_the_page_is_held_listed_extended_and_confirmed_by_its_holder_only() {
    let cluster = TestCluster::with_user1(Default::default()).await;
    cluster.customer("user2").await;
    let web = WebServer::start(&cluster);
    let token = login(&web, "user1", "mysecret").await;
    let other = login(&web, "user2", "password1").await;

    // Hold: needs a token; holds the named seats; a retry with the same id holds once.
    let body = json!({"seats": ["S2", "S3"], "request_id": "page-hold-1"});
    let anonymous = post(&web, "/api/events/demo/hold", None, body.clone()).await;
    assert_error(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "log in",
    );
    let (status, held) = post(&web, "/api/events/demo/hold", Some(&token), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held["hold"]["seats"], json!(["S2", "S3"]));
    let hold = held["hold"]["id"].as_str().expect("hold id").to_string();
    assert!(hold.starts_with("hd-"), "{hold}");
    let expires = held["hold"]["expires_at_ms"].as_u64().expect("expiry");
    let (_, again) = post(&web, "/api/events/demo/hold", Some(&token), body).await;
    assert_eq!(again["hold"]["id"], hold.as_str(), "a retry holds once");

    // The holder sees the hold on its seats; someone else only that they are held.
    let (_, mine) = get(&web, "/api/events/demo/seats", Some(&token)).await;
    let s2 = seat(&mine["seats"], "S2");
    assert_eq!(s2["status"], "held_by_you", "{s2}");
    assert_eq!(s2["hold_id"], hold.as_str());
    assert_eq!(s2["hold_expires_at_ms"], expires);
    let (_, theirs) = get(&web, "/api/events/demo/seats", Some(&other)).await;
    let s2 = seat(&theirs["seats"], "S2");
    assert_eq!(s2["status"], "held", "{s2}");
    assert!(
        s2.get("hold_id").is_none() && s2.get("holder").is_none(),
        "{s2}"
    );
    let taken = post(
        &web,
        "/api/events/demo/hold",
        Some(&other),
        json!({"seats": ["S3"]}),
    )
    .await;
    assert_error(&taken, StatusCode::CONFLICT, "FAILED_PRECONDITION", "held");
    let neither = post(&web, "/api/events/demo/hold", Some(&other), json!({})).await;
    assert_eq!(neither.0, StatusCode::BAD_REQUEST, "{}", neither.1);
    let malformed = post(
        &web,
        "/api/events/demo/hold",
        Some(&other),
        json!({"best": "two"}),
    )
    .await;
    assert_error(
        &malformed,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "send {",
    );

    // Holds: the caller's, with the node's clock (before the expiry) to count down against.
    let (status, holds) = get(&web, "/api/holds", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{holds}");
    assert_eq!(holds["holds"][0]["id"], hold.as_str(), "{holds}");
    let now = holds["now_ms"].as_u64().expect("now_ms");
    assert!(now > 0 && now < expires, "now {now}, expiry {expires}");
    let (_, none) = get(&web, "/api/holds", Some(&other)).await;
    assert_eq!(none["holds"], json!([]));
    assert_eq!(
        get(&web, "/api/holds", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Extend: the holder's hold moves on; someone else's and an unknown one are refused.
    let path = |verb: &str| format!("/api/holds/{hold}/{verb}");
    let (status, extended) = post(&web, &path("extend"), Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    assert!(
        extended["hold"]["expires_at_ms"].as_u64() >= Some(expires),
        "{extended}"
    );
    let theirs = post(&web, &path("extend"), Some(&other), json!({})).await;
    assert_error(
        &theirs,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "someone else",
    );
    let unknown = post(&web, "/api/holds/hd-9999/extend", Some(&token), json!({})).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND", "hd-9999");

    // Confirm: not someone else's, not an unknown one; the holder's becomes bk-N, once.
    let theirs = post(&web, &path("confirm"), Some(&other), json!({})).await;
    assert_error(
        &theirs,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "someone else",
    );
    let unknown = post(&web, "/api/holds/hd-9999/confirm", Some(&token), json!({})).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND", "hd-9999");
    let odd = post(&web, &path("confirm"), Some(&token), json!({"pay": 1})).await;
    assert_error(
        &odd,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "or nothing",
    );
    let (status, confirmed) = post(
        &web,
        &path("confirm"),
        Some(&token),
        json!({"payment_ref": "card-4242"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let booking = hold.replacen("hd-", "bk-", 1);
    assert_eq!(confirmed["booking"]["id"], booking.as_str(), "{confirmed}");
    assert_eq!(confirmed["booking"]["payment_ref"], "card-4242");
    assert_eq!(confirmed["booking"]["seats"], json!(["S2", "S3"]));
    let twice = post(&web, &path("confirm"), Some(&token), json!({})).await;
    assert_error(
        &twice,
        StatusCode::CONFLICT,
        "FAILED_PRECONDITION",
        &booking,
    );
    let (_, mine) = get(&web, "/api/events/demo/seats", Some(&token)).await;
    assert_eq!(seat(&mine["seats"], "S2")["status"], "mine");
    let (_, holds) = get(&web, "/api/holds", Some(&token)).await;
    assert_eq!(
        holds["holds"],
        json!([]),
        "a confirmed hold is no longer a hold"
    );
}

/// Goal: release gives a hold's seats back at once and only for its holder; the best N
/// seats of a category are held together at its price; an unknown category is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_releases_holds_and_holds_the_best_seats_of_a_category() {
    let cluster = TestCluster::with_user1(Default::default()).await;
    cluster.customer("user2").await;
    priced_event(&cluster, "gala").await;
    let web = WebServer::start(&cluster);
    let token = login(&web, "user1", "mysecret").await;
    let other = login(&web, "user2", "password1").await;

    // The event says its categories and currency, and each seat its category and price.
    let (_, seats) = get(&web, "/api/events/gala/seats", Some(&token)).await;
    assert_eq!(seats["event"]["currency"], "EUR");
    assert_eq!(seats["event"]["categories"][0]["name"], "front");
    assert_eq!(seat(&seats["seats"], "A1")["category"], "front");
    assert_eq!(seat(&seats["seats"], "B1")["price_minor"], 4_500);

    // The best two rear seats: together, in row B, at the rear price.
    let (status, best) = post(
        &web,
        "/api/events/gala/hold",
        Some(&token),
        json!({"best": 2, "category": "rear"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{best}");
    let seats: Vec<&str> = best["hold"]["seats"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(seats.len(), 2, "{best}");
    assert!(seats.iter().all(|s| s.starts_with('B')), "{best}");
    assert_eq!(best["hold"]["total_minor"], 9_000);
    assert_eq!(best["hold"]["currency"], "EUR");
    let nowhere = post(
        &web,
        "/api/events/gala/hold",
        Some(&token),
        json!({"best": 2, "category": "balcony"}),
    )
    .await;
    assert_error(&nowhere, StatusCode::NOT_FOUND, "NOT_FOUND", "balcony");

    // Release: not someone else's; the holder's, with or without a body; not twice.
    let hold = best["hold"]["id"].as_str().expect("hold id").to_string();
    let path = format!("/api/holds/{hold}/release");
    let theirs = post(&web, &path, Some(&other), json!({})).await;
    assert_error(
        &theirs,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "someone else",
    );
    let (status, freed) = call(&web, reqwest::Method::POST, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{freed}");
    assert_eq!(freed["event"], "gala");
    assert_eq!(freed["seats"], best["hold"]["seats"]);
    let twice = post(&web, &path, Some(&token), json!({})).await;
    assert_error(
        &twice,
        StatusCode::CONFLICT,
        "FAILED_PRECONDITION",
        "released",
    );
    let unknown = post(&web, "/api/holds/hd-9999/release", Some(&token), json!({})).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND", "hd-9999");
    let (_, after) = get(&web, "/api/events/gala/seats", Some(&other)).await;
    assert_eq!(seat(&after["seats"], seats[0])["status"], "free");
}

/// Goal: tickets come one a seat of the caller's confirmed bookings, each with its signed
/// code and that code drawn server-side as an inline SVG QR code; strangers get none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_come_with_their_qr_code_as_inline_svg() {
    let cluster = TestCluster::with_user1(Default::default()).await;
    let web = WebServer::start(&cluster);
    let token = login(&web, "user1", "mysecret").await;
    let (_, empty) = get(&web, "/api/tickets", Some(&token)).await;
    assert_eq!(empty["tickets"], json!([]));
    let (_, held) = post(
        &web,
        "/api/events/demo/hold",
        Some(&token),
        json!({"seats": ["S4"]}),
    )
    .await;
    let hold = held["hold"]["id"].as_str().expect("hold id");
    let (status, _) = post(
        &web,
        &format!("/api/holds/{hold}/confirm"),
        Some(&token),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, tickets) = get(&web, "/api/tickets", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{tickets}");
    let ticket = &tickets["tickets"][0];
    assert_eq!(ticket["seat"], "S4", "{tickets}");
    assert_eq!(ticket["booking_id"], hold.replacen("hd-", "bk-", 1));
    assert!(ticket["code"].as_str().is_some_and(|c| !c.is_empty()));
    let svg = ticket["qr_svg"].as_str().expect("qr_svg");
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
    assert!(svg.contains("viewBox") && svg.contains("<path"), "{svg}");
    assert_eq!(
        get(&web, "/api/tickets", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Goal: a stranger signs up through the page and is logged in at once, as a customer; a
/// taken name, a short password and a malformed body are refused with what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_logs_the_new_customer_in_and_refuses_a_taken_name() {
    let cluster = TestCluster::with_user1(Default::default()).await;
    let web = WebServer::start(&cluster);
    let body = json!({"user": "carol", "password": "carol-secret"});
    let (status, signed_up) = post(&web, "/api/register", None, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{signed_up}");
    assert_eq!(signed_up["user"], "carol");
    assert_eq!(signed_up["role"], "customer");
    let token = signed_up["token"].as_str().expect("a token");
    let (status, _) = get(&web, "/api/bookings", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "the new token works");
    login(&web, "carol", "carol-secret").await;

    let taken = post(&web, "/api/register", None, body).await;
    assert_error(
        &taken,
        StatusCode::CONFLICT,
        "FAILED_PRECONDITION",
        "choose another",
    );
    let also_taken = post(
        &web,
        "/api/register",
        None,
        json!({"user": "user1", "password": "whatever1"}),
    )
    .await;
    assert_error(
        &also_taken,
        StatusCode::CONFLICT,
        "FAILED_PRECONDITION",
        "choose another",
    );
    let short = post(
        &web,
        "/api/register",
        None,
        json!({"user": "dave", "password": "x"}),
    )
    .await;
    assert_error(
        &short,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "too short",
    );
    let malformed = post(&web, "/api/register", None, json!({"name": "dave"})).await;
    assert_error(
        &malformed,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "send {",
    );
}
