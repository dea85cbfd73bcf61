//! The assistant: questions in plain language, answered from the cluster's live state, as
//! the asking user.
//!
//! Every answer comes from tools ([`tools`]) called in the same turn; nothing is answered
//! from memory. A question that would change something (reserve, cancel) comes back as a
//! [`Proposal`]; nothing changes until the person confirms it and [`carry_out`] runs it.
//!
//! Two backends answer through one [`Assistant`]: the local rules engine ([`rules`]:
//! deterministic, no network, the default) and [`openai`] (OpenAI or any server that speaks
//! its chat-completions protocol), which calls the same tools. When `openai` fails and the
//! config allows it, the rules engine answers instead and the answer says so.

pub mod http;
pub mod openai;
pub mod rules;
pub mod tools;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{Client, ClientError};
use crate::config::AssistantConfig;
pub use crate::config::Backend;
use crate::domain::validate;

/// The assistant of a shell or of the `/ask` server: its backends and which one is in use.
pub struct Assistant {
    config: AssistantConfig,
    backend: Mutex<Backend>,
    openai: openai::OpenAi,
    plugin_rules: Mutex<Option<PluginRules>>,
}

/// Rules added by plugins: given a question, an answer (and where it came from), tried before
/// the rules engine's own. Their handlers are scripts: they run off the runtime's threads,
/// each bounded in time and operations, so the future resolves within a bound.
pub type PluginRules =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = PluginAnswer> + Send>> + Send + Sync>;

/// More tools for the model: the commands of the session's command table that only read
/// (`event info`), handed in by the composition root, since the table sits above this layer.
/// A tool runs as the asker, through their client, on the event in use unless its arguments
/// name one. (Tools that change something stay the assistant's own: they propose, and the
/// person confirms.)
pub trait CommandTools: Send + Sync {
    /// The tools' names.
    fn names(&self) -> Vec<&'static str>;
    /// Each as a chat-completions function tool, with its JSON schema.
    fn schemas(&self) -> Vec<Value>;
    /// Runs tool `name` with the model's arguments; its result, or why not.
    fn run<'a>(
        &'a self,
        client: &'a Client,
        event_in_use: &'a str,
        name: &'a str,
        args: serde_json::Map<String, Value>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'a>>;
}

/// What the plugins' rules made of a question.
#[derive(Debug, Default)]
pub struct PluginAnswer {
    /// The answer and the file of the rule that gave it.
    pub answer: Option<(String, String)>,
    /// Rules that matched but failed (a script error, too many operations, too slow).
    pub failures: Vec<String>,
}

/// How long the assistant waits for the plugins' rules, whatever they do: beyond the bound
/// each rule keeps itself to, a margin for starting its thread.
const PLUGIN_RULES_WAIT: Duration = Duration::from_secs(5);

impl Assistant {
    /// Whether `/ask` callers may choose the backend (cluster.toml
    /// `[assistant] ask_may_choose_backend`).
    pub fn callers_may_choose_backend(&self) -> bool {
        self.config.ask_may_choose_backend
    }

    pub fn new(config: &AssistantConfig) -> Assistant {
        Assistant {
            config: config.clone(),
            backend: Mutex::new(config.backend),
            openai: openai::OpenAi::new(config),
            plugin_rules: Mutex::new(None),
        }
    }

    /// Gives the model the tools of the command table (see [`CommandTools`]).
    pub fn set_command_tools(&self, tools: Arc<dyn CommandTools>) {
        self.openai.set_command_tools(tools);
    }

    pub fn set_plugin_rules(&self, rules: PluginRules) {
        *self.plugin_rules.lock().unwrap_or_else(|e| e.into_inner()) = Some(rules);
    }

    /// The rules engine, after the plugins' rules. A plugin rule that fails is passed over
    /// (and said so): the built-in rules answer.
    async fn rules(&self, client: &Client, event: &str, question: &str) -> Answer {
        let plugins = self
            .plugin_rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let outcome = match plugins {
            None => PluginAnswer::default(),
            Some(rules) => tokio::time::timeout(PLUGIN_RULES_WAIT, rules(question.to_string()))
                .await
                .unwrap_or_else(|_| PluginAnswer {
                    answer: None,
                    failures: vec![format!(
                        "the plugin rules gave no answer within {} s",
                        PLUGIN_RULES_WAIT.as_secs()
                    )],
                }),
        };
        if let Some((answer, _file)) = outcome.answer {
            return Answer {
                answer,
                backend: "rules",
                tools: vec!["plugin_rule"],
                applied_index: None,
                proposal: None,
                fallback: None,
                streamed: false,
            };
        }
        let mut answer = rules::ask(client, event, question).await;
        if !outcome.failures.is_empty() {
            answer.answer = format!(
                "{}\n(A plugin rule failed: {}. The built-in rules answered.)",
                answer.answer,
                outcome.failures.join("; ")
            );
        }
        answer
    }

    pub fn backend(&self) -> Backend {
        *self.backend.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_backend(&self, backend: Backend) {
        *self.backend.lock().unwrap_or_else(|e| e.into_inner()) = backend;
    }

    /// What `assistant status` shows.
    pub fn describe(&self) -> Value {
        let o = &self.config.openai;
        json!({
            "backend": self.backend(),
            "openai": {
                "base_url": o.base_url,
                "model": o.model,
                "api_key_env": o.api_key_env,
                "key_set": std::env::var(&o.api_key_env).is_ok_and(|k| !k.is_empty()),
                "timeout_secs": o.timeout_secs,
                "max_tool_calls": o.max_tool_calls,
            },
            "fallback_to_rules": self.config.fallback_to_rules,
        })
    }

    /// Answers `question` as `client`'s user about `event` (unless it names another), with
    /// `backend` or the one in use. `on_text` sees an openai answer as it streams in.
    pub async fn ask(
        &self,
        client: &Client,
        event: &str,
        question: &str,
        backend: Option<Backend>,
        on_text: &(dyn Fn(&str) + Send + Sync),
    ) -> Answer {
        match backend.unwrap_or_else(|| self.backend()) {
            Backend::Rules => self.rules(client, event, question).await,
            Backend::OpenAi => match self.openai.ask(client, event, question, on_text).await {
                Ok(answer) => answer,
                Err(problem) if self.config.fallback_to_rules => {
                    let mut answer = self.rules(client, event, question).await;
                    answer.answer = format!(
                        "{}\n(The openai backend failed: {problem}. The rules engine answered.)",
                        answer.answer
                    );
                    answer.fallback = Some(problem);
                    answer
                }
                Err(problem) => Answer {
                    answer: format!("The openai backend failed: {problem}"),
                    backend: "openai",
                    tools: Vec::new(),
                    applied_index: None,
                    proposal: None,
                    fallback: None,
                    streamed: false,
                },
            },
        }
    }
}

/// What the assistant answered.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub answer: String,
    pub backend: &'static str,
    /// The tools it called, in order.
    pub tools: Vec<&'static str>,
    /// The applied index the answer's reads saw, when it read seats.
    pub applied_index: Option<u64>,
    pub proposal: Option<Proposal>,
    /// Why the openai backend failed, when the rules engine answered in its place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Whether `answer` is exactly the text that went to `on_text` as it streamed in (so a
    /// shell that showed it need not print it again). A failure after streaming began gives
    /// an answer that was not streamed: the fallback or the failure, still to be shown.
    #[serde(skip)]
    pub streamed: bool,
}

/// A change the assistant suggests, for the person to confirm. It travels: `POST /ask` puts
/// it in its reply and `POST /ask/confirm` takes it back, so what comes back is checked again
/// ([`Proposal::checked`]) before anything is carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// The question to put to the person: "Reserve S4 and S5 in demo?" Made again from the
    /// action when a proposal comes back, so a sender may leave it out.
    #[serde(default)]
    pub question: String,
    pub action: Action,
    /// Sent with the write when it is confirmed: confirming twice (a retry after a timeout)
    /// reserves once.
    pub request_id: String,
}

impl Proposal {
    /// A proposal that came from outside (a page, a script), held to what the tools accept:
    /// an event name, 1 to 10 seat ids, a booking id, a request id the cluster takes (each as
    /// `domain::validate` has it). Seat ids are upper-cased and the question is made again
    /// from the action.
    pub fn checked(self) -> Result<Proposal, String> {
        if validate::request_id(&self.request_id).is_err() {
            return Err(format!(
                "'request_id' must be 1 to {} printable ASCII characters",
                crate::limits::REQUEST_ID_LEN_MAX
            ));
        }
        let seats = |event: &str, seats: Vec<String>| -> Result<Vec<String>, String> {
            if !validate::is_event_name(event) {
                return Err(format!("'{event}' is not an event name"));
            }
            if !(1..=tools::SEATS_MAX).contains(&seats.len()) {
                return Err(format!(
                    "'seats' must list 1 to {} seat ids",
                    tools::SEATS_MAX
                ));
            }
            seats
                .iter()
                .map(|s| {
                    validate::seat_id(s).map_err(|_| format!("'{s}' is not a seat id like S2"))
                })
                .collect()
        };
        let action = match self.action {
            Action::Reserve { event, seats: list } => Action::Reserve {
                seats: seats(&event, list)?,
                event,
            },
            Action::Hold { event, seats: list } => Action::Hold {
                seats: seats(&event, list)?,
                event,
            },
            Action::ConfirmHold { hold } if validate::parse_hold_id(&hold).is_some() => {
                Action::ConfirmHold { hold }
            }
            Action::ConfirmHold { hold } => {
                return Err(format!("'{hold}' is not a hold id like hd-3"))
            }
            Action::CancelSeats { event, seats: list } => Action::CancelSeats {
                seats: seats(&event, list)?,
                event,
            },
            Action::CancelBooking { booking } if validate::is_booking_id(&booking) => {
                Action::CancelBooking { booking }
            }
            Action::CancelBooking { booking } => {
                return Err(format!("'{booking}' is not a booking id like bk-3"))
            }
        };
        Ok(Proposal::new(action, self.request_id))
    }

    pub fn new(action: Action, request_id: String) -> Proposal {
        let question = match &action {
            Action::Reserve { event, seats } => format!("Reserve {} in {event}?", and_list(seats)),
            Action::Hold { event, seats } => format!(
                "Hold {} in {event} for checkout (they come back if you do not confirm in time)?",
                and_list(seats)
            ),
            Action::ConfirmHold { hold } => format!("Confirm {hold}, buying its seats?"),
            Action::CancelSeats { event, seats } => {
                format!("Cancel {} in {event}?", and_list(seats))
            }
            Action::CancelBooking { booking } => format!("Cancel booking {booking}?"),
        };
        Proposal {
            question,
            action,
            request_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Reserve {
        event: String,
        seats: Vec<String>,
    },
    /// Hold seats for checkout; confirming the hold buys them.
    Hold {
        event: String,
        seats: Vec<String>,
    },
    ConfirmHold {
        hold: String,
    },
    CancelSeats {
        event: String,
        seats: Vec<String>,
    },
    CancelBooking {
        booking: String,
    },
}

impl Answer {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({ "answer": self.answer }))
    }
}

/// Carries out a confirmed proposal as the asking user; returns what happened.
pub async fn carry_out(client: &Client, proposal: &Proposal) -> Result<String, String> {
    carry_out_typed(client, proposal)
        .await
        .map_err(|e| e.to_string())
}

/// [`carry_out`], keeping the client's error when the cluster refuses, for callers that tell
/// the kinds of refusal apart (HTTP: taken is 409, not logged in 401, ...).
pub async fn carry_out_typed(client: &Client, proposal: &Proposal) -> Result<String, ClientError> {
    let id = proposal.request_id.as_str();
    match &proposal.action {
        Action::Reserve { event, seats } => {
            let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
            let reply = client.reserve_with_id(id, event, &seats).await?;
            let booking = reply.booking.unwrap_or_default();
            Ok(format!(
                "reserved {} in {} (booking {})",
                booking.seats.join(", "),
                booking.event,
                booking.id
            ))
        }
        Action::Hold { event, seats } => {
            let request = crate::pb::booking::v1::HoldRequest {
                request_id: id.to_string(),
                event: event.clone(),
                seats: seats.clone(),
                ..Default::default()
            };
            let hold = client.hold(request).await?.hold.unwrap_or_default();
            Ok(format!(
                "holding {} in {} as {} until {}; confirm {} to buy them",
                hold.seats.join(", "),
                hold.event,
                hold.id,
                crate::domain::clock_text(hold.expires_at_ms),
                hold.id
            ))
        }
        Action::ConfirmHold { hold } => {
            let reply = client.confirm_hold_with_id(id, hold, "").await?;
            let booking = reply.booking.unwrap_or_default();
            Ok(format!(
                "confirmed {hold}: reserved {} in {} (booking {})",
                booking.seats.join(", "),
                booking.event,
                booking.id
            ))
        }
        Action::CancelSeats { event, seats } => {
            let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
            let reply = client.cancel_seats_with_id(id, event, &seats).await?;
            Ok(format!(
                "cancelled {} in {}",
                reply.seats.join(", "),
                reply.event
            ))
        }
        Action::CancelBooking { booking } => {
            let reply = client.cancel_booking_with_id(id, booking).await?;
            Ok(format!(
                "cancelled booking {booking}: {} in {}",
                reply.seats.join(", "),
                reply.event
            ))
        }
    }
}

/// "S4", "S4 and S5", "S4, S5 and S6".
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
