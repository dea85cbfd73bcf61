//! The checkout's clients, loading the cluster alongside the reservation clients: holders
//! that hold seats for 1-3 s and then confirm, extend, release or let their holds lapse (some
//! confirm on purpose after the expiry, some at its last moment), and door staff who check
//! the tickets of confirmed bookings in, scanning some twice.
//!
//! Every call is recorded with its outcome (see `harness::classify`); a hold or confirm whose
//! outcome is unknown is retried with its request id, as a person pressing "pay" again does.
//! The waits here are a person's pace, timed on purpose; nothing synchronises on them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ticket::client::Client;
use ticket::pb::booking::v1 as pb;
use tokio::sync::mpsc;

use super::checker::{CancelTarget, CheckedIn, Confirmed, HoldAsk, HoldGiven, Op, Outcome};
use super::harness::{classify, Cluster, Recorder, CALL_TIMEOUT, DOOR, EVENT, USER_PASSWORD};

/// A ticket a holder hands to the door: the booking and seat it is for, and its code.
#[derive(Clone, Debug)]
pub struct Ticket {
    booking: String,
    seat: String,
    code: String,
}

/// How often a request of unknown outcome is sent again with its request id.
const RETRIES: usize = 2;

/// Logs `user` in, retrying through faults (the load has not begun, but a node may be slow).
async fn logged_in(cluster_ids: &[(u64, SocketAddr)], user: &str) -> Client {
    let mut client = Client::new(cluster_ids).with_call_timeout(CALL_TIMEOUT);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = client.login(user, USER_PASSWORD).await {
        assert!(Instant::now() < deadline, "{user} cannot log in: {e}");
    }
    client
}

/// A person's pause of `ms` (the workload's pace, not a synchronisation).
async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A person's pause until the wall clock reads `unix_ms`.
async fn until_unix_ms(unix_ms: u64) {
    pause(unix_ms.saturating_sub(ticket::clock::now_ms())).await;
}

/// One holder of the checkout until `until`.
pub struct Holder {
    me: Client,
    client: usize,
    user: String,
    recorder: Arc<Recorder>,
    rng: StdRng,
    door: mpsc::UnboundedSender<Ticket>,
    /// Its confirmed bookings, oldest first.
    confirmed: VecDeque<String>,
    n: u64,
}

/// A holder's loop: hold, then one of confirm / extend (and confirm or not) / release /
/// lapse / confirm late / confirm at the last moment; now and then cancel an old booking so
/// the seats come round again.
pub async fn holder_loop(
    cluster_ids: Vec<(u64, SocketAddr)>,
    client: usize,
    user: String,
    seed: u64,
    recorder: Arc<Recorder>,
    door: mpsc::UnboundedSender<Ticket>,
    until: Instant,
) {
    let me = logged_in(&cluster_ids, &user).await;
    let rng = StdRng::seed_from_u64(seed ^ (client as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut holder = Holder {
        me,
        client,
        user,
        recorder,
        rng,
        door,
        confirmed: VecDeque::new(),
        n: 0,
    };
    while Instant::now() < until {
        holder.n += 1;
        // Seats held by the holders' bookings come round again: the door has most tickets
        // scanned by then, and scans the others as void.
        if !holder.confirmed.is_empty() && holder.rng.random_bool(0.5) {
            holder.cancel_oldest().await;
        }
        let Some(hold) = holder.hold().await else {
            // Sold out, or taken under its nose: a person looks again a moment later.
            pause(holder.rng.random_range(50..=200)).await;
            continue;
        };
        holder.decide(hold).await;
    }
}

impl Holder {
    fn record(&self, invoke: u64, op: Op) {
        self.recorder.record(self.client, invoke, op);
    }

    /// Holds 1-2 seats (named, or the best ones) for 1-3 s; the hold, once acknowledged.
    async fn hold(&mut self) -> Option<HoldGiven> {
        let duration_ms = self.rng.random_range(1_000..=3_000);
        let ask = if self.rng.random_bool(0.5) {
            HoldAsk::Best(self.rng.random_range(1..=2))
        } else {
            let all = Cluster::all_seat_ids();
            let count = self.rng.random_range(1..=2);
            let mut seats: Vec<String> = Vec::new();
            while seats.len() < count {
                let seat = all[self.rng.random_range(0..all.len())].clone();
                if !seats.contains(&seat) {
                    seats.push(seat);
                }
            }
            HoldAsk::Seats(seats)
        };
        let (seats, best_count) = match &ask {
            HoldAsk::Seats(seats) => (seats.clone(), 0),
            HoldAsk::Best(count) => (Vec::new(), *count),
        };
        let request = pb::HoldRequest {
            request_id: format!("{}-hold-{}", self.user, self.n),
            event: EVENT.to_string(),
            seats,
            best_count,
            allow_split: true,
            duration_ms,
            ..Default::default()
        };
        for _ in 0..=RETRIES {
            let invoke = self.recorder.now();
            let reply = self.me.hold(request.clone()).await;
            let result = match classify(reply.map(|r| r.hold)) {
                Outcome::Ok(Some(hold)) => Outcome::Ok(HoldGiven {
                    id: hold.id,
                    seats: hold.seats,
                    created_at_ms: hold.created_at_ms,
                    expires_at_ms: hold.expires_at_ms,
                    latest_expiry_ms: hold.latest_expiry_ms,
                }),
                Outcome::Ok(None) => Outcome::Unknown("a hold reply without its hold".into()),
                Outcome::Failed(why) => Outcome::Failed(why),
                Outcome::Unknown(why) => Outcome::Unknown(why),
            };
            self.record(
                invoke,
                Op::Hold {
                    user: self.user.clone(),
                    request_id: request.request_id.clone(),
                    ask: ask.clone(),
                    duration_ms,
                    result: result.clone(),
                },
            );
            match result {
                Outcome::Ok(given) => return Some(given),
                Outcome::Failed(_) => return None,
                Outcome::Unknown(_) => {}
            }
        }
        None
    }

    /// What becomes of an acknowledged hold.
    async fn decide(&mut self, hold: HoldGiven) {
        let length_ms = hold.expires_at_ms.saturating_sub(hold.created_at_ms);
        // Somewhere in the first half of the hold.
        let paying_at = hold.created_at_ms + self.rng.random_range(0..=length_ms / 2);
        match self.rng.random_range(0..100) {
            0..=29 => {
                until_unix_ms(paying_at).await;
                self.confirm(&hold).await;
            }
            30..=44 => {
                until_unix_ms(paying_at).await;
                let expires_at_ms = self.extend(&hold).await;
                if self.rng.random_bool(0.5) {
                    // Paying near the end of the extended hold.
                    until_unix_ms(expires_at_ms.saturating_sub(500)).await;
                    self.confirm(&hold).await;
                }
            }
            45..=59 => {
                until_unix_ms(paying_at).await;
                self.release(&hold).await;
            }
            // Left to lapse.
            60..=74 => {}
            // Paying after the expiry: it must be refused.
            75..=86 => {
                until_unix_ms(hold.expires_at_ms + self.rng.random_range(100..=500)).await;
                self.confirm(&hold).await;
            }
            // Paying at the last moment: either outcome is right, as long as the log agrees.
            _ => {
                until_unix_ms(
                    hold.expires_at_ms
                        .saturating_sub(self.rng.random_range(0..=100)),
                )
                .await;
                self.confirm(&hold).await;
            }
        }
    }

    /// Confirms, retrying with the request id while the outcome is unknown; an acknowledged
    /// booking's tickets go to the door.
    async fn confirm(&mut self, hold: &HoldGiven) {
        let request_id = format!("{}-confirm-{}", self.user, self.n);
        let payment_ref = format!("pay-{}-{}", self.user, self.n);
        for _ in 0..=RETRIES {
            let invoke = self.recorder.now();
            let reply = self
                .me
                .confirm_hold_with_id(&request_id, &hold.id, &payment_ref)
                .await;
            let result = match classify(reply.map(|r| r.booking)) {
                Outcome::Ok(Some(booking)) => Outcome::Ok(Confirmed {
                    booking: booking.id,
                    seats: booking.seats,
                }),
                Outcome::Ok(None) => Outcome::Unknown("a confirm reply without its booking".into()),
                Outcome::Failed(why) => Outcome::Failed(why),
                Outcome::Unknown(why) => Outcome::Unknown(why),
            };
            self.record(
                invoke,
                Op::Confirm {
                    user: self.user.clone(),
                    request_id: request_id.clone(),
                    hold: hold.id.clone(),
                    result: result.clone(),
                },
            );
            match result {
                Outcome::Ok(confirmed) => {
                    self.hand_to_door(&confirmed.booking).await;
                    self.confirmed.push_back(confirmed.booking);
                    return;
                }
                Outcome::Failed(_) => return,
                Outcome::Unknown(_) => {}
            }
        }
    }

    /// Extends by 1-2 s from now; the expiry the hold has after it, as far as it knows.
    async fn extend(&mut self, hold: &HoldGiven) -> u64 {
        let duration_ms = self.rng.random_range(1_000..=2_000);
        let invoke = self.recorder.now();
        let reply = self.me.extend_hold(&hold.id, duration_ms).await;
        let result = match classify(reply.map(|r| r.hold.map(|h| h.expires_at_ms))) {
            Outcome::Ok(Some(expires_at_ms)) => Outcome::Ok(expires_at_ms),
            Outcome::Ok(None) => Outcome::Unknown("an extend reply without its hold".into()),
            Outcome::Failed(why) => Outcome::Failed(why),
            Outcome::Unknown(why) => Outcome::Unknown(why),
        };
        self.record(
            invoke,
            Op::Extend {
                user: self.user.clone(),
                hold: hold.id.clone(),
                duration_ms,
                result: result.clone(),
            },
        );
        result.ok().copied().unwrap_or(hold.expires_at_ms)
    }

    async fn release(&mut self, hold: &HoldGiven) {
        let invoke = self.recorder.now();
        let reply = self.me.release_hold(&hold.id).await;
        let op = Op::Release {
            user: self.user.clone(),
            hold: hold.id.clone(),
            result: classify(reply.map(|r| r.seats)),
        };
        self.record(invoke, op);
    }

    async fn cancel_oldest(&mut self) {
        let Some(booking) = self.confirmed.pop_front() else {
            return;
        };
        let request_id = format!("{}-cancel-{}", self.user, self.n);
        let invoke = self.recorder.now();
        let reply = self.me.cancel_booking_with_id(&request_id, &booking).await;
        let op = Op::Cancel {
            user: self.user.clone(),
            request_id,
            target: CancelTarget::Booking(booking),
            result: classify(reply.map(|r| r.seats)),
        };
        self.record(invoke, op);
    }

    /// Hands the tickets of `booking` to the door (a read of the holder's tickets; if it
    /// fails under a fault, those tickets are never scanned).
    async fn hand_to_door(&self, booking: &str) {
        let Ok(reply) = self.me.my_tickets().await else {
            return;
        };
        for t in reply
            .tickets
            .into_iter()
            .filter(|t| t.booking_id == booking)
        {
            let _ = self.door.send(Ticket {
                booking: t.booking_id,
                seat: t.seat,
                code: t.code,
            });
        }
    }
}

/// The door until `until`: scans each ticket handed to it once, on a node of its choosing,
/// and now and then one it scanned before (which must be refused).
pub async fn door_loop(
    cluster_ids: Vec<(u64, SocketAddr)>,
    client: usize,
    seed: u64,
    recorder: Arc<Recorder>,
    mut tickets: mpsc::UnboundedReceiver<Ticket>,
    until: Instant,
) {
    let door = logged_in(&cluster_ids, DOOR).await;
    let mut rng = StdRng::seed_from_u64(seed ^ (client as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut scanned: Vec<Ticket> = Vec::new();
    let until = tokio::time::Instant::from_std(until);
    loop {
        let again = !scanned.is_empty() && rng.random_bool(0.25);
        let ticket = if again {
            scanned[rng.random_range(0..scanned.len())].clone()
        } else {
            match tokio::time::timeout_at(until, tickets.recv()).await {
                Ok(Some(ticket)) => ticket,
                _ => break,
            }
        };
        door.prefer(cluster_ids[rng.random_range(0..cluster_ids.len())].0);
        let invoke = recorder.now();
        let reply = door.check_in(&ticket.code).await;
        let result = classify(reply.map(|r| CheckedIn {
            at_ms: r.at_ms,
            by: r.by,
        }));
        recorder.record(
            client,
            invoke,
            Op::CheckIn {
                door: DOOR.to_string(),
                booking: ticket.booking.clone(),
                seat: ticket.seat.clone(),
                result,
            },
        );
        if !again {
            scanned.push(ticket);
        }
        if tokio::time::Instant::now() >= until {
            break;
        }
    }
}
