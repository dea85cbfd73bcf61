//! What an operator points at a node: Prometheus metrics on `/metrics`, liveness on
//! `/healthz` and readiness on `/readyz`, plain HTTP on the node's `metrics_listen` (off
//! unless set), and the gRPC health service's status on the client API.
//!
//! The counters and histograms are recorded where the work happens (apply, the log's fsync,
//! AppendEntries, each RPC, logins, throttling, watch streams) through the `metrics` facade;
//! the Raft gauges are read from openraft's metrics when a scrape comes, so an idle node
//! spends nothing on them. Labels take only values this code names (command kinds, outcome
//! kinds, RPC names, node ids of the membership), never anything a client sent, so no one
//! can grow the set of series. No secret, user name or seat reaches a label.
//!
//! It does not push anywhere, and it serves nothing that changes the node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tonic::codegen::http;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use super::Node;
use crate::consensus::NodeId;
use crate::limits;

/// Bucket bounds of every latency histogram, in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS_SECS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of the commands-per-entry histogram.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// How often the gRPC health status is looked at again when nothing else changed.
const HEALTH_TICK: Duration = Duration::from_millis(250);

/// Scrapes rendered at once; past this a scrape is answered 503 at once.
const SCRAPES_AT_ONCE_MAX: usize = 4;

/// Installs the process's metrics recorder; every metric recorded before this is lost, so a
/// node calls it first. A second call (a test starting two nodes in one process) gets the
/// first recorder's handle back.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECS)
        .context("latency buckets")?
        .set_buckets_for_metric(
            Matcher::Full(names::COMMANDS_PER_ENTRY.into()),
            BATCH_BUCKETS,
        )
        .context("batch buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The metrics' names, one place for the code that records them and the tests that read them.
pub mod names {
    pub const TERM: &str = "ticket_raft_term";
    pub const STATE: &str = "ticket_raft_state";
    pub const LEADER: &str = "ticket_raft_leader_id";
    pub const LAST_LOG_INDEX: &str = "ticket_raft_last_log_index";
    pub const COMMITTED_INDEX: &str = "ticket_raft_committed_index";
    pub const APPLIED_INDEX: &str = "ticket_raft_applied_index";
    pub const SNAPSHOT_INDEX: &str = "ticket_raft_snapshot_index";
    pub const SNAPSHOT_BYTES: &str = "ticket_raft_snapshot_bytes";
    pub const FOLLOWER_LAG: &str = "ticket_raft_follower_lag_entries";
    pub const MILLIS_SINCE_QUORUM: &str = "ticket_raft_millis_since_quorum_ack";
    pub const COMMANDS_APPLIED: &str = "ticket_commands_applied_total";
    pub const ENTRIES_PROPOSED: &str = "ticket_log_entries_proposed_total";
    pub const COMMANDS_PER_ENTRY: &str = "ticket_log_commands_per_entry";
    pub const FSYNC: &str = "ticket_log_fsync_seconds";
    pub const APPEND_ENTRIES: &str = "ticket_raft_append_entries_seconds";
    pub const RPC: &str = "ticket_rpc_seconds";
    pub const WATCH_STREAMS: &str = "ticket_watch_streams_open";
    pub const LOGIN_FAILURES: &str = "ticket_login_failures_total";
    pub const THROTTLED: &str = "ticket_throttled_requests_total";
}

/// Each metric's help text, as Prometheus shows it.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    let gauges = [
        (names::TERM, "The node's current Raft term."),
        (names::STATE, "1 for the Raft state the node is in (leader, follower, candidate, learner), 0 for the others."),
        (names::LEADER, "The leader this node knows of; 0 when it knows none."),
        (names::LAST_LOG_INDEX, "The index of the last entry in this node's log."),
        (names::COMMITTED_INDEX, "The highest index this node knows committed."),
        (names::APPLIED_INDEX, "The highest index this node has applied."),
        (names::SNAPSHOT_INDEX, "The last index the node's snapshot covers."),
        (names::SNAPSHOT_BYTES, "The size of the last snapshot this node built or installed, in bytes."),
        (names::FOLLOWER_LAG, "On the leader: entries each follower's log trails the leader's."),
        (names::MILLIS_SINCE_QUORUM, "On the leader: how long ago a quorum last acknowledged it."),
        (names::WATCH_STREAMS, "WatchSeats streams open on this node."),
    ];
    for (name, help) in gauges {
        describe_gauge!(name, help);
    }
    let counters = [
        (
            names::COMMANDS_APPLIED,
            "Commands applied by this node's state machine, by command, outcome and reason.",
        ),
        (
            names::ENTRIES_PROPOSED,
            "Log entries this node proposed as leader.",
        ),
        (
            names::LOGIN_FAILURES,
            "Logins refused for a wrong name or password.",
        ),
        (
            names::THROTTLED,
            "Requests answered RESOURCE_EXHAUSTED, by what was throttled.",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
    }
    describe_histogram!(
        names::COMMANDS_PER_ENTRY,
        "Commands carried by each log entry this node proposed."
    );
    let latencies = [
        (
            names::FSYNC,
            "One write of the Raft log: a transaction and its fsync.",
        ),
        (
            names::APPEND_ENTRIES,
            "AppendEntries to a peer, sent to answered.",
        ),
        (
            names::RPC,
            "Client API requests, received to answered (a stream: to its first reply), by RPC.",
        ),
    ];
    for (name, help) in latencies {
        describe_histogram!(name, Unit::Seconds, help);
    }
}

/// The leader this node can serve through, if any: the one it knows of, unless that is
/// itself and no quorum has acknowledged it for longer than an election timeout (openraft 0.9
/// keeps a leader that lost its quorum a leader; it can commit nothing).
fn serving_leader(
    node: &Node,
    metrics: &openraft::RaftMetrics<NodeId, openraft::BasicNode>,
) -> Option<NodeId> {
    let leader = metrics.current_leader?;
    if leader == node.id {
        let bound = node.config.raft.election_timeout_max_ms;
        let acked = metrics.millis_since_quorum_ack?;
        if acked > bound {
            return None;
        }
    }
    Some(leader)
}

/// Whether the node can serve: it knows a leader (itself with a quorum behind it, or
/// another) and its applied index is within `limits::READY_LAG_ENTRIES_MAX` of its log.
/// Returns why not.
pub fn readiness(node: &Node) -> Result<(), String> {
    let metrics = node.raft.metrics().borrow().clone();
    if let Err(e) = &metrics.running_state {
        return Err(format!("raft stopped: {e}"));
    }
    if serving_leader(node, &metrics).is_none() {
        return Err(format!(
            "node {} knows no leader with a quorum (term {})",
            node.id, metrics.current_term
        ));
    }
    let last = metrics.last_log_index.unwrap_or(0);
    let applied = metrics.last_applied.map_or(0, |l| l.index);
    let lag = last.saturating_sub(applied);
    if lag > limits::READY_LAG_ENTRIES_MAX {
        return Err(format!(
            "node {} has applied {applied} of {last} entries ({lag} behind; ready within {})",
            node.id,
            limits::READY_LAG_ENTRIES_MAX
        ));
    }
    Ok(())
}

/// Keeps the gRPC health service's status for the booking service (and the server as a
/// whole, "") at SERVING while the node knows a leader with a quorum and NOT_SERVING while it
/// does not, so a load balancer sends clients elsewhere. Ends when `stopped` turns true.
pub async fn follow_health<S: tonic::server::NamedService>(
    node: Arc<Node>,
    health: HealthReporter,
    mut stopped: watch::Receiver<bool>,
) {
    let mut metrics = node.raft.metrics();
    // Metrics change with every entry, but not while a lone leader waits for a quorum that
    // is gone: look again on a tick too.
    let mut tick = tokio::time::interval(HEALTH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = None;
    loop {
        let serving = {
            let m = metrics.borrow_and_update();
            serving_leader(&node, &m).is_some()
        };
        if shown != Some(serving) {
            let status = match serving {
                true => ServingStatus::Serving,
                false => ServingStatus::NotServing,
            };
            health.set_service_status("", status).await;
            health.set_service_status(S::NAME, status).await;
            if shown.is_some() {
                tracing::info!(serving, "gRPC health status changed");
            }
            shown = Some(serving);
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
            _ = stopped.wait_for(|&stop| stop) => return,
        }
    }
}

/// Sets the Raft gauges from openraft's metrics and the log's committed index.
fn refresh_raft_gauges(node: &Node) {
    use metrics::gauge;
    use openraft::ServerState;
    let m = node.raft.metrics().borrow().clone();
    gauge!(names::TERM).set(m.current_term as f64);
    for (state, name) in [
        (ServerState::Leader, "leader"),
        (ServerState::Follower, "follower"),
        (ServerState::Candidate, "candidate"),
        (ServerState::Learner, "learner"),
    ] {
        gauge!(names::STATE, "state" => name).set(if m.state == state { 1.0 } else { 0.0 });
    }
    gauge!(names::LEADER).set(m.current_leader.unwrap_or(0) as f64);
    let last = m.last_log_index.unwrap_or(0);
    gauge!(names::LAST_LOG_INDEX).set(last as f64);
    gauge!(names::COMMITTED_INDEX).set(node.log.committed_index() as f64);
    gauge!(names::APPLIED_INDEX).set(m.last_applied.map_or(0, |l| l.index) as f64);
    gauge!(names::SNAPSHOT_INDEX).set(m.snapshot.map_or(0, |l| l.index) as f64);
    if let Some(replication) = &m.replication {
        for (follower, matched) in replication {
            if *follower == node.id {
                continue;
            }
            let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
            gauge!(names::FOLLOWER_LAG, "follower" => follower.to_string()).set(lag as f64);
        }
    }
    if let Some(ms) = m.millis_since_quorum_ack {
        gauge!(names::MILLIS_SINCE_QUORUM).set(ms as f64);
    }
}

struct Ops {
    node: Arc<Node>,
    handle: PrometheusHandle,
    scrapes: Semaphore,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `stopped` turns true.
pub async fn serve(
    node: Arc<Node>,
    handle: PrometheusHandle,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let state = Arc::new(Ops {
        node,
        handle,
        scrapes: Semaphore::new(SCRAPES_AT_ONCE_MAX),
    });
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|&stop| stop).await;
        })
        .await
        .context("serving metrics")
}

async fn metrics_text(State(ops): State<Arc<Ops>>) -> axum::response::Response {
    let Ok(_permit) = ops.scrapes.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many scrapes at once\n",
        )
            .into_response();
    };
    refresh_raft_gauges(&ops.node);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ops.handle.render(),
    )
        .into_response()
}

async fn ready(State(ops): State<Arc<Ops>>) -> (StatusCode, String) {
    match readiness(&ops.node) {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// Binds `addr` for the operator's endpoints.
pub async fn bind(id: NodeId, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("node {id} cannot listen for metrics on {addr}"))
}

/// A tower layer that times each client API request into `ticket_rpc_seconds{rpc}`. The
/// histograms are made once, one per RPC of the service; a path that names no RPC is timed
/// as "unknown", so a stranger cannot add series.
#[derive(Clone)]
pub struct RpcTimer {
    by_path: Arc<HashMap<String, metrics::Histogram>>,
    unknown: metrics::Histogram,
}

impl RpcTimer {
    /// Timers for every RPC of the client API, as `proto/booking/v1/booking.proto` names
    /// them, so a new RPC is timed without a list to keep.
    pub fn for_client_api() -> RpcTimer {
        use crate::pb::booking::v1::booking_service_server::SERVICE_NAME;
        let by_path = rpc_names(crate::pb::BOOKING_PROTO)
            .into_iter()
            .map(|m| {
                let path = format!("/{SERVICE_NAME}/{m}");
                (
                    path,
                    metrics::histogram!(names::RPC, "rpc" => m.to_string()),
                )
            })
            .collect();
        RpcTimer {
            by_path: Arc::new(by_path),
            unknown: metrics::histogram!(names::RPC, "rpc" => "unknown"),
        }
    }
}

impl<S> tower::Layer<S> for RpcTimer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            timer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    timer: RpcTimer,
}

impl<S, B> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let histogram = self
            .timer
            .by_path
            .get(request.uri().path())
            .unwrap_or(&self.timer.unknown)
            .clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            histogram.record(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// The names of the RPCs a proto file declares (`rpc Name(` at the start of a line).
fn rpc_names(proto: &str) -> Vec<&str> {
    proto
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("rpc "))
        .filter_map(|rest| rest.split('(').next())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_client_api_is_timed_by_name() {
        let names = rpc_names(crate::pb::BOOKING_PROTO);
        for rpc in [
            "Login",
            "Reserve",
            "Cancel",
            "GetSeats",
            "WatchSeats",
            "Hold",
            "CheckIn",
        ] {
            assert!(names.contains(&rpc), "{rpc} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains(' ')), "{names:?}");
    }
}
