//! The openai backend: OpenAI's chat-completions protocol, streamed, with the assistant's
//! tools offered as functions. The model asks for tool calls; each is validated against its
//! schema, run against the cluster as the asking user, and its result fed back; this loops
//! until the model answers or the bound on tool calls is reached. `reserve` and `cancel`
//! only propose; nothing changes until the person confirms.
//!
//! Lenient with what servers send (a tool call without an id, arguments as an object rather
//! than a string, a whole message where a delta was expected, error bodies of any shape),
//! strict with what runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::{ApiError, ApiErrorResponse, OpenAIError};
use async_openai::middleware::{HttpRequestFactory, ReqwestService};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tonic::codegen::Service;

use super::tools::{self, SeatsView, SEATS_MAX};
use super::{Action, Answer, CommandTools, Proposal};
use crate::client::Client;
use crate::config::{AssistantConfig, OpenAiConfig};
use crate::domain::validate;

/// The built-in system prompt, shipped as a file so it can be copied and edited (and named
/// by `system_prompt` in cluster.toml).
pub const DEFAULT_PROMPT: &str = include_str!("../../plugins/assistant_prompt.txt");
/// The longest tool name and arguments a streamed tool call may grow to: past these the
/// server is sending nonsense, and memory is not the model's to spend.
const NAME_MAX_BYTES: usize = 128;
const ARGUMENTS_MAX_BYTES: usize = 64 << 10;
/// How much of an error body is read to explain the error.
const ERROR_BODY_MAX_BYTES: usize = 16 << 10;

pub struct OpenAi {
    settings: OpenAiConfig,
    /// The system prompt's template, or why it could not be read.
    template: Result<String, String>,
    /// The command table's tools, beside the assistant's own [`TOOLS`].
    command_tools: Mutex<Option<Arc<dyn CommandTools>>>,
}

/// A tool call as it streams in.
#[derive(Default, Debug)]
struct Call {
    id: String,
    name: String,
    arguments: String,
}

impl OpenAi {
    pub fn new(config: &AssistantConfig) -> OpenAi {
        let template = match &config.system_prompt {
            None => Ok(DEFAULT_PROMPT.to_string()),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the system prompt {}: {e}", path.display())),
        };
        OpenAi {
            settings: config.openai.clone(),
            template,
            command_tools: Mutex::new(None),
        }
    }

    pub fn set_command_tools(&self, tools: Arc<dyn CommandTools>) {
        *self.command_tools.lock().unwrap_or_else(|e| e.into_inner()) = Some(tools);
    }

    fn command_tools(&self) -> Option<Arc<dyn CommandTools>> {
        self.command_tools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every tool's name: the assistant's own, then the command table's.
    fn tool_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = TOOLS.iter().map(|t| t.name).collect();
        names.extend(self.command_tools().map(|t| t.names()).unwrap_or_default());
        names
    }

    /// Every tool as the model sees it.
    fn schemas(&self) -> Value {
        let mut tools = own_schemas();
        tools.extend(
            self.command_tools()
                .map(|t| t.schemas())
                .unwrap_or_default(),
        );
        Value::Array(tools)
    }

    fn api(&self) -> async_openai::Client<OpenAIConfig> {
        let key = std::env::var(&self.settings.api_key_env).unwrap_or_default();
        let config = OpenAIConfig::new()
            .with_api_base(self.settings.base_url.trim_end_matches('/'))
            .with_api_key(key);
        // Our own transport instead of the default, which retries 429s and lets an error body
        // that is not OpenAI's shape hide the HTTP status (see `StatusFirst`).
        async_openai::Client::with_config(config).with_http_service(StatusFirst {
            inner: ReqwestService::default(),
        })
    }

    /// Answers within the configured time, or says why not.
    pub async fn ask(
        &self,
        client: &Client,
        event: &str,
        question: &str,
        on_text: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Answer, String> {
        let limit = Duration::from_secs(self.settings.timeout_secs);
        tokio::time::timeout(limit, self.converse(client, event, question, on_text))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer from {} within {} s",
                    self.settings.base_url, self.settings.timeout_secs
                ))
            })
    }

    async fn converse(
        &self,
        client: &Client,
        event: &str,
        question: &str,
        on_text: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Answer, String> {
        let prompt = fill(self.template.as_ref().map_err(Clone::clone)?, client, event);
        let mut messages = vec![
            json!({ "role": "system", "content": prompt }),
            json!({ "role": "user", "content": question }),
        ];
        let mut answer = empty_answer();
        let api = self.api();
        // Unique to this question: the request ids of its proposals derive from it, so the
        // same tool call in a later question ("book S9" again) is a new request, not a replay
        // of the first one's outcome. Within the question the ids stay deterministic.
        let turn = Turn {
            user: client.user().unwrap_or(""),
            event,
            question,
            nonce: crate::client::new_request_id(),
        };
        let mut tally = CallTally::new(self.settings.max_tool_calls as usize, self.tool_names());
        loop {
            let (text, mut calls) = self.model_round(&api, &messages, on_text).await?;
            if calls.is_empty() {
                return streamed_answer(answer, text);
            }
            name_calls(&mut calls, tally.made);
            messages.push(assistant_message(&text, &calls));
            for call in &calls {
                tally.count(call)?;
                let result = match self.run_tool(client, event, &turn, call, &mut answer).await {
                    Ok(result) => result,
                    Err(problem) => json!({ "error": problem }),
                };
                messages.push(json!({
                    "role": "tool", "tool_call_id": call.id, "content": result.to_string(),
                }));
            }
        }
    }

    /// One round with the model: sends the conversation so far and reads the streamed reply,
    /// its text (shown as it comes) and the tool calls it asks for.
    async fn model_round(
        &self,
        api: &async_openai::Client<OpenAIConfig>,
        messages: &[Value],
        on_text: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(String, Vec<Call>), String> {
        let request = json!({
            "model": self.settings.model,
            "messages": messages,
            "tools": self.schemas(),
            "tool_choice": "auto",
            "stream": true,
        });
        let mut stream = api
            .chat()
            .create_stream_byot::<Value, Value>(request)
            .await
            .map_err(|e| self.openai_error_message(e))?;
        let max_calls = self.settings.max_tool_calls as usize;
        let mut text = String::new();
        let mut calls: Vec<Call> = Vec::new();
        while let Some(chunk) = stream.next().await {
            absorb(
                &chunk.map_err(|e| self.openai_error_message(e))?,
                &mut text,
                &mut calls,
                max_calls,
                on_text,
            )?;
        }
        Ok((text, calls))
    }

    /// Runs one tool call, strictly: an unknown tool or an argument outside its schema is
    /// refused (and the refusal goes back to the model).
    async fn run_tool(
        &self,
        client: &Client,
        event_in_use: &str,
        turn: &Turn<'_>,
        call: &Call,
        answer: &mut Answer,
    ) -> Result<Value, String> {
        if let Some(tools) = self.command_tools() {
            if let Some(name) = tools.names().into_iter().find(|n| *n == call.name) {
                let args = arguments(&call.arguments)?;
                answer.tools.push(name);
                return tools.run(client, event_in_use, name, args).await;
            }
        }
        let tool = find_tool(&call.name, &self.tool_names())?;
        let args = arguments(&call.arguments)?;
        only_keys(&args, tool.keys)?;
        answer.tools.push(tool.name);
        let t = ToolCall {
            client,
            event_in_use,
            turn,
            call,
            args,
        };
        match tool.name {
            "list_events" => list_events_tool(client).await,
            "seat_status" => seat_status_tool(&t, answer).await,
            "free_seats" => free_seats_tool(&t, answer).await,
            "my_bookings" => my_bookings_tool(client).await,
            "cluster_status" => cluster_status_tool(client).await,
            "help" => help_tool(&t.args),
            "reserve" => reserve_tool(&t, answer).await,
            "cancel" => cancel_tool(&t, answer).await,
            "hold" => hold_tool(&t, answer).await,
            "my_holds" => my_holds_tool(client).await,
            "confirm_hold" => confirm_hold_tool(&t, answer).await,
            other => Err(format!("the tool '{other}' is not wired")),
        }
    }

    /// What went wrong with a call to the chat-completions backend, in words that say what to do.
    fn openai_error_message(&self, error: OpenAIError) -> String {
        let base = &self.settings.base_url;
        match error {
            // By the HTTP status first: servers word (and shape) their error bodies differently.
            OpenAIError::ApiError(r) => {
                let said = match r.api_error.message.as_str() {
                    "" => String::new(),
                    message => format!(" (it said: {message})"),
                };
                match r.status_code.as_u16() {
                    401 | 403 => format!(
                        "{base} refused the API key ({}): set the variable {} to a valid key{said}",
                        r.status_code, self.settings.api_key_env
                    ),
                    429 => format!(
                        "{base} is rate-limiting or out of quota (429); try again shortly{said}"
                    ),
                    _ => format!("{base} answered {}{said}", r.status_code),
                }
            }
            OpenAIError::Reqwest(e) if e.is_connect() => format!("cannot reach {base}: {e}"),
            OpenAIError::Reqwest(e) if e.is_timeout() => format!("{base} did not answer in time"),
            OpenAIError::JSONDeserialize(e, _) => {
                format!("{base} sent something that is not a chat-completions reply: {e}")
            }
            OpenAIError::StreamError(e) => format!("the answer from {base} broke off: {e}"),
            other => format!("{base}: {other}"),
        }
    }
}

/// An answer from this backend before anything is known.
fn empty_answer() -> Answer {
    Answer {
        answer: String::new(),
        backend: "openai",
        tools: Vec::new(),
        applied_index: None,
        proposal: None,
        fallback: None,
        streamed: false,
    }
}

/// The model's final reply: its text, all of which went to `on_text` as it came.
fn streamed_answer(mut answer: Answer, text: String) -> Result<Answer, String> {
    if text.trim().is_empty() {
        return Err("the model answered nothing".into());
    }
    answer.answer = text;
    answer.streamed = true;
    Ok(answer)
}

/// Gives the calls that came without an id one, unique within the question.
fn name_calls(calls: &mut [Call], calls_made: usize) {
    for (n, call) in calls.iter_mut().enumerate() {
        if call.id.is_empty() {
            call.id = format!("call_{calls_made}_{n}");
        }
    }
}

/// The model's reply as it goes back into the conversation: its text and the tool calls.
fn assistant_message(text: &str, calls: &[Call]) -> Value {
    let listed: Vec<Value> = calls
        .iter()
        .map(|c| {
            json!({ "id": c.id, "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments } })
        })
        .collect();
    let content = if text.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    json!({ "role": "assistant", "content": content, "tool_calls": listed })
}

/// The tool calls of one question, held to their bound.
struct CallTally {
    max_calls: usize,
    /// The tools there are.
    names: Vec<&'static str>,
    made: usize,
    /// The last tool the model asked for that does not exist, to name it if the loop ends.
    unknown_tool: Option<String>,
}

impl CallTally {
    fn new(max_calls: usize, names: Vec<&'static str>) -> CallTally {
        CallTally {
            max_calls,
            names,
            made: 0,
            unknown_tool: None,
        }
    }

    /// Counts `call`; past the bound, the error that ends the question.
    fn count(&mut self, call: &Call) -> Result<(), String> {
        let max_calls = self.max_calls;
        self.made += 1;
        if self.made > max_calls {
            return Err(match &self.unknown_tool {
                Some(name) => format!(
                    "the model asked for a tool that does not exist: '{name}' (and went \
                     on past {max_calls} tool calls)"
                ),
                None => format!("the model asked for more than {max_calls} tool calls"),
            });
        }
        if !self.names.contains(&call.name.as_str()) {
            self.unknown_tool = Some(shown(&call.name));
        }
        Ok(())
    }
}

/// The tool `name`, or an error that lists the tools there are (`names`).
fn find_tool(name: &str, names: &[&str]) -> Result<&'static Tool, String> {
    TOOLS.iter().find(|t| t.name == name).ok_or_else(|| {
        format!(
            "there is no tool '{}'; the tools are {}",
            shown(name),
            names.join(", ")
        )
    })
}

/// One tool call being run: who asks, about which event, and its checked arguments.
struct ToolCall<'a> {
    client: &'a Client,
    event_in_use: &'a str,
    turn: &'a Turn<'a>,
    call: &'a Call,
    args: Map<String, Value>,
}

impl ToolCall<'_> {
    /// The `event` argument, or the event in use when it is left out.
    fn event(&self) -> Result<String, String> {
        match self.args.get("event") {
            None => Ok(self.event_in_use.to_string()),
            Some(Value::String(e)) if validate::is_event_name(e) => Ok(e.clone()),
            Some(other) => Err(format!("'event' must be an event name, not {other}")),
        }
    }

    /// Records a proposal of `action` made by this call.
    fn propose(&self, action: Action, answer: &mut Answer) -> Value {
        propose(action, self.turn, self.call, answer)
    }
}

async fn list_events_tool(client: &Client) -> Result<Value, String> {
    let events = tools::list_events(client).await?;
    let list: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({ "name": e.name, "free": e.free, "taken": e.taken,
                         "rows": e.rows, "seats_per_row": e.seats_per_row })
        })
        .collect();
    Ok(json!({ "events": list }))
}

async fn seat_status_tool(t: &ToolCall<'_>, answer: &mut Answer) -> Result<Value, String> {
    let seat = seat_arg(t.args.get("seat"), "seat")?;
    let map = seats(t.client, &t.event()?, answer).await?;
    match map.seat(&seat) {
        Some(s) => Ok(json!({ "event": map.event, "seat": s, "applied_index": map.applied_index })),
        None => Err(format!("{} has no seat {seat}", map.event)),
    }
}

/// The free seats of an event, or with `together` the first N adjacent ones.
async fn free_seats_tool(t: &ToolCall<'_>, answer: &mut Answer) -> Result<Value, String> {
    let map = seats(t.client, &t.event()?, answer).await?;
    match t.args.get("together") {
        None => {
            let free: Vec<&str> = map
                .seats
                .iter()
                .filter(|s| s.status == "free")
                .map(|s| s.id.as_str())
                .collect();
            Ok(json!({ "event": map.event, "free": free, "applied_index": map.applied_index }))
        }
        Some(n) => {
            let n = together_arg(n)?;
            Ok(
                json!({ "event": map.event, "together": map.adjacent_free(n),
                       "applied_index": map.applied_index }),
            )
        }
    }
}

/// `together`: a whole number from 1 to [`SEATS_MAX`].
fn together_arg(n: &Value) -> Result<usize, String> {
    n.as_u64()
        .filter(|n| (1..=SEATS_MAX as u64).contains(n))
        .map(|n| n as usize)
        .ok_or_else(|| format!("'together' must be a whole number from 1 to {SEATS_MAX}, not {n}"))
}

async fn my_bookings_tool(client: &Client) -> Result<Value, String> {
    logged_in(client)
        .map(|()| tools::my_bookings(client))?
        .await
        .map(|b| json!({ "bookings": b }))
}

async fn cluster_status_tool(client: &Client) -> Result<Value, String> {
    let s = tools::cluster_status(client).await?;
    let nodes: Vec<Value> = s
        .nodes
        .iter()
        .map(|n| json!({ "id": n.id, "role": n.role, "reachable": n.reachable }))
        .collect();
    Ok(json!({ "leader": s.leader, "term": s.term, "nodes": nodes }))
}

fn help_tool(args: &Map<String, Value>) -> Result<Value, String> {
    let topic = match args.get("topic").and_then(Value::as_str) {
        Some("reserve") => super::rules::Topic::Reserve,
        Some("cancel") => super::rules::Topic::Cancel,
        Some("login") => super::rules::Topic::Login,
        _ => return Err("'topic' must be one of reserve, cancel, login".into()),
    };
    Ok(json!({ "help": super::rules::help(topic) }))
}

/// The event and the seats the call names, if every one is free now (for a proposal).
async fn free_seats_named(
    t: &ToolCall<'_>,
    answer: &mut Answer,
) -> Result<(String, Vec<String>), String> {
    logged_in(t.client)?;
    let wanted = seat_list(t.args.get("seats"))?;
    let map = seats(t.client, &t.event()?, answer).await?;
    for id in &wanted {
        match map.seat(id).map(|s| s.status) {
            None => return Err(format!("{} has no seat {id}", map.event)),
            Some("free") => {}
            Some(status) => return Err(format!("{id} in {} is {status}", map.event)),
        }
    }
    Ok((map.event, wanted))
}

/// Proposes reserving seats that are all free now.
async fn reserve_tool(t: &ToolCall<'_>, answer: &mut Answer) -> Result<Value, String> {
    let (event, seats) = free_seats_named(t, answer).await?;
    Ok(t.propose(Action::Reserve { event, seats }, answer))
}

/// Proposes holding seats that are all free now, for checkout.
async fn hold_tool(t: &ToolCall<'_>, answer: &mut Answer) -> Result<Value, String> {
    let (event, seats) = free_seats_named(t, answer).await?;
    Ok(t.propose(Action::Hold { event, seats }, answer))
}

/// The asker's live holds, each with the seconds it has left.
async fn my_holds_tool(client: &Client) -> Result<Value, String> {
    logged_in(client)?;
    let (holds, now_ms) = tools::my_holds(client).await?;
    let holds: Vec<Value> = holds
        .iter()
        .map(|h| {
            json!({ "id": h.id, "event": h.event, "seats": h.seats,
                    "seconds_left": h.expires_at_ms.saturating_sub(now_ms) / 1000,
                    "total_minor": h.total_minor, "currency": h.currency })
        })
        .collect();
    Ok(json!({ "holds": holds }))
}

/// Proposes confirming one of the asker's live holds.
async fn confirm_hold_tool(t: &ToolCall<'_>, answer: &mut Answer) -> Result<Value, String> {
    logged_in(t.client)?;
    let Some(Value::String(hold)) = t.args.get("hold") else {
        return Err("give 'hold', a hold id such as hd-3".into());
    };
    let (holds, _) = tools::my_holds(t.client).await?;
    if !holds.iter().any(|h| &h.id == hold) {
        return Err(format!("the asker has no live hold {hold}"));
    }
    Ok(t.propose(Action::ConfirmHold { hold: hold.clone() }, answer))
}

/// Proposes cancelling one of the asker's bookings or some of their seats.
async fn cancel_tool(t: &ToolCall<'_>, answer: &mut Answer) -> Result<Value, String> {
    logged_in(t.client)?;
    let action = match (t.args.get("booking"), t.args.get("seats")) {
        (Some(Value::String(b)), None) if b.starts_with("bk-") => {
            booking_to_cancel(t.client, b).await?
        }
        (None, Some(list)) => seats_to_cancel(t, list, answer).await?,
        _ => return Err("give either 'seats' (a list of seat ids) or 'booking' (bk-N)".into()),
    };
    Ok(t.propose(action, answer))
}

/// Cancelling booking `b`, which must be the asker's.
async fn booking_to_cancel(client: &Client, b: &str) -> Result<Action, String> {
    let mine = tools::my_bookings(client).await?;
    if !mine.iter().any(|m| m.id == b) {
        return Err(format!("the asker has no booking {b}"));
    }
    Ok(Action::CancelBooking {
        booking: b.to_string(),
    })
}

/// Cancelling the seats in `list`, which must all be the asker's.
async fn seats_to_cancel(
    t: &ToolCall<'_>,
    list: &Value,
    answer: &mut Answer,
) -> Result<Action, String> {
    let wanted = seat_list(Some(list))?;
    let map = seats(t.client, &t.event()?, answer).await?;
    if let Some(id) = wanted
        .iter()
        .find(|id| map.seat(id).is_none_or(|s| s.status != "mine"))
    {
        return Err(format!("{id} in {} is not the asker's", map.event));
    }
    Ok(Action::CancelSeats {
        event: map.event.clone(),
        seats: wanted,
    })
}

/// What the request ids of one question's proposals derive from.
struct Turn<'a> {
    user: &'a str,
    event: &'a str,
    question: &'a str,
    /// Random, once per question.
    nonce: String,
}

/// The request id of a proposal made by `call` in `turn`: the same call in the same turn (a
/// retry) gets the same id, so confirming twice reserves once; another question never does.
fn request_id(turn: &Turn<'_>, call: &Call) -> String {
    let mut hash = Sha256::new();
    for part in [
        turn.user,
        turn.event,
        turn.question,
        &turn.nonce,
        &call.id,
        &call.name,
        &call.arguments,
    ] {
        // Lengths first, so no two different lists of parts hash alike.
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Records a proposal whose request id is derived from the tool call and the turn.
fn propose(action: Action, turn: &Turn<'_>, call: &Call, answer: &mut Answer) -> Value {
    let proposal = Proposal::new(action, request_id(turn, call));
    let result = json!({ "proposed": proposal.question, "needs_confirmation": true,
                         "done": false });
    answer.proposal = Some(proposal);
    result
}

/// A name the model sent, fit to quote: at most 64 characters, no control characters.
fn shown(name: &str) -> String {
    let mut shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if name.chars().count() > 64 {
        shown.push('…');
    }
    shown
}

/// The requests to the model's server, made by reqwest, with every unsuccessful reply turned
/// into an [`OpenAIError::ApiError`] that keeps its HTTP status whatever the body's shape:
/// OpenAI sends `{"error": {"message", "code": "..."}}`, llama.cpp a numeric code, vLLM a
/// flat `{"object": "error", "message", "code"}`, proxies plain text. async-openai reads only
/// OpenAI's shape and reports the others as a bad reply, losing the 401 or the 429.
#[derive(Clone)]
struct StatusFirst {
    inner: ReqwestService,
}

type HttpResponse = <ReqwestService as Service<HttpRequestFactory>>::Response;

impl Service<HttpRequestFactory> for StatusFirst {
    type Response = HttpResponse;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        let sent = self.inner.call(request);
        Box::pin(async move {
            let mut response = sent.await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let mut body = Vec::new();
            while body.len() < ERROR_BODY_MAX_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    // The status says enough when the body does not arrive whole.
                    Ok(None) | Err(_) => break,
                }
            }
            Err(OpenAIError::ApiError(ApiErrorResponse {
                status_code: status,
                api_error: ApiError {
                    message: error_message(&body),
                    ..ApiError::default()
                },
            }))
        })
    }
}

/// The message in an error body of any of the shapes servers send, or its text, shortened.
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = [
        &parsed["error"]["message"],
        &parsed["message"],
        &parsed["error"],
        &parsed["detail"],
    ]
    .into_iter()
    .find_map(Value::as_str)
    .unwrap_or(&text);
    let mut short: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if message.chars().count() > 200 {
        short.push('…');
    }
    short.trim().to_string()
}

/// The longest answer shown from a model; the rest is dropped.
pub const ANSWER_MAX_CHARS: usize = 8_000;

/// `text` without control characters (escape sequences, carriage returns, bells); line
/// breaks and tabs stay.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

/// Adds one streamed chunk: text as it comes (shown at once), tool calls by index. The index
/// comes from the server: it is held below `max_calls` rather than trusted to size a list.
fn absorb(
    chunk: &Value,
    text: &mut String,
    calls: &mut Vec<Call>,
    max_calls: usize,
    on_text: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), String> {
    let Some(choice) = chunk["choices"].get(0) else {
        return Ok(());
    };
    // A server that does not stream sends the whole message at once.
    let delta = if choice["delta"].is_object() {
        &choice["delta"]
    } else {
        &choice["message"]
    };
    if let Some(piece) = delta["content"].as_str() {
        // What reaches a terminal or a page is text: no escape sequences from the model
        // (they could rewrite the screen or hide what was proposed), and not without end.
        let room = ANSWER_MAX_CHARS.saturating_sub(text.chars().count());
        let piece: String = printable(piece).chars().take(room).collect();
        if !piece.is_empty() {
            on_text(&piece);
            text.push_str(&piece);
        }
    }
    let Some(parts) = delta["tool_calls"].as_array() else {
        return Ok(());
    };
    for (position, part) in parts.iter().enumerate() {
        let index = match part["index"].as_u64() {
            None => position,
            Some(i) => usize::try_from(i).unwrap_or(usize::MAX),
        };
        if index >= max_calls {
            return Err(format!(
                "the model asked for more than {max_calls} tool calls in one reply"
            ));
        }
        while calls.len() <= index {
            calls.push(Call::default());
        }
        let call = &mut calls[index];
        if let Some(id) = part["id"].as_str() {
            call.id = id.to_string();
        }
        // Some servers repeat the whole name in every chunk of a call rather than sending it
        // once: a repeat is not more of the name.
        if let Some(name) = part["function"]["name"].as_str() {
            if call.name != name {
                call.name.push_str(name);
            }
        }
        match &part["function"]["arguments"] {
            Value::String(s) => call.arguments.push_str(s),
            Value::Null => {}
            other => call.arguments = other.to_string(),
        }
        if call.name.len() > NAME_MAX_BYTES || call.arguments.len() > ARGUMENTS_MAX_BYTES {
            return Err("the model sent a tool call too long to be one".into());
        }
    }
    Ok(())
}

fn arguments(text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!("the arguments must be a JSON object, not {other}")),
        Err(e) => Err(format!("the arguments are not JSON: {e}")),
    }
}

fn only_keys(args: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match args.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown argument '{k}' (allowed: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn seat_arg(value: Option<&Value>, key: &str) -> Result<String, String> {
    value
        .and_then(Value::as_str)
        .and_then(|s| validate::seat_id(s).ok())
        .ok_or_else(|| format!("'{key}' must be a seat id like S2 or A10"))
}

fn seat_list(value: Option<&Value>) -> Result<Vec<String>, String> {
    let list = value
        .and_then(Value::as_array)
        .filter(|l| (1..=SEATS_MAX).contains(&l.len()))
        .ok_or_else(|| format!("'seats' must be a list of 1 to {SEATS_MAX} seat ids"))?;
    list.iter().map(|v| seat_arg(Some(v), "seats")).collect()
}

fn logged_in(client: &Client) -> Result<(), String> {
    match client.user() {
        Some(_) => Ok(()),
        None => Err("the asker is not logged in; tell them to log in first (`login USER`)".into()),
    }
}

async fn seats(client: &Client, event: &str, answer: &mut Answer) -> Result<SeatsView, String> {
    let map = tools::seats(client, event).await?;
    answer.applied_index = Some(map.applied_index);
    Ok(map)
}

/// The system prompt: the template with {user}, {event} and {time} filled in.
fn fill(template: &str, client: &Client, event: &str) -> String {
    let user = client.user().unwrap_or("someone not logged in");
    let now = crate::clock::now_ms() / 1000;
    template
        .replace("{user}", user)
        .replace("{event}", event)
        .replace("{time}", &utc(now))
}

/// `2026-11-25 04:53 UTC` from seconds since 1970 (days to a civil date: H. Hinnant).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// A tool as the model sees it.
struct Tool {
    name: &'static str,
    description: &'static str,
    keys: &'static [&'static str],
}

const TOOLS: &[Tool] = &[
    Tool { name: "list_events", description: "The events, with their free and taken seats.", keys: &[] },
    Tool { name: "seat_status", description: "One seat: free, mine (the asker's) or taken; the holder only if the asker may know.", keys: &["seat", "event"] },
    Tool { name: "free_seats", description: "The free seats of an event, or the first N adjacent free seats in one row.", keys: &["event", "together"] },
    Tool { name: "my_bookings", description: "The asker's bookings.", keys: &[] },
    Tool { name: "reserve", description: "Propose reserving seats (all or none). Nothing changes until the person confirms.", keys: &["seats", "event"] },
    Tool { name: "cancel", description: "Propose cancelling the asker's seats or one of their bookings. Nothing changes until the person confirms.", keys: &["seats", "booking", "event"] },
    Tool { name: "cluster_status", description: "The nodes, the leader and the term.", keys: &[] },
    Tool { name: "help", description: "How to use the shell for a task.", keys: &["topic"] },
    Tool { name: "hold", description: "Propose holding seats for checkout (they come back by themselves unless confirmed). Nothing changes until the person agrees.", keys: &["seats", "event"] },
    Tool { name: "my_holds", description: "The asker's live holds and the seconds each has left.", keys: &[] },
    Tool { name: "confirm_hold", description: "Propose confirming one of the asker's holds, buying its seats. Nothing changes until the person agrees.", keys: &["hold"] },
];

/// The assistant's own tools as chat-completions function tools, with JSON schemas.
fn own_schemas() -> Vec<Value> {
    let event =
        json!({ "type": "string", "description": "an event name; the one in use if left out" });
    let seat = json!({ "type": "string", "description": "a seat id such as S2 or A10" });
    let seats = json!({ "type": "array", "items": seat, "minItems": 1, "maxItems": SEATS_MAX });
    let parameters = |name: &str| -> Value {
        match name {
            "seat_status" => {
                json!({ "type": "object", "properties": { "seat": seat, "event": event },
                                     "required": ["seat"], "additionalProperties": false })
            }
            "free_seats" => json!({ "type": "object", "properties": { "event": event,
                                     "together": { "type": "integer", "minimum": 1, "maximum": SEATS_MAX } },
                                    "additionalProperties": false }),
            "reserve" | "hold" => {
                json!({ "type": "object", "properties": { "seats": seats, "event": event },
                                 "required": ["seats"], "additionalProperties": false })
            }
            "confirm_hold" => json!({ "type": "object", "properties": { "hold": {
                                 "type": "string", "description": "a hold id such as hd-3" } },
                                "required": ["hold"], "additionalProperties": false }),
            "cancel" => json!({ "type": "object", "properties": { "seats": seats, "event": event,
                                 "booking": { "type": "string", "description": "a booking id such as bk-3" } },
                                "additionalProperties": false }),
            "help" => json!({ "type": "object", "properties": { "topic": { "type": "string",
                               "enum": ["reserve", "cancel", "login"] } },
                              "required": ["topic"], "additionalProperties": false }),
            _ => json!({ "type": "object", "properties": {}, "additionalProperties": false }),
        }
    };
    TOOLS
        .iter()
        .map(|t| {
            json!({ "type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": parameters(t.name) } })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escape sequences and other control characters from a model never reach the screen,
    /// and an answer stops at its length cap.
    #[test]
    fn model_text_is_printable_and_capped() {
        let mut text = String::new();
        let mut calls = Vec::new();
        let shown = std::sync::Mutex::new(String::new());
        let on_text = |piece: &str| shown.lock().expect("lock").push_str(piece);
        let chunk = json!({"choices":[{"delta":{"content":"S2 is \u{1b}[2Jfree\r\u{7}.\n"}}]});
        absorb(&chunk, &mut text, &mut calls, 4, &on_text).expect("absorb");
        assert_eq!(text, "S2 is [2Jfree.\n");
        let long = "x".repeat(ANSWER_MAX_CHARS * 2);
        let chunk = json!({"choices":[{"delta":{"content": long}}]});
        absorb(&chunk, &mut text, &mut calls, 4, &on_text).expect("absorb");
        assert_eq!(text.chars().count(), ANSWER_MAX_CHARS);
        assert_eq!(*shown.lock().expect("lock"), text);
    }

    #[test]
    fn streamed_tool_calls_are_put_together_leniently() {
        let mut text = String::new();
        let mut calls = Vec::new();
        let quiet = |_: &str| {};
        // No id, the name in one chunk and the arguments split over two.
        absorb(
            &json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"seat_status","arguments":"{\"seat\":"}}]}}]}),
            &mut text,
            &mut calls,
            8,
            &quiet,
        )
        .expect("absorbed");
        absorb(
            &json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"S2\"}"}}]}}]}),
            &mut text,
            &mut calls,
            8,
            &quiet,
        )
        .expect("absorbed");
        assert_eq!(calls[0].name, "seat_status");
        assert_eq!(arguments(&calls[0].arguments).expect("json")["seat"], "S2");
        assert!(calls[0].id.is_empty(), "an id is made up later");
        // Arguments as an object, no index, in a whole message rather than a delta.
        let mut whole = Vec::new();
        absorb(
            &json!({"choices":[{"message":{"content":"Checking.","tool_calls":[{"id":"x","function":{"name":"free_seats","arguments":{"together":2}}}]}}]}),
            &mut text,
            &mut whole,
            8,
            &quiet,
        )
        .expect("absorbed");
        assert_eq!(
            (whole[0].id.as_str(), whole[0].name.as_str()),
            ("x", "free_seats")
        );
        assert_eq!(arguments(&whole[0].arguments).expect("json")["together"], 2);
        assert_eq!(text, "Checking.");
    }

    #[test]
    fn a_tool_call_index_is_held_below_the_bound_and_a_repeated_name_is_not_doubled() {
        let mut text = String::new();
        let quiet = |_: &str| {};
        let chunk = |index: Value, name: &str, arguments: &str| {
            json!({"choices":[{"delta":{"tool_calls":[{"index": index,
                "function":{"name": name, "arguments": arguments}}]}}]})
        };
        // An index far past the bound would have sized the list of calls: refused instead.
        let mut calls = Vec::new();
        let refused = absorb(
            &chunk(json!(u64::MAX), "help", ""),
            &mut text,
            &mut calls,
            3,
            &quiet,
        );
        assert_eq!(
            refused,
            Err("the model asked for more than 3 tool calls in one reply".to_string())
        );
        assert!(calls.is_empty(), "nothing allocated for it");
        assert!(absorb(
            &chunk(json!(3), "help", ""),
            &mut text,
            &mut calls,
            3,
            &quiet
        )
        .is_err());
        assert!(absorb(
            &chunk(json!(2), "help", ""),
            &mut text,
            &mut calls,
            3,
            &quiet
        )
        .is_ok());
        assert_eq!(calls.len(), 3);
        // A server that repeats the name in every chunk of a call.
        let mut calls = Vec::new();
        for (name, arguments) in [("seat_status", "{\"seat\":"), ("seat_status", "\"S2\"}")] {
            absorb(
                &chunk(json!(0), name, arguments),
                &mut text,
                &mut calls,
                3,
                &quiet,
            )
            .expect("absorbed");
        }
        assert_eq!(calls[0].name, "seat_status");
        assert_eq!(calls[0].arguments, "{\"seat\":\"S2\"}");
        // A name sent in pieces is still put together.
        let mut calls = Vec::new();
        for piece in ["seat_", "status"] {
            absorb(
                &chunk(json!(0), piece, ""),
                &mut text,
                &mut calls,
                3,
                &quiet,
            )
            .expect("absorbed");
        }
        assert_eq!(calls[0].name, "seat_status");
        // Arguments that never end are cut off.
        let mut calls = Vec::new();
        let long = "x".repeat(ARGUMENTS_MAX_BYTES + 1);
        assert!(absorb(
            &chunk(json!(0), "help", &long),
            &mut text,
            &mut calls,
            3,
            &quiet
        )
        .is_err());
    }

    #[test]
    fn request_ids_repeat_within_a_turn_and_never_across_turns() {
        let call = Call {
            id: "call_0_0".into(),
            name: "reserve".into(),
            arguments: "{\"seats\":[\"S9\"]}".into(),
        };
        let turn = |nonce: &str, event: &'static str| Turn {
            user: "user1",
            event,
            question: "book S9",
            nonce: nonce.to_string(),
        };
        let first = turn("a1", "demo");
        // A retry of the same call in the same turn: the same id, so it reserves once.
        assert_eq!(request_id(&first, &call), request_id(&first, &call));
        let id = request_id(&first, &call);
        assert!(validate::request_id(&id).is_ok(), "{id}");
        // The same words later (a new nonce), or about another event: another request.
        assert_ne!(request_id(&turn("b2", "demo"), &call), id);
        assert_ne!(request_id(&turn("a1", "gala"), &call), id);
        let other_call = Call {
            id: "call_0_1".into(),
            ..Call::default()
        };
        assert_ne!(request_id(&first, &other_call), id);
        // Parts are delimited: moving a character from one part to the next changes the id.
        let shifted = Turn {
            user: "user",
            event: "1demo",
            ..turn("a1", "demo")
        };
        assert_ne!(request_id(&shifted, &call), id);
        // And two real questions get nonces of their own.
        assert_ne!(
            crate::client::new_request_id(),
            crate::client::new_request_id()
        );
    }

    #[test]
    fn error_bodies_of_any_shape_give_their_message() {
        let openai = br#"{"error":{"message":"Incorrect API key","type":"x","param":null,"code":"invalid_api_key"}}"#;
        let llama =
            br#"{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}"#;
        let vllm = br#"{"object":"error","message":"Too many requests","type":"x","param":null,"code":429}"#;
        let fastapi = br#"{"detail":"Unauthorized"}"#;
        assert_eq!(error_message(openai), "Incorrect API key");
        assert_eq!(error_message(llama), "Invalid API Key");
        assert_eq!(error_message(vllm), "Too many requests");
        assert_eq!(error_message(fastapi), "Unauthorized");
        assert_eq!(error_message(b"Bad Gateway\n"), "Bad Gateway");
        assert_eq!(error_message(b""), "");
        let long = "y".repeat(1000);
        assert_eq!(error_message(long.as_bytes()).chars().count(), 201);
    }

    #[test]
    fn a_quoted_tool_name_is_short_and_printable() {
        assert_eq!(shown("drop_tables"), "drop_tables");
        assert_eq!(shown("a\u{1b}[31mb"), "a[31mb");
        assert_eq!(shown(&"z".repeat(100)).chars().count(), 65);
    }

    #[test]
    fn arguments_are_held_to_their_schema() {
        assert!(arguments("[1]").is_err());
        assert!(arguments("{not json").is_err());
        assert_eq!(arguments("").expect("empty is no arguments").len(), 0);
        assert!(seat_list(Some(&json!(["S2", "drop table"]))).is_err());
        assert!(seat_list(Some(&json!([]))).is_err());
        assert_eq!(
            seat_list(Some(&json!(["s2", "A10"]))).expect("ok"),
            ["S2", "A10"]
        );
        let args = arguments("{\"seat\":\"S2\",\"sql\":1}").expect("json");
        assert!(only_keys(&args, &["seat"]).is_err());
    }

    #[test]
    fn time_is_a_civil_date() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_580_000), "2026-11-25 04:13 UTC");
        assert_eq!(utc(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
    }
}
