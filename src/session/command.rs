//! The booking commands: one typed enum, parsed from a line through one table.
//!
//! [`COMMANDS`] is the one list of them: each entry gives a command's name and aliases, its
//! usage and help, how its words parse, what completion offers for its arguments and, for a
//! command scripts call by a function of its own, that function's name. Help, parsing,
//! completion, highlighting, "did you mean" and the scripts' generated functions all read it.
//!
//! Adding a command: a variant of [`Cmd`], an entry in [`COMMANDS`] with its parse function,
//! and an arm in `Session::execute` that calls the method doing it.

use crate::config::Backend;

/// A parsed shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Help(Option<String>),
    Login(Option<String>),
    Logout,
    Whoami,
    Events,
    Use(String),
    Seats(Option<String>),
    /// `seats --watch [EVENT] [--updates N]`: the map, then each change as it is applied,
    /// until Ctrl-C (or N changes).
    WatchSeats {
        event: Option<String>,
        updates: Option<u32>,
    },
    Reserve(Vec<String>),
    CancelSeats(Vec<String>),
    CancelBooking(String),
    Bookings,
    Status,
    /// `ask [--rules|--openai] QUESTION`
    Ask {
        question: String,
        backend: Option<Backend>,
    },
    /// `assistant use rules|openai`
    AssistantUse(Backend),
    /// `assistant status`
    AssistantStatus,
    History,
    Quit,
    /// `event info NAME`: its size, limit, free and taken seats, and who may see holders.
    EventInfo(String),
    EventCreate {
        name: String,
        rows: u32,
        seats_per_row: u32,
        max_per_user: u32,
        /// `--category NAME=PRICE@COVER[,COVER...][:MAX]`, best first.
        categories: Vec<CategoryArg>,
        /// `--categories FILE`: the categories of a big venue, in TOML (see `categories_file`).
        categories_file: Option<String>,
        /// `--currency EUR` (EUR when categories are given without one).
        currency: Option<String>,
    },
    UserAdd {
        name: String,
        admin: bool,
        /// `--door`: door staff, who check tickets in.
        door: bool,
    },
    /// `hold SEAT...` or `hold --best N [--category C] [--max-price P] [--split]`, with
    /// `--for SECS`.
    Hold(HoldArgs),
    Holds,
    Confirm {
        hold: String,
        payment_ref: Option<String>,
    },
    Extend {
        hold: String,
        duration_secs: Option<u64>,
    },
    Release(String),
    Tickets,
    CheckIn(String),
    /// `run FILE.rhai [ARGS]`
    Run {
        file: String,
        args: Vec<String>,
    },
    /// `plugins` lists them; `plugins reload` loads `plugins/*.rhai` again.
    Plugins {
        reload: bool,
    },
    /// A command a plugin registered.
    Plugin {
        name: String,
        args: Vec<String>,
    },
}

impl Cmd {
    /// Whether running it calls the cluster (`help` or `quit` do not).
    pub fn needs_cluster(&self) -> bool {
        !matches!(
            self,
            Cmd::Help(_)
                | Cmd::Quit
                | Cmd::History
                | Cmd::Logout
                | Cmd::Whoami
                | Cmd::AssistantUse(_)
                | Cmd::AssistantStatus
                | Cmd::Plugins { .. }
        )
    }
}

/// What `hold` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldArgs {
    pub seats: Vec<String>,
    pub best: Option<u32>,
    pub category: Option<String>,
    pub max_price_minor: Option<u64>,
    pub split: bool,
    pub duration_secs: Option<u64>,
}

/// One `--category NAME=PRICE@COVER[,COVER...][:MAX]` of `event create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryArg {
    pub name: String,
    pub price_minor: u64,
    pub covers: Vec<String>,
    /// Seats of it one person may have; 0: only the event's limit.
    pub max_per_user: u32,
}

/// What completion offers for a command's next word.
#[derive(Debug, Clone, Copy)]
pub enum Complete {
    Nothing,
    /// The cluster's events.
    Events,
    /// The free seats of the event in use.
    FreeSeats,
    /// My seats in the event in use, or one of my bookings.
    MySeatsOrBookings,
    /// My holds in the event in use.
    MyHolds,
    /// The commands (for `help`).
    Commands,
    /// Script files.
    Paths,
    /// These words.
    Words(&'static [&'static str]),
    /// A subcommand, then what it takes.
    Subcommands(&'static [(&'static str, Complete)]),
}

/// One command of the table.
pub struct Spec {
    pub name: &'static str,
    /// Other words for it (the prototype's `get`, `book`).
    pub aliases: &'static [&'static str],
    pub usage: &'static str,
    pub about: &'static str,
    /// Parses the words after the command's name.
    pub parse: fn(&[String]) -> Result<Cmd, String>,
    pub complete: Complete,
    /// The rhai functions generated for it: each stands for one command line.
    pub script: &'static [ScriptFn],
    /// For a command that only reads, the assistant's tool for it, if the model may call it.
    /// (A command that changes something is proposed by the assistant and confirmed by the
    /// person: those tools are the assistant's own.)
    pub tool: Option<Tool>,
}

/// A rhai function that stands for a command line: `event_info(NAME)` is `event info NAME`.
pub struct ScriptFn {
    pub name: &'static str,
    /// The command line; each `{}` is one argument of the function, in order. A string or a
    /// number is one word however it is spelled (spaces and all), an array as many words.
    pub line: &'static str,
    /// What of the command's reply the function returns.
    pub returns: Returns,
}

impl ScriptFn {
    /// How many arguments it takes.
    pub fn arity(&self) -> usize {
        self.line.split_whitespace().filter(|w| *w == "{}").count()
    }

    /// The command line with `args` in its slots, as words.
    pub fn words(&self, args: Vec<Vec<String>>) -> Vec<String> {
        let mut args = args.into_iter();
        self.line
            .split_whitespace()
            .flat_map(|w| match w {
                "{}" => args.next().unwrap_or_default(),
                word => vec![word.to_string()],
            })
            .collect()
    }
}

/// What a script function returns of its command's JSON reply.
#[derive(Debug, Clone, Copy)]
pub enum Returns {
    /// The whole reply, as `--json` prints it.
    Reply,
    /// One field of it (`events()` is the array of events).
    Field(&'static str),
    /// One field, with the reply's `applied_index` added (`reserve` returns the booking).
    FieldWithIndex(&'static str),
    /// The reply's text, as the shell prints it (`ask`).
    Text,
}

/// An assistant tool that runs a command which only reads: the model names the tool and gives
/// its arguments as JSON; `line` is the command line, with `{key}` for each argument.
pub struct Tool {
    pub name: &'static str,
    pub description: &'static str,
    /// The command line; `{event}` is the event in use when the model leaves it out.
    pub line: &'static str,
    /// Its arguments, each a string the model may give.
    pub args: &'static [ToolArg],
}

/// One argument of a [`Tool`].
pub struct ToolArg {
    pub key: &'static str,
    pub description: &'static str,
    /// Whether the model must give it (`event` need not: it is the event in use).
    pub required: bool,
}

impl Tool {
    /// The command line for the model's `args`, or why they do not fit the tool.
    pub fn words(
        &self,
        args: &serde_json::Map<String, serde_json::Value>,
        event_in_use: &str,
    ) -> Result<Vec<String>, String> {
        if let Some(key) = args
            .keys()
            .find(|k| !self.args.iter().any(|a| a.key == k.as_str()))
        {
            return Err(format!("{} takes no argument '{key}'", self.name));
        }
        self.line
            .split_whitespace()
            .map(|word| {
                let Some(key) = word.strip_prefix('{').and_then(|w| w.strip_suffix('}')) else {
                    return Ok(word.to_string());
                };
                match args.get(key) {
                    Some(serde_json::Value::String(value)) => Ok(value.clone()),
                    Some(other) => Err(format!("'{key}' must be a string, not {other}")),
                    None if key == "event" => Ok(event_in_use.to_string()),
                    None => Err(format!("{} needs '{key}'", self.name)),
                }
            })
            .collect()
    }

    /// Its parameters as a JSON schema, for a chat-completions function tool.
    pub fn parameters(&self) -> serde_json::Value {
        let properties: serde_json::Map<String, serde_json::Value> = self
            .args
            .iter()
            .map(|a| {
                let schema = serde_json::json!({ "type": "string", "description": a.description });
                (a.key.to_string(), schema)
            })
            .collect();
        let required: Vec<&str> = self
            .args
            .iter()
            .filter(|a| a.required)
            .map(|a| a.key)
            .collect();
        serde_json::json!({ "type": "object", "properties": properties, "required": required,
                            "additionalProperties": false })
    }
}

impl Spec {
    /// Whether `word` (lower case) is this command's name or one of its aliases.
    pub fn is_called(&self, word: &str) -> bool {
        self.name == word || self.aliases.contains(&word)
    }
}

/// A shorthand for the table: a command with no alias, script function or tool.
const fn spec(
    name: &'static str,
    usage: &'static str,
    about: &'static str,
    parse: fn(&[String]) -> Result<Cmd, String>,
    complete: Complete,
) -> Spec {
    Spec {
        name,
        aliases: &[],
        usage,
        about,
        parse,
        complete,
        script: &[],
        tool: None,
    }
}

const fn script_fn(name: &'static str, line: &'static str, returns: Returns) -> ScriptFn {
    ScriptFn {
        name,
        line,
        returns,
    }
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[Spec] = &[
    Spec {
        aliases: &["?"],
        ..spec("help", "help [COMMAND]", "list the commands, or explain one", parse_help, Complete::Commands)
    },
    spec("login", "login [USER]", "log in (the password is never echoed); the token works on every node", parse_login, Complete::Nothing),
    Spec {
        script: &[script_fn("logout", "logout", Returns::Reply)],
        ..spec("logout", "logout", "forget the token", parse_logout, Complete::Nothing)
    },
    Spec {
        script: &[script_fn("whoami", "whoami", Returns::Reply)],
        ..spec("whoami", "whoami", "who is logged in, and the event in use", parse_whoami, Complete::Nothing)
    },
    Spec {
        script: &[script_fn("events", "events", Returns::Field("events"))],
        ..spec("events", "events", "every event with its free and taken seats", parse_events, Complete::Nothing)
    },
    Spec {
        script: &[script_fn("use_event", "use {}", Returns::Field("event"))],
        ..spec("use", "use EVENT", "make EVENT the one seats, reserve and cancel act on", parse_use, Complete::Events)
    },
    Spec {
        aliases: &["get"],
        script: &[script_fn("seats", "seats", Returns::Reply), script_fn("seats", "seats {}", Returns::Reply)],
        ..spec(
            "seats",
            "seats [EVENT] [--watch [--updates N]]",
            "the seat map by row: free, mine, taken (alias: get, as the prototype called it); --watch follows changes live until Ctrl-C",
            parse_seats,
            Complete::Events,
        )
    },
    Spec {
        aliases: &["book"],
        script: &[script_fn("reserve", "reserve {}", Returns::FieldWithIndex("booking"))],
        ..spec("reserve", "reserve SEAT...", "reserve every listed seat, or none of them", parse_reserve, Complete::FreeSeats)
    },
    Spec {
        script: &[script_fn("cancel", "cancel {}", Returns::Reply)],
        ..spec("cancel", "cancel SEAT...|BOOKING", "cancel seats, or a whole booking (bk-N); asks first", parse_cancel, Complete::MySeatsOrBookings)
    },
    Spec {
        script: &[
            script_fn("hold", "hold {}", Returns::FieldWithIndex("hold")),
            script_fn("hold_best", "hold --best {}", Returns::FieldWithIndex("hold")),
            script_fn("hold_best", "hold --best {} --category {}", Returns::FieldWithIndex("hold")),
        ],
        ..spec(
            "hold",
            "hold SEAT... | hold --best N [--category C] [--max-price P] [--split] [--for SECS]",
            "hold seats for checkout (the best N together, by default); they come back by themselves when the hold runs out",
            parse_hold,
            Complete::FreeSeats,
        )
    },
    Spec {
        script: &[script_fn("holds", "holds", Returns::Field("holds"))],
        ..spec("holds", "holds", "your live holds and the time each has left", parse_holds, Complete::Nothing)
    },
    Spec {
        script: &[
            script_fn("confirm", "confirm {}", Returns::FieldWithIndex("booking")),
            script_fn("confirm", "confirm {} --payment {}", Returns::FieldWithIndex("booking")),
        ],
        ..spec("confirm", "confirm HOLD [--payment REF]", "buy the seats of a hold (hd-N): it becomes booking bk-N", parse_confirm, Complete::MyHolds)
    },
    Spec {
        script: &[
            script_fn("extend", "extend {}", Returns::FieldWithIndex("hold")),
            script_fn("extend", "extend {} --for {}", Returns::FieldWithIndex("hold")),
        ],
        ..spec("extend", "extend HOLD [--for SECS]", "give a hold more time, up to its maximum", parse_extend, Complete::MyHolds)
    },
    Spec {
        script: &[script_fn("release", "release {}", Returns::Reply)],
        ..spec("release", "release HOLD", "give a hold's seats back now", parse_release, Complete::MyHolds)
    },
    Spec {
        script: &[script_fn("tickets", "tickets", Returns::Field("tickets"))],
        ..spec("tickets", "tickets", "your tickets, each with its signed code and a QR code", parse_tickets, Complete::Nothing)
    },
    Spec {
        aliases: &["checkin"],
        script: &[script_fn("check_in", "check-in {}", Returns::Reply)],
        ..spec("check-in", "check-in CODE", "door staff or admin: mark a ticket used (once; a second scan is refused)", parse_check_in, Complete::Nothing)
    },
    Spec {
        script: &[script_fn("bookings", "bookings", Returns::Field("bookings"))],
        ..spec("bookings", "bookings", "your bookings", parse_bookings, Complete::Nothing)
    },
    Spec {
        script: &[script_fn("status", "status", Returns::Reply)],
        ..spec("status", "status", "the nodes, the leader, the term and each node's lag", parse_status, Complete::Nothing)
    },
    Spec {
        script: &[script_fn("ask", "ask {}", Returns::Text)],
        ..spec("ask", "ask [--rules|--openai] QUESTION", "ask the assistant in plain language", parse_ask, Complete::Words(&["--rules", "--openai"]))
    },
    spec(
        "assistant",
        "assistant use rules|openai | assistant status",
        "switch the assistant's backend, or show it and its settings",
        parse_assistant,
        Complete::Subcommands(&[("use", Complete::Words(&["rules", "openai"])), ("status", Complete::Nothing)]),
    ),
    spec("history", "history", "the commands you typed (Ctrl-R searches them)", parse_history, Complete::Nothing),
    spec("run", "run FILE.rhai [ARGS]", "run a rhai scenario (Ctrl-C stops it); ARGS reach it as the array ARGS", parse_run, Complete::Paths),
    spec("plugins", "plugins [reload]", "the loaded plugins and their commands; reload reads plugins/*.rhai again", parse_plugins, Complete::Words(&["reload"])),
    Spec {
        script: &[
            script_fn("event_info", "event info {}", Returns::Reply),
            script_fn("create_event", "event create {} --rows {} --seats-per-row {}", Returns::Field("event")),
            script_fn(
                "create_event",
                "event create {} --rows {} --seats-per-row {} --max-per-user {}",
                Returns::Field("event"),
            ),
            script_fn(
                "create_event",
                "event create {} --rows {} --seats-per-row {} --max-per-user {} --category {} --category {}",
                Returns::Field("event"),
            ),
        ],
        tool: Some(Tool {
            name: "event_info",
            description: "One event: rows, seats per row, the limit per person, free and taken seats, and who may see who reserved a seat.",
            line: "event info {event}",
            args: &[ToolArg { key: "event", description: "an event name; the one in use if left out", required: false }],
        }),
        ..spec(
            "event",
            "event info NAME | event create NAME --rows N --seats-per-row M [--max-per-user K] [--category NAME=PRICE@ROWS,...[:MAX] | --categories FILE.toml] [--currency EUR]",
            "an event's size, limit, free and taken seats, and who sees holders; admin: create an event",
            parse_event,
            Complete::Subcommands(&[("info", Complete::Events), ("create", Complete::Nothing)]),
        )
    },
    spec("user", "user add NAME [--admin|--door]", "add a user (a customer needs no login; an admin or door staff needs an admin, except the first admin)", parse_user, Complete::Words(&["add"])),
    Spec {
        aliases: &["exit"],
        ..spec("quit", "quit", "leave the shell (also exit, Ctrl-D)", parse_quit, Complete::Nothing)
    },
];

/// The entry for `word` (a name or an alias, any case).
pub fn find(word: &str) -> Option<&'static Spec> {
    let word = word.to_ascii_lowercase();
    COMMANDS.iter().find(|c| c.is_called(&word))
}

/// Splits a line into words; double quotes group words, a backslash escapes the next character.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                word.extend(chars.next());
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `seats [EVENT] [--watch [--updates N]]`, flags in any order.
fn seats(args: &[String]) -> Result<Cmd, String> {
    let mut event = None;
    let mut watch = false;
    let mut updates = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--watch" | "-w" => watch = true,
            "--updates" => updates = Some(number("--updates", args.next())?),
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            name if event.is_none() => event = Some(name.to_string()),
            _ => return Err("one event at most".into()),
        }
    }
    match (watch, updates) {
        (false, None) => Ok(Cmd::Seats(event)),
        (false, Some(_)) => Err("--updates goes with --watch".into()),
        (true, updates) => Ok(Cmd::WatchSeats { event, updates }),
    }
}

fn number(flag: &str, value: Option<&String>) -> Result<u32, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a number"))?;
    value
        .parse()
        .map_err(|_| format!("{flag} takes a whole number, not '{value}'"))
}

fn usage(name: &str) -> String {
    let usage = find(name).map_or(name, |c| c.usage);
    format!("usage: {usage}")
}

/// The words as they are, or the command's usage when there are any.
fn none(name: &str, args: &[String], cmd: Cmd) -> Result<Cmd, String> {
    match args {
        [] => Ok(cmd),
        _ => Err(usage(name)),
    }
}

fn parse_help(args: &[String]) -> Result<Cmd, String> {
    Ok(Cmd::Help(args.first().cloned()))
}

fn parse_login(args: &[String]) -> Result<Cmd, String> {
    match args {
        [] => Ok(Cmd::Login(None)),
        [user] => Ok(Cmd::Login(Some(user.clone()))),
        _ => Err(usage("login")),
    }
}

fn parse_logout(args: &[String]) -> Result<Cmd, String> {
    none("logout", args, Cmd::Logout)
}

fn parse_whoami(args: &[String]) -> Result<Cmd, String> {
    none("whoami", args, Cmd::Whoami)
}

fn parse_events(args: &[String]) -> Result<Cmd, String> {
    none("events", args, Cmd::Events)
}

fn parse_bookings(args: &[String]) -> Result<Cmd, String> {
    none("bookings", args, Cmd::Bookings)
}

fn parse_status(args: &[String]) -> Result<Cmd, String> {
    none("status", args, Cmd::Status)
}

fn parse_history(args: &[String]) -> Result<Cmd, String> {
    none("history", args, Cmd::History)
}

fn parse_quit(args: &[String]) -> Result<Cmd, String> {
    none("quit", args, Cmd::Quit)
}

fn parse_use(args: &[String]) -> Result<Cmd, String> {
    match args {
        [event] => Ok(Cmd::Use(event.clone())),
        _ => Err(usage("use")),
    }
}

fn parse_seats(args: &[String]) -> Result<Cmd, String> {
    seats(args).map_err(|_| usage("seats"))
}

fn parse_reserve(args: &[String]) -> Result<Cmd, String> {
    match args {
        [] => Err(usage("reserve")),
        seats => Ok(Cmd::Reserve(seats.to_vec())),
    }
}

fn parse_cancel(args: &[String]) -> Result<Cmd, String> {
    match args {
        [] => Err(usage("cancel")),
        [one] if one.to_ascii_lowercase().starts_with("bk-") => {
            Ok(Cmd::CancelBooking(one.to_ascii_lowercase()))
        }
        seats => Ok(Cmd::CancelSeats(seats.to_vec())),
    }
}

fn parse_ask(args: &[String]) -> Result<Cmd, String> {
    let (backend, question) = match args {
        [flag, rest @ ..] if flag == "--openai" => (Some(Backend::OpenAi), rest),
        [flag, rest @ ..] if flag == "--rules" => (Some(Backend::Rules), rest),
        words => (None, words),
    };
    match question {
        [] => Err(usage("ask")),
        words => Ok(Cmd::Ask {
            question: words.join(" "),
            backend,
        }),
    }
}

fn parse_assistant(args: &[String]) -> Result<Cmd, String> {
    match args {
        [sub] if sub == "status" => Ok(Cmd::AssistantStatus),
        [sub, b] if sub == "use" && b == "rules" => Ok(Cmd::AssistantUse(Backend::Rules)),
        [sub, b] if sub == "use" && b == "openai" => Ok(Cmd::AssistantUse(Backend::OpenAi)),
        _ => Err(usage("assistant")),
    }
}

fn parse_run(args: &[String]) -> Result<Cmd, String> {
    match args {
        [file, rest @ ..] => Ok(Cmd::Run {
            file: file.clone(),
            args: rest.to_vec(),
        }),
        [] => Err(usage("run")),
    }
}

fn parse_plugins(args: &[String]) -> Result<Cmd, String> {
    match args {
        [] => Ok(Cmd::Plugins { reload: false }),
        [sub] if sub == "reload" => Ok(Cmd::Plugins { reload: true }),
        _ => Err(usage("plugins")),
    }
}

fn parse_event(args: &[String]) -> Result<Cmd, String> {
    match args {
        [sub, name] if sub == "info" => Ok(Cmd::EventInfo(name.clone())),
        [sub, name, rest @ ..] if sub == "create" => event_create(name, rest),
        _ => Err(usage("event")),
    }
}

/// `event create NAME --rows N --seats-per-row M [--max-per-user K] [--category ...]...
/// [--categories FILE] [--currency C]`, flags in any order.
fn event_create(name: &str, flags: &[String]) -> Result<Cmd, String> {
    let (mut rows, mut seats_per_row, mut max_per_user) = (None, None, 0);
    let (mut categories, mut currency, mut categories_file) = (Vec::new(), None, None);
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--rows" => rows = Some(number(flag, flags.next())?),
            "--seats-per-row" => seats_per_row = Some(number(flag, flags.next())?),
            "--max-per-user" => max_per_user = number(flag, flags.next())?,
            "--category" => {
                let value = flags.next().ok_or("--category needs NAME=PRICE@ROWS")?;
                categories.push(category(value)?);
            }
            "--categories" => {
                let value = flags.next().ok_or("--categories needs a TOML file")?;
                categories_file = Some(value.clone());
            }
            "--currency" => {
                let value = flags.next().ok_or("--currency needs a code like EUR")?;
                currency = Some(value.to_ascii_uppercase());
            }
            other => return Err(format!("unknown option {other}; {}", usage("event"))),
        }
    }
    if categories_file.is_some() && !categories.is_empty() {
        return Err(
            "give the categories with --category or in a --categories file, not both".into(),
        );
    }
    Ok(Cmd::EventCreate {
        name: name.to_string(),
        rows: rows.ok_or_else(|| usage("event"))?,
        seats_per_row: seats_per_row.ok_or_else(|| usage("event"))?,
        max_per_user,
        categories,
        categories_file,
        currency,
    })
}

/// `NAME=PRICE@COVER[,COVER...][:MAX]`: `front=80@A-B`, `rear=45.50@C,D1-D10`, `vip=120@A:2`
/// (at most 2 vip seats a person).
fn category(value: &str) -> Result<CategoryArg, String> {
    let wrong = || {
        format!("'{value}' is not a category: write NAME=PRICE@ROWS[:MAX], like front=80.00@A-B,C1-C10 or vip=120@A:2")
    };
    let (name, rest) = value.split_once('=').ok_or_else(wrong)?;
    let (price, covers) = rest.split_once('@').ok_or_else(wrong)?;
    let (covers, max_per_user) = match covers.split_once(':') {
        Some((covers, max)) => (covers, max.parse::<u32>().map_err(|_| wrong())?),
        None => (covers, 0),
    };
    let covers: Vec<String> = covers
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if name.is_empty() || covers.is_empty() {
        return Err(wrong());
    }
    Ok(CategoryArg {
        name: name.to_string(),
        price_minor: price_minor(price).ok_or_else(wrong)?,
        covers,
        max_per_user,
    })
}

/// A price in major units with at most two decimals (`80`, `45.5`, `12.99`) in minor units.
pub fn price_minor(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cents: u64 = format!("{fraction:0<2}").parse().ok()?;
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

fn parse_user(args: &[String]) -> Result<Cmd, String> {
    let (admin, door) = match args {
        [sub, _] if sub == "add" => (false, false),
        [sub, _, flag] if sub == "add" && flag == "--admin" => (true, false),
        [sub, _, flag] if sub == "add" && flag == "--door" => (false, true),
        _ => return Err(usage("user")),
    };
    Ok(Cmd::UserAdd {
        name: args[1].clone(),
        admin,
        door,
    })
}

/// `hold SEAT...` or `hold --best N [--category C] [--max-price P] [--split]`, each with an
/// optional `--for SECS`; flags in any order.
fn parse_hold(args: &[String]) -> Result<Cmd, String> {
    let mut hold = HoldArgs::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--best" => hold.best = Some(number(word, words.next())?),
            "--category" => {
                hold.category = Some(words.next().ok_or("--category needs a name")?.clone())
            }
            "--max-price" => {
                let value = words.next().ok_or("--max-price needs a price")?;
                let price = price_minor(value).ok_or_else(|| {
                    format!("--max-price takes a price like 80 or 79.90, not '{value}'")
                })?;
                hold.max_price_minor = Some(price);
            }
            "--split" => hold.split = true,
            "--for" => hold.duration_secs = Some(u64::from(number(word, words.next())?)),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}; {}", usage("hold")))
            }
            seat => hold.seats.push(seat.to_string()),
        }
    }
    let best_only = hold.category.is_some() || hold.max_price_minor.is_some() || hold.split;
    match (hold.seats.is_empty(), hold.best) {
        (true, None) => Err(usage("hold")),
        (false, Some(_)) => Err("name seats or --best N, not both".into()),
        (false, None) if best_only => {
            Err("--category, --max-price and --split go with --best N".into())
        }
        _ => Ok(Cmd::Hold(hold)),
    }
}

fn parse_holds(args: &[String]) -> Result<Cmd, String> {
    none("holds", args, Cmd::Holds)
}

fn parse_tickets(args: &[String]) -> Result<Cmd, String> {
    none("tickets", args, Cmd::Tickets)
}

/// A hold id as typed: `hd-7` (any case).
fn hold_word(name: &str, word: &str) -> Result<String, String> {
    let mut word = word.to_ascii_lowercase();
    // A bare number is the hold of that number.
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        word = format!("hd-{word}");
    }
    if crate::domain::validate::parse_hold_id(&word).is_some() {
        Ok(word)
    } else {
        Err(format!(
            "'{word}' is not a hold id (they look like hd-12); {}",
            usage(name)
        ))
    }
}

fn parse_confirm(args: &[String]) -> Result<Cmd, String> {
    match args {
        [hold] => Ok(Cmd::Confirm {
            hold: hold_word("confirm", hold)?,
            payment_ref: None,
        }),
        [hold, flag, reference] if flag == "--payment" => Ok(Cmd::Confirm {
            hold: hold_word("confirm", hold)?,
            payment_ref: Some(reference.clone()),
        }),
        _ => Err(usage("confirm")),
    }
}

fn parse_extend(args: &[String]) -> Result<Cmd, String> {
    match args {
        [hold] => Ok(Cmd::Extend {
            hold: hold_word("extend", hold)?,
            duration_secs: None,
        }),
        [hold, flag, secs] if flag == "--for" => Ok(Cmd::Extend {
            hold: hold_word("extend", hold)?,
            duration_secs: Some(u64::from(number(flag, Some(secs))?)),
        }),
        _ => Err(usage("extend")),
    }
}

fn parse_release(args: &[String]) -> Result<Cmd, String> {
    match args {
        [hold] => Ok(Cmd::Release(hold_word("release", hold)?)),
        _ => Err(usage("release")),
    }
}

fn parse_check_in(args: &[String]) -> Result<Cmd, String> {
    match args {
        [code] => Ok(Cmd::CheckIn(code.clone())),
        _ => Err(usage("check-in")),
    }
}

/// Parses one line. `Ok(None)` for a blank line or a comment.
pub fn parse(line: &str) -> Result<Option<Cmd>, String> {
    parse_with(line, &|_| false)
}

/// Parses one line, taking a word that `is_plugin` knows as a plugin's command.
pub fn parse_with(line: &str, is_plugin: &dyn Fn(&str) -> bool) -> Result<Option<Cmd>, String> {
    let words = split(line.trim())?;
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    if name.starts_with('#') {
        return Ok(None);
    }
    if let Some(spec) = find(name) {
        return (spec.parse)(args).map(Some);
    }
    let name = name.to_ascii_lowercase();
    if is_plugin(&name) {
        return Ok(Some(Cmd::Plugin {
            name,
            args: args.to_vec(),
        }));
    }
    Err(match suggest(&name) {
        Some(known) => {
            format!("unknown command '{name}'; did you mean '{known}'? (help lists them)")
        }
        None => format!("unknown command '{name}' (help lists them)"),
    })
}

/// The command `word` was most likely meant to be: one it begins, or the nearest by edit
/// distance (Jaro-Winkler, as clap suggests) if near enough.
pub fn suggest(word: &str) -> Option<&'static str> {
    if let Some(c) = COMMANDS.iter().find(|c| c.name.starts_with(word)) {
        return Some(c.name);
    }
    COMMANDS
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c.name), c.name))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

/// Whether `word` names a built-in command or alias (for highlighting; plugins may not take
/// these names).
pub fn is_command(word: &str) -> bool {
    find(word).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script function and tool of the table stands for a line its command parses, and
    /// no two functions share a name and an arity (the later would hide the earlier).
    #[test]
    fn the_tables_script_functions_and_tools_are_lines_their_commands_parse() {
        let mut seen = std::collections::BTreeSet::new();
        for spec in COMMANDS {
            for function in spec.script {
                // A number fits every slot but a category's, which takes NAME=PRICE@ROWS.
                let line = function.line.split_whitespace().collect::<Vec<_>>();
                let args = line
                    .windows(2)
                    .filter(|pair| pair[1] == "{}")
                    .map(|pair| match pair[0] {
                        "--category" => vec!["c=7@A".to_string()],
                        _ => vec!["7".to_string()],
                    })
                    .collect();
                let line = function.words(args);
                assert_eq!(
                    find(&line[0]).map(|s| s.name),
                    Some(spec.name),
                    "{}",
                    function.line
                );
                assert!(
                    (spec.parse)(&line[1..]).is_ok(),
                    "{} does not parse",
                    function.line
                );
                assert!(
                    seen.insert((function.name, function.arity())),
                    "{} twice",
                    function.name
                );
                // `script::api` registers functions of up to six arguments.
                assert!(function.arity() <= 6, "{} takes too many", function.name);
            }
            if let Some(tool) = &spec.tool {
                let line = tool.words(&serde_json::Map::new(), "demo").expect("words");
                assert_eq!(
                    find(&line[0]).map(|s| s.name),
                    Some(spec.name),
                    "{}",
                    tool.line
                );
                assert!(
                    (spec.parse)(&line[1..]).is_ok(),
                    "{} does not parse",
                    tool.line
                );
            }
        }
        let event_info = find("event")
            .and_then(|s| s.tool.as_ref())
            .expect("event info's tool");
        let mut args = serde_json::Map::new();
        args.insert("event".into(), "gala".into());
        assert_eq!(
            event_info.words(&args, "demo"),
            Ok(vec!["event".into(), "info".into(), "gala".into()])
        );
        args.insert("seat".into(), "S1".into());
        assert!(
            event_info.words(&args, "demo").is_err(),
            "an argument it does not take"
        );
    }

    #[test]
    fn the_prototype_commands_parse() {
        assert_eq!(
            parse("login user1"),
            Ok(Some(Cmd::Login(Some("user1".into()))))
        );
        assert_eq!(parse("get"), Ok(Some(Cmd::Seats(None))));
        assert_eq!(
            parse("seats --watch gala --updates 3"),
            Ok(Some(Cmd::WatchSeats {
                event: Some("gala".into()),
                updates: Some(3)
            }))
        );
        assert_eq!(
            parse("get -w"),
            Ok(Some(Cmd::WatchSeats {
                event: None,
                updates: None
            }))
        );
        assert!(parse("seats --updates 3").is_err());
        assert!(parse("seats a b").is_err());
        assert!(parse("seats --watch --updates x").is_err());
        assert_eq!(
            parse("reserve S2"),
            Ok(Some(Cmd::Reserve(vec!["S2".into()])))
        );
        assert_eq!(
            parse("cancel S2"),
            Ok(Some(Cmd::CancelSeats(vec!["S2".into()])))
        );
        assert_eq!(
            parse("cancel BK-12"),
            Ok(Some(Cmd::CancelBooking("bk-12".into())))
        );
        assert_eq!(
            parse("ask \"Is seat S2 available?\""),
            Ok(Some(Cmd::Ask {
                question: "Is seat S2 available?".into(),
                backend: None
            }))
        );
        assert_eq!(parse("  # a comment"), Ok(None));
        assert_eq!(parse(""), Ok(None));
    }

    #[test]
    fn admin_commands_parse_their_options() {
        assert_eq!(
            parse("event create gala --rows 3 --seats-per-row 10"),
            Ok(Some(Cmd::EventCreate {
                name: "gala".into(),
                rows: 3,
                seats_per_row: 10,
                max_per_user: 0,
                categories: Vec::new(),
                categories_file: None,
                currency: None,
            }))
        );
        assert!(parse("event create gala --rows x --seats-per-row 10")
            .unwrap_err()
            .contains("whole number"));
        assert!(parse("event create gala --rows 3")
            .unwrap_err()
            .starts_with("usage"));
        assert_eq!(
            parse("user add ana --admin"),
            Ok(Some(Cmd::UserAdd {
                name: "ana".into(),
                admin: true,
                door: false,
            }))
        );
        assert_eq!(
            parse("event create gala --rows 3 --seats-per-row 10 --category front=80@A:2 --category rear=45.5@B-C --currency eur"),
            Ok(Some(Cmd::EventCreate {
                name: "gala".into(),
                rows: 3,
                seats_per_row: 10,
                max_per_user: 0,
                categories: vec![
                    CategoryArg { name: "front".into(), price_minor: 8000, covers: vec!["A".into()], max_per_user: 2 },
                    CategoryArg { name: "rear".into(), price_minor: 4550, covers: vec!["B-C".into()], max_per_user: 0 },
                ],
                categories_file: None,
                currency: Some("EUR".into()),
            }))
        );
        assert_eq!(
            parse("event create hall --categories venue.toml --rows 3 --seats-per-row 10"),
            Ok(Some(Cmd::EventCreate {
                name: "hall".into(),
                rows: 3,
                seats_per_row: 10,
                max_per_user: 0,
                categories: Vec::new(),
                categories_file: Some("venue.toml".into()),
                currency: None,
            }))
        );
        assert!(parse(
            "event create hall --rows 3 --seats-per-row 10 --categories v.toml --category a=1@A"
        )
        .unwrap_err()
        .contains("not both"));
        for bad in [
            "front",
            "front=80",
            "front=x@A",
            "=80@A",
            "front=80@",
            "front=1.234@A",
            "front=80@A:",
            "front=80@A:two",
            "front=80@:2",
        ] {
            let line = format!("event create gala --rows 3 --seats-per-row 10 --category {bad}");
            assert!(
                parse(&line).unwrap_err().contains("not a category"),
                "{bad}"
            );
        }
    }

    #[test]
    fn checkout_commands_parse_their_options() {
        assert_eq!(
            parse("hold --best 4 --category front --max-price 80 --for 120"),
            Ok(Some(Cmd::Hold(HoldArgs {
                best: Some(4),
                category: Some("front".into()),
                max_price_minor: Some(8000),
                duration_secs: Some(120),
                ..HoldArgs::default()
            })))
        );
        assert_eq!(
            parse("hold A1 a2"),
            Ok(Some(Cmd::Hold(HoldArgs {
                seats: vec!["A1".into(), "a2".into()],
                ..HoldArgs::default()
            })))
        );
        assert!(parse("hold").unwrap_err().starts_with("usage"));
        assert!(parse("hold A1 --best 2").unwrap_err().contains("not both"));
        assert!(parse("hold A1 --split")
            .unwrap_err()
            .contains("go with --best"));
        assert_eq!(
            parse("confirm HD-3 --payment pay_123"),
            Ok(Some(Cmd::Confirm {
                hold: "hd-3".into(),
                payment_ref: Some("pay_123".into())
            }))
        );
        assert!(parse("confirm x3").unwrap_err().contains("not a hold id"));
        assert_eq!(parse("release 3"), Ok(Some(Cmd::Release("hd-3".into()))));
        assert_eq!(
            parse("extend hd-3 --for 60"),
            Ok(Some(Cmd::Extend {
                hold: "hd-3".into(),
                duration_secs: Some(60)
            }))
        );
        assert_eq!(parse("release hd-9"), Ok(Some(Cmd::Release("hd-9".into()))));
        assert_eq!(
            parse("check-in tk1.x"),
            Ok(Some(Cmd::CheckIn("tk1.x".into())))
        );
        assert_eq!(
            parse("checkin tk1.x"),
            Ok(Some(Cmd::CheckIn("tk1.x".into())))
        );
        assert_eq!(
            parse("user add d --door"),
            Ok(Some(Cmd::UserAdd {
                name: "d".into(),
                admin: false,
                door: true
            }))
        );
        assert_eq!(price_minor("12.9"), Some(1290));
        assert_eq!(price_minor("0.05"), Some(5));
        assert_eq!(price_minor("1."), Some(100));
        assert_eq!(price_minor(".5"), None);
        assert_eq!(price_minor("99999999999999999999"), None);
    }

    #[test]
    fn mistakes_get_a_usage_or_a_suggestion() {
        assert!(parse("reserve").unwrap_err().contains("reserve SEAT"));
        assert!(parse("use").unwrap_err().contains("use EVENT"));
        assert!(parse("bookigns").unwrap_err().contains("unknown command"));
        assert!(parse("stat").unwrap_err().contains("did you mean 'status'"));
        assert!(parse("resrve S2")
            .unwrap_err()
            .contains("did you mean 'reserve'"));
        assert!(parse("bokings")
            .unwrap_err()
            .contains("did you mean 'bookings'"));
        assert!(!parse("zzz").unwrap_err().contains("did you mean"));
        assert!(parse("ask \"open").unwrap_err().contains("quote"));
    }
}
