//! The shell's commands: one typed enum, parsed from a line. The table `COMMANDS` is the one
//! list that help, completion and highlighting read.

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
    EventCreate {
        name: String,
        rows: u32,
        seats_per_row: u32,
        max_per_user: u32,
    },
    UserAdd {
        name: String,
        admin: bool,
    },
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

/// Name, usage and what it does, for `help` and completion.
pub struct CommandHelp {
    pub name: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
}

pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "help",
        usage: "help [COMMAND]",
        about: "list the commands, or explain one",
    },
    CommandHelp {
        name: "login",
        usage: "login [USER]",
        about: "log in (the password is never echoed); the token works on every node",
    },
    CommandHelp {
        name: "logout",
        usage: "logout",
        about: "forget the token",
    },
    CommandHelp {
        name: "whoami",
        usage: "whoami",
        about: "who is logged in, and the event in use",
    },
    CommandHelp {
        name: "events",
        usage: "events",
        about: "every event with its free and taken seats",
    },
    CommandHelp {
        name: "use",
        usage: "use EVENT",
        about: "make EVENT the one seats, reserve and cancel act on",
    },
    CommandHelp {
        name: "seats",
        usage: "seats [EVENT] [--watch [--updates N]]",
        about: "the seat map by row: free, mine, taken (alias: get); --watch follows changes live until Ctrl-C",
    },
    CommandHelp {
        name: "get",
        usage: "get [EVENT] [--watch [--updates N]]",
        about: "the same as seats, as the prototype called it",
    },
    CommandHelp {
        name: "reserve",
        usage: "reserve SEAT...",
        about: "reserve every listed seat, or none of them",
    },
    CommandHelp {
        name: "cancel",
        usage: "cancel SEAT...|BOOKING",
        about: "cancel seats, or a whole booking (bk-N); asks first",
    },
    CommandHelp {
        name: "bookings",
        usage: "bookings",
        about: "your bookings",
    },
    CommandHelp {
        name: "status",
        usage: "status",
        about: "the nodes, the leader, the term and each node's lag",
    },
    CommandHelp {
        name: "ask",
        usage: "ask [--rules|--openai] QUESTION",
        about: "ask the assistant in plain language",
    },
    CommandHelp {
        name: "assistant",
        usage: "assistant use rules|openai | assistant status",
        about: "switch the assistant's backend, or show it and its settings",
    },
    CommandHelp {
        name: "history",
        usage: "history",
        about: "the commands you typed (Ctrl-R searches them)",
    },
    CommandHelp {
        name: "run",
        usage: "run FILE.rhai [ARGS]",
        about: "run a rhai scenario (Ctrl-C stops it); ARGS reach it as the array ARGS",
    },
    CommandHelp {
        name: "plugins",
        usage: "plugins [reload]",
        about: "the loaded plugins and their commands; reload reads plugins/*.rhai again",
    },
    CommandHelp {
        name: "event",
        usage: "event create NAME --rows N --seats-per-row M [--max-per-user K]",
        about: "admin: create an event",
    },
    CommandHelp {
        name: "user",
        usage: "user add NAME [--admin]",
        about: "add a user (a customer needs no login; an admin needs an admin, except the first)",
    },
    CommandHelp {
        name: "quit",
        usage: "quit",
        about: "leave the shell (also exit, Ctrl-D)",
    },
    CommandHelp {
        name: "exit",
        usage: "exit",
        about: "leave the shell",
    },
];

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

fn usage(name: &str) -> String {
    let usage = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .map_or(name, |c| c.usage);
    format!("usage: {usage}")
}

fn number(flag: &str, value: Option<&String>) -> Result<u32, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a number"))?;
    value
        .parse()
        .map_err(|_| format!("{flag} takes a whole number, not '{value}'"))
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
    let name = name.to_ascii_lowercase();
    let one = |args: &[String]| -> Result<String, String> {
        match args {
            [one] => Ok(one.clone()),
            _ => Err(usage(&name)),
        }
    };
    let cmd = match name.as_str() {
        "help" | "?" => Cmd::Help(args.first().cloned()),
        "login" => match args {
            [] => Cmd::Login(None),
            [user] => Cmd::Login(Some(user.clone())),
            _ => return Err(usage("login")),
        },
        "logout" => Cmd::Logout,
        "whoami" => Cmd::Whoami,
        "events" => Cmd::Events,
        "use" => Cmd::Use(one(args)?),
        "seats" | "get" => seats(args).map_err(|_| usage("seats"))?,
        "reserve" | "book" if !args.is_empty() => Cmd::Reserve(args.to_vec()),
        "cancel" => match args {
            [] => return Err(usage("cancel")),
            [one] if one.to_ascii_lowercase().starts_with("bk-") => {
                Cmd::CancelBooking(one.to_ascii_lowercase())
            }
            seats => Cmd::CancelSeats(seats.to_vec()),
        },
        "bookings" => Cmd::Bookings,
        "status" => Cmd::Status,
        "ask" => match args {
            [flag, rest @ ..] if flag == "--openai" && !rest.is_empty() => Cmd::Ask {
                question: rest.join(" "),
                backend: Some(Backend::OpenAi),
            },
            [flag, rest @ ..] if flag == "--rules" && !rest.is_empty() => Cmd::Ask {
                question: rest.join(" "),
                backend: Some(Backend::Rules),
            },
            [] => return Err(usage("ask")),
            words => Cmd::Ask {
                question: words.join(" "),
                backend: None,
            },
        },
        "assistant" => match args {
            [sub] if sub == "status" => Cmd::AssistantStatus,
            [sub, b] if sub == "use" && b == "rules" => Cmd::AssistantUse(Backend::Rules),
            [sub, b] if sub == "use" && b == "openai" => Cmd::AssistantUse(Backend::OpenAi),
            _ => return Err(usage("assistant")),
        },
        "history" => Cmd::History,
        "quit" | "exit" => Cmd::Quit,
        "event" => match args {
            [sub, name, rest @ ..] if sub == "create" => {
                let (mut rows, mut seats_per_row, mut max_per_user) = (None, None, 0);
                let mut flags = rest.iter();
                while let Some(flag) = flags.next() {
                    match flag.as_str() {
                        "--rows" => rows = Some(number(flag, flags.next())?),
                        "--seats-per-row" => seats_per_row = Some(number(flag, flags.next())?),
                        "--max-per-user" => max_per_user = number(flag, flags.next())?,
                        other => return Err(format!("unknown option {other}; {}", usage("event"))),
                    }
                }
                Cmd::EventCreate {
                    name: name.clone(),
                    rows: rows.ok_or_else(|| usage("event"))?,
                    seats_per_row: seats_per_row.ok_or_else(|| usage("event"))?,
                    max_per_user,
                }
            }
            _ => return Err(usage("event")),
        },
        "user" => match args {
            [sub, name] if sub == "add" => Cmd::UserAdd {
                name: name.clone(),
                admin: false,
            },
            [sub, name, flag] if sub == "add" && flag == "--admin" => Cmd::UserAdd {
                name: name.clone(),
                admin: true,
            },
            _ => return Err(usage("user")),
        },
        "run" => match args {
            [file, rest @ ..] => Cmd::Run {
                file: file.clone(),
                args: rest.to_vec(),
            },
            [] => return Err(usage("run")),
        },
        "plugins" => match args {
            [] => Cmd::Plugins { reload: false },
            [sub] if sub == "reload" => Cmd::Plugins { reload: true },
            _ => return Err(usage("plugins")),
        },
        "reserve" | "book" => return Err(usage(&name)),
        other if is_plugin(other) => Cmd::Plugin {
            name: other.to_string(),
            args: args.to_vec(),
        },
        other => {
            return Err(match suggest(other) {
                Some(name) => {
                    format!("unknown command '{other}'; did you mean '{name}'? (help lists them)")
                }
                None => format!("unknown command '{other}' (help lists them)"),
            });
        }
    };
    Ok(Some(cmd))
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
    let word = word.to_ascii_lowercase();
    COMMANDS.iter().any(|c| c.name == word) || matches!(word.as_str(), "book" | "?")
}

#[cfg(test)]
mod tests {
    use super::*;

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
                max_per_user: 0
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
                admin: true
            }))
        );
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
