//! Group commit at the Raft level: concurrent writes share one log entry.
//!
//! openraft 0.9 appends each `client_write` on its own and waits for its fsync before it
//! takes the next, so one command per entry caps a leader at one command per fsync. Here the
//! commands that reach this node while earlier entries are in flight are gathered into the
//! next entry (up to `COMMANDS_PER_ENTRY_MAX`): one append, one fsync and one AppendEntries
//! for all of them, and each gets its own outcome back. At most `ENTRIES_IN_FLIGHT_MAX`
//! entries are in flight, so the next one fills while the disk and the followers work; but
//! an entry of fewer than `COMMANDS_TO_PIPELINE_MIN` commands waits until none is, because
//! an entry's fixed cost (fsyncs, AppendEntries, a pass of every Raft core) would then be
//! shared by too few. Under many one-booking clients that made entries of about 30 commands
//! instead of 10, and 1.09-1.13 times the bookings a second; ReserveBatch calls, whose entries
//! fill at once, still keep four in flight.
//!
//! What it does not do: decide who leads. A node that is not the leader answers every command
//! of the entry with `NotLeader`, and `Node::write` forwards them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::consensus::{NodeId, Raft};
use crate::domain::{Command, Outcome};
use crate::limits;

/// What became of one proposed command (or of a read-index request): committed and applied
/// with its outcome, refused because this node does not lead (and who does, if known), or
/// not done for now. It is also a write's result as a follower receives it from the leader
/// over the Forward RPC (encoded with postcard: variants are told apart by position, so
/// their order is part of the peer protocol).
#[derive(Serialize, Deserialize, Debug)]
pub enum ProposeOutcome {
    Done { outcome: Outcome, index: u64 },
    NotLeader(Option<NodeId>),
    Unavailable(String),
}

struct Pending {
    command: Command,
    reply: oneshot::Sender<ProposeOutcome>,
}

/// Cheap to clone; clones feed the same queue.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
    in_flight: Arc<Semaphore>,
}

impl Proposer {
    /// Starts the task that gathers commands into entries and proposes them to `raft`.
    pub fn start(raft: Raft) -> Proposer {
        let (queue, pending) = mpsc::channel(limits::COMMANDS_QUEUED_MAX);
        let in_flight = Arc::new(Semaphore::new(limits::ENTRIES_IN_FLIGHT_MAX));
        tokio::spawn(gather(raft, pending, in_flight.clone()));
        Proposer { queue, in_flight }
    }

    /// Stops proposing: resolves once every entry in flight has been answered, and while the
    /// permit it returns is held nothing more is proposed from this node (commands queue up,
    /// then go on as usual, forwarded if this node no longer leads). An entry already
    /// gathering when it is called is proposed and answered first. Used to hand leadership
    /// over with no entry that the successor lacks.
    pub async fn pause(&self) -> Option<OwnedSemaphorePermit> {
        let all = u32::try_from(limits::ENTRIES_IN_FLIGHT_MAX).ok()?;
        self.in_flight.clone().acquire_many_owned(all).await.ok()
    }

    /// Proposes one command on this node and waits for its outcome once applied.
    pub async fn propose(&self, command: Command) -> ProposeOutcome {
        let (reply, outcome) = oneshot::channel();
        let stopped = || ProposeOutcome::Unavailable("this node is shutting down".into());
        if self.queue.send(Pending { command, reply }).await.is_err() {
            return stopped();
        }
        outcome.await.unwrap_or_else(|_| stopped())
    }
}

/// The entries this node has proposed and not yet seen answered.
#[derive(Default)]
struct InFlight {
    entries: AtomicUsize,
    answered: Notify,
}

/// An entry's place in flight: its permit, and its count in [`InFlight`], both given back when
/// it is answered (or its task ends any other way).
struct Place {
    _permit: OwnedSemaphorePermit,
    in_flight: Arc<InFlight>,
}

impl Place {
    fn take(permit: OwnedSemaphorePermit, in_flight: &Arc<InFlight>) -> Place {
        in_flight.entries.fetch_add(1, Ordering::AcqRel);
        Place {
            _permit: permit,
            in_flight: in_flight.clone(),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // Counted down before the wake-up: the gatherer woken must see the entry gone.
        self.in_flight.entries.fetch_sub(1, Ordering::AcqRel);
        self.in_flight.answered.notify_one();
    }
}

async fn gather(raft: Raft, mut pending: mpsc::Receiver<Pending>, places: Arc<Semaphore>) {
    let in_flight = Arc::new(InFlight::default());
    while let Some(first) = pending.recv().await {
        // Wait for a place first: whatever arrives meanwhile joins this entry.
        let Ok(permit) = places.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(limits::COMMANDS_PER_ENTRY_MAX);
        batch.push(first);
        gather_until_ready(&mut batch, &mut pending, &in_flight).await;
        metrics::counter!("ticket_log_entries_proposed_total").increment(1);
        metrics::histogram!("ticket_log_commands_per_entry").record(batch.len() as f64);
        let place = Place::take(permit, &in_flight);
        tokio::spawn(propose_entry(raft.clone(), batch, place));
    }
}

/// Adds what is queued to `batch` until it may be proposed (see [`ready`]). It does not wake
/// for each command that arrives, only when an entry is answered: an entry that passes the
/// pipelining size while it waits goes at the next answer, not at once.
async fn gather_until_ready(
    batch: &mut Vec<Pending>,
    pending: &mut mpsc::Receiver<Pending>,
    in_flight: &InFlight,
) {
    loop {
        take_queued(batch, pending);
        if ready(batch.len(), in_flight.entries.load(Ordering::Acquire)) {
            return;
        }
        // Small, with entries in flight: gather until one of them is answered. An answer
        // between the load above and this wait is not lost (`notify_one` keeps it), and a
        // stale one only makes one more pass.
        in_flight.answered.notified().await;
    }
}

/// Whether an entry of `commands` may be proposed now, with `in_flight` others unanswered
/// (the caller holds a place for it): at once when nothing is in flight, or when it is large
/// enough to be worth its fixed cost.
fn ready(commands: usize, in_flight: usize) -> bool {
    in_flight == 0 || commands >= limits::COMMANDS_TO_PIPELINE_MIN
}

/// Moves what is queued into `batch`, up to an entry's worth.
fn take_queued(batch: &mut Vec<Pending>, pending: &mut mpsc::Receiver<Pending>) {
    while batch.len() < limits::COMMANDS_PER_ENTRY_MAX {
        match pending.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
}

/// Proposes one entry of `batch` and answers each of its commands.
async fn propose_entry(raft: Raft, batch: Vec<Pending>, place: Place) {
    let (mut commands, replies): (Vec<Command>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    // Log time is the proposing leader's clock (the state keeps it from going back): one
    // reading for the whole entry, whichever node took the request.
    let now = crate::clock::now_ms();
    for command in &mut commands {
        command.stamp(now);
    }
    // Bounded: openraft 0.9 can leave a write unanswered for good (a former leader whose
    // uncommitted entries a snapshot install replaced), and an entry that never answers would
    // hold its in-flight place, and so the proposer, for ever. Its fate is unknown then, as
    // after any timeout: the client retries with its request id.
    let wait = std::time::Duration::from_millis(limits::QUORUM_WAIT_MS);
    let write = tokio::time::timeout(wait, raft.client_write(commands));
    // A leader that steps down (removed from the membership, or a higher term seen) may leave
    // its entries in flight unanswered: say so at once rather than at the timeout, so that the
    // clients retry, with their request ids, elsewhere.
    let result = tokio::select! {
        result = write => result.map_err(|_| "the leader did not answer in time"),
        () = stopped_leading(&raft) => Err("this node stopped leading"),
    };
    drop(place);
    match result {
        Ok(result) => answer(result, replies),
        Err(what) => {
            tracing::warn!(commands = replies.len(), "an entry got no answer: {what}");
            for reply in replies {
                let why = format!("{what}; the write may or may not have happened");
                let _ = reply.send(ProposeOutcome::Unavailable(why));
            }
        }
    }
}

/// Resolves once this node, leading now, no longer does; never if it does not lead now (a
/// write there is answered with the leader to go to).
async fn stopped_leading(raft: &Raft) {
    let mut metrics = raft.metrics();
    let leading = |m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>| {
        (m.state == openraft::ServerState::Leader).then_some(m.current_term)
    };
    let Some(term) = leading(&metrics.borrow_and_update()) else {
        return std::future::pending().await;
    };
    while metrics.changed().await.is_ok() {
        if leading(&metrics.borrow_and_update()) != Some(term) {
            return;
        }
    }
    std::future::pending().await
}

type WriteResult = Result<
    openraft::raft::ClientWriteResponse<crate::consensus::TypeConfig>,
    RaftError<u64, ClientWriteError<u64, openraft::BasicNode>>,
>;

/// Hands each command of an entry its own outcome.
fn answer(result: WriteResult, replies: Vec<oneshot::Sender<ProposeOutcome>>) {
    match result {
        Ok(written) => {
            let index = written.log_id.index;
            let mut outcomes = written.data.into_iter();
            for reply in replies {
                // apply answers every command of an entry; a missing outcome is a bug, and
                // saying "unavailable" lets the client retry with its request id.
                let proposed = match outcomes.next() {
                    Some(outcome) => ProposeOutcome::Done { outcome, index },
                    None => ProposeOutcome::Unavailable("the entry came back short".into()),
                };
                let _ = reply.send(proposed);
            }
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
            for reply in replies {
                let _ = reply.send(ProposeOutcome::NotLeader(to.leader_id));
            }
        }
        Err(e) => {
            let why = e.to_string();
            for reply in replies {
                let _ = reply.send(ProposeOutcome::Unavailable(why.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a lone command goes at once (one client's latency is not traded away), a small
    /// entry waits while others are in flight, and a large one pipelines.
    #[test]
    fn small_entries_wait_for_those_in_flight_and_large_ones_pipeline() {
        assert!(ready(1, 0));
        assert!(!ready(1, 1));
        assert!(!ready(limits::COMMANDS_TO_PIPELINE_MIN - 1, 3));
        assert!(ready(limits::COMMANDS_TO_PIPELINE_MIN, 3));
        assert!(ready(limits::COMMANDS_PER_ENTRY_MAX, 1));
    }

    fn command(n: usize) -> (Pending, oneshot::Receiver<ProposeOutcome>) {
        let (reply, answer) = oneshot::channel();
        let command = Command::RevokeTokens {
            request_id: format!("r{n}"),
            actor: "admin".into(),
            user: format!("user{n}"),
        };
        (Pending { command, reply }, answer)
    }

    fn in_flight_one() -> (Arc<InFlight>, Place) {
        let in_flight = Arc::new(InFlight::default());
        let permit = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a place");
        let place = Place::take(permit, &in_flight);
        (in_flight, place)
    }

    /// Polls `future` once, as the runtime would, without waiting.
    fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::Pin::new(future).poll(&mut context)
    }

    /// Goal: with an entry in flight, a small entry is not proposed; it gathers what arrives
    /// until that entry is answered, then goes with all of it.
    #[tokio::test]
    async fn a_small_entry_gathers_until_the_entry_in_flight_is_answered() {
        let (in_flight, place) = in_flight_one();
        let (queue, mut pending) = mpsc::channel(16);
        let (first, _a) = command(0);
        let mut batch = vec![first];
        let mut answers = Vec::new();
        {
            let mut gathering = Box::pin(gather_until_ready(&mut batch, &mut pending, &in_flight));
            assert!(
                poll_once(&mut gathering).is_pending(),
                "proposed while one is in flight"
            );
            for n in 1..=2 {
                let (next, answer) = command(n);
                answers.push(answer);
                assert!(queue.try_send(next).is_ok());
            }
            assert!(
                poll_once(&mut gathering).is_pending(),
                "proposed before the answer"
            );
            drop(place);
            tokio::time::timeout(std::time::Duration::from_secs(10), gathering)
                .await
                .expect("ready once the entry in flight was answered");
        }
        assert_eq!(batch.len(), 3);
        assert_eq!(in_flight.entries.load(Ordering::Acquire), 0);
    }

    /// Goal: an entry large enough to pipeline goes while another is in flight, and a lone
    /// command goes at once when none is.
    #[test]
    fn a_large_entry_pipelines_and_a_lone_one_goes_at_once() {
        let (in_flight, _place) = in_flight_one();
        let (queue, mut pending) = mpsc::channel(limits::COMMANDS_PER_ENTRY_MAX);
        let mut batch = vec![command(0).0];
        for n in 1..limits::COMMANDS_TO_PIPELINE_MIN {
            assert!(queue.try_send(command(n).0).is_ok());
        }
        let mut gathering = Box::pin(gather_until_ready(&mut batch, &mut pending, &in_flight));
        assert!(poll_once(&mut gathering).is_ready());
        drop(gathering);
        assert_eq!(batch.len(), limits::COMMANDS_TO_PIPELINE_MIN);

        let idle = InFlight::default();
        let mut lone = vec![command(0).0];
        let mut gathering = Box::pin(gather_until_ready(&mut lone, &mut pending, &idle));
        assert!(poll_once(&mut gathering).is_ready());
    }

    /// Goal: an entry's place is given back however its task ends, and the gatherer waiting
    /// for an answer is woken, so a small entry never waits for an entry that is gone.
    #[tokio::test]
    async fn a_place_given_back_counts_down_and_wakes_the_gatherer() {
        let places = Arc::new(Semaphore::new(2));
        let in_flight = Arc::new(InFlight::default());
        let permit = places.clone().acquire_owned().await.expect("a place");
        let place = Place::take(permit, &in_flight);
        assert_eq!(in_flight.entries.load(Ordering::Acquire), 1);
        assert_eq!(places.available_permits(), 1);
        let waiter = {
            let in_flight = in_flight.clone();
            tokio::spawn(async move { in_flight.answered.notified().await })
        };
        // Dropped the way a task that panicked would drop it.
        std::thread::spawn(move || drop(place))
            .join()
            .expect("dropped");
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("the waiter ran");
        assert_eq!(in_flight.entries.load(Ordering::Acquire), 0);
        assert_eq!(places.available_permits(), 2);
    }
}
