//! The booking commands, and one session running them: who is logged in, which event is in
//! use, and how each command runs against the cluster through [`crate::client::Client`].
//! Every command gives a [`CommandOutput`]: the text a person reads and the JSON a script reads.
//!
//! The shell (a person), scripts and plugins (rhai) all run commands through a `Session`;
//! [`command::COMMANDS`] is the one table of their names, usage and help.
//!
//! What it does not do: read a terminal's lines (the shell does), or know rhai's engine:
//! `run FILE.rhai` and plugin commands go to whatever implements [`Scripts`] (the script
//! layer, above this one).

mod categories_file;
mod checkout;
pub mod command;
pub mod render;
pub mod status;
pub mod tools;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use command::{Cmd, COMMANDS};

use crate::assistant::{self, Assistant, Backend};
use crate::client::{Client, Consistency};
use crate::domain::state::DEMO_EVENT;
use crate::json::{booking_json, event_json};
use crate::pb::booking::v1 as pb;
use crate::prompt::read_password;

/// A command a plugin added, as help and completion show it.
#[derive(Clone, Debug)]
pub struct PluginCommand {
    pub name: String,
    pub usage: String,
    pub about: String,
    /// The plugin file that registered it.
    pub file: PathBuf,
}

/// Where a script's `print` goes: straight to stdout, or collected (for `--json`).
pub enum Output {
    Print,
    Collect(Mutex<Vec<String>>),
}

impl Output {
    pub fn line(&self, text: &str) {
        match self {
            Output::Print => println!("{text}"),
            Output::Collect(lines) => lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(text.to_string()),
        }
    }

    pub fn collected(&self) -> Vec<String> {
        match self {
            Output::Print => Vec::new(),
            Output::Collect(lines) => lines.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// A script's run, as the session awaits it: its value as JSON, or a message for a person.
pub type ScriptRun =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send>>;

/// Scripts and plugin commands as a session sees them. The script layer implements it; a
/// session without one says scripting is not available.
pub trait Scripts: Send + Sync {
    /// Runs a script file with `session` (its own login and event) and `ARGS`.
    fn run_file(
        &self,
        file: PathBuf,
        args: Vec<String>,
        session: Session,
        out: Arc<Output>,
    ) -> ScriptRun;
    /// Runs the plugin command `name`; `None` when no plugin registered it.
    fn run_command(
        &self,
        name: &str,
        args: Vec<String>,
        session: Session,
        out: Arc<Output>,
    ) -> Option<ScriptRun>;
    /// The commands plugins registered.
    fn commands(&self) -> Vec<PluginCommand>;
    /// Loads the plugins of `dir` again; what was skipped, and why.
    fn reload(&self, dir: &std::path::Path) -> Vec<String>;
    /// Candidates for the next word of the plugin command `name`.
    fn complete(
        &self,
        name: &str,
        args: &[String],
        events: &[String],
        seats: &[String],
    ) -> Vec<String>;
    /// Stops the script running now (Ctrl-C).
    fn cancel(&self);
}

/// What a command printed, for a person and for a script.
pub struct CommandOutput {
    pub text: String,
    pub json: Value,
}

impl CommandOutput {
    fn new(text: impl Into<String>, json: Value) -> CommandOutput {
        CommandOutput {
            text: text.into(),
            json,
        }
    }
}

/// What completion may offer, refreshed as the session learns it.
#[derive(Default)]
pub struct Known {
    pub events: Vec<String>,
    /// Every seat of the event in use (what a plugin's `complete` gets).
    pub seats: Vec<String>,
    /// Its free seats: what `reserve` can name.
    pub free: Vec<String>,
    /// The user's seats in it and their bookings: what `cancel` can give back.
    pub mine: Vec<String>,
    pub bookings: Vec<String>,
    /// The user's holds in it: what `confirm`, `extend` and `release` take.
    pub holds: Vec<String>,
    pub plugins: Vec<PluginCommand>,
}

impl Known {
    /// Takes the seats of the event in use from its seat map.
    pub fn learn_seats(&mut self, reply: &pb::GetSeatsReply) {
        let with = |wanted: pb::SeatStatus| -> Vec<String> {
            reply
                .seats
                .iter()
                .filter(|s| pb::SeatStatus::try_from(s.status) == Ok(wanted))
                .map(|s| s.id.clone())
                .collect()
        };
        self.seats = reply.seats.iter().map(|s| s.id.clone()).collect();
        self.free = with(pb::SeatStatus::Free);
        self.mine = with(pb::SeatStatus::Mine);
        self.bookings.clear();
        self.holds.clear();
        for seat in &reply.seats {
            let held = pb::SeatStatus::try_from(seat.status) == Ok(pb::SeatStatus::HeldByYou);
            if held && !seat.hold_id.is_empty() && !self.holds.contains(&seat.hold_id) {
                self.holds.push(seat.hold_id.clone());
            }
            let mine = pb::SeatStatus::try_from(seat.status) == Ok(pb::SeatStatus::Mine);
            if mine && !seat.booking_id.is_empty() && !self.bookings.contains(&seat.booking_id) {
                self.bookings.push(seat.booking_id.clone());
            }
        }
    }
}

/// How long refreshing completion's candidates may hold up the command that asked for it.
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How the session talks to the person at the other end.
#[derive(Clone, Default)]
pub struct Mode {
    /// Colours and prompts: a person at a terminal.
    pub interactive: bool,
    /// `--yes`: confirm what would be asked.
    pub yes: bool,
    /// The login password read from the first line of stdin (`--password-stdin`).
    pub password: Option<String>,
    pub colour: bool,
    /// `--json`: a script's prints are collected into its reply rather than printed.
    pub json: bool,
    /// A script's session: the assistant's proposals come back undone.
    pub script: bool,
}

pub struct Session {
    pub client: Client,
    pub event: String,
    pub mode: Mode,
    pub known: Arc<Mutex<Known>>,
    /// Set by `quit`.
    pub done: bool,
    /// Runs `run` and plugin commands; without it they say scripting is not available.
    pub scripting: Option<Arc<dyn Scripts>>,
    /// Where `plugins reload` looks: `plugins/` beside cluster.toml.
    pub plugin_dir: PathBuf,
    /// Answers `ask`; its backend can be switched for the session.
    pub assistant: Arc<Assistant>,
    /// The interactive shell's history, which `history` prints; `None` in a script.
    pub history_file: Option<PathBuf>,
    /// Some node has accepted a connection: a first command against a cluster that is down
    /// is told so within `PROBE_WAIT` rather than after the client's retries.
    reached: bool,
}

impl Session {
    pub fn new(client: Client, mode: Mode) -> Session {
        Session {
            client,
            event: DEMO_EVENT.to_string(),
            mode,
            known: Arc::default(),
            done: false,
            scripting: None,
            plugin_dir: PathBuf::from("plugins"),
            assistant: Arc::new(Assistant::new(&Default::default())),
            history_file: None,
            reached: false,
        }
    }

    /// A session for a script or a `parallel` branch: the same login and event, its own
    /// from then on, and nobody to ask (a script's `cancel` is its author's decision).
    /// A session that runs one command for the assistant, as the asker (`client`), on the
    /// event in use; it asks nothing and does not probe first (the asker's call just worked).
    fn for_tool(client: Client, event: &str) -> Session {
        let mode = Mode {
            yes: true,
            script: true,
            ..Mode::default()
        };
        Session {
            event: event.to_string(),
            reached: true,
            ..Session::new(client, mode)
        }
    }

    pub fn fork(&self) -> Session {
        Session {
            client: self.client.clone(),
            event: self.event.clone(),
            mode: Mode {
                yes: true,
                script: true,
                ..Mode::default()
            },
            known: Arc::default(),
            done: false,
            scripting: None,
            plugin_dir: self.plugin_dir.clone(),
            assistant: self.assistant.clone(),
            history_file: None,
            reached: self.reached,
        }
    }

    /// Parses a line, knowing the commands plugins registered.
    pub fn parse(&self, line: &str) -> Result<Option<Cmd>, String> {
        let plugins = self.known_plugins();
        command::parse_with(line, &|word| plugins.iter().any(|c| c.name == word))
    }

    /// `user@event node N> ` (or `event node N> ` before login).
    pub fn prompt(&self) -> String {
        let node = self.client.current_node();
        match self.client.user() {
            Some(user) => format!("{user}@{} node{node}", self.event),
            None => format!("{} node{node}", self.event),
        }
    }

    /// Runs one command. An error is a message for a person; nothing else failed.
    pub async fn run(&mut self, cmd: Cmd) -> Result<CommandOutput, String> {
        // What the command may have changed that completion offers, to be fetched again
        // (events too, or only the seats of the event in use), whether it succeeded or not:
        // a reserve refused because the seat was taken shows the candidates were stale.
        let refresh = match &cmd {
            Cmd::Login(_) | Cmd::Use(_) | Cmd::EventCreate { .. } => Some(true),
            Cmd::Logout
            | Cmd::Reserve(_)
            | Cmd::CancelSeats(_)
            | Cmd::CancelBooking(_)
            | Cmd::Run { .. }
            | Cmd::Plugin { .. } => Some(false),
            _ => None,
        };
        if !self.reached && cmd.needs_cluster() {
            self.client
                .probe(crate::client::PROBE_WAIT)
                .await
                .map_err(|e| e.to_string())?;
            self.reached = true;
        }
        let reply = self.execute(cmd).await;
        if let Some(events) = refresh {
            self.refresh_known(events).await;
        }
        reply
    }

    /// Runs one command: a dispatch to the method that does it.
    async fn execute(&mut self, cmd: Cmd) -> Result<CommandOutput, String> {
        match cmd {
            Cmd::Help(topic) => help(topic.as_deref(), &self.known_plugins()),
            Cmd::Quit => {
                self.done = true;
                Ok(CommandOutput::new("", json!({"quit": true})))
            }
            Cmd::Login(user) => self.login(user).await,
            Cmd::Logout => Ok(self.logout()),
            Cmd::Whoami => Ok(self.whoami()),
            Cmd::Events => self.events().await,
            Cmd::Use(event) => self.use_event(event).await,
            Cmd::Seats(event) => self.seats(event).await,
            Cmd::WatchSeats { event, updates } => self.watch_seats(event, updates).await,
            Cmd::Reserve(seats) => self.reserve(&seats).await,
            Cmd::CancelSeats(seats) => self.cancel_seats(&seats).await,
            Cmd::CancelBooking(booking) => self.cancel_booking(&booking).await,
            Cmd::Bookings => self.bookings().await,
            Cmd::Status => self.status().await,
            Cmd::Ask { question, backend } => self.ask(&question, backend).await,
            Cmd::AssistantUse(backend) => Ok(self.assistant_use(backend)),
            Cmd::AssistantStatus => Ok(self.assistant_status()),
            Cmd::History => self.history(),
            Cmd::EventInfo(name) => self.event_info(&name).await,
            Cmd::EventCreate {
                name,
                rows,
                seats_per_row,
                max_per_user,
                categories,
                categories_file,
                currency,
            } => {
                let (categories, currency) =
                    categories_from(categories, categories_file.as_deref(), currency)?;
                let request = create_request(name, rows, seats_per_row, max_per_user);
                self.event_create(with_categories(request, categories, currency))
                    .await
            }
            cmd @ (Cmd::Hold(_)
            | Cmd::Holds
            | Cmd::Confirm { .. }
            | Cmd::Extend { .. }
            | Cmd::Release(_)
            | Cmd::Tickets
            | Cmd::CheckIn(_)) => self.execute_checkout(cmd).await,
            Cmd::UserAdd { name, admin, door } => {
                let password = read_password(
                    &format!("Password for {name}: "),
                    false,
                    "TICKET_NEW_PASSWORD",
                    true,
                )
                .map_err(|e| e.to_string())?;
                let role = match (admin, door) {
                    (true, _) => pb::Role::Admin,
                    (false, true) => pb::Role::Door,
                    (false, false) => pb::Role::Customer,
                };
                self.add_user_as(&name, &password, role).await
            }
            Cmd::Run { file, args } => self.run_script(file, args).await,
            Cmd::Plugins { reload } => self.plugins(reload),
            Cmd::Plugin { name, args } => self.run_plugin(&name, args).await,
        }
    }
}

/// The commands that read or change bookings and events, one method each.
impl Session {
    fn logout(&mut self) -> CommandOutput {
        let user = self.client.user().map(str::to_string);
        self.client.logout();
        CommandOutput::new("logged out", json!({ "logged_out": user }))
    }

    fn whoami(&self) -> CommandOutput {
        let user = self.client.user().map(str::to_string);
        let text = match &user {
            Some(user) => format!("{user}, using event {}", self.event),
            None => format!("not logged in, using event {}", self.event),
        };
        CommandOutput::new(text, json!({ "user": user, "event": self.event }))
    }

    async fn events(&mut self) -> Result<CommandOutput, String> {
        let reply = self.client.list_events().await.map_err(|e| e.to_string())?;
        self.remember_events(&reply.events);
        let text = render::events_table(&reply.events, &self.event);
        let events: Vec<Value> = reply.events.iter().map(event_json).collect();
        Ok(CommandOutput::new(text, json!({ "events": events })))
    }

    async fn use_event(&mut self, event: String) -> Result<CommandOutput, String> {
        let seats = self
            .client
            .get_seats(&event, Consistency::Linearizable)
            .await
            .map_err(|e| e.to_string())?;
        self.event = event;
        self.remember_seats(&self.event, &seats);
        Ok(CommandOutput::new(
            format!("using event {}", self.event),
            json!({ "event": self.event }),
        ))
    }

    async fn seats(&mut self, event: Option<String>) -> Result<CommandOutput, String> {
        let event = event.unwrap_or_else(|| self.event.clone());
        let reply = self
            .client
            .get_seats(&event, Consistency::Linearizable)
            .await
            .map_err(|e| e.to_string())?;
        self.remember_seats(&event, &reply);
        let text = render::seat_map(&reply, self.mode.colour);
        Ok(CommandOutput::new(text, render::seats_json(&reply)))
    }

    async fn reserve(&mut self, seats: &[String]) -> Result<CommandOutput, String> {
        let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
        let reply = self
            .client
            .reserve(&self.event, &seats)
            .await
            .map_err(|e| e.to_string())?;
        let booking = reply.booking.unwrap_or_default();
        Ok(CommandOutput::new(
            format!(
                "reserved {} in {} (booking {})",
                booking.seats.join(", "),
                booking.event,
                booking.id
            ),
            json!({ "booking": booking_json(&booking), "applied_index": reply.applied_index }),
        ))
    }

    async fn cancel_seats(&mut self, seats: &[String]) -> Result<CommandOutput, String> {
        let what = format!("Cancel {} in {}?", seats.join(", "), self.event);
        if !self.confirm(&what)? {
            return Ok(declined());
        }
        let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
        let reply = self
            .client
            .cancel_seats(&self.event, &seats)
            .await
            .map_err(|e| e.to_string())?;
        Ok(cancelled(reply))
    }

    async fn cancel_booking(&mut self, booking: &str) -> Result<CommandOutput, String> {
        if !self.confirm(&format!("Cancel booking {booking}?"))? {
            return Ok(declined());
        }
        let reply = self
            .client
            .cancel_booking(booking)
            .await
            .map_err(|e| e.to_string())?;
        Ok(cancelled(reply))
    }

    async fn bookings(&self) -> Result<CommandOutput, String> {
        let reply = self.client.my_bookings().await.map_err(|e| e.to_string())?;
        let text = match reply.bookings.is_empty() {
            true => "no bookings".to_string(),
            false => render::bookings_table(&reply.bookings),
        };
        let bookings: Vec<Value> = reply.bookings.iter().map(booking_json).collect();
        Ok(CommandOutput::new(text, json!({ "bookings": bookings })))
    }

    async fn status(&self) -> Result<CommandOutput, String> {
        let reply = self
            .client
            .cluster_status()
            .await
            .map_err(|e| e.to_string())?;
        Ok(CommandOutput::new(
            status::render(&reply).trim_end(),
            status::to_json(&reply),
        ))
    }

    fn assistant_use(&self, backend: Backend) -> CommandOutput {
        self.assistant.set_backend(backend);
        CommandOutput::new(
            format!("the assistant now answers with {}", backend_name(backend)),
            self.assistant.describe(),
        )
    }

    fn assistant_status(&self) -> CommandOutput {
        let d = self.assistant.describe();
        let o = &d["openai"];
        let text = format!(
            "backend: {}\nopenai: {} model {}, key from ${} ({}), timeout {} s, at most {} tool calls\nfallback to rules: {}",
            d["backend"].as_str().unwrap_or("?"),
            o["base_url"].as_str().unwrap_or(""),
            o["model"].as_str().unwrap_or(""),
            o["api_key_env"].as_str().unwrap_or(""),
            if o["key_set"] == true { "set" } else { "not set" },
            o["timeout_secs"],
            o["max_tool_calls"],
            d["fallback_to_rules"],
        );
        CommandOutput::new(text, d)
    }

    /// `event info NAME`: what a buyer wants to know before choosing seats.
    async fn event_info(&self, name: &str) -> Result<CommandOutput, String> {
        let reply = self.client.list_events().await.map_err(|e| e.to_string())?;
        let event = reply
            .events
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| format!("there is no event '{name}' (events lists them)"))?;
        let holders = crate::domain::viewer::HOLDERS_SHOWN_TO;
        let limit = match event.max_seats_per_user {
            0 => "no limit per person".to_string(),
            n => format!("at most {n} seats per person"),
        };
        let mut text = format!(
            "{}: {} rows of {} seats ({} in all), {limit}\n{} free, {} taken\nwho reserved a seat is shown to {holders}",
            event.name,
            event.rows,
            event.seats_per_row,
            u64::from(event.rows) * u64::from(event.seats_per_row),
            event.free,
            event.taken,
        );
        if !event.categories.is_empty() {
            text.push_str(&format!("\nprices: {}", render::categories_text(event)));
        }
        let mut json = event_json(event);
        json["holders_shown_to"] = json!(holders);
        Ok(CommandOutput::new(text, json!({ "event": json })))
    }

    async fn event_create(&self, request: pb::CreateEventRequest) -> Result<CommandOutput, String> {
        let reply = self
            .client
            .create_event_from(request)
            .await
            .map_err(|e| e.to_string())?;
        let event = reply.event.unwrap_or_default();
        Ok(CommandOutput::new(
            format!(
                "created {} with {} seats in {} rows",
                event.name,
                event.rows * event.seats_per_row,
                event.rows
            ),
            json!({ "event": event_json(&event) }),
        ))
    }
}

/// The text of an answer still to be printed: the answer with a note of the openai tools
/// used. When some of it streamed to the screen, that line is ended here, and only what did
/// not stream is left.
fn answer_text(answer: &assistant::Answer, streamed: bool) -> String {
    let mut text = answer.answer.clone();
    if answer.backend == "openai" {
        let used = match answer.tools.is_empty() {
            true => "none".to_string(),
            false => answer.tools.join(", "),
        };
        text.push_str(&format!("\n[openai; tools used: {used}]"));
    }
    if streamed {
        // What streamed is on the screen: end its line. When it was the whole answer, only
        // the note after it is left to print; when the stream broke off, the answer (the
        // failure, or the rules engine's answer with the failure noted) is still to come.
        println!();
        if answer.streamed {
            text = text.split_off(answer.answer.len()).trim_start().to_string();
        }
    }
    text
}

impl Session {
    /// Asks the assistant. A proposal it makes is carried out only once confirmed: at the
    /// terminal, or by `--yes`; a script gets it back undone.
    async fn ask(
        &mut self,
        question: &str,
        backend: Option<Backend>,
    ) -> Result<CommandOutput, String> {
        let (answer, streamed) = self.ask_streaming(question, backend).await;
        let mut json = answer.to_json();
        let mut text = answer_text(&answer, streamed);
        let Some(proposal) = &answer.proposal else {
            return Ok(CommandOutput::new(text, json));
        };
        if self.mode.script {
            text.push_str(&format!(
                "\n{} (not done: a script books with reserve)",
                proposal.question
            ));
            return Ok(CommandOutput::new(text, json));
        }
        if self.mode.interactive {
            println!("{text}");
            text.clear();
        }
        let outcome = self.settle(proposal, &mut json).await?;
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&outcome);
        Ok(CommandOutput::new(text, json))
    }

    /// The assistant's answer, and whether any of it was printed as it streamed in (an
    /// openai answer at a terminal, outside `--json`).
    async fn ask_streaming(
        &self,
        question: &str,
        backend: Option<Backend>,
    ) -> (assistant::Answer, bool) {
        let streamed = Arc::new(AtomicBool::new(false));
        let stream_here = self.mode.interactive && !self.mode.json;
        let seen = streamed.clone();
        let on_text = move |piece: &str| {
            if stream_here {
                seen.store(true, Ordering::Relaxed);
                print!("{piece}");
                let _ = std::io::stdout().flush();
            }
        };
        let answer = self
            .assistant
            .ask(&self.client, &self.event, question, backend, &on_text)
            .await;
        (answer, streamed.load(Ordering::Relaxed))
    }

    /// Asks the person to confirm a proposal and carries it out if they do; what happened,
    /// as text, with `carried_out` set in the reply's JSON.
    async fn settle(
        &self,
        proposal: &assistant::Proposal,
        json: &mut Value,
    ) -> Result<String, String> {
        Ok(match self.consent(&proposal.question) {
            Err(_) if !self.mode.interactive => {
                json["carried_out"] = Value::Null;
                format!(
                    "{} Not done: answer at a terminal, or ask again with --yes.",
                    proposal.question
                )
            }
            Ok(true) => {
                let done = assistant::carry_out(&self.client, proposal).await?;
                json["carried_out"] = json!(done);
                done
            }
            Ok(false) => {
                json["carried_out"] = Value::Null;
                match proposal.action {
                    assistant::Action::Reserve { .. } => "nothing reserved".to_string(),
                    assistant::Action::Hold { .. } => "nothing held".to_string(),
                    assistant::Action::ConfirmHold { .. } => "not confirmed".to_string(),
                    _ => "not cancelled".to_string(),
                }
            }
            Err(refused) => {
                json["carried_out"] = Value::Null;
                refused
            }
        })
    }

    pub async fn add_user(
        &self,
        name: &str,
        password: &str,
        admin: bool,
    ) -> Result<CommandOutput, String> {
        let role = if admin {
            pb::Role::Admin
        } else {
            pb::Role::Customer
        };
        self.add_user_as(name, password, role).await
    }

    pub async fn add_user_as(
        &self,
        name: &str,
        password: &str,
        role: pb::Role,
    ) -> Result<CommandOutput, String> {
        self.client
            .add_user_with_role(name, password, role)
            .await
            .map_err(|e| e.to_string())?;
        let role = match role {
            pb::Role::Admin => "admin",
            pb::Role::Door => "door",
            pb::Role::Customer => "customer",
        };
        Ok(CommandOutput::new(
            format!("added {role} {name}"),
            json!({ "user": name, "role": role }),
        ))
    }

    fn scripting(&self) -> Result<Arc<dyn Scripts>, String> {
        self.scripting
            .clone()
            .ok_or_else(|| "scripting is not available in this session".to_string())
    }

    fn output(&self) -> Arc<Output> {
        Arc::new(match self.mode.json {
            true => Output::Collect(Mutex::default()),
            false => Output::Print,
        })
    }

    async fn run_script(
        &mut self,
        file: String,
        args: Vec<String>,
    ) -> Result<CommandOutput, String> {
        let scripting = self.scripting()?;
        let out = self.output();
        let value = scripting
            .run_file(file.clone().into(), args, self.fork(), out.clone())
            .await?;
        Ok(value_reply(
            value,
            json!({ "file": file, "output": out.collected() }),
        ))
    }

    async fn run_plugin(&mut self, name: &str, args: Vec<String>) -> Result<CommandOutput, String> {
        let scripting = self.scripting()?;
        let out = self.output();
        let run = scripting
            .run_command(name, args, self.fork(), out.clone())
            .ok_or_else(|| format!("no plugin command '{name}' (plugins reload?)"))?;
        let value = run.await?;
        Ok(value_reply(
            value,
            json!({ "command": name, "output": out.collected() }),
        ))
    }

    fn plugins(&mut self, reload: bool) -> Result<CommandOutput, String> {
        let scripting = self.scripting()?;
        let mut problems = Vec::new();
        if reload {
            problems = scripting.reload(&self.plugin_dir);
            self.remember_plugins();
        }
        let commands = scripting.commands();
        let mut text = match commands.is_empty() {
            true => format!("no plugin commands (from {})", self.plugin_dir.display()),
            false => commands
                .iter()
                .map(|c| format!("{:<24} {} ({})", c.usage, c.about, c.file.display()))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        for problem in &problems {
            text.push_str(&format!("\nskipped: {problem}"));
        }
        let list: Vec<Value> = commands
            .iter()
            .map(|c| json!({ "name": c.name, "usage": c.usage, "help": c.about, "file": c.file }))
            .collect();
        let skipped = &problems;
        Ok(CommandOutput::new(
            text,
            json!({ "commands": list, "skipped": skipped }),
        ))
    }

    fn known_plugins(&self) -> Vec<PluginCommand> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.plugins.clone()
    }

    /// Takes the commands of the loaded plugins for help and completion.
    pub fn remember_plugins(&self) {
        let commands = self
            .scripting
            .as_ref()
            .map(|s| s.commands())
            .unwrap_or_default();
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.plugins = commands;
    }

    async fn login(&mut self, user: Option<String>) -> Result<CommandOutput, String> {
        let user = match user {
            Some(user) => user,
            None if self.mode.interactive => {
                print!("User: ");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
                line.trim().to_string()
            }
            None => return Err("usage: login USER".into()),
        };
        let password = match &self.mode.password {
            Some(password) => password.clone(),
            None => read_password(
                &format!("Password for {user}: "),
                false,
                "TICKET_PASSWORD",
                false,
            )
            .map_err(|e| e.to_string())?,
        };
        let reply = self
            .client
            .login(&user, &password)
            .await
            .map_err(|e| e.to_string())?;
        let role = match pb::Role::try_from(reply.role) {
            Ok(pb::Role::Admin) => "admin",
            _ => "customer",
        };
        Ok(CommandOutput::new(
            format!("logged in as {user} ({role})"),
            json!({ "user": user, "role": role, "expires_at": reply.expires_at }),
        ))
    }

    /// Asks before a change that cannot be taken back; `--yes` answers for the person, and
    /// without a terminal nobody can, so it refuses.
    /// Whether to go on; declining is the person's choice, not an error.
    fn confirm(&self, question: &str) -> Result<bool, String> {
        self.consent(question)
    }

    /// Whether the person agrees to `question`: `--yes` does, or they answer y at the
    /// terminal. An error when there is nobody to ask.
    fn consent(&self, question: &str) -> Result<bool, String> {
        if self.mode.yes {
            return Ok(true);
        }
        if !self.mode.interactive || !std::io::stdin().is_terminal() {
            return Err(format!(
                "{question} Refused: confirm with --yes when not at a terminal"
            ));
        }
        print!("{question} [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| e.to_string())?;
        Ok(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }

    fn remember_events(&self, events: &[pb::Event]) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.events = events.iter().map(|e| e.name.clone()).collect();
    }

    /// Remembers the seats of `event` if it is the event in use: completion offers those
    /// only, so a look at another event's map must not replace them.
    fn remember_seats(&self, event: &str, reply: &pb::GetSeatsReply) {
        if event != self.event {
            return;
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.learn_seats(reply);
    }

    /// Fetches what completion offers again: the seats of the event in use, and the events
    /// when `events`. Only a person at a terminal completes, so only then is it worth the
    /// calls; one that fails or is slow leaves the candidates as they were, since the
    /// command itself is done.
    async fn refresh_known(&self, events: bool) {
        if !self.mode.interactive {
            return;
        }
        if events {
            let listed = tokio::time::timeout(REFRESH_WAIT, self.client.list_events()).await;
            if let Ok(Ok(reply)) = listed {
                self.remember_events(&reply.events);
            }
        }
        let seats = self
            .client
            .get_seats(&self.event, Consistency::Linearizable);
        if let Ok(Ok(reply)) = tokio::time::timeout(REFRESH_WAIT, seats).await {
            self.remember_seats(&self.event, &reply);
        }
    }

    /// `history`: the lines of the interactive shell's history file, oldest first.
    fn history(&self) -> Result<CommandOutput, String> {
        let file = self
            .history_file
            .as_ref()
            .ok_or("history is kept by the shell, not by a script")?;
        let lines = read_history(file)?;
        let width = lines.len().to_string().len();
        let text = lines
            .iter()
            .enumerate()
            .map(|(n, line)| format!("{:>width$}  {line}", n + 1))
            .collect::<Vec<_>>()
            .join("\n");
        let text = match lines.is_empty() {
            true => format!("no history yet (in {})", file.display()),
            false => text,
        };
        Ok(CommandOutput::new(
            text,
            json!({ "history": lines, "file": file.display().to_string() }),
        ))
    }
}

/// The entries of a reedline history file: one a line, a newline within an entry written as
/// `<\n>` (reedline's `FileBackedHistory` format). No file yet is no history.
fn read_history(file: &std::path::Path) -> Result<Vec<String>, String> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("cannot read the history {}: {e}", file.display())),
    };
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.replace("<\\n>", "\n"))
        .collect())
}

fn help(topic: Option<&str>, plugins: &[PluginCommand]) -> Result<CommandOutput, String> {
    let builtin = COMMANDS.iter().map(|c| (c.name, c.usage, c.about));
    let added = plugins
        .iter()
        .map(|c| (c.name.as_str(), c.usage.as_str(), c.about.as_str()));
    match topic {
        None => {
            let mut text = String::from("commands:\n");
            for (_, usage, about) in builtin.clone() {
                text.push_str(&format!("  {usage:<58} {about}\n"));
            }
            if !plugins.is_empty() {
                text.push_str("from plugins:\n");
                for (_, usage, about) in added.clone() {
                    text.push_str(&format!("  {usage:<58} {about}\n"));
                }
            }
            text.push_str("Tab completes commands, events and seats; Ctrl-R searches history.");
            let names: Vec<&str> = builtin.chain(added).map(|(name, ..)| name).collect();
            Ok(CommandOutput::new(text, json!({ "commands": names })))
        }
        Some(name) => {
            let wanted = command::find(name).map_or(name.to_ascii_lowercase(), |c| c.name.into());
            let (name, usage, about) = builtin
                .chain(added)
                .find(|(n, ..)| *n == wanted)
                .ok_or_else(|| format!("no command '{name}' (help lists them)"))?;
            Ok(CommandOutput::new(
                format!("{usage}\n  {about}"),
                json!({ "command": name, "usage": usage, "about": about }),
            ))
        }
    }
}

/// A script's or plugin's value as a reply: a string printed as it is, nothing as nothing,
/// and anything else as JSON; `json` gets it as "result".
fn value_reply(result: Value, mut json: Value) -> CommandOutput {
    let text = match &result {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    json["result"] = result;
    CommandOutput::new(text, json)
}

impl Session {
    /// `seats --watch`: prints the map, then every change as the cluster applies it (one
    /// JSON object a change with `--json`), from the `WatchSeats` stream of whichever node
    /// answers. Runs until Ctrl-C drops it, or until `updates` changes were shown.
    async fn watch_seats(
        &mut self,
        event: Option<String>,
        updates: Option<u32>,
    ) -> Result<CommandOutput, String> {
        let event = event.unwrap_or_else(|| self.event.clone());
        let map = self
            .client
            .get_seats(&event, Consistency::Linearizable)
            .await
            .map_err(|e| e.to_string())?;
        if self.mode.json {
            println!("{}", render::seats_json(&map));
        } else {
            println!("{}", render::seat_map(&map, self.mode.colour));
            println!("watching {event}: changes show as they are applied (Ctrl-C stops)");
        }
        let mut watch = self.client.watch_seats(&event, map.applied_index);
        let mut shown = 0u32;
        while updates.is_none_or(|max| shown < max) {
            let update = watch.next().await.map_err(|e| e.to_string())?;
            // The first reply only says the watch is live when nothing changed since the map.
            if update.seats.is_empty() {
                continue;
            }
            shown += 1;
            if self.mode.json {
                println!("{}", render::watch_json(&update));
            } else {
                println!("{}", render::watch_line(&update, self.mode.colour));
            }
        }
        Ok(CommandOutput::new(
            format!("stopped watching {event} after {shown} changes"),
            json!({ "event": event, "watched": shown, "applied_index": watch.index() }),
        ))
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Rules => "the rules engine",
        Backend::OpenAi => "openai",
    }
}

/// `event create`'s request without categories.
fn create_request(
    name: String,
    rows: u32,
    seats_per_row: u32,
    max_seats_per_user: u32,
) -> pb::CreateEventRequest {
    pb::CreateEventRequest {
        name,
        rows,
        seats_per_row,
        max_seats_per_user,
        ..Default::default()
    }
}

/// `event create`'s categories: as given with `--category`, or read from a `--categories`
/// file (whose currency counts unless `--currency` names one).
fn categories_from(
    given: Vec<command::CategoryArg>,
    file: Option<&str>,
    currency: Option<String>,
) -> Result<(Vec<command::CategoryArg>, Option<String>), String> {
    match file {
        Some(path) => {
            let (categories, named) =
                categories_file::load(std::path::Path::new(path)).map_err(|e| e.to_string())?;
            Ok((categories, currency.or(named)))
        }
        None => Ok((given, currency)),
    }
}

/// `event create`'s categories, in EUR unless a currency is named.
fn with_categories(
    mut request: pb::CreateEventRequest,
    categories: Vec<command::CategoryArg>,
    currency: Option<String>,
) -> pb::CreateEventRequest {
    request.currency = match (currency, categories.is_empty()) {
        (Some(code), _) => code,
        (None, false) => "EUR".to_string(),
        (None, true) => String::new(),
    };
    request.categories = categories
        .into_iter()
        .map(|c| pb::Category {
            name: c.name,
            price_minor: c.price_minor,
            covers: c.covers,
            max_seats_per_user: c.max_per_user,
        })
        .collect();
    request
}

/// The person said no: nothing changed, and that is not a failure.
fn declined() -> CommandOutput {
    CommandOutput::new("not cancelled", json!({ "cancelled": false }))
}

fn cancelled(reply: pb::CancelReply) -> CommandOutput {
    CommandOutput::new(
        format!("cancelled {} in {}", reply.seats.join(", "), reply.event),
        json!({ "event": reply.event, "seats": reply.seats, "applied_index": reply.applied_index }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat_map(seats: &[(&str, pb::SeatStatus, &str)]) -> pb::GetSeatsReply {
        pb::GetSeatsReply {
            event: None,
            seats: seats
                .iter()
                .map(|(id, status, booking)| pb::Seat {
                    id: id.to_string(),
                    row: id.get(..1).unwrap_or_default().to_string(),
                    status: *status as i32,
                    holder: String::new(),
                    booking_id: booking.to_string(),
                    ..Default::default()
                })
                .collect(),
            applied_index: 1,
        }
    }

    /// `seats OTHER` shows another event: completion keeps offering the event in use.
    #[test]
    fn another_events_map_leaves_the_candidates_of_the_event_in_use() {
        let session = Session::new(Client::new(&[]), Mode::default());
        use pb::SeatStatus::{Free, Mine, Taken};
        let demo = seat_map(&[("S1", Free, ""), ("S2", Mine, "bk-1"), ("S3", Taken, "")]);
        session.remember_seats("demo", &demo);
        session.remember_seats("gala", &seat_map(&[("A1", Free, ""), ("A2", Mine, "bk-7")]));
        let known = session.known.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(known.seats, ["S1", "S2", "S3"]);
        assert_eq!(known.free, ["S1"]);
        assert_eq!(known.mine, ["S2"]);
        assert_eq!(known.bookings, ["bk-1"]);
    }

    #[test]
    fn history_entries_are_read_as_reedline_writes_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("history");
        assert_eq!(read_history(&file), Ok(Vec::new()), "no file yet");
        std::fs::write(&file, b"login user1\n\nrun a.rhai<\\n>x\nbad \xff byte\n").expect("write");
        assert_eq!(
            read_history(&file),
            Ok(vec![
                "login user1".to_string(),
                "run a.rhai\nx".to_string(),
                "bad \u{fffd} byte".to_string()
            ])
        );
    }
}
