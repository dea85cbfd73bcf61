//! The attacks found against the cluster, each tried again against real node processes: a
//! stranger on the peer port, a peer speaking for another node, a poison-pill event, the first
//! admin without the secret, forged and revoked tokens, password guessing, oversized messages,
//! a crowd of anonymous watchers. Each must be refused or harmless, with the state unchanged.

mod common;

use std::time::{Duration, Instant};

use common::{node_identity, peer_channel, poll_for, read, Options, TestCluster, ADMIN_PASSWORD};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Vote;
use ticket::consensus::{encode, TypeConfig};
use ticket::pb::raft::v1::raft_client::RaftClient;
use ticket::pb::raft::v1::Blob;
use tonic::transport::Endpoint;
use tonic::Code;

/// A CA of the attacker's own, with a certificate for "node 2" signed by it.
fn strangers_identity() -> (tempfile::TempDir, String, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    ticket::pki::init_ca(dir.path()).expect("ca");
    let (cert, key) =
        ticket::pki::issue(dir.path(), &ticket::pki::Subject::Node(2), dir.path()).expect("issue");
    let ca = read(&dir.path().join("ca.pem"));
    let (cert, key) = (read(&cert), read(&key));
    (dir, ca, cert, key)
}

fn append_entries(term: u64, leader: u64) -> Blob {
    let rpc = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(term, leader),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    Blob {
        data: encode(&rpc).expect("encode"),
    }
}

async fn term_of(cluster: &TestCluster) -> u64 {
    let status = cluster.client().cluster_status().await.expect("status");
    status.nodes.iter().map(|n| n.term).max().unwrap_or(0)
}

/// Goal: the peer protocol is not served on the client port, nor listed by reflection there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_service_is_not_on_the_client_port() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let channel = cluster.channel(1).await;
    let status = RaftClient::new(channel.clone())
        .forward(Blob {
            data: vec![1, 2, 3],
        })
        .await
        .expect_err("no peer service on the client port");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a service list: {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "booking.v1.BookingService"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("raft.")), "{names:?}");
}

/// Goal: a process without a certificate from the cluster's CA cannot reach the peer
/// service at all, in plain text or with a CA of its own; a forged AppendEntries with a huge
/// term changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_speak_the_peer_protocol() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let term = term_of(&cluster).await;
    let peer_addr = cluster.config.node(1).expect("node").peer_advertise;

    // Plain text to the peer port: no TLS, no service.
    if let Ok(channel) = Endpoint::from_shared(format!("http://{peer_addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
    {
        let result = RaftClient::new(channel)
            .append_entries(append_entries(term + 1000, 99))
            .await;
        assert!(result.is_err(), "plain text reached the peer service");
    }

    // TLS with the attacker's own CA: the node refuses its certificate, and the attacker
    // cannot verify the node's either.
    let (_dir, ca, cert, key) = strangers_identity();
    let refused = match peer_channel(&cluster, 1, &ca, &cert, &key).await {
        Err(_) => true,
        Ok(channel) => RaftClient::new(channel)
            .append_entries(append_entries(term + 1000, 2))
            .await
            .is_err(),
    };
    assert!(refused, "a certificate from another CA was accepted");
    // Trusting the real CA (it is public) but showing its own certificate: still refused,
    // for Raft messages and for a forwarded command that would make an admin.
    let (real_ca, _, _) = node_identity(&cluster, 1);
    let forged_admin = ticket::domain::Command::AddUser {
        request_id: "forged".into(),
        actor: Some("admin".into()),
        name: "mallory".into(),
        role: ticket::domain::Role::Admin,
        password: ticket::domain::auth::hash_password("password1", 10_000),
    };
    let refused = match peer_channel(&cluster, 1, &real_ca, &cert, &key).await {
        Err(_) => true,
        Ok(channel) => {
            let mut raft = RaftClient::new(channel);
            let forward = raft
                .forward(Blob {
                    data: encode(&forged_admin).expect("encode"),
                })
                .await;
            let append = raft.append_entries(append_entries(term + 1000, 2)).await;
            forward.is_err() && append.is_err()
        }
    };
    assert!(refused, "a certificate from another CA was accepted");
    let mut mallory = cluster.client();
    assert!(
        mallory.login("mallory", "password1").await.is_err(),
        "the forged admin exists"
    );

    assert!(
        term_of(&cluster).await < term + 1000,
        "the forged term was believed"
    );
    // Still a working cluster.
    let user = cluster.customer("after-forgery").await;
    user.reserve("demo", &["S1"])
        .await
        .expect("booking still works");
}

/// Goal: a real peer certificate (node 2's) cannot be used to speak for node 3, nor by a
/// node that is not a member, nor to make another node campaign unless it is that node's
/// leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_certificate_cannot_claim_another_node() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let term = term_of(&cluster).await;
    let (ca, cert, key) = node_identity(&cluster, 2);
    let channel = peer_channel(&cluster, 1, &ca, &cert, &key)
        .await
        .expect("node 2's certificate is good");
    let mut raft = RaftClient::new(channel);

    let status = raft
        .append_entries(append_entries(term + 1000, 3))
        .await
        .expect_err("node 2 speaking for node 3");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let vote = VoteRequest::<u64> {
        vote: Vote::new(term + 1000, 3),
        last_log_id: None,
    };
    let status = raft
        .vote(Blob {
            data: encode(&vote).expect("encode"),
        })
        .await
        .expect_err("a vote asked for node 3 by node 2");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        term_of(&cluster).await < term + 1000,
        "the forged term was believed"
    );

    // A certificate the real CA signed for a node that is not a member.
    let pki = cluster.config.data_dir.join("pki");
    let out = tempfile::tempdir().expect("temp dir");
    let (cert9, key9) =
        ticket::pki::issue(&pki, &ticket::pki::Subject::Node(9), out.path()).expect("issue");
    let channel = peer_channel(&cluster, 1, &ca, &read(&cert9), &read(&key9))
        .await
        .expect("TLS holds: the CA signed it");
    let status = RaftClient::new(channel)
        .node_status(ticket::pb::raft::v1::Empty {})
        .await
        .expect_err("node 9 is no member");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // Only a node's own leader may ask it to stand for election (a leader handing over).
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let term = term_of(&cluster).await;
    let mut followers = (1..=3).filter(|&id| id != leader);
    let (asked, asking) = (
        followers.next().expect("two"),
        followers.next().expect("two"),
    );
    let (ca, cert, key) = node_identity(&cluster, asking);
    let channel = peer_channel(&cluster, asked, &ca, &cert, &key)
        .await
        .expect("a member's certificate is good");
    let status = RaftClient::new(channel)
        .campaign(ticket::pb::raft::v1::Empty {})
        .await
        .expect_err("a follower asked another to campaign");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("leader"), "{status:?}");
    assert_eq!(term_of(&cluster).await, term, "an election was started");
}

/// Goal: the poison pill (an event of 2^31 seats a row) is refused before it reaches the
/// log, and every node still serves and restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poison_pill_event_is_refused_and_the_cluster_restarts() {
    let mut cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let admin = cluster.admin().await;
    let status = admin
        .create_event("poison", 2, 1 << 31, 1)
        .await
        .expect_err("2^31 seats a row");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let events = admin.list_events().await.expect("events");
    assert!(!events.events.iter().any(|e| e.name == "poison"));

    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    for id in [1, 2, 3] {
        cluster.start_node(id);
    }
    cluster.wait_leader(Duration::from_secs(10)).await;
    let user = cluster.customer("after-restart").await;
    user.reserve("demo", &["S2"])
        .await
        .expect("booking after restart");
}

/// Goal: the first admin cannot be made by whoever asks first: not through AddUser, not with
/// a wrong setup code; the code from the first leader's log makes it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_needs_the_setup_code() {
    let cluster = TestCluster::start(Options {
        first_admin_password: None,
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(5)).await;
    let client = cluster.client();
    let status = poll_for("an answer", Duration::from_secs(10), || async {
        match client.add_user("mallory", "password1", true).await {
            Err(s) if s.code() == Code::Unavailable => None,
            other => Some(other),
        }
    })
    .await
    .expect_err("an admin with no credential");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = client
        .setup_admin("not-the-code", "mallory", "password1")
        .await
        .expect_err("a wrong setup code");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let mut mallory = cluster.client();
    assert!(mallory.login("mallory", "password1").await.is_err());

    let code = poll_for(
        "the setup code in a log",
        Duration::from_secs(10),
        || async {
            [1, 2, 3].iter().find_map(|&id| {
                let log = cluster.log(id);
                let at = log.find("setup code: ")? + "setup code: ".len();
                Some(
                    log[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect::<String>(),
                )
            })
        },
    )
    .await;
    client
        .setup_admin(&code, "boss", ADMIN_PASSWORD)
        .await
        .expect("the code works");
    let status = client
        .setup_admin(&code, "second", ADMIN_PASSWORD)
        .await
        .expect_err("the code works once");
    assert!(
        matches!(
            status.code(),
            Code::PermissionDenied | Code::FailedPrecondition
        ),
        "{status:?}"
    );
    let mut boss = cluster.client();
    let reply = boss
        .login("boss", ADMIN_PASSWORD)
        .await
        .expect("boss logs in");
    assert_eq!(reply.role, ticket::pb::booking::v1::Role::Admin as i32);
}

/// Goal: a token whose expiry lies past issue time + TTL is refused even with a good
/// signature; logging out, a new password and disabling a user revoke its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_expiry_and_revoked_tokens_are_refused() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let admin = cluster.admin().await;
    let user = cluster.customer("carol").await;
    let token = user.token().expect("token");

    // A local user who read the key file could sign anything; the cap still holds.
    let keys = ticket::pki::read_token_keys(&cluster.config.token_keys_path()).expect("keys");
    let key = keys.last().expect("a key");
    let far = ticket::domain::auth::sign_token(key, "carol", 0, u64::MAX / 2);
    let mut forged = cluster.client();
    forged.set_token("carol", &far).expect("header");
    let status = forged.my_bookings().await.expect_err("a far expiry");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let ghost = ticket::domain::auth::sign_token(key, "ghost", 0, unix_now() + 60);
    let mut ghostly = cluster.client();
    ghostly.set_token("ghost", &ghost).expect("header");
    let status = ghostly
        .my_bookings()
        .await
        .expect_err("a user that does not exist");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Logout revokes every token of the user, the one used included.
    user.my_bookings().await.expect("good before logout");
    let token = token.to_string();
    user.revoke_tokens(None).await.expect("logout");
    let mut stale = cluster.client();
    stale.set_token("carol", &token).expect("header");
    let status = stale.my_bookings().await.expect_err("revoked by logout");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // A new password revokes the tokens of the old one.
    let mut carol = cluster.client();
    carol.login("carol", "password1").await.expect("login");
    carol
        .change_password(None, "password2")
        .await
        .expect("new password");
    let status = carol
        .my_bookings()
        .await
        .expect_err("revoked by the new password");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(carol.login("carol", "password1").await.is_err());
    carol
        .login("carol", "password2")
        .await
        .expect("new password works");

    // Disabled: no token works, no login.
    admin
        .set_user_disabled("carol", true)
        .await
        .expect("disable");
    let status = carol.my_bookings().await.expect_err("disabled");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(carol.login("carol", "password2").await.is_err());
    admin
        .set_user_disabled("carol", false)
        .await
        .expect("enable");
    carol
        .login("carol", "password2")
        .await
        .expect("enabled again");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Goal: 1,000 wrong passwords in a row are throttled (answered at once, without PBKDF2) and
/// the cluster keeps booking meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_passwords_are_throttled_while_bookings_go_on() {
    let cluster = TestCluster::with_user1(Options {
        pbkdf2_iterations: 200_000,
        ..Options::default()
    })
    .await;
    let booker = cluster.customer("booker").await;
    let started = Instant::now();
    let guesses = async {
        let mut throttled = 0;
        let mut wrong = 0;
        for _ in 0..1_000 {
            let mut guesser = cluster.node_client(1);
            match guesser.login("user1", "guess-guess").await {
                Err(s) if s.code() == Code::ResourceExhausted => {
                    assert!(s.message().contains("try again in"), "{}", s.message());
                    throttled += 1;
                }
                Err(s) if s.code() == Code::Unauthenticated => wrong += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        (throttled, wrong)
    };
    let bookings = async {
        let mut worst = Duration::ZERO;
        for i in 1..=10 {
            let at = Instant::now();
            booker
                .reserve("demo", &[&format!("S{i}")])
                .await
                .expect("booking during the guessing");
            worst = worst.max(at.elapsed());
        }
        worst
    };
    let ((throttled, wrong), worst) = tokio::join!(guesses, bookings);
    assert!(wrong <= 10, "{wrong} guesses were checked");
    assert_eq!(throttled + wrong, 1_000);
    assert!(worst < Duration::from_secs(2), "a booking took {worst:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// Goal: a 60 MiB login is refused before the node buffers it, and the node's memory stays
/// small while 16 of them arrive at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_message_is_refused_without_buffering_it() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let rss_before = rss_kib(cluster.pid(1));
    let password = "x".repeat(60 << 20);
    let attempts = (0..16).map(|_| {
        let password = password.clone();
        let mut client = cluster.node_client(1);
        async move { client.login("user1", &password).await }
    });
    for result in futures::future::join_all(attempts).await {
        let status = result.expect_err("60 MiB");
        assert!(
            matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
            "{status:?}"
        );
    }
    let grew = rss_kib(cluster.pid(1)).saturating_sub(rss_before);
    assert!(grew < 200 * 1024, "the node grew by {grew} KiB");
    let user = cluster.customer("still-here").await;
    user.reserve("demo", &["S3"]).await.expect("still serving");
}

fn rss_kib(pid: u32) -> u64 {
    let status = read(std::path::Path::new(&format!("/proc/{pid}/status")));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Goal: 1,100 anonymous watch streams do not keep a logged-in watcher out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_watchers_cannot_crowd_out_a_logged_in_one() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut held = Vec::new();
    let mut refused = 0;
    // Several connections, as an attacker would open, each with many streams.
    for _ in 0..11 {
        let channel = cluster.channel(1).await;
        for _ in 0..100 {
            let mut client =
                ticket::pb::booking::v1::booking_service_client::BookingServiceClient::new(
                    channel.clone(),
                );
            let request = ticket::pb::booking::v1::WatchSeatsRequest {
                event: "demo".into(),
                from_index: 0,
            };
            match client.watch_seats(request).await {
                Ok(stream) => held.push(stream),
                Err(s) if s.code() == Code::ResourceExhausted => refused += 1,
                Err(s) => panic!("unexpected {s:?}"),
            }
        }
    }
    assert!(refused >= 1_000, "only {refused} of 1,100 refused");
    let mut user = cluster.node_client(1);
    user.login("user1", "mysecret").await.expect("login");
    let mut watch = user.watch_seats("demo", 0);
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("first reply in time")
        .expect("a logged-in watcher is served");
    assert!(first.reset && !first.seats.is_empty());
    drop(held);
}

/// Goal: one address cannot hold more than its share of a node's connections: past the cap,
/// a new connection is closed before anything is read, and the places come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_one_address_are_capped() {
    use tokio::io::AsyncReadExt;
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let addr = cluster.addr(1);
    let cap = ticket::limits::CLIENT_CONNECTIONS_PER_ADDRESS_MAX;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // Give the node time to accept them all: one more is then refused.
    let refused = poll_for(
        "a connection past the cap closed",
        Duration::from_secs(10),
        || async {
            let mut extra = tokio::net::TcpStream::connect(addr).await.ok()?;
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(500), extra.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => Some(()),
                _ => None,
            }
        },
    )
    .await;
    let () = refused;
    drop(held);
    let user = poll_for("a client served again", Duration::from_secs(10), || async {
        let mut client = cluster.node_client(1);
        client
            .add_user("after-cap", "password1", false)
            .await
            .ok()?;
        client.login("after-cap", "password1").await.ok()?;
        Some(client)
    })
    .await;
    user.reserve("demo", &["S4"]).await.expect("booking");
}

/// Goal: a stranger learns who leads (clients route by it) but not where the nodes are; a
/// logged-in user sees the addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_addresses_are_for_logged_in_users() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let anonymous = cluster.client().cluster_status().await.expect("status");
    assert_ne!(anonymous.leader, 0);
    assert!(
        anonymous.nodes.iter().all(|n| n.addr.is_empty()),
        "{anonymous:?}"
    );
    let mut user = cluster.client();
    user.login("user1", "mysecret").await.expect("login");
    let known = user.cluster_status().await.expect("status");
    assert!(known.nodes.iter().all(|n| !n.addr.is_empty()), "{known:?}");
}

/// Goal: names are one per person whatever their case, reserved names are refused, a
/// stranger is not told which names exist, and two strangers who chose the same request id
/// each get their own registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_folds_names_scopes_request_ids_and_says_nothing_of_others() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let client = poll_for("registration", Duration::from_secs(10), || async {
        let client = cluster.client();
        client.add_user("Alice", "password1", false).await.ok()?;
        Some(client)
    })
    .await;
    let mut alice = cluster.client();
    alice
        .login("ALICE", "password1")
        .await
        .expect("any case logs in");
    assert_eq!(alice.user(), Some("alice"));
    let status = client
        .add_user("alice", "password2", false)
        .await
        .expect_err("the same name in another case");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("cannot register that name")
            && !status.message().contains("alice"),
        "{}",
        status.message()
    );
    for reserved in ["root", "Admin", "system"] {
        let status = client
            .add_user(reserved, "password1", false)
            .await
            .expect_err(reserved);
        assert!(
            status.message().contains("cannot register that name"),
            "{status:?}"
        );
    }

    // The same request id from two strangers: two users, not one outcome shared.
    use ticket::pb::booking::v1::{booking_service_client::BookingServiceClient, AddUserRequest};
    let mut raw = BookingServiceClient::new(cluster.channel(1).await);
    for name in ["reg-a", "reg-b"] {
        raw.add_user(AddUserRequest {
            request_id: "reg-1".into(),
            name: name.into(),
            password: "password1".into(),
            role: 0,
        })
        .await
        .unwrap_or_else(|s| panic!("{name}: {s:?}"));
    }
    for name in ["reg-a", "reg-b"] {
        let mut user = cluster.client();
        user.login(name, "password1")
            .await
            .expect("each was created");
    }
}

/// Goal: `ticket key rotate` takes effect on running nodes: new tokens name the new key,
/// and a token signed with the old key still works until it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_signs_new_tokens_and_old_ones_stay_good() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut old = cluster.client();
    let old_token = old.login("user1", "mysecret").await.expect("login").token;
    assert_eq!(old_token.split('.').nth(2), Some("1"), "{old_token}");
    let out = common::run_ticket(&cluster.config_path, &["key", "rotate"], "", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_token = poll_for("a token of key 2", Duration::from_secs(10), || async {
        let mut client = cluster.client();
        let token = client.login("user1", "mysecret").await.ok()?.token;
        let version = token.split('.').nth(2)?;
        (version == "2").then_some(token)
    })
    .await;
    let mut new = cluster.client();
    new.set_token("user1", &new_token).expect("header");
    new.my_bookings().await.expect("the new token works");
    old.my_bookings().await.expect("the old token still works");
}

/// Goal: a client will not send passwords in plain text to a node off loopback: it refuses
/// before connecting, and says how to fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_plain_text_off_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("remote.toml");
    // A documentation-only address (TEST-NET-1): nothing is ever sent to it.
    std::fs::write(&path, "[[nodes]]\nid = 1\naddr = \"192.0.2.1:60051\"\n").expect("write");
    let out = common::run_ticket(&path, &["status"], "", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plain text") && err.contains("--insecure"),
        "{err}"
    );
}

/// Goal: one connection cannot keep more than its share of a node busy: a burst past the
/// requests in progress a connection may have is shed at once with RESOURCE_EXHAUSTED,
/// and the rest are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_one_connection_is_shed_not_queued() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut user = cluster.node_client(1);
    user.login("user1", "mysecret").await.expect("login");
    let burst = 250;
    let (served, shed) = poll_for("a request shed", Duration::from_secs(30), || async {
        let calls = (0..burst).map(|_| {
            let user = user.clone();
            async move {
                user.get_seats("demo", ticket::client::Consistency::Linearizable)
                    .await
            }
        });
        let results = futures::future::join_all(calls).await;
        let shed = results
            .iter()
            .filter(|r| matches!(r, Err(s) if s.code() == Code::ResourceExhausted))
            .count();
        let served = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(served + shed, burst, "only served or shed");
        (shed > 0).then_some((served, shed))
    })
    .await;
    assert!(
        served >= ticket::limits::CLIENT_REQUESTS_IN_PROGRESS_PER_CONNECTION_MAX / 2,
        "{served} served, {shed} shed"
    );
}
