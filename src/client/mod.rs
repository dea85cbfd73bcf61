//! The one client everything uses (the CLI, bench, tests; later the shell, scripts, the
//! assistant and the page). It talks to any node of the cluster, goes straight to the leader
//! once a reply names it, and when a node fails moves to another, retrying the same request
//! with the same request id, so that a retry never books twice. Every call that fails says
//! why as a [`ClientError`] (see `error.rs`): callers never see a gRPC status.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

mod error;
mod ids;

pub use ids::RequestId;

use error::Kind;
pub use error::{ClientError, NoNodeAnswered};

use crate::config::Config;
use crate::limits;
use crate::pb::booking::v1 as pb;
use crate::pb::booking::v1::booking_service_client::BookingServiceClient;

pub use crate::pb::booking::v1::Consistency;

type Stub = BookingServiceClient<Channel>;

#[derive(Clone)]
struct Target {
    id: u64,
    addr: SocketAddr,
    stub: Stub,
}

/// How a client reaches the nodes: plain text, or TLS verified against the cluster's CA.
#[derive(Clone, Default)]
pub struct Transport {
    /// The CA (PEM) the nodes' client-API certificates must chain to; None: plain text.
    ca_pem: Option<String>,
}

impl Transport {
    pub fn plain() -> Transport {
        Transport::default()
    }

    pub fn tls(ca_pem: String) -> Transport {
        Transport {
            ca_pem: Some(ca_pem),
        }
    }

    fn channel(&self, addr: SocketAddr) -> Result<Channel, String> {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| format!("bad address {addr}: {e}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true);
        if let Some(ca) = &self.ca_pem {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca));
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("TLS for {addr}: {e}"))?;
        }
        Ok(endpoint.connect_lazy())
    }
}

pub struct Client {
    targets: Vec<Target>,
    /// Why this client cannot call at all (its CA unreadable, plain text refused): every call
    /// answers it at once.
    refused: Option<String>,
    /// The node calls go to first: the last one that answered, or the leader a reply named.
    current: AtomicUsize,
    auth: Option<MetadataValue<Ascii>>,
    user: Option<String>,
    /// The longest one attempt may take (the server gives up on a write after
    /// `QUORUM_WAIT_MS`), and the longest a call may take over all its retries.
    attempt_timeout: Duration,
    call_timeout: Duration,
    /// Where the ids of writes the caller gives none come from (shared by clones).
    session: std::sync::Arc<ids::Session>,
}

/// A clone shares the connections (HTTP/2 multiplexes its calls) and starts with the same
/// login; a login or logout after that is its own.
impl Clone for Client {
    fn clone(&self) -> Client {
        Client {
            targets: self.targets.clone(),
            refused: self.refused.clone(),
            current: AtomicUsize::new(self.current.load(Ordering::Relaxed)),
            auth: self.auth.clone(),
            user: self.user.clone(),
            attempt_timeout: self.attempt_timeout,
            call_timeout: self.call_timeout,
            session: self.session.clone(),
        }
    }
}

/// Whether a failed attempt may be retried on another node with the same request id.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
    )
}

/// How long a command waits for any node to accept a connection before it says the cluster
/// is not answering.
pub const PROBE_WAIT: Duration = Duration::from_secs(2);

/// How long the client waits for any node to accept a connection once a call has failed for
/// want of one, to tell a cluster that is down from one that is slow.
const UNREACHABLE_PROBE: Duration = Duration::from_millis(500);

/// A free-form request id: random, for what is not a write of this client's session (a
/// nonce, a page's own retry key).
pub fn new_request_id() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Client {
    /// A client of the given nodes (id, address), in plain text. Connections are made on
    /// first use.
    pub fn new(nodes: &[(u64, SocketAddr)]) -> Client {
        Client::with_transport(nodes, &Transport::plain())
    }

    pub fn with_transport(nodes: &[(u64, SocketAddr)], transport: &Transport) -> Client {
        let mut refused = None;
        let targets = nodes
            .iter()
            .filter_map(|&(id, addr)| match transport.channel(addr) {
                Ok(channel) => {
                    let stub = BookingServiceClient::new(channel)
                        .max_decoding_message_size(limits::GRPC_MESSAGE_MAX_BYTES)
                        .max_encoding_message_size(limits::GRPC_MESSAGE_MAX_BYTES);
                    Some(Target { id, addr, stub })
                }
                Err(e) => {
                    refused = Some(e);
                    None
                }
            })
            .collect();
        Client {
            targets,
            refused,
            current: AtomicUsize::new(0),
            auth: None,
            user: None,
            attempt_timeout: Duration::from_millis(limits::QUORUM_WAIT_MS + 2_000),
            call_timeout: Duration::from_secs(20),
            session: ids::Session::new(),
        }
    }

    /// Gives up on a call (over all its retries) after `timeout`, at most
    /// `CLIENT_RETRY_WINDOW_MS`: the call's outcome is then unknown to the caller, as after
    /// any timeout. (The cluster keeps a session's answers far longer than that window.)
    pub fn with_call_timeout(mut self, timeout: Duration) -> Client {
        let timeout = timeout.min(Duration::from_millis(limits::CLIENT_RETRY_WINDOW_MS));
        self.call_timeout = timeout;
        self.attempt_timeout = self.attempt_timeout.min(timeout);
        self
    }

    /// A new id for a write of this client's session: a retry with it is recognised for as
    /// long as the id is kept (drop it once the call has ended).
    pub fn request_id(&self) -> RequestId {
        self.session.begin()
    }

    /// A client of every node of `config`: TLS against `[tls] ca` when the file names one;
    /// plain text otherwise, which it refuses to nodes off loopback unless `config.insecure`.
    pub fn from_config(config: &Config) -> Client {
        let nodes: Vec<(u64, SocketAddr)> = config.nodes.iter().map(|n| (n.id, n.addr)).collect();
        Client::of_nodes(config, &nodes)
    }

    /// A client of only these nodes of `config` (it never moves to another), as
    /// [`from_config`](Self::from_config) would reach them.
    pub fn of_nodes(config: &Config, nodes: &[(u64, SocketAddr)]) -> Client {
        match Client::transport(config) {
            Ok(transport) => Client::with_transport(nodes, &transport),
            Err(why) => {
                let mut client = Client::new(&[]);
                client.refused = Some(why);
                client
            }
        }
    }

    fn transport(config: &Config) -> Result<Transport, String> {
        if let Some(tls) = &config.tls {
            let ca = std::fs::read_to_string(&tls.ca)
                .map_err(|e| format!("cannot read the cluster's CA {}: {e}", tls.ca.display()))?;
            return Ok(Transport::tls(ca));
        }
        let remote = config.nodes.iter().find(|n| !n.addr.ip().is_loopback());
        match remote {
            Some(node) if !config.insecure => Err(format!(
                "refusing to send passwords and tokens in plain text to {}: name the cluster's CA \
                 in [tls] of {}, or pass --insecure",
                node.addr,
                config.path.display()
            )),
            _ => Ok(Transport::plain()),
        }
    }

    /// Whether any node accepts a connection within `within` (all are tried at once). A call
    /// to a cluster that is down retries for `call_timeout`; this says so at once, naming the
    /// addresses it tried.
    pub async fn probe(&self, within: Duration) -> Result<(), NoNodeAnswered> {
        if self.refused.is_some() || self.targets.is_empty() {
            // The call itself will say why.
            return Ok(());
        }
        let tries = self.targets.iter().map(|t| {
            Box::pin(tokio::time::timeout(
                within,
                tokio::net::TcpStream::connect(t.addr),
            ))
        });
        let mut pending: Vec<_> = tries.collect();
        while !pending.is_empty() {
            let (result, _, rest) = futures::future::select_all(pending).await;
            if let Ok(Ok(_)) = result {
                return Ok(());
            }
            pending = rest;
        }
        Err(NoNodeAnswered {
            addrs: self.targets.iter().map(|t| t.addr).collect(),
            within,
        })
    }

    /// What a call's last failure `status` comes to: [`ClientError::NoNodeAnswered`] when it
    /// is UNAVAILABLE and no node accepts a connection now (a person is then told the
    /// cluster is down, not the last node's message); otherwise its class for `kind`.
    async fn failure(&self, status: Status, kind: Kind) -> ClientError {
        if status.code() == Code::Unavailable {
            if let Err(none) = self.probe(UNREACHABLE_PROBE).await {
                return ClientError::NoNodeAnswered(none);
            }
        }
        ClientError::from_status(status, kind)
    }

    /// Calls go to this node first.
    pub fn prefer(&self, id: u64) {
        if let Some(i) = self.targets.iter().position(|t| t.id == id) {
            self.current.store(i, Ordering::Relaxed);
        }
    }

    pub fn set_token(&mut self, user: &str, token: &str) -> Result<(), ClientError> {
        let value = crate::wire::bearer(token)
            .parse()
            .map_err(|_| ClientError::Invalid {
                message: "the token is not valid header text".into(),
                code: Code::InvalidArgument,
            })?;
        self.auth = Some(value);
        self.user = Some(user.to_string());
        Ok(())
    }

    /// Forgets the token.
    pub fn logout(&mut self) {
        self.auth = None;
        self.user = None;
    }

    /// The node calls go to first: the one that answered last, or the leader a reply named.
    pub fn current_node(&self) -> u64 {
        let i = self.current.load(Ordering::Relaxed) % self.targets.len().max(1);
        self.targets.get(i).map_or(0, |t| t.id)
    }

    pub fn token(&self) -> Option<&str> {
        self.auth
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(crate::wire::bearer_token)
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Runs `rpc` against the current node, moving to the next on a retryable failure until
    /// the call's deadline. The message is cloned per attempt; its request id stays the same.
    /// `kind` says what a last failure worth retrying means: see [`ClientError::from_status`].
    async fn call<M, R, F, Fut>(&self, kind: Kind, message: M, rpc: F) -> Result<R, ClientError>
    where
        M: Clone,
        F: Fn(Stub, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        if let Some(why) = &self.refused {
            return Err(Status::failed_precondition(why.clone()).into());
        }
        if self.targets.is_empty() {
            return Err(Status::failed_precondition("this client knows no node").into());
        }
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let mut attempt = 0usize;
        loop {
            let i = self.current.load(Ordering::Relaxed) % self.targets.len();
            let mut request = Request::new(message.clone());
            if let Some(auth) = &self.auth {
                request
                    .metadata_mut()
                    .insert(crate::wire::AUTHORIZATION_HEADER, auth.clone());
            }
            let stub = self.targets[i].stub.clone();
            let result = match tokio::time::timeout(self.attempt_timeout, rpc(stub, request)).await
            {
                Ok(result) => result,
                Err(_) => Err(Status::deadline_exceeded("the node did not answer in time")),
            };
            match result {
                Ok(response) => {
                    if let Some(leader) = crate::wire::leader(response.metadata()) {
                        self.prefer(leader);
                    }
                    return Ok(response.into_inner());
                }
                Err(status) if retryable(&status) => {
                    attempt += 1;
                    // Next node; after a full round, pause briefly so an election can finish.
                    self.current
                        .store((i + 1) % self.targets.len(), Ordering::Relaxed);
                    if tokio::time::Instant::now() >= deadline {
                        return Err(self.failure(status, kind).await);
                    }
                    if attempt % self.targets.len() == 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(status) => return Err(ClientError::from_status(status, kind)),
            }
        }
    }

    /// Logs in and keeps the token for later calls.
    pub async fn login(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<pb::LoginReply, ClientError> {
        let message = pb::LoginRequest {
            user: user.to_string(),
            password: password.to_string(),
        };
        let reply = self
            .call(
                Kind::Read,
                message,
                |mut s, r| async move { s.login(r).await },
            )
            .await?;
        self.set_token(&reply.user, &reply.token)?;
        Ok(reply)
    }

    pub async fn add_user(
        &self,
        name: &str,
        password: &str,
        admin: bool,
    ) -> Result<pb::AddUserReply, ClientError> {
        let role = if admin {
            pb::Role::Admin
        } else {
            pb::Role::Customer
        };
        self.add_user_with_role(name, password, role).await
    }

    /// Adds a user of any role (an admin or door staff needs an admin's token).
    pub async fn add_user_with_role(
        &self,
        name: &str,
        password: &str,
        role: pb::Role,
    ) -> Result<pb::AddUserReply, ClientError> {
        let id = self.request_id();
        let message = pb::AddUserRequest {
            request_id: id.to_string(),
            name: name.to_string(),
            password: password.to_string(),
            role: role as i32,
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.add_user(r).await
        })
        .await
    }

    /// Makes the first admin of a cluster with the setup code its first leader logged.
    pub async fn setup_admin(
        &self,
        setup_code: &str,
        name: &str,
        password: &str,
    ) -> Result<pb::AddUserReply, ClientError> {
        let id = self.request_id();
        let message = pb::SetupAdminRequest {
            request_id: id.to_string(),
            setup_code: setup_code.to_string(),
            name: name.to_string(),
            password: password.to_string(),
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.setup_admin(r).await
        })
        .await
    }

    /// Revokes every token of `user` (None: the logged-in user), this client's included:
    /// logging out everywhere.
    pub async fn revoke_tokens(
        &self,
        user: Option<&str>,
    ) -> Result<pb::UserChangedReply, ClientError> {
        let id = self.request_id();
        let message = pb::LogoutRequest {
            request_id: id.to_string(),
            user: user.unwrap_or_default().to_string(),
        };
        self.call(
            Kind::Write,
            message,
            |mut s, r| async move { s.logout(r).await },
        )
        .await
    }

    /// Sets a new password for `user` (None: the logged-in user); older tokens stop working.
    pub async fn change_password(
        &self,
        user: Option<&str>,
        new_password: &str,
    ) -> Result<pb::UserChangedReply, ClientError> {
        let id = self.request_id();
        let message = pb::ChangePasswordRequest {
            request_id: id.to_string(),
            user: user.unwrap_or_default().to_string(),
            new_password: new_password.to_string(),
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.change_password(r).await
        })
        .await
    }

    /// Admin only: disables (or enables again) `user`.
    pub async fn set_user_disabled(
        &self,
        user: &str,
        disabled: bool,
    ) -> Result<pb::UserChangedReply, ClientError> {
        let id = self.request_id();
        let message = pb::SetUserDisabledRequest {
            request_id: id.to_string(),
            user: user.to_string(),
            disabled,
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.set_user_disabled(r).await
        })
        .await
    }

    pub async fn list_events(&self) -> Result<pb::ListEventsReply, ClientError> {
        let message = pb::ListEventsRequest::default();
        self.call(Kind::Read, message, |mut s, r| async move {
            s.list_events(r).await
        })
        .await
    }

    pub async fn create_event(
        &self,
        name: &str,
        rows: u32,
        seats_per_row: u32,
        max_seats_per_user: u32,
    ) -> Result<pb::CreateEventReply, ClientError> {
        let id = self.request_id();
        let message = pb::CreateEventRequest {
            request_id: id.to_string(),
            name: name.to_string(),
            rows,
            seats_per_row,
            max_seats_per_user,
            row_labels: Vec::new(),
            categories: Vec::new(),
            currency: String::new(),
        };
        self.create_event_from(message).await
    }

    /// Creates an event from a whole request (categories and prices, row labels); an empty
    /// request id is given a fresh one.
    pub async fn create_event_from(
        &self,
        mut message: pb::CreateEventRequest,
    ) -> Result<pb::CreateEventReply, ClientError> {
        let id = message.request_id.is_empty().then(|| self.request_id());
        if let Some(id) = &id {
            message.request_id = id.to_string();
        }
        self.call(Kind::Write, message, |mut s, r| async move {
            s.create_event(r).await
        })
        .await
    }

    /// Holds seats (named, or the best `best_count`); an empty request id is given a fresh
    /// one, and a retry reuses it.
    pub async fn hold(&self, mut message: pb::HoldRequest) -> Result<pb::HoldReply, ClientError> {
        let id = message.request_id.is_empty().then(|| self.request_id());
        if let Some(id) = &id {
            message.request_id = id.to_string();
        }
        self.call(
            Kind::Write,
            message,
            |mut s, r| async move { s.hold(r).await },
        )
        .await
    }

    pub async fn confirm_hold(
        &self,
        hold_id: &str,
        payment_ref: &str,
    ) -> Result<pb::ReserveReply, ClientError> {
        self.confirm_hold_with_id(&self.request_id(), hold_id, payment_ref)
            .await
    }

    /// Confirms with a request id of the caller's choosing (a retry must reuse it).
    pub async fn confirm_hold_with_id(
        &self,
        request_id: &str,
        hold_id: &str,
        payment_ref: &str,
    ) -> Result<pb::ReserveReply, ClientError> {
        let message = pb::ConfirmHoldRequest {
            request_id: request_id.to_string(),
            hold_id: hold_id.to_string(),
            payment_ref: payment_ref.to_string(),
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.confirm_hold(r).await
        })
        .await
    }

    /// Extends a hold by `duration_ms` from now (0: the cluster's default length).
    pub async fn extend_hold(
        &self,
        hold_id: &str,
        duration_ms: u64,
    ) -> Result<pb::HoldReply, ClientError> {
        self.extend_hold_with_id(&self.request_id(), hold_id, duration_ms)
            .await
    }

    /// Extends with a request id of the caller's choosing (a retry must reuse it).
    pub async fn extend_hold_with_id(
        &self,
        request_id: &str,
        hold_id: &str,
        duration_ms: u64,
    ) -> Result<pb::HoldReply, ClientError> {
        let message = pb::ExtendHoldRequest {
            request_id: request_id.to_string(),
            hold_id: hold_id.to_string(),
            duration_ms,
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.extend_hold(r).await
        })
        .await
    }

    pub async fn release_hold(&self, hold_id: &str) -> Result<pb::CancelReply, ClientError> {
        self.release_hold_with_id(&self.request_id(), hold_id).await
    }

    /// Releases with a request id of the caller's choosing (a retry must reuse it).
    pub async fn release_hold_with_id(
        &self,
        request_id: &str,
        hold_id: &str,
    ) -> Result<pb::CancelReply, ClientError> {
        let message = pb::ReleaseHoldRequest {
            request_id: request_id.to_string(),
            hold_id: hold_id.to_string(),
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.release_hold(r).await
        })
        .await
    }

    pub async fn my_holds(&self) -> Result<pb::MyHoldsReply, ClientError> {
        let message = pb::MyHoldsRequest {
            consistency: Consistency::Linearizable as i32,
        };
        self.call(Kind::Read, message, |mut s, r| async move {
            s.my_holds(r).await
        })
        .await
    }

    pub async fn my_tickets(&self) -> Result<pb::MyTicketsReply, ClientError> {
        let message = pb::MyTicketsRequest {
            consistency: Consistency::Linearizable as i32,
        };
        self.call(Kind::Read, message, |mut s, r| async move {
            s.my_tickets(r).await
        })
        .await
    }

    pub async fn check_in(&self, code: &str) -> Result<pb::CheckInReply, ClientError> {
        let id = self.request_id();
        let message = pb::CheckInRequest {
            request_id: id.to_string(),
            code: code.to_string(),
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.check_in(r).await
        })
        .await
    }

    /// A backup file of the whole state (admins), and the log index it reflects. The bytes
    /// are as the node sent them: `consensus::backup::decode_file` checks them.
    pub async fn backup(&self) -> Result<(Vec<u8>, u64), ClientError> {
        let mut stream = self
            .call(Kind::Read, pb::BackupRequest {}, |mut s, r| async move {
                s.backup(r).await
            })
            .await?;
        let mut file = Vec::new();
        let mut index = 0;
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| ClientError::from_status(s, Kind::Read))?
        {
            if file.is_empty() {
                index = chunk.applied_index;
                let expected = usize::try_from(chunk.total_bytes).unwrap_or(usize::MAX);
                file.reserve(expected.min(crate::limits::GRPC_MESSAGE_MAX_BYTES));
            }
            file.extend_from_slice(&chunk.data);
        }
        Ok((file, index))
    }

    pub async fn get_seats(
        &self,
        event: &str,
        consistency: Consistency,
    ) -> Result<pb::GetSeatsReply, ClientError> {
        let message = pb::GetSeatsRequest {
            event: event.to_string(),
            consistency: consistency as i32,
        };
        self.call(Kind::Read, message, |mut s, r| async move {
            s.get_seats(r).await
        })
        .await
    }

    pub async fn reserve(
        &self,
        event: &str,
        seats: &[&str],
    ) -> Result<pb::ReserveReply, ClientError> {
        self.reserve_with_id(&self.request_id(), event, seats).await
    }

    /// Reserves with a request id of the caller's choosing (a retry must reuse it).
    pub async fn reserve_with_id(
        &self,
        request_id: &str,
        event: &str,
        seats: &[&str],
    ) -> Result<pb::ReserveReply, ClientError> {
        let message = pb::ReserveRequest {
            request_id: request_id.to_string(),
            event: event.to_string(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
        };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.reserve(r).await
        })
        .await
    }

    pub async fn cancel_seats(
        &self,
        event: &str,
        seats: &[&str],
    ) -> Result<pb::CancelReply, ClientError> {
        self.cancel_seats_with_id(&self.request_id(), event, seats)
            .await
    }

    /// Cancels seats with a request id of the caller's choosing (a retry must reuse it).
    pub async fn cancel_seats_with_id(
        &self,
        request_id: &str,
        event: &str,
        seats: &[&str],
    ) -> Result<pb::CancelReply, ClientError> {
        let message = pb::CancelRequest {
            request_id: request_id.to_string(),
            event: event.to_string(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
            booking_id: String::new(),
        };
        self.call(
            Kind::Write,
            message,
            |mut s, r| async move { s.cancel(r).await },
        )
        .await
    }

    pub async fn cancel_booking(&self, booking_id: &str) -> Result<pb::CancelReply, ClientError> {
        self.cancel_booking_with_id(&self.request_id(), booking_id)
            .await
    }

    /// Cancels a booking with a request id of the caller's choosing.
    pub async fn cancel_booking_with_id(
        &self,
        request_id: &str,
        booking_id: &str,
    ) -> Result<pb::CancelReply, ClientError> {
        let message = pb::CancelRequest {
            request_id: request_id.to_string(),
            event: String::new(),
            seats: Vec::new(),
            booking_id: booking_id.to_string(),
        };
        self.call(
            Kind::Write,
            message,
            |mut s, r| async move { s.cancel(r).await },
        )
        .await
    }

    pub async fn my_bookings(&self) -> Result<pb::MyBookingsReply, ClientError> {
        let message = pb::MyBookingsRequest::default();
        self.call(Kind::Read, message, |mut s, r| async move {
            s.my_bookings(r).await
        })
        .await
    }

    /// Watches `event`'s seats from `from_index` (0: the whole map first). The watch moves to
    /// another node when its node fails, resuming where it was.
    pub fn watch_seats(&self, event: &str, from_index: u64) -> SeatWatch {
        SeatWatch {
            client: self.clone(),
            event: event.to_string(),
            index: from_index,
            stream: None,
        }
    }

    /// Many bookings in one call, each with its own request id and user token (an empty
    /// request id is given a fresh one); a retry of the call reuses them, so none is made
    /// twice. Each outcome is a booking or the status its own Reserve would have had.
    pub async fn reserve_batch(
        &self,
        mut reserves: Vec<pb::BatchedReserve>,
    ) -> Result<pb::ReserveBatchReply, ClientError> {
        let mut ids = Vec::new();
        for reserve in &mut reserves {
            if reserve.request_id.is_empty() {
                let id = self.request_id();
                reserve.request_id = id.to_string();
                ids.push(id);
            }
        }
        let message = pb::ReserveBatchRequest { reserves };
        self.call(Kind::Write, message, |mut s, r| async move {
            s.reserve_batch(r).await
        })
        .await
    }

    /// One outcome of a ReserveBatch: the booking, or the error its own Reserve would have
    /// given.
    pub fn batched_outcome(outcome: pb::BatchedOutcome) -> Result<pb::Booking, ClientError> {
        match outcome.booking {
            Some(booking) => Ok(booking),
            None => {
                let status = Status::new(tonic::Code::from(outcome.code), outcome.message);
                Err(ClientError::from_status(status, Kind::Write))
            }
        }
    }

    /// One no-op round trip to the current node.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call(Kind::Read, pb::PingRequest {}, |mut s, r| async move {
            s.ping(r).await
        })
        .await
        .map(|_| ())
    }

    /// A copy of this client patient enough for a membership change: one call may wait for
    /// a learner to catch up, then for two commits.
    fn for_membership(&self) -> Client {
        let mut client = self.clone();
        client.attempt_timeout = Duration::from_millis(limits::CLIENT_REQUEST_MAX_MS + 1_000);
        client.call_timeout = client.call_timeout.max(client.attempt_timeout * 2);
        client.call_timeout = client
            .call_timeout
            .min(Duration::from_millis(limits::CLIENT_RETRY_WINDOW_MS));
        client
    }

    /// Adds node `id` (admins): a learner at `peer_addr`, promoted once caught up. A reply
    /// with `promoted: false` means it is still catching up: ask again.
    pub async fn add_node(
        &self,
        id: u64,
        peer_addr: &str,
    ) -> Result<pb::MembershipReply, ClientError> {
        let message = pb::AddNodeRequest {
            id,
            peer_addr: peer_addr.to_string(),
        };
        self.for_membership()
            .call(Kind::Write, message, |mut s, r| async move {
                s.add_node(r).await
            })
            .await
    }

    /// Removes node `id` (admins); `force` overrides the quorum guard.
    pub async fn remove_node(
        &self,
        id: u64,
        force: bool,
    ) -> Result<pb::MembershipReply, ClientError> {
        let message = pb::RemoveNodeRequest { id, force };
        self.for_membership()
            .call(Kind::Write, message, |mut s, r| async move {
                s.remove_node(r).await
            })
            .await
    }

    /// Puts node `new_id` (at `peer_addr`) in voter `old_id`'s place (admins).
    pub async fn replace_node(
        &self,
        old_id: u64,
        new_id: u64,
        peer_addr: &str,
        force: bool,
    ) -> Result<pb::MembershipReply, ClientError> {
        let message = pb::ReplaceNodeRequest {
            old_id,
            new_id,
            peer_addr: peer_addr.to_string(),
            force,
        };
        self.for_membership()
            .call(Kind::Write, message, |mut s, r| async move {
                s.replace_node(r).await
            })
            .await
    }

    pub async fn cluster_status(&self) -> Result<pb::ClusterStatusReply, ClientError> {
        let message = pb::ClusterStatusRequest {};
        self.call(Kind::Read, message, |mut s, r| async move {
            s.cluster_status(r).await
        })
        .await
    }
}

/// A live view of one event's seats: see [`Client::watch_seats`].
pub struct SeatWatch {
    client: Client,
    event: String,
    /// The last applied index received: where a new stream resumes.
    index: u64,
    stream: Option<tonic::Streaming<pb::WatchSeatsReply>>,
}

impl SeatWatch {
    /// The last applied index received.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The next update: the first brings the watcher up to date (`reset` when it is the whole
    /// map). A node that fails is left for another, resuming from [`index`](Self::index);
    /// an error comes back only when no node serves the watch within the client's call
    /// timeout, or the watch itself is refused (an unknown event, a bad token).
    pub async fn next(&mut self) -> Result<pb::WatchSeatsReply, ClientError> {
        let deadline = tokio::time::Instant::now() + self.client.call_timeout;
        let mut last_error = Status::unavailable("no node serves the watch");
        loop {
            if let Some(stream) = &mut self.stream {
                match stream.message().await {
                    Ok(Some(reply)) => {
                        self.index = self.index.max(reply.applied_index);
                        return Ok(reply);
                    }
                    Ok(None) => last_error = Status::unavailable("the node ended the watch"),
                    Err(status) if retryable(&status) => last_error = status,
                    Err(status) => return Err(status.into()),
                }
                // This node is gone or going: resume on the next.
                self.stream = None;
                let n = self.client.targets.len();
                let i = self.client.current.load(Ordering::Relaxed);
                self.client.current.store((i + 1) % n, Ordering::Relaxed);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(last_error.into());
            }
            let message = pb::WatchSeatsRequest {
                event: self.event.clone(),
                from_index: self.index,
            };
            match self
                .client
                .call(Kind::Read, message, |mut s, r| async move {
                    s.watch_seats(r).await
                })
                .await
            {
                Ok(stream) => self.stream = Some(stream),
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that accepts connections and never answers: every attempt times out, yet the
    /// cluster is not down. The returned task holds the connections open.
    async fn silent_node() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (addr, task)
    }

    fn impatient(addr: SocketAddr) -> Client {
        Client::new(&[(1, addr)]).with_call_timeout(Duration::from_millis(300))
    }

    #[test]
    fn the_retried_codes_are_the_ones_that_end_unavailable_or_unknown() {
        for code in (0..17).map(Code::from) {
            let status = Status::new(code, "");
            let read = ClientError::from_status(status.clone(), Kind::Read);
            let write = ClientError::from_status(status.clone(), Kind::Write);
            assert_eq!(
                retryable(&status),
                matches!(read, ClientError::Unavailable { .. }),
                "{code:?}"
            );
            assert_eq!(
                retryable(&status),
                matches!(write, ClientError::UnknownOutcome { .. }),
                "{code:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_write_that_times_out_has_an_unknown_outcome_and_a_read_is_unavailable() {
        let (addr, node) = silent_node().await;
        let client = impatient(addr);
        let write = client.reserve("demo", &["S1"]).await.map(|_| ());
        assert!(
            matches!(write, Err(ClientError::UnknownOutcome { .. })),
            "{write:?}"
        );
        let cancel = client.cancel_booking("bk-1").await.map(|_| ());
        assert!(
            matches!(cancel, Err(ClientError::UnknownOutcome { .. })),
            "{cancel:?}"
        );
        let read = client
            .get_seats("demo", Consistency::Linearizable)
            .await
            .map(|_| ());
        assert!(
            matches!(read, Err(ClientError::Unavailable { .. })),
            "{read:?}"
        );
        node.abort();
    }

    #[tokio::test]
    async fn a_call_to_a_cluster_that_is_down_says_no_node_answered() {
        let (addr, node) = silent_node().await;
        node.abort();
        // Wait until the port refuses connections.
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let client = impatient(addr);
        let read = client.list_events().await.map(|_| ());
        assert!(
            matches!(read, Err(ClientError::NoNodeAnswered(_))),
            "{read:?}"
        );
        let write = client.reserve("demo", &["S1"]).await.map(|_| ());
        assert!(
            matches!(write, Err(ClientError::NoNodeAnswered(_))),
            "{write:?}"
        );
    }
}
