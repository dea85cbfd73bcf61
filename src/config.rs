//! `cluster.toml`: the nodes of a cluster, where they keep their data, Raft timing and
//! security settings. Typed, every field documented, unknown keys refused. Every error names
//! the file, the line and the key, so a typo is found at once.
//!
//! Relative paths resolve against the directory of the file itself, so a copy of the file
//! in another folder describes a separate cluster with separate data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::limits;

/// The file of token keys in a CA's directory (see `pki`).
pub const TOKEN_KEYS_FILE: &str = "token.keys";

/// The variable that gives the first admin's password: to a node for the cluster's seed, and
/// to the commands that start a local cluster or log a script in as that admin.
pub const ADMIN_PASSWORD_ENV: &str = "TICKET_ADMIN_PASSWORD";

/// A loaded and checked `cluster.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Each node keeps its store in `<data_dir>/node<ID>`.
    pub data_dir: PathBuf,
    pub raft: RaftConfig,
    pub security: SecurityConfig,
    pub booking: BookingConfig,
    pub nodes: Vec<NodeConfig>,
    pub peer_tls: PeerTlsConfig,
    /// `[tls]`: TLS on the client API. None: plain text, which a node allows only on a
    /// loopback address and a client only to one (or when told `--insecure`).
    pub tls: Option<ClientTlsConfig>,
    /// Set from the command line (`--insecure`): a client may speak plain text to nodes that
    /// are not on loopback.
    pub insecure: bool,
    pub assistant: AssistantConfig,
    pub web: WebConfig,
}

/// `[web]`: the page and its JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// Where the page is served (with the local cluster, by the shell and `ticket up`; and by
    /// `ticket web` against any cluster).
    pub listen: SocketAddr,
    /// HTTPS for the page and `/ask`: the certificate and key (PEM). Without them both are
    /// plain HTTP, which is allowed only on a loopback address.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cert: None,
            key: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<Spanned<String>>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub id: u64,
    /// The address this node is dialed at: its advertised address. Each node dials its peers
    /// at the addresses its own copy of the file gives, so a node's copy may route a peer
    /// through a proxy.
    pub addr: SocketAddr,
    /// The address the node binds; defaults to `addr`. Differs when a proxy or NAT sits
    /// between the node and its peers.
    pub listen: SocketAddr,
    /// Where the node's peers dial it for Raft traffic (mutual TLS, never shared with the
    /// client API). Defaults to `addr` with the port plus 1000 (60051 → 61051).
    pub peer_advertise: SocketAddr,
    /// The address the peer listener binds; defaults to `peer_advertise`.
    pub peer_listen: SocketAddr,
    /// Where the node serves Prometheus metrics (`/metrics`), `/healthz` and `/readyz` over
    /// plain HTTP; off unless set. They carry no secret, but keep them off the public network.
    pub metrics_listen: Option<SocketAddr>,
    /// Whether the node is in the membership a brand-new cluster starts with (the default).
    /// `bootstrap = false` lists a node (its addresses, for peers and clients) that joins an
    /// existing cluster later: started with `ticket node --join`, added by `ticket cluster add`.
    pub bootstrap: bool,
}

/// `[peer_tls]`: the files of the cluster's certificate authority and of this node's
/// certificate. `{id}` in a path stands for the node's id. Without the section, a cluster
/// whose nodes are all on loopback makes them under `<data_dir>/pki` on first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTlsConfig {
    /// The CA certificate every peer certificate must chain to.
    pub ca: PathBuf,
    /// This node's certificate (PEM), signed by the CA for `node{id}`.
    pub cert: PathBuf,
    /// This node's private key (PEM, mode 0600).
    pub key: PathBuf,
    /// Whether the files were named in cluster.toml (otherwise a local cluster may make them).
    pub configured: bool,
}

impl PeerTlsConfig {
    /// The path of node `id`'s certificate and key.
    pub fn node_files(&self, id: u64) -> (PathBuf, PathBuf) {
        let fill = |p: &Path| PathBuf::from(p.to_string_lossy().replace("{id}", &id.to_string()));
        (fill(&self.cert), fill(&self.key))
    }
}

/// `[tls]`: the client API's certificate on the nodes, and the CA clients verify it against.
/// `{id}` in `cert` or `key` stands for the node's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsConfig {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientTlsConfig {
    /// Node `id`'s certificate and key.
    pub fn node_files(&self, id: u64) -> (PathBuf, PathBuf) {
        let fill = |p: &Path| PathBuf::from(p.to_string_lossy().replace("{id}", &id.to_string()));
        (fill(&self.cert), fill(&self.key))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeerTls {
    ca: String,
    cert: String,
    key: String,
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// How often a leader sends heartbeats.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time in [min, max) starts an election.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot (and compact the log) after this many entries since the last one.
    pub snapshot_threshold: u64,
    /// ... or after the log has taken this many bytes since the last one, whichever comes
    /// first: an entry holds from one command to over a hundred.
    pub snapshot_log_bytes: u64,
    /// Entries kept in the log behind a snapshot, so a slightly lagging follower catches up
    /// from the log instead of by a snapshot install.
    pub keep_after_snapshot: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1_000,
            snapshot_threshold: 20_000,
            snapshot_log_bytes: 64 * 1024 * 1024,
            keep_after_snapshot: 1_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// How long a login token stays valid.
    pub token_ttl_secs: u64,
    /// PBKDF2 rounds for new passwords; existing ones keep the rounds they were hashed with.
    pub pbkdf2_iterations: u32,
    /// The file of token-signing keys every node reads (relative to this file); default
    /// `<data_dir>/pki/token.keys`. Never in the replicated log.
    pub token_keys: Option<PathBuf>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            token_ttl_secs: 12 * 3600,
            pbkdf2_iterations: limits::PBKDF2_ITERATIONS_DEFAULT,
            token_keys: None,
        }
    }
}

/// `[booking]`: how checkout behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookingConfig {
    /// How long a hold keeps its seats unless the request asks for another length.
    pub hold_ms: u64,
    /// The longest a hold may last in all, extensions included (at most 2 hours).
    pub hold_max_ms: u64,
}

impl Default for BookingConfig {
    fn default() -> Self {
        BookingConfig {
            hold_ms: limits::HOLD_MS_DEFAULT,
            hold_max_ms: limits::HOLD_MAX_MS_DEFAULT,
        }
    }
}

/// Which backend answers `ask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The local rules engine: deterministic, no network.
    Rules,
    /// OpenAI, or any server that speaks its chat-completions protocol.
    #[serde(rename = "openai")]
    OpenAi,
}

/// `[assistant]`: the backend, the HTTP `/ask` address, and the OpenAI settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssistantConfig {
    pub backend: Backend,
    /// Where `POST /ask` is served (with the local cluster, by the shell and `ticket up`).
    pub listen: String,
    /// When the openai backend fails, answer with the rules engine (and say so).
    pub fallback_to_rules: bool,
    /// A template for the openai backend's system prompt ({user}, {event}, {time} are filled
    /// in); relative to this file. Without it, the one built in.
    pub system_prompt: Option<PathBuf>,
    /// Whether a `/ask` caller may pick the backend (`"backend"` in the request). Off by
    /// default: a stranger must not spend the OpenAI key or send questions to a third party
    /// unless the operator chose so.
    pub ask_may_choose_backend: bool,
    pub openai: OpenAiConfig,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        AssistantConfig {
            backend: Backend::Rules,
            listen: "127.0.0.1:8000".into(),
            fallback_to_rules: true,
            system_prompt: None,
            ask_may_choose_backend: false,
            openai: OpenAiConfig::default(),
        }
    }
}

impl AssistantConfig {
    /// The checked `/ask` address.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// `[assistant.openai]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// The server's API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1.
    pub base_url: String,
    pub model: String,
    /// The name of the environment variable that holds the API key (the key itself never
    /// goes in this file). Unset or empty: no key is sent, as local servers expect.
    pub api_key_env: String,
    /// The longest one question may take, all model rounds and tool calls together.
    pub timeout_secs: u64,
    /// The most tool calls one question may make.
    pub max_tool_calls: u32,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            timeout_secs: 30,
            max_tool_calls: 8,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<Spanned<String>>,
    raft: Option<Spanned<RaftConfig>>,
    security: Option<Spanned<SecurityConfig>>,
    booking: Option<Spanned<BookingConfig>>,
    nodes: Spanned<Vec<RawNode>>,
    peer_tls: Option<RawPeerTls>,
    tls: Option<RawPeerTls>,
    // Not `Spanned`: toml cannot span a table that only appears as `[assistant.openai]`.
    assistant: Option<AssistantConfig>,
    web: Option<RawWeb>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<u64>,
    #[serde(alias = "advertise")]
    addr: Spanned<String>,
    listen: Option<Spanned<String>>,
    peer_advertise: Option<Spanned<String>>,
    peer_listen: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    bootstrap: Option<bool>,
}

/// A problem with the file, located to its line and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses `text` as if read from `path` (which anchors relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let locate = Locator { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            locate.error(span, None, e.message())
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // The sections in the order their errors are reported.
        let data_dir = parse_data_dir(&locate, raw.data_dir.as_ref(), base)?;
        let raft = parse_raft(&locate, raw.raft)?;
        let security = parse_security(&locate, raw.security, base, &data_dir)?;
        let booking = parse_booking(&locate, raw.booking)?;
        let nodes = parse_nodes(&locate, &raw.nodes)?;
        let assistant = parse_assistant(&locate, raw.assistant, base)?;
        let peer_tls = parse_peer_tls(raw.peer_tls, base, &data_dir);
        let tls = parse_tls(raw.tls, base);
        let web = parse_web(&locate, raw.web, base)?;
        Ok(Config {
            path: path.to_path_buf(),
            data_dir,
            raft,
            security,
            booking,
            nodes,
            peer_tls,
            tls,
            insecure: false,
            assistant,
            web,
        })
    }

    pub fn node(&self, id: u64) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The token-key file.
    pub fn token_keys_path(&self) -> PathBuf {
        self.security
            .token_keys
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pki").join(TOKEN_KEYS_FILE))
    }

    pub fn node_data_dir(&self, id: u64) -> PathBuf {
        self.data_dir.join(format!("node{id}"))
    }

    /// The membership a brand-new cluster starts with: every node but those marked
    /// `bootstrap = false`, by id, with where its peers dial it.
    pub fn bootstrap_members(&self) -> BTreeMap<u64, openraft::BasicNode> {
        self.nodes
            .iter()
            .filter(|n| n.bootstrap)
            .map(|n| (n.id, openraft::BasicNode::new(n.peer_advertise.to_string())))
            .collect()
    }

    /// Where each node's peer listener is dialed, by id.
    pub fn peer_addrs(&self) -> BTreeMap<u64, String> {
        self.nodes
            .iter()
            .map(|n| (n.id, n.peer_advertise.to_string()))
            .collect()
    }

    /// The directory of the file: relative paths (data, plugins) resolve against it.
    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Whether every node of the cluster is on this machine (a loopback address).
    pub fn all_local(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.addr.ip().is_loopback() && n.peer_advertise.ip().is_loopback())
    }
}

/// `data_dir`, relative to `base`; `<base>/data` when not given.
fn parse_data_dir(
    locate: &Locator,
    dir: Option<&Spanned<String>>,
    base: &Path,
) -> Result<PathBuf, ConfigError> {
    match dir {
        Some(dir) if dir.get_ref().is_empty() => {
            Err(locate.error(dir.span(), Some("data_dir"), "must not be empty"))
        }
        Some(dir) => Ok(base.join(dir.get_ref())),
        None => Ok(base.join("data")),
    }
}

/// `[raft]`, checked; the defaults when absent.
fn parse_raft(
    locate: &Locator,
    raft: Option<Spanned<RaftConfig>>,
) -> Result<RaftConfig, ConfigError> {
    let Some(raft) = raft else {
        return Ok(RaftConfig::default());
    };
    let span = raft.span();
    let raft = raft.into_inner();
    check_raft(&raft).map_err(|(key, msg)| locate.error(span, Some(key), &msg))?;
    Ok(raft)
}

/// `[booking]`, checked; the defaults when absent.
fn parse_booking(
    locate: &Locator,
    booking: Option<Spanned<BookingConfig>>,
) -> Result<BookingConfig, ConfigError> {
    let Some(booking) = booking else {
        return Ok(BookingConfig::default());
    };
    let span = booking.span();
    let booking = booking.into_inner();
    let range = limits::HOLD_MS_MIN..=limits::HOLD_MS_MAX;
    let (key, message) = if !range.contains(&booking.hold_ms) {
        ("hold_ms", "hold_ms")
    } else if !range.contains(&booking.hold_max_ms) {
        ("hold_max_ms", "hold_max_ms")
    } else if booking.hold_max_ms < booking.hold_ms {
        return Err(locate.error(span, Some("hold_max_ms"), "must be at least hold_ms"));
    } else {
        return Ok(booking);
    };
    Err(locate.error(
        span,
        Some(key),
        &format!(
            "{message} must be {} to {} (ms)",
            limits::HOLD_MS_MIN,
            limits::HOLD_MS_MAX
        ),
    ))
}

/// `[security]`, checked, with the token-key file resolved (default
/// `<data_dir>/pki/token.keys`).
fn parse_security(
    locate: &Locator,
    security: Option<Spanned<SecurityConfig>>,
    base: &Path,
    data_dir: &Path,
) -> Result<SecurityConfig, ConfigError> {
    let mut security = match security {
        Some(security) => {
            let span = security.span();
            let security = security.into_inner();
            check_security(&security).map_err(|(key, msg)| locate.error(span, Some(key), &msg))?;
            security
        }
        None => SecurityConfig::default(),
    };
    security.token_keys = Some(match security.token_keys.take() {
        Some(path) => base.join(path),
        None => data_dir.join("pki").join(TOKEN_KEYS_FILE),
    });
    Ok(security)
}

/// `[[nodes]]`: at least one, ids and addresses unique.
fn parse_nodes(
    locate: &Locator,
    raw: &Spanned<Vec<RawNode>>,
) -> Result<Vec<NodeConfig>, ConfigError> {
    if raw.get_ref().is_empty() {
        return Err(locate.error(raw.span(), Some("nodes"), "name at least one node"));
    }
    let mut seen = SeenNodes::default();
    let nodes = raw
        .get_ref()
        .iter()
        .enumerate()
        .map(|(i, node)| parse_node(locate, i, node, &mut seen))
        .collect::<Result<Vec<_>, _>>()?;
    if !nodes.iter().any(|n| n.bootstrap) {
        let msg =
            "every node says bootstrap = false: a new cluster needs at least one to start with";
        return Err(locate.error(raw.span(), Some("nodes"), msg));
    }
    Ok(nodes)
}

/// The ids and addresses of the nodes read so far, each with the index of the node that
/// used it first.
#[derive(Default)]
struct SeenNodes {
    ids: BTreeMap<u64, usize>,
    addrs: BTreeMap<SocketAddr, usize>,
}

/// `nodes[i]`, its ids and addresses checked against the nodes before it.
fn parse_node(
    locate: &Locator,
    i: usize,
    node: &RawNode,
    seen: &mut SeenNodes,
) -> Result<NodeConfig, ConfigError> {
    let key = |field: &str| format!("nodes[{i}].{field}");
    let id = *node.id.get_ref();
    if id == 0 {
        return Err(locate.error(node.id.span(), Some(&key("id")), "ids start at 1"));
    }
    if let Some(first) = seen.ids.insert(id, i) {
        let msg = format!("id {id} is already used by nodes[{first}]");
        return Err(locate.error(node.id.span(), Some(&key("id")), &msg));
    }
    let addr = parse_addr(&node.addr)
        .map_err(|msg| locate.error(node.addr.span(), Some(&key("addr")), &msg))?;
    if let Some(first) = seen.addrs.insert(addr, i) {
        let msg = format!("address {addr} is already used by nodes[{first}]");
        return Err(locate.error(node.addr.span(), Some(&key("addr")), &msg));
    }
    let listen = parse_optional_addr(locate, node.listen.as_ref(), &key("listen"))?.unwrap_or(addr);
    let peer_advertise = parse_peer_advertise(locate, node, addr, &key)?;
    if let Some(first) = seen.addrs.insert(peer_advertise, i) {
        let msg = format!("address {peer_advertise} is already used by nodes[{first}]");
        let span = node
            .peer_advertise
            .as_ref()
            .map_or(node.addr.span(), |p| p.span());
        return Err(locate.error(span, Some(&key("peer_advertise")), &msg));
    }
    let peer_listen = parse_optional_addr(locate, node.peer_listen.as_ref(), &key("peer_listen"))?
        .unwrap_or(peer_advertise);
    let metrics_listen =
        parse_optional_addr(locate, node.metrics_listen.as_ref(), &key("metrics_listen"))?;
    Ok(NodeConfig {
        id,
        addr,
        listen,
        peer_advertise,
        peer_listen,
        metrics_listen,
        bootstrap: node.bootstrap.unwrap_or(true),
    })
}

/// A node's `peer_advertise`: as given, or `addr` with the port plus 1000.
fn parse_peer_advertise(
    locate: &Locator,
    node: &RawNode,
    addr: SocketAddr,
    key: &dyn Fn(&str) -> String,
) -> Result<SocketAddr, ConfigError> {
    if let Some(peer) =
        parse_optional_addr(locate, node.peer_advertise.as_ref(), &key("peer_advertise"))?
    {
        return Ok(peer);
    }
    let port = addr.port().checked_add(1000).ok_or_else(|| {
        let msg =
            "the port is too high to default peer_advertise to port + 1000; name peer_advertise";
        locate.error(node.addr.span(), Some(&key("addr")), msg)
    })?;
    Ok(SocketAddr::new(addr.ip(), port))
}

/// An address that may be left out, an error naming `key` if it does not parse.
fn parse_optional_addr(
    locate: &Locator,
    addr: Option<&Spanned<String>>,
    key: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    addr.map(|addr| parse_addr(addr).map_err(|msg| locate.error(addr.span(), Some(key), &msg)))
        .transpose()
}

/// `[assistant]`, checked, with the system prompt's path resolved against `base`.
fn parse_assistant(
    locate: &Locator,
    assistant: Option<AssistantConfig>,
    base: &Path,
) -> Result<AssistantConfig, ConfigError> {
    let Some(mut assistant) = assistant else {
        return Ok(AssistantConfig::default());
    };
    check_assistant(&assistant, base).map_err(|(key, msg)| {
        // The section is not spanned: point at the line that sets the key's last part.
        let name = key.rsplit('.').next().unwrap_or(key);
        locate.error(locate.assignment_of(name), Some(key), &msg)
    })?;
    assistant.system_prompt = assistant.system_prompt.map(|p| base.join(p));
    Ok(assistant)
}

/// `[peer_tls]` resolved against `base`; without it, the files a local cluster makes under
/// `<data_dir>/pki`.
fn parse_peer_tls(raw: Option<RawPeerTls>, base: &Path, data_dir: &Path) -> PeerTlsConfig {
    match raw {
        Some(t) => PeerTlsConfig {
            ca: base.join(t.ca),
            cert: base.join(t.cert),
            key: base.join(t.key),
            configured: true,
        },
        None => PeerTlsConfig {
            ca: data_dir.join("pki").join("ca.pem"),
            cert: data_dir.join("pki").join("node{id}.pem"),
            key: data_dir.join("pki").join("node{id}.key"),
            configured: false,
        },
    }
}

/// `[tls]` resolved against `base`.
fn parse_tls(raw: Option<RawPeerTls>, base: &Path) -> Option<ClientTlsConfig> {
    raw.map(|t| ClientTlsConfig {
        ca: base.join(t.ca),
        cert: base.join(t.cert),
        key: base.join(t.key),
    })
}

/// `[web]` over the defaults, its paths resolved against `base`.
fn parse_web(locate: &Locator, raw: Option<RawWeb>, base: &Path) -> Result<WebConfig, ConfigError> {
    let mut web = WebConfig::default();
    if let Some(raw_web) = raw {
        if let Some(listen) = parse_optional_addr(locate, raw_web.listen.as_ref(), "web.listen")? {
            web.listen = listen;
        }
        web.cert = raw_web.cert.map(|p| base.join(p));
        web.key = raw_web.key.map(|p| base.join(p));
    }
    Ok(web)
}

/// `base` is the config file's directory, which a relative `system_prompt` is read from.
fn check_assistant(a: &AssistantConfig, base: &Path) -> Result<(), (&'static str, String)> {
    // Checked here rather than when the first question is asked: a path with a typo would
    // otherwise surface only as a failing openai answer.
    if let Some(prompt) = &a.system_prompt {
        let path = base.join(prompt);
        if !path.is_file() {
            let msg = format!(
                "there is no file {} (a template with {{user}}, {{event}} and {{time}}; \
                 plugins/assistant_prompt.txt is the built-in one)",
                path.display()
            );
            return Err(("assistant.system_prompt", msg));
        }
    }
    if a.listen_addr().is_none() {
        let msg = format!(
            "'{}' is not an address of the form IP:PORT, like 127.0.0.1:8000",
            a.listen
        );
        return Err(("assistant.listen", msg));
    }
    let o = &a.openai;
    if !(o.base_url.starts_with("http://") || o.base_url.starts_with("https://")) {
        let msg = format!("'{}' must start with http:// or https://", o.base_url);
        return Err(("assistant.openai.base_url", msg));
    }
    if o.model.is_empty() {
        return Err(("assistant.openai.model", "must not be empty".into()));
    }
    if !(1..=600).contains(&o.timeout_secs) {
        return Err(("assistant.openai.timeout_secs", "must be 1 to 600".into()));
    }
    if !(1..=32).contains(&o.max_tool_calls) {
        return Err(("assistant.openai.max_tool_calls", "must be 1 to 32".into()));
    }
    Ok(())
}

fn parse_addr(addr: &Spanned<String>) -> Result<SocketAddr, String> {
    addr.get_ref().parse().map_err(|_| {
        format!(
            "'{}' is not an address of the form IP:PORT, like 127.0.0.1:60051",
            addr.get_ref()
        )
    })
}

fn check_raft(raft: &RaftConfig) -> Result<(), (&'static str, String)> {
    if raft.heartbeat_interval_ms == 0 {
        return Err(("raft.heartbeat_interval_ms", "must be > 0".into()));
    }
    if raft.election_timeout_min_ms <= raft.heartbeat_interval_ms {
        return Err((
            "raft.election_timeout_min_ms",
            "must be greater than raft.heartbeat_interval_ms".into(),
        ));
    }
    if raft.election_timeout_max_ms <= raft.election_timeout_min_ms {
        return Err((
            "raft.election_timeout_max_ms",
            "must be greater than raft.election_timeout_min_ms".into(),
        ));
    }
    if raft.snapshot_threshold == 0 {
        return Err(("raft.snapshot_threshold", "must be > 0".into()));
    }
    if raft.snapshot_log_bytes < limits::SNAPSHOT_LOG_BYTES_MIN {
        let msg = format!("must be at least {}", limits::SNAPSHOT_LOG_BYTES_MIN);
        return Err(("raft.snapshot_log_bytes", msg));
    }
    Ok(())
}

fn check_security(security: &SecurityConfig) -> Result<(), (&'static str, String)> {
    if security.pbkdf2_iterations < limits::PBKDF2_ITERATIONS_MIN {
        let msg = format!("must be at least {}", limits::PBKDF2_ITERATIONS_MIN);
        return Err(("security.pbkdf2_iterations", msg));
    }
    if security.token_ttl_secs == 0 {
        return Err(("security.token_ttl_secs", "must be > 0".into()));
    }
    Ok(())
}

/// Turns byte spans into `file:line:column` and finds the key a span belongs to.
pub(crate) struct Locator<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl Locator<'_> {
    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: Option<&str>,
        message: &str,
    ) -> ConfigError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        let key = match key {
            Some(key) => key.to_string(),
            None => self.key_at(line_start, span),
        };
        ConfigError::Invalid {
            path: self.path.display().to_string(),
            line,
            column,
            key,
            message: message.trim().to_string(),
        }
    }

    /// The span of `name` where a line sets it (`name = ...` at the start of a line, not in a
    /// comment such as `# system_prompt = ...`); the file's start when no line does.
    fn assignment_of(&self, name: &str) -> Range<usize> {
        let text = self.text;
        let at = text
            .match_indices(name)
            .map(|(i, _)| i)
            .find(|&i| {
                let starts_line = text[..i]
                    .rsplit('\n')
                    .next()
                    .is_some_and(|before| before.trim().is_empty());
                starts_line && text[i + name.len()..].trim_start().starts_with('=')
            })
            .unwrap_or(0);
        at..at + name.len()
    }

    /// The key written on the line of the error (`name = ...`), or the spanned text itself
    /// when the span is a key (as for an unknown field).
    fn key_at(&self, line_start: usize, span: Range<usize>) -> String {
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let line = &self.text[line_start..line_end];
        if let Some(spanned) = self.text.get(span.clone()) {
            let spanned = spanned.trim();
            let is_key = !spanned.is_empty()
                && spanned
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if is_key && line.trim_start().starts_with(spanned) {
                return spanned.to_string();
            }
        }
        match line.split_once('=') {
            Some((key, _)) => key.trim().to_string(),
            None => line.trim().trim_matches(['[', ']']).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "state"

[raft]
heartbeat_interval_ms = 50

[[nodes]]
id = 1
addr = "127.0.0.1:60051"

[[nodes]]
id = 2
addr = "127.0.0.1:60052"
listen = "0.0.0.0:60052"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("some/dir/cluster.toml"), text)
    }

    fn located(text: &str) -> (usize, String, String) {
        match parse(text) {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected a located error, got {other:?}"),
        }
    }

    #[test]
    fn the_assistant_section_is_typed_and_checked() {
        let config = parse(GOOD).expect("valid");
        assert_eq!(config.assistant.backend, Backend::Rules);
        assert_eq!(config.assistant.listen, "127.0.0.1:8000");
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("cluster.toml");
        std::fs::write(dir.path().join("prompt.txt"), "You help {user}.").expect("prompt");
        let text = format!(
            "{GOOD}\n[assistant]\nbackend = \"openai\"\n# system_prompt = \"gone.txt\"\n\
             system_prompt = \"prompt.txt\"\n\
             [assistant.openai]\nbase_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"llama3.1\"\n"
        );
        let config = Config::parse(&file, &text).expect("valid");
        assert_eq!(config.assistant.backend, Backend::OpenAi);
        assert_eq!(config.assistant.openai.model, "llama3.1");
        assert_eq!(
            config.assistant.system_prompt.as_deref(),
            Some(dir.path().join("prompt.txt").as_path())
        );
        // A template that is not there is found when the file loads, at its line (not at the
        // commented-out one before it).
        let missing = text.replace("\"prompt.txt\"", "\"missing.txt\"");
        match Config::parse(&file, &missing) {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => {
                assert_eq!(key, "assistant.system_prompt");
                assert_eq!(line, GOOD.lines().count() + 5, "{message}");
                assert!(message.contains("there is no file"), "{message}");
                assert!(message.contains("missing.txt"), "{message}");
            }
            other => panic!("expected a located error, got {other:?}"),
        }
        let bad = format!("{GOOD}\n[assistant]\nbackend = \"gpt\"\n");
        let (line, _, message) = located(&bad);
        assert_eq!(line, 17, "the line of `backend`: {message}");
        assert!(message.contains("unknown variant `gpt`"), "{message}");
        let bad = format!("{GOOD}\n[assistant.openai]\ntimeout_secs = 0\n");
        let (_, key, message) = located(&bad);
        assert_eq!(
            (key.as_str(), message.as_str()),
            ("assistant.openai.timeout_secs", "must be 1 to 600")
        );
    }

    #[test]
    fn good_file_parses_with_paths_relative_to_it() {
        let config = parse(GOOD).expect("valid");
        assert_eq!(config.data_dir, Path::new("some/dir/state"));
        assert_eq!(config.raft.heartbeat_interval_ms, 50);
        assert_eq!(config.raft.election_timeout_min_ms, 500);
        assert_eq!(config.nodes.len(), 2);
        assert_eq!(config.nodes[1].listen.to_string(), "0.0.0.0:60052");
        assert_eq!(config.nodes[0].listen, config.nodes[0].addr);
        assert_eq!(config.node_data_dir(2), Path::new("some/dir/state/node2"));
    }

    #[test]
    fn a_node_may_stay_out_of_the_first_membership_but_not_every_node() {
        let text = GOOD.replace("id = 2\n", "id = 2\nbootstrap = false\n");
        let config = parse(&text).expect("valid");
        assert!(config.nodes[0].bootstrap && !config.nodes[1].bootstrap);
        let first: Vec<u64> = config.bootstrap_members().into_keys().collect();
        assert_eq!(first, [1]);
        let text = text.replace("id = 1\n", "id = 1\nbootstrap = false\n");
        let (_, key, message) = located(&text);
        assert_eq!(key, "nodes");
        assert!(message.contains("at least one"), "{message}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = GOOD.replace("listen =", "lisen =");
        let (line, key, message) = located(&text);
        assert_eq!((line, key.as_str()), (14, "lisen"));
        assert!(message.contains("unknown field"), "{message}");
    }

    #[test]
    fn duplicate_id_and_address_are_refused() {
        let text = GOOD.replace("id = 2", "id = 1");
        let (line, key, message) = located(&text);
        assert_eq!((line, key.as_str()), (12, "nodes[1].id"));
        assert!(message.contains("already used"), "{message}");

        let text = GOOD.replace("60052\"\nlisten", "60051\"\nlisten");
        let (line, key, _) = located(&text);
        assert_eq!((line, key.as_str()), (13, "nodes[1].addr"));
    }

    #[test]
    fn unparsable_address_and_wrong_type_are_located() {
        let text = GOOD.replace("127.0.0.1:60052", "localhost:http");
        let (line, key, message) = located(&text);
        assert_eq!((line, key.as_str()), (13, "nodes[1].addr"));
        assert!(message.contains("IP:PORT"), "{message}");

        let text = GOOD.replace(
            "heartbeat_interval_ms = 50",
            "heartbeat_interval_ms = \"fast\"",
        );
        let (line, key, _) = located(&text);
        assert_eq!((line, key.as_str()), (5, "heartbeat_interval_ms"));
    }

    #[test]
    fn metrics_listen_is_off_unless_set_and_located_when_wrong() {
        let config = parse(GOOD).expect("valid");
        assert_eq!(config.nodes[0].metrics_listen, None);
        let text = GOOD.replace(
            "listen = \"0.0.0.0:60052\"",
            "listen = \"0.0.0.0:60052\"\nmetrics_listen = \"127.0.0.1:9102\"",
        );
        let config = parse(&text).expect("valid");
        assert_eq!(
            config.nodes[1]
                .metrics_listen
                .map(|a| a.to_string())
                .as_deref(),
            Some("127.0.0.1:9102")
        );
        let text = text.replace("127.0.0.1:9102", "everywhere");
        let (line, key, message) = located(&text);
        assert_eq!((line, key.as_str()), (15, "nodes[1].metrics_listen"));
        assert!(message.contains("IP:PORT"), "{message}");
    }

    #[test]
    fn broken_syntax_and_bad_timing_are_located() {
        let (line, _, _) = located("data_dir = \"x\"\n[[nodes]\nid = 1\n");
        assert_eq!(line, 2);
        let text = GOOD.replace("heartbeat_interval_ms = 50", "heartbeat_interval_ms = 5000");
        let (_, key, _) = located(&text);
        assert_eq!(key, "raft.election_timeout_min_ms");
        let text = GOOD.replace(
            "heartbeat_interval_ms = 50",
            "heartbeat_interval_ms = 50\nsnapshot_log_bytes = 1000",
        );
        let (line, key, message) = located(&text);
        assert_eq!(key, "raft.snapshot_log_bytes");
        assert!(
            line > 0 && message.contains("at least 65536"),
            "{line} {message}"
        );
    }
}
