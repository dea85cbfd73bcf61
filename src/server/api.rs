//! The client API (`booking.v1.BookingService`): check the request's shape and token here,
//! then propose (writes) or wait for a read barrier (reads). Any node serves every call.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::node::{Consistency, Node, Written};
use crate::clock::now_ms;
use crate::consensus::changes::{ChangeSet, Since};
use crate::domain::auth;
use crate::domain::state::{EventRecord, State};
use crate::domain::viewer::{SeatState, Viewer};
use crate::domain::{
    validate, BestAsk, BookingView, CancelTarget, CategorySpec, Command, EventSpec, EventView,
    HoldTarget, HoldView, Outcome, Rejection, Role, SeatMap,
};
use crate::error::ApiError;
use crate::limits;
use crate::pb::booking::v1 as pb;
use crate::pb::booking::v1::booking_service_server::BookingService;

pub struct Api {
    node: Arc<Node>,
    /// Who holds the open `WatchSeats` streams.
    watchers: super::watchers::Watchers,
    /// What an unknown user's login is checked against, so that it costs as much as a known
    /// user's and does not reveal which names exist.
    decoy: crate::domain::PasswordHash,
}

impl Api {
    pub fn new(node: Arc<Node>) -> Api {
        let decoy = auth::hash_password("decoy", node.config.security.pbkdf2_iterations);
        let watchers = super::watchers::Watchers::default();
        Api {
            node,
            decoy,
            watchers,
        }
    }

    fn token<T>(request: &Request<T>) -> Result<Option<String>, ApiError> {
        let Some(value) = request.metadata().get(crate::wire::AUTHORIZATION_HEADER) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| {
            ApiError::Unauthenticated("the authorization header is not text".into())
        })?;
        let token = crate::wire::bearer_token(value).ok_or_else(|| {
            ApiError::Unauthenticated("the authorization header must be 'Bearer <token>'".into())
        })?;
        Ok(Some(token.to_string()))
    }

    /// The logged-in user; UNAUTHENTICATED without a valid token.
    async fn user<T>(&self, request: &Request<T>) -> Result<String, ApiError> {
        match Self::token(request)? {
            Some(token) => self.node.check_token(&token).await,
            None => Err(ApiError::Unauthenticated(
                "log in first: this needs a logged-in user (`login NAME` in the shell)".into(),
            )),
        }
    }

    /// The logged-in user if there is a token; a bad token is still an error.
    async fn optional_user<T>(&self, request: &Request<T>) -> Result<Option<String>, ApiError> {
        match Self::token(request)? {
            Some(token) => self.node.check_token(&token).await.map(Some),
            None => Ok(None),
        }
    }

    /// One reserve as `actor`, from its request: its shape validated, then committed. The
    /// booking, its log index and the leader that took it. `reserve` and each reserve of a
    /// batch both come here.
    async fn reserve_as(
        &self,
        actor: String,
        r: pb::ReserveRequest,
    ) -> Result<(pb::Booking, u64, u64), ApiError> {
        validate::request_id(&r.request_id).map_err(invalid)?;
        let event = crate::wire::event_or_demo(r.event);
        validate::name("event", &event).map_err(invalid)?;
        let seats = validate::seats(&r.seats).map_err(invalid)?;
        let written = self
            .write(Command::Reserve {
                request_id: r.request_id,
                actor,
                event,
                seats,
                now_ms: now_ms(),
            })
            .await?;
        match written.outcome {
            Outcome::Reserved(booking) => Ok((booking_pb(booking), written.index, written.leader)),
            other => Err(unexpected(other)),
        }
    }

    /// One reserve of a batch, as `reserve` would make it, its token checked first.
    async fn reserve_batched(
        &self,
        r: pb::BatchedReserve,
    ) -> Result<(pb::Booking, u64, u64), ApiError> {
        let actor = self.node.check_token(&r.token).await?;
        let request = pb::ReserveRequest {
            request_id: r.request_id,
            event: r.event,
            seats: r.seats,
        };
        self.reserve_as(actor, request).await
    }

    /// The caller, if an admin (as of a linearizable read); PERMISSION_DENIED otherwise.
    async fn admin<T>(&self, request: &Request<T>, what: &str) -> Result<String, ApiError> {
        let actor = self.user(request).await?;
        self.node.read_barrier(Consistency::Linearizable).await?;
        if !self.node.sm.read().state.is_admin(Some(&actor)) {
            return Err(ApiError::PermissionDenied(format!("{what} needs an admin")));
        }
        Ok(actor)
    }

    async fn change_membership(
        &self,
        change: super::membership::Change,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        tracing::info!(?change, "membership change asked for");
        let done = super::membership::change(&self.node, change).await?;
        Ok(Response::new(pb::MembershipReply {
            voters: done.voters,
            learners: done.learners,
            promoted: done.promoted,
            applied_index: done.applied_index,
            leader_index: done.leader_index,
            warning: done.warning.unwrap_or_default(),
            handed_over_to: done.handed_over_to.unwrap_or(0),
        }))
    }

    /// One node's row of ClusterStatus: as it reported itself, or unreachable.
    fn node_status(
        &self,
        id: u64,
        state: Option<crate::pb::raft::v1::NodeState>,
        membership: &super::node::Membership,
    ) -> pb::NodeStatus {
        let configured = self.node.config.node(id);
        let role_in_membership = if membership.voters.contains(&id) {
            "voter"
        } else if membership.learners.contains(&id) {
            "learner"
        } else {
            ""
        };
        let mut status = match state {
            Some(s) => pb::NodeStatus {
                id,
                addr: s.addr,
                role: s.role,
                term: s.term,
                last_log_index: s.last_log_index,
                applied_index: s.applied_index,
                reachable: true,
                leader: s.leader,
                snapshot_index: s.snapshot_index,
                ..Default::default()
            },
            None => pb::NodeStatus {
                id,
                role: "unreachable".into(),
                ..Default::default()
            },
        };
        if let Some(n) = configured {
            status.addr = n.addr.to_string();
        }
        status.configured = configured.is_some();
        status.membership = role_in_membership.into();
        status
    }

    /// The user a request about "a user" means: the named one, or the caller when empty.
    fn target_user(&self, actor: &str, named: &str) -> Result<String, ApiError> {
        if named.is_empty() {
            return Ok(actor.to_string());
        }
        validate::name("user", named).map_err(invalid)?;
        Ok(validate::fold_name(named))
    }

    async fn write(&self, command: Command) -> Result<Written, ApiError> {
        self.node.write(command).await
    }
}

/// The request's consistency; a value this build does not know reads linearizably.
fn consistency(value: i32) -> Consistency {
    Consistency::try_from(value).unwrap_or(Consistency::Linearizable)
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidArgument(message)
}

fn with_leader<T>(message: T, leader: u64) -> Response<T> {
    let mut response = Response::new(message);
    crate::wire::set_leader(response.metadata_mut(), leader);
    response
}

fn unexpected(outcome: Outcome) -> ApiError {
    match outcome {
        Outcome::Rejected(rejection) => rejection.into(),
        other => ApiError::Internal(format!("unexpected outcome {other:?}")),
    }
}

fn user_changed(written: Written) -> Result<Response<pb::UserChangedReply>, Status> {
    match written.outcome {
        Outcome::UserChanged => Ok(with_leader(
            pb::UserChangedReply {
                applied_index: written.index,
            },
            written.leader,
        )),
        other => Err(unexpected(other).into()),
    }
}

fn event_pb(view: EventView) -> pb::Event {
    pb::Event {
        name: view.name,
        rows: view.rows,
        seats_per_row: view.seats_per_row,
        max_seats_per_user: view.max_seats_per_user,
        free: view.free,
        taken: view.taken,
        categories: view
            .categories
            .into_iter()
            .map(|c| pb::Category {
                name: c.name,
                price_minor: c.price_minor,
                covers: c.covers,
                max_seats_per_user: c.max_seats_per_user,
            })
            .collect(),
        currency: view.currency,
    }
}

fn booking_pb(view: BookingView) -> pb::Booking {
    pb::Booking {
        id: view.id,
        event: view.event,
        seats: view.seats,
        user: view.user,
        created_at_ms: view.created_at_ms,
        total_minor: view.total_minor,
        currency: view.currency,
        payment_ref: view.payment_ref.unwrap_or_default(),
    }
}

fn hold_pb(view: HoldView) -> pb::Hold {
    pb::Hold {
        id: view.id,
        event: view.event,
        seats: view.seats,
        user: view.user,
        created_at_ms: view.created_at_ms,
        expires_at_ms: view.expires_at_ms,
        latest_expiry_ms: view.latest_expiry_ms,
        total_minor: view.total_minor,
        currency: view.currency,
    }
}

fn hold_reply(written: Written) -> Result<Response<pb::HoldReply>, Status> {
    match written.outcome {
        Outcome::Held(hold) | Outcome::HoldExtended(hold) => Ok(with_leader(
            pb::HoldReply {
                hold: Some(hold_pb(hold)),
                applied_index: written.index,
            },
            written.leader,
        )),
        other => Err(unexpected(other).into()),
    }
}

/// The hold number a request's hold id names (`hd-7`; the booking id `bk-7` of a confirmed
/// hold names it too).
fn hold_number(id: &str) -> Result<u64, ApiError> {
    validate::parse_hold_id(id)
        .ok_or_else(|| invalid(format!("'{id}' is not a hold id (they look like hd-12)")))
}

/// Seat `i` of `event` as `viewer` may see it (the rule is the domain's: `domain::viewer`).
fn seat_pb(viewer: &Viewer, state: &State, event: &EventRecord, i: u32) -> pb::Seat {
    let seen = viewer.seat(state, event, i);
    let status = match seen.state {
        SeatState::Free => pb::SeatStatus::Free,
        SeatState::Mine => pb::SeatStatus::Mine,
        SeatState::Taken => pb::SeatStatus::Taken,
        SeatState::Held => pb::SeatStatus::Held,
        SeatState::HeldByYou => pb::SeatStatus::HeldByYou,
    };
    let mut seat = pb::Seat {
        id: event.map.id(i),
        row: event.map.row_of(i).to_string(),
        status: status as i32,
        category: event
            .category_of(i)
            .and_then(|c| event.categories.get(c))
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        price_minor: event.price_at(i),
        ..Default::default()
    };
    if let Some(holder) = seen.holder {
        seat.holder = holder.user.to_string();
        match holder.hold_expires_at_ms {
            Some(expires_at_ms) => {
                seat.hold_id = validate::format_hold_id(holder.booking);
                seat.hold_expires_at_ms = expires_at_ms;
            }
            None => seat.booking_id = validate::format_booking_id(holder.booking),
        }
    }
    seat
}

type WatchStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchSeatsReply, Status>> + Send>>;
type BackupStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

/// What a watcher is sent next.
enum Next<'a> {
    Whole,
    Seats(&'a [std::sync::Arc<ChangeSet>]),
}

/// The reply for `next` on `event`, read from the state as it is now; None when the event
/// is gone (it never is: events are not deleted) or nothing of it changed.
fn watch_reply(
    node: &Node,
    event: &str,
    viewer: &Viewer,
    next: Next,
) -> Option<pb::WatchSeatsReply> {
    let applied = node.sm.read();
    let index = applied.last_applied.map_or(0, |id| id.index);
    let state = &applied.state;
    let record = state.event(event)?;
    let (reset, seats) = match next {
        Next::Whole => (
            true,
            (0..record.map.len())
                .map(|i| seat_pb(viewer, state, record, i))
                .collect(),
        ),
        Next::Seats(sets) => {
            let mut wanted: Vec<u32> = sets
                .iter()
                .flat_map(|set| set.seats.iter())
                .filter(|(e, _)| e == event)
                .filter_map(|(_, seat)| record.map.index(seat))
                .collect();
            if wanted.is_empty() {
                return None;
            }
            wanted.sort_unstable();
            wanted.dedup();
            let seats = wanted
                .into_iter()
                .map(|i| seat_pb(viewer, state, record, i))
                .collect();
            (false, seats)
        }
    };
    Some(pb::WatchSeatsReply {
        applied_index: index,
        reset,
        seats,
    })
}

/// Streams `event`'s seat changes to `tx` until the watcher goes or the node stops.
async fn watch(
    node: Arc<Node>,
    event: String,
    from_index: u64,
    viewer: Viewer,
    tx: tokio::sync::mpsc::Sender<Result<pb::WatchSeatsReply, Status>>,
) {
    let mut stopping = node.stopping.subscribe();
    // Subscribe before reading the journal and the state: nothing published in between
    // is missed (a set seen twice is only sent twice).
    let mut changes = node.sm.changes().subscribe();
    let first = match node.sm.changes().since(from_index) {
        _ if from_index == 0 => watch_reply(&node, &event, &viewer, Next::Whole),
        Since::TooOld => watch_reply(&node, &event, &viewer, Next::Whole),
        Since::Sets(sets) => watch_reply(&node, &event, &viewer, Next::Seats(&sets)),
    };
    // Always answer at once, so the watcher knows it is live and at which index.
    let first = first.unwrap_or_else(|| pb::WatchSeatsReply {
        applied_index: node.sm.applied_index().max(from_index),
        reset: false,
        seats: Vec::new(),
    });
    let mut sent = first.applied_index;
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    let idle = std::time::Duration::from_secs(limits::WATCH_IDLE_MAX_SECS);
    let mut quiet_until = tokio::time::Instant::now() + idle;
    loop {
        let next = tokio::select! {
            // (The guard `wait_for` returns is dropped at once: it is not Send.)
            _ = async { let _ = stopping.wait_for(|&stop| stop).await; } => None,
            _ = tx.closed() => return,
            // A stream with nothing to say for long gives its place back; the client resumes.
            _ = tokio::time::sleep_until(quiet_until) => {
                let why = "nothing changed for a while; resume from the last index";
                let _ = tx.try_send(Err(Status::unavailable(why)));
                return;
            }
            next = changes.recv() => Some(next),
        };
        let Some(next) = next else {
            let why = "the node is shutting down; resume on another";
            let _ = tx.send(Err(Status::unavailable(why))).await;
            return;
        };
        let reply = match next {
            Ok(set) if set.reset => watch_reply(&node, &event, &viewer, Next::Whole),
            Ok(set) => watch_reply(&node, &event, &viewer, Next::Seats(&[set])),
            // Fell behind the broadcast: the whole map brings it up to date.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                watch_reply(&node, &event, &viewer, Next::Whole)
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(mut reply) = reply else { continue };
        // Never report an index going back, whatever order sets were read in.
        reply.applied_index = reply.applied_index.max(sent);
        sent = reply.applied_index;
        quiet_until = tokio::time::Instant::now() + idle;
        // A watcher that stops reading holds only its own place, and not for ever.
        if tx.send_timeout(Ok(reply), idle).await.is_err() {
            return;
        }
    }
}

#[tonic::async_trait]
impl BookingService for Api {
    type WatchSeatsStream = WatchStream;
    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        let actor = self.user(&request).await?;
        let may = |node: &Node| node.sm.read().state.is_admin(Some(&actor));
        if !may(&self.node) {
            return Err(ApiError::PermissionDenied(
                "a backup holds every user's data: it needs an admin".into(),
            )
            .into());
        }
        // Everything acknowledged before the request is in it; checked again after the
        // barrier, as reads are, in case the actor lost the role meanwhile.
        self.node.read_barrier(Consistency::Linearizable).await?;
        if !may(&self.node) {
            return Err(ApiError::PermissionDenied("no longer an admin".into()).into());
        }
        let node = self.node.clone();
        let (file, index) = tokio::task::spawn_blocking(move || {
            node.sm.encode_applied(|state, last| {
                let index = last.map_or(0, |l| l.index);
                crate::consensus::backup::encode_file(state, last, now_ms()).map(|f| (f, index))
            })
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let total_bytes = file.len() as u64;
        let chunks: Vec<Result<pb::BackupChunk, Status>> = file
            .chunks(limits::BACKUP_CHUNK_BYTES)
            .enumerate()
            .map(|(i, data)| {
                let first = i == 0;
                Ok(pb::BackupChunk {
                    data: data.to_vec(),
                    applied_index: if first { index } else { 0 },
                    total_bytes: if first { total_bytes } else { 0 },
                })
            })
            .collect();
        tracing::info!(user = %actor, index, bytes = total_bytes, "backup taken");
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn watch_seats(
        &self,
        request: Request<pb::WatchSeatsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let viewer = self.optional_user(&request).await?;
        let address = request.remote_addr().map(|a| a.ip());
        let r = request.into_inner();
        let event = crate::wire::event_or_demo(r.event);
        validate::name("event", &event).map_err(invalid)?;
        let permit = self.watchers.acquire(viewer.as_deref(), address)?;
        // A watcher that was on a node further ahead waits (briefly) for this one to catch up,
        // so that it never sees seats go back in time.
        if r.from_index > self.node.sm.applied_index() {
            let deadline = tokio::time::Instant::now()
                + std::time::Duration::from_millis(limits::QUORUM_WAIT_MS);
            if !self.node.sm.wait_applied(r.from_index, deadline).await {
                return Err(ApiError::Unavailable(format!(
                    "this node has not applied index {} yet; try another",
                    r.from_index
                ))
                .into());
            }
        }
        let viewer = {
            let applied = self.node.sm.read();
            if applied.state.event(&event).is_none() {
                return Err(ApiError::NotFound(format!("no event named '{event}'")).into());
            }
            Viewer::new(&applied.state, viewer)
        };
        let (tx, rx) = tokio::sync::mpsc::channel(limits::WATCH_REPLIES_QUEUED);
        let node = self.node.clone();
        tokio::spawn(async move {
            let _permit = permit;
            watch(node, event, r.from_index, viewer, tx).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginReply>, Status> {
        let address = request.remote_addr().map(|a| a.ip());
        let pb::LoginRequest { user, password } = request.into_inner();
        validate::name("user", &user).map_err(invalid)?;
        // Checked before any hashing: a megabyte of password costs PBKDF2 a megabyte a round.
        if password.len() > limits::PASSWORD_LEN_MAX {
            return Err(ApiError::Unauthenticated("wrong user name or password".into()).into());
        }
        let user = validate::fold_name(&user);
        self.node.throttle.before_login(&user, address)?;
        // Linearizable, so a user added a moment ago through another node can log in here.
        self.node.read_barrier(Consistency::Linearizable).await?;
        let (stored, seeded) = {
            let applied = self.node.sm.read();
            (
                applied.state.user(&user).cloned(),
                applied.state.is_bootstrapped(),
            )
        };
        // Before the seed, the first admin does not exist yet: "wrong password" would be a
        // lie, and UNAVAILABLE tells a client to retry in a moment.
        if !seeded {
            return Err(
                ApiError::Unavailable("the cluster is still starting; retry".into()).into(),
            );
        }
        let key = self.node.keyring.signing().ok_or_else(|| {
            ApiError::Unavailable("this node has no token key; check its token.keys file".into())
        })?;
        let checked = stored
            .as_ref()
            .map_or_else(|| self.decoy.clone(), |u| u.password.clone());
        let matches = self
            .node
            .throttle
            .hash(move || auth::verify_password(&password, &checked))
            .await?;
        let accepted = stored.filter(|u| matches && !u.disabled);
        self.node
            .throttle
            .after_login(&user, address, accepted.is_some());
        let Some(stored) = accepted else {
            tracing::info!(user, ?address, "login refused");
            return Err(ApiError::Unauthenticated("wrong user name or password".into()).into());
        };
        let expires_at = now_ms() / 1000 + self.node.config.security.token_ttl_secs;
        let token = auth::sign_token(&key, &user, stored.token_epoch, expires_at);
        let role = match stored.role {
            Role::Admin => pb::Role::Admin,
            Role::Customer => pb::Role::Customer,
            Role::Door => pb::Role::Door,
        };
        Ok(Response::new(pb::LoginReply {
            token,
            user,
            role: role as i32,
            expires_at,
        }))
    }

    async fn add_user(
        &self,
        request: Request<pb::AddUserRequest>,
    ) -> Result<Response<pb::AddUserReply>, Status> {
        let actor = self.optional_user(&request).await?;
        let address = request.remote_addr().map(|a| a.ip());
        let pb::AddUserRequest {
            request_id,
            name,
            password,
            role,
        } = request.into_inner();
        validate::request_id(&request_id).map_err(invalid)?;
        validate::name("user", &name).map_err(invalid)?;
        validate::password(&password).map_err(invalid)?;
        let name = validate::fold_name(&name);
        let role = match pb::Role::try_from(role) {
            Ok(pb::Role::Admin) => Role::Admin,
            Ok(pb::Role::Customer) => Role::Customer,
            Ok(pb::Role::Door) => Role::Door,
            Err(_) => return Err(invalid(format!("unknown role {role}")).into()),
        };
        let is_admin = self.node.sm.read().state.is_admin(actor.as_deref());
        // An admin is made by an admin; the first one only by `ticket init` (or the setup of
        // a local cluster), never by whoever asks first.
        if role != Role::Customer && !is_admin {
            return Err(ApiError::PermissionDenied(
                "only an admin can make an admin or door staff (the first one is made when the cluster is \
                 set up: see `ticket init`)"
                    .into(),
            )
            .into());
        }
        if !is_admin {
            if validate::is_reserved_name(&name) {
                return Err(invalid("cannot register that name; choose another".into()).into());
            }
            self.node.throttle.before_registration(address)?;
        }
        let iterations = self.node.config.security.pbkdf2_iterations;
        let password = self
            .node
            .throttle
            .hash(move || auth::hash_password(&password, iterations))
            .await?;
        let written = self
            .write(Command::AddUser {
                request_id,
                actor,
                name,
                role,
                password,
            })
            .await?;
        match written.outcome {
            Outcome::UserAdded => Ok(with_leader(
                pb::AddUserReply {
                    applied_index: written.index,
                },
                written.leader,
            )),
            // A stranger is not told which names exist.
            Outcome::Rejected(Rejection::UserExists(_)) if !is_admin => Err(
                ApiError::FailedPrecondition("cannot register that name; choose another".into())
                    .into(),
            ),
            other => Err(unexpected(other).into()),
        }
    }

    async fn setup_admin(
        &self,
        request: Request<pb::SetupAdminRequest>,
    ) -> Result<Response<pb::AddUserReply>, Status> {
        let address = request.remote_addr().map(|a| a.ip());
        let pb::SetupAdminRequest {
            request_id,
            setup_code,
            name,
            password,
        } = request.into_inner();
        validate::request_id(&request_id).map_err(invalid)?;
        validate::name("user", &name).map_err(invalid)?;
        validate::password(&password).map_err(invalid)?;
        // Guessing codes is guessing passwords: the same throttle, under one shared name.
        self.node.throttle.before_login("(setup code)", address)?;
        let expected = self.node.sm.read().state.setup_code_hash();
        let matches = expected.is_some_and(|hash| auth::setup_code_matches(&setup_code, &hash));
        self.node
            .throttle
            .after_login("(setup code)", address, matches);
        let Some(setup_code) = expected.filter(|_| matches) else {
            return Err(ApiError::PermissionDenied(
                "that is not this cluster's setup code, or its first admin exists already".into(),
            )
            .into());
        };
        let iterations = self.node.config.security.pbkdf2_iterations;
        let password = self
            .node
            .throttle
            .hash(move || auth::hash_password(&password, iterations))
            .await?;
        let written = self
            .write(Command::SetupAdmin {
                request_id,
                name: validate::fold_name(&name),
                password,
                setup_code,
            })
            .await?;
        match written.outcome {
            Outcome::UserAdded => Ok(with_leader(
                pb::AddUserReply {
                    applied_index: written.index,
                },
                written.leader,
            )),
            other => Err(unexpected(other).into()),
        }
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::UserChangedReply>, Status> {
        let actor = self.user(&request).await?;
        let pb::LogoutRequest { request_id, user } = request.into_inner();
        let user = self.target_user(&actor, &user)?;
        validate::request_id(&request_id).map_err(invalid)?;
        let written = self
            .write(Command::RevokeTokens {
                request_id,
                actor,
                user,
            })
            .await?;
        user_changed(written)
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::UserChangedReply>, Status> {
        let actor = self.user(&request).await?;
        let pb::ChangePasswordRequest {
            request_id,
            user,
            new_password,
        } = request.into_inner();
        let user = self.target_user(&actor, &user)?;
        validate::request_id(&request_id).map_err(invalid)?;
        validate::password(&new_password).map_err(invalid)?;
        let iterations = self.node.config.security.pbkdf2_iterations;
        let password = self
            .node
            .throttle
            .hash(move || auth::hash_password(&new_password, iterations))
            .await?;
        let written = self
            .write(Command::SetPassword {
                request_id,
                actor,
                user,
                password,
            })
            .await?;
        user_changed(written)
    }

    async fn set_user_disabled(
        &self,
        request: Request<pb::SetUserDisabledRequest>,
    ) -> Result<Response<pb::UserChangedReply>, Status> {
        let actor = self.user(&request).await?;
        let pb::SetUserDisabledRequest {
            request_id,
            user,
            disabled,
        } = request.into_inner();
        validate::request_id(&request_id).map_err(invalid)?;
        validate::name("user", &user).map_err(invalid)?;
        let written = self
            .write(Command::SetDisabled {
                request_id,
                actor,
                user: validate::fold_name(&user),
                disabled,
            })
            .await?;
        user_changed(written)
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsReply>, Status> {
        let index = self
            .node
            .read_barrier(consistency(request.get_ref().consistency))
            .await?;
        let events = {
            let applied = self.node.sm.read();
            applied.state.events().map(|e| event_pb(e.view())).collect()
        };
        Ok(Response::new(pb::ListEventsReply {
            events,
            applied_index: index,
        }))
    }

    async fn create_event(
        &self,
        request: Request<pb::CreateEventRequest>,
    ) -> Result<Response<pb::CreateEventReply>, Status> {
        let actor = self.user(&request).await?;
        let r = request.into_inner();
        validate::request_id(&r.request_id).map_err(invalid)?;
        validate::name("event", &r.name).map_err(invalid)?;
        validate::event_shape(r.rows, r.seats_per_row, &r.row_labels).map_err(invalid)?;
        let row_labels = if r.row_labels.is_empty() {
            SeatMap::default_row_labels(r.rows)
        } else {
            r.row_labels
        };
        let max_seats_per_user = match r.max_seats_per_user {
            0 => limits::SEATS_PER_USER_DEFAULT,
            n => n,
        };
        let categories: Vec<CategorySpec> = r
            .categories
            .into_iter()
            .map(|c| CategorySpec {
                name: c.name,
                price_minor: c.price_minor,
                covers: c.covers.iter().map(|c| c.to_ascii_uppercase()).collect(),
                max_seats_per_user: c.max_seats_per_user,
            })
            .collect();
        validate::categories(&categories, &r.currency).map_err(invalid)?;
        let spec = EventSpec {
            name: r.name,
            row_labels,
            seats_per_row: r.seats_per_row,
            max_seats_per_user,
            categories,
            currency: r.currency,
        };
        let written = self
            .write(Command::CreateEvent {
                request_id: r.request_id,
                actor,
                spec,
                now_ms: now_ms(),
            })
            .await?;
        match written.outcome {
            Outcome::EventCreated(view) => Ok(with_leader(
                pb::CreateEventReply {
                    event: Some(event_pb(view)),
                    applied_index: written.index,
                },
                written.leader,
            )),
            other => Err(unexpected(other).into()),
        }
    }

    async fn get_seats(
        &self,
        request: Request<pb::GetSeatsRequest>,
    ) -> Result<Response<pb::GetSeatsReply>, Status> {
        // Checked before the barrier and again after it, as in `my_bookings`.
        self.optional_user(&request).await?;
        let event_name = crate::wire::event_or_demo(request.get_ref().event.clone());
        validate::name("event", &event_name).map_err(invalid)?;
        let index = self
            .node
            .read_barrier(consistency(request.get_ref().consistency))
            .await?;
        let viewer = self.optional_user(&request).await?;
        let applied = self.node.sm.read();
        let state = &applied.state;
        let event = state
            .event(&event_name)
            .ok_or_else(|| ApiError::NotFound(format!("no event named '{event_name}'")))?;
        let viewer = Viewer::new(state, viewer);
        let seats = (0..event.map.len())
            .map(|i| seat_pb(&viewer, state, event, i))
            .collect();
        Ok(Response::new(pb::GetSeatsReply {
            event: Some(event_pb(event.view())),
            seats,
            applied_index: index,
        }))
    }

    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveReply>, Status> {
        let actor = self.user(&request).await?;
        let (booking, applied_index, leader) = self.reserve_as(actor, request.into_inner()).await?;
        let reply = pb::ReserveReply {
            booking: Some(booking),
            applied_index,
        };
        Ok(with_leader(reply, leader))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelReply>, Status> {
        let actor = self.user(&request).await?;
        let r = request.into_inner();
        validate::request_id(&r.request_id).map_err(invalid)?;
        let target = match (r.booking_id.is_empty(), r.seats.is_empty()) {
            (false, true) => {
                validate::booking_id(&r.booking_id).map_err(invalid)?;
                CancelTarget::Booking(r.booking_id)
            }
            (true, false) => {
                let event = crate::wire::event_or_demo(r.event);
                validate::name("event", &event).map_err(invalid)?;
                let seats = validate::seats(&r.seats).map_err(invalid)?;
                CancelTarget::Seats { event, seats }
            }
            (true, true) => {
                return Err(invalid("name seats or a booking id to cancel".into()).into())
            }
            (false, false) => {
                return Err(invalid("name seats or a booking id, not both".into()).into())
            }
        };
        let written = self
            .write(Command::Cancel {
                request_id: r.request_id,
                actor,
                target,
                now_ms: now_ms(),
            })
            .await?;
        match written.outcome {
            Outcome::Cancelled { event, seats } => Ok(with_leader(
                pb::CancelReply {
                    seats,
                    event,
                    applied_index: written.index,
                },
                written.leader,
            )),
            other => Err(unexpected(other).into()),
        }
    }

    async fn my_bookings(
        &self,
        request: Request<pb::MyBookingsRequest>,
    ) -> Result<Response<pb::MyBookingsReply>, Status> {
        // The token is checked before any work, and again once the barrier has brought this
        // node's state up to date: a token revoked before a linearizable read began is then
        // refused by every node, not only by those that had applied the revocation.
        self.user(&request).await?;
        let index = self
            .node
            .read_barrier(consistency(request.get_ref().consistency))
            .await?;
        let user = self.user(&request).await?;
        let bookings = self.node.sm.read().state.bookings_of(&user);
        Ok(Response::new(pb::MyBookingsReply {
            bookings: bookings.into_iter().map(booking_pb).collect(),
            applied_index: index,
        }))
    }

    async fn hold(
        &self,
        request: Request<pb::HoldRequest>,
    ) -> Result<Response<pb::HoldReply>, Status> {
        let actor = self.user(&request).await?;
        let r = request.into_inner();
        validate::request_id(&r.request_id).map_err(invalid)?;
        let event = crate::wire::event_or_demo(r.event);
        validate::name("event", &event).map_err(invalid)?;
        let target = match (r.seats.is_empty(), r.best_count) {
            (false, 0) => HoldTarget::Seats(validate::seats(&r.seats).map_err(invalid)?),
            (true, count) if count > 0 => {
                let ask = BestAsk {
                    count,
                    category: (!r.category.is_empty()).then_some(r.category),
                    max_price_minor: (r.max_price_minor > 0).then_some(r.max_price_minor),
                    split: r.allow_split,
                };
                validate::best_ask(&ask).map_err(invalid)?;
                HoldTarget::Best(ask)
            }
            (true, _) => {
                return Err(invalid("name seats to hold, or how many of the best".into()).into())
            }
            (false, _) => {
                return Err(invalid("name seats or how many of the best, not both".into()).into())
            }
        };
        let booking = self.node.config.booking;
        let duration_ms = match r.duration_ms {
            0 => booking.hold_ms,
            ms if ms > booking.hold_max_ms => {
                return Err(ApiError::from(Rejection::HoldTooLong {
                    asked_ms: ms,
                    max_ms: booking.hold_max_ms,
                })
                .into())
            }
            ms => ms,
        };
        validate::hold_duration(duration_ms).map_err(invalid)?;
        let written = self
            .write(Command::Hold {
                request_id: r.request_id,
                actor,
                event,
                target,
                duration_ms,
                max_ms: booking.hold_max_ms,
                now_ms: now_ms(),
            })
            .await?;
        hold_reply(written)
    }

    async fn confirm_hold(
        &self,
        request: Request<pb::ConfirmHoldRequest>,
    ) -> Result<Response<pb::ReserveReply>, Status> {
        let actor = self.user(&request).await?;
        let r = request.into_inner();
        validate::request_id(&r.request_id).map_err(invalid)?;
        let hold = hold_number(&r.hold_id)?;
        let payment_ref = (!r.payment_ref.is_empty()).then_some(r.payment_ref);
        if let Some(reference) = &payment_ref {
            validate::payment_ref(reference).map_err(invalid)?;
        }
        let written = self
            .write(Command::ConfirmHold {
                request_id: r.request_id,
                actor,
                hold,
                payment_ref,
                now_ms: now_ms(),
            })
            .await?;
        match written.outcome {
            Outcome::Confirmed(booking) => Ok(with_leader(
                pb::ReserveReply {
                    booking: Some(booking_pb(booking)),
                    applied_index: written.index,
                },
                written.leader,
            )),
            other => Err(unexpected(other).into()),
        }
    }

    async fn extend_hold(
        &self,
        request: Request<pb::ExtendHoldRequest>,
    ) -> Result<Response<pb::HoldReply>, Status> {
        let actor = self.user(&request).await?;
        let r = request.into_inner();
        validate::request_id(&r.request_id).map_err(invalid)?;
        let hold = hold_number(&r.hold_id)?;
        let booking = self.node.config.booking;
        let duration_ms = match r.duration_ms {
            0 => booking.hold_ms,
            ms => ms.min(booking.hold_max_ms),
        };
        validate::hold_duration(duration_ms).map_err(invalid)?;
        let written = self
            .write(Command::ExtendHold {
                request_id: r.request_id,
                actor,
                hold,
                duration_ms,
                now_ms: now_ms(),
            })
            .await?;
        hold_reply(written)
    }

    async fn release_hold(
        &self,
        request: Request<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::CancelReply>, Status> {
        let actor = self.user(&request).await?;
        let r = request.into_inner();
        validate::request_id(&r.request_id).map_err(invalid)?;
        let hold = hold_number(&r.hold_id)?;
        let written = self
            .write(Command::ReleaseHold {
                request_id: r.request_id,
                actor,
                hold,
                now_ms: now_ms(),
            })
            .await?;
        match written.outcome {
            Outcome::HoldReleased { event, seats } => Ok(with_leader(
                pb::CancelReply {
                    seats,
                    event,
                    applied_index: written.index,
                },
                written.leader,
            )),
            other => Err(unexpected(other).into()),
        }
    }

    async fn my_holds(
        &self,
        request: Request<pb::MyHoldsRequest>,
    ) -> Result<Response<pb::MyHoldsReply>, Status> {
        self.user(&request).await?;
        let index = self
            .node
            .read_barrier(consistency(request.get_ref().consistency))
            .await?;
        let user = self.user(&request).await?;
        let holds = self.node.sm.read().state.holds_of(&user);
        Ok(Response::new(pb::MyHoldsReply {
            holds: holds.into_iter().map(hold_pb).collect(),
            applied_index: index,
            now_ms: now_ms(),
        }))
    }

    async fn my_tickets(
        &self,
        request: Request<pb::MyTicketsRequest>,
    ) -> Result<Response<pb::MyTicketsReply>, Status> {
        self.user(&request).await?;
        let index = self
            .node
            .read_barrier(consistency(request.get_ref().consistency))
            .await?;
        let user = self.user(&request).await?;
        let key = self.node.keyring.signing().ok_or_else(|| {
            ApiError::Unavailable("this node has no token key; check its token.keys file".into())
        })?;
        let applied = self.node.sm.read();
        let state = &applied.state;
        let mut tickets = Vec::new();
        for booking in state.bookings_of(&user) {
            let Some(number) = validate::parse_booking_id(&booking.id) else {
                continue;
            };
            let Some(event) = state.event(&booking.event) else {
                continue;
            };
            for seat in &booking.seats {
                let claims = auth::TicketClaims {
                    event: booking.event.clone(),
                    seat: seat.clone(),
                    booking: number,
                };
                let used = event
                    .map
                    .index(seat)
                    .and_then(|i| state.check_in_of(number, i));
                tickets.push(pb::Ticket {
                    code: auth::sign_ticket(&key, &claims),
                    event: booking.event.clone(),
                    seat: seat.clone(),
                    booking_id: booking.id.clone(),
                    checked_in_at_ms: used.map_or(0, |c| c.at_ms),
                    checked_in_by: used.map(|c| c.by.clone()).unwrap_or_default(),
                });
            }
        }
        Ok(Response::new(pb::MyTicketsReply {
            tickets,
            applied_index: index,
        }))
    }

    async fn check_in(
        &self,
        request: Request<pb::CheckInRequest>,
    ) -> Result<Response<pb::CheckInReply>, Status> {
        let actor = self.user(&request).await?;
        let r = request.into_inner();
        validate::request_id(&r.request_id).map_err(invalid)?;
        if r.code.len() > limits::TICKET_CODE_LEN_MAX {
            return Err(invalid("that is not a ticket code".into()).into());
        }
        let claims = auth::verify_ticket(|v| self.node.keyring.secret(v), &r.code)
            .map_err(|e| invalid(format!("not a ticket of this cluster: {e}")))?;
        validate::name("event", &claims.event).map_err(invalid)?;
        let seat = validate::seat_id(&claims.seat).map_err(invalid)?;
        let written = self
            .write(Command::CheckIn {
                request_id: r.request_id,
                actor,
                event: claims.event,
                seat,
                booking: claims.booking,
                now_ms: now_ms(),
            })
            .await?;
        match written.outcome {
            Outcome::CheckedIn(done) => Ok(with_leader(
                pb::CheckInReply {
                    event: done.event,
                    seat: done.seat,
                    booking_id: done.booking,
                    at_ms: done.at_ms,
                    by: done.by,
                    applied_index: written.index,
                },
                written.leader,
            )),
            other => Err(unexpected(other).into()),
        }
    }

    async fn cluster_status(
        &self,
        request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusReply>, Status> {
        // Anyone may learn whether the cluster serves and who leads (clients route by it);
        // where the nodes are is for logged-in users.
        let may_see_addresses = self.optional_user(&request).await.ok().flatten().is_some();
        let states = self.node.probe_all().await;
        let mut reply = pb::ClusterStatusReply::default();
        // The membership as the leader of the highest term has it; this node's own if none
        // answered (a removed node's own view is stale).
        let mut membership = self.node.membership();
        for (_, state) in &states {
            if let Some(s) = state {
                if s.role == "leader" && s.term >= reply.term {
                    reply.leader = s.id;
                    membership = super::node::Membership {
                        voters: s.voters.iter().copied().collect(),
                        learners: s.learners.iter().copied().collect(),
                        joint: s.joint,
                    };
                }
                reply.term = reply.term.max(s.term);
            }
        }
        reply.voters = membership.voters.iter().copied().collect();
        reply.learners = membership.learners.iter().copied().collect();
        reply.joint = membership.joint;
        for (id, state) in states {
            let mut status = self.node_status(id, state, &membership);
            if !may_see_addresses {
                status.addr.clear();
            }
            reply.nodes.push(status);
        }
        Ok(Response::new(reply))
    }

    async fn reserve_batch(
        &self,
        request: Request<pb::ReserveBatchRequest>,
    ) -> Result<Response<pb::ReserveBatchReply>, Status> {
        let reserves = request.into_inner().reserves;
        if reserves.is_empty() || reserves.len() > limits::BATCH_RESERVES_MAX {
            return Err(invalid(format!(
                "a batch holds 1 to {} reserves, not {}",
                limits::BATCH_RESERVES_MAX,
                reserves.len()
            ))
            .into());
        }
        // All at once: the proposer gathers them into shared log entries.
        let written =
            futures::future::join_all(reserves.into_iter().map(|r| self.reserve_batched(r))).await;
        let mut reply = pb::ReserveBatchReply::default();
        let mut leader = None;
        for result in written {
            reply.outcomes.push(match result {
                Ok((booking, index, by)) => {
                    reply.applied_index = reply.applied_index.max(index);
                    leader = Some(by);
                    pb::BatchedOutcome {
                        booking: Some(booking),
                        ..Default::default()
                    }
                }
                Err(error) => {
                    let status = Status::from(error);
                    pb::BatchedOutcome {
                        booking: None,
                        code: status.code() as i32,
                        message: status.message().to_string(),
                    }
                }
            });
        }
        Ok(match leader {
            Some(leader) => with_leader(reply, leader),
            None => Response::new(reply),
        })
    }

    async fn ping(
        &self,
        _request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingReply>, Status> {
        Ok(Response::new(pb::PingReply {}))
    }

    async fn add_node(
        &self,
        request: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        self.admin(&request, "changing the membership").await?;
        let r = request.into_inner();
        let change = super::membership::Change::Add {
            id: r.id,
            peer_addr: r.peer_addr,
        };
        self.change_membership(change).await
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        self.admin(&request, "changing the membership").await?;
        let r = request.into_inner();
        let change = super::membership::Change::Remove {
            id: r.id,
            force: r.force,
        };
        self.change_membership(change).await
    }

    async fn replace_node(
        &self,
        request: Request<pb::ReplaceNodeRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        self.admin(&request, "changing the membership").await?;
        let r = request.into_inner();
        let change = super::membership::Change::Replace {
            old: r.old_id,
            new: r.new_id,
            peer_addr: r.peer_addr,
            force: r.force,
        };
        self.change_membership(change).await
    }
}
