//! The page's bookings, carried to the cluster many at a time: a gateway over ReserveBatch.
//!
//! Every page user's reserve joins a queue; one task takes whatever has gathered (up to
//! `BATCH_RESERVES_MAX`) into one ReserveBatch call while earlier calls are in flight (at
//! most `BATCHES_IN_FLIGHT`), and hands each person their own outcome. Each reserve keeps
//! its own request id and its user's token, so the cluster checks and books it as if it had
//! come alone; a call that fails as a whole (no node answered) fails every reserve in it,
//! with an unknown outcome that a retry with the same request id settles.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::client::{Client, ClientError};
use crate::limits;
use crate::pb::booking::v1 as pb;

/// ReserveBatch calls one page server has in flight at once.
const BATCHES_IN_FLIGHT: usize = 4;
/// Reserves waiting for a place in a call; past this, callers wait.
const QUEUED_MAX: usize = 4_096;

/// What a reserve came to: the booking and the log index of its batch.
pub type Reserved = Result<(pb::Booking, u64), ClientError>;

struct Queued {
    reserve: pb::BatchedReserve,
    reply: oneshot::Sender<Reserved>,
}

/// Cheap to clone; clones feed the same queue.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Queued>,
}

impl Batcher {
    /// Starts the task that sends the queued reserves through `client`.
    pub fn start(client: Client) -> Batcher {
        let (queue, queued) = mpsc::channel(QUEUED_MAX);
        tokio::spawn(send_batches(client, queued));
        Batcher { queue }
    }

    /// Reserves `seats` of `event` as the user whose token this is.
    pub async fn reserve(
        &self,
        token: &str,
        request_id: String,
        event: &str,
        seats: Vec<String>,
    ) -> Reserved {
        let reserve = pb::BatchedReserve {
            request_id,
            token: token.to_string(),
            event: event.to_string(),
            seats,
        };
        let (reply, outcome) = oneshot::channel();
        let gone = || ClientError::from(tonic::Status::unavailable("the page is shutting down"));
        if self.queue.send(Queued { reserve, reply }).await.is_err() {
            return Err(gone());
        }
        outcome.await.unwrap_or_else(|_| Err(gone()))
    }
}

async fn send_batches(client: Client, mut queued: mpsc::Receiver<Queued>) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = queued.recv().await {
        // Wait for a place first: whatever arrives meanwhile joins this call.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < limits::BATCH_RESERVES_MAX {
            match queued.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let client = client.clone();
        tokio::spawn(async move {
            let (reserves, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|q| (q.reserve, q.reply)).unzip();
            let result = client.reserve_batch(reserves).await;
            drop(permit);
            answer(result, replies);
        });
    }
}

/// Hands each reserve of a call its own outcome.
fn answer(
    result: Result<pb::ReserveBatchReply, ClientError>,
    replies: Vec<oneshot::Sender<Reserved>>,
) {
    match result {
        Ok(reply) => {
            let index = reply.applied_index;
            let mut outcomes = reply.outcomes.into_iter();
            for sender in replies {
                let reserved = match outcomes.next() {
                    Some(outcome) => Client::batched_outcome(outcome).map(|b| (b, index)),
                    None => failed(tonic::Code::Unknown, "the cluster answered a batch short"),
                };
                let _ = sender.send(reserved);
            }
        }
        Err(error) => {
            for sender in replies {
                let _ = sender.send(failed(error.code(), error.message()));
            }
        }
    }
}

/// A reserve whose call failed: mapped as a write's failure is (a timeout's outcome is
/// unknown, and a retry with the same request id settles it).
fn failed(code: tonic::Code, message: &str) -> Reserved {
    let outcome = pb::BatchedOutcome {
        booking: None,
        code: code as i32,
        message: message.to_string(),
    };
    Client::batched_outcome(outcome).map(|booking| (booking, 0))
}
