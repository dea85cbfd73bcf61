//! The interactive line editor: reedline with history, completion, hints, highlighting and a
//! prompt that shows the user, the event and the node serving.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nu_ansi_term::{Color, Style};
use reedline::{
    default_emacs_keybindings, ColumnarMenu, Completer, CompletionResult, DefaultHinter, Emacs,
    FileBackedHistory, Highlighter, KeyCode, KeyModifiers, MenuBuilder, Prompt, PromptEditMode,
    PromptHistorySearch, PromptHistorySearchStatus, Reedline, ReedlineEvent, ReedlineMenu, Signal,
    Span, StyledText, Suggestion,
};

use crate::config::Config;
use crate::session::command::{self, Cmd, Complete, COMMANDS};
use crate::session::{Known, Scripts, Session};

/// Lines of history kept.
const HISTORY_LINES_MAX: usize = 10_000;

/// Where history lives: `$TICKET_HISTORY` if set (tests use a file of their own), else
/// `$HOME/.ticket_history`, else beside the cluster's data.
pub(super) fn history_path(config: &Config) -> PathBuf {
    if let Some(file) = std::env::var_os("TICKET_HISTORY").filter(|f| !f.is_empty()) {
        return PathBuf::from(file);
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".ticket_history"),
        None => config.data_dir.join("shell_history"),
    }
}

/// The interactive shell: reads lines at the terminal and runs them until `quit` or Ctrl-D.
pub async fn run(session: &mut Session, json: bool, config: &Config) -> anyhow::Result<()> {
    let mut editor = editor(session, config)?;
    // Installed once, before any command runs: from now on Ctrl-C while a command runs
    // cancels it (and stops a script) instead of ending the shell.
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    println!(
        "ticket shell on {}. Type `help` for the commands, `quit` to leave.",
        config.path.display()
    );
    while !session.done {
        let prompt = ShellPrompt(session.prompt());
        match editor.read_line(&prompt) {
            Ok(Signal::Success(line)) => {
                run_typed(session, &mut editor, &mut interrupts, &line, json).await;
            }
            Ok(Signal::CtrlC) => continue,
            Ok(Signal::CtrlD) => break,
            Ok(_) => continue,
            Err(e) => anyhow::bail!("the terminal failed: {e}"),
        }
    }
    Ok(())
}

/// The line editor: history in [`history_path`], Tab for the completion menu, hints and
/// highlighting from the session's commands.
fn editor(session: &Session, config: &Config) -> anyhow::Result<Reedline> {
    let mut keybindings = default_emacs_keybindings();
    keybindings.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu("completion_menu".to_string()),
            ReedlineEvent::MenuNext,
        ]),
    );
    let history = FileBackedHistory::with_file(HISTORY_LINES_MAX, history_path(config))
        .map_err(|e| anyhow::anyhow!("cannot open the shell history: {e}"))?;
    let menu = ColumnarMenu::default().with_name("completion_menu");
    Ok(Reedline::create()
        .with_history(Box::new(history))
        .with_completer(Box::new(ShellCompleter {
            known: session.known.clone(),
            scripting: session.scripting.clone(),
        }))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
        .with_hinter(Box::new(
            DefaultHinter::default().with_style(Style::new().italic().fg(Color::DarkGray)),
        ))
        .with_highlighter(Box::new(CommandHighlighter {
            known: session.known.clone(),
        }))
        .with_edit_mode(Box::new(Emacs::new(keybindings))))
}

/// Runs one typed line; Ctrl-C meanwhile stops a script at its next step, and drops any
/// other command mid-call.
async fn run_typed(
    session: &mut Session,
    editor: &mut Reedline,
    interrupts: &mut tokio::signal::unix::Signal,
    line: &str,
    json: bool,
) {
    let parsed = session.parse(line);
    if parsed == Ok(Some(Cmd::History)) && editor.sync_history().is_err() {
        // The file cannot be written: what this session typed is only in memory.
        let _ = editor.print_history();
        return;
    }
    // Otherwise `history` reads the file, now holding this session's lines too, as it does
    // without a terminal.
    let script = matches!(parsed, Ok(Some(Cmd::Run { .. } | Cmd::Plugin { .. })));
    let scripting = session.scripting.clone();
    let run = super::run_line(session, line, json);
    tokio::pin!(run);
    tokio::select! {
        _ = &mut run => {}
        _ = interrupts.recv() => match (script, scripting) {
            // A script stops at its next operation or call, and says so.
            (true, Some(scripting)) => {
                scripting.cancel();
                run.await;
            }
            // Anything else is dropped mid-call.
            _ => eprintln!("cancelled"),
        },
    }
}

struct ShellPrompt(String);

impl Prompt for ShellPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("> ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let failing = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!("({failing}reverse-search: {}) ", search.term))
    }
}

/// Completes the command word, then events (after `use`, `seats`, `get`), seat ids of the
/// event in use (after `reserve`, `cancel`), and subcommands.
struct ShellCompleter {
    known: Arc<Mutex<Known>>,
    scripting: Option<Arc<dyn Scripts>>,
}

impl Completer for ShellCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        CompletionResult::fresh(self.suggest(line, pos))
    }
}

impl ShellCompleter {
    fn suggest(&self, line: &str, pos: usize) -> Vec<Suggestion> {
        let before = up_to(line, pos);
        // The word starts after the last whitespace character, which may be several bytes
        // long (U+00A0, U+3000): step over the whole character, not one byte.
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let first = before.split_whitespace().next().unwrap_or("");
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let commands = || {
            COMMANDS
                .iter()
                .map(|c| c.name.to_string())
                .chain(known.plugins.iter().map(|c| c.name.clone()))
                .collect::<Vec<_>>()
        };
        // The command word, even after leading blanks.
        let candidates: Vec<String> = if before[..start].trim().is_empty() {
            commands()
        } else {
            let typed: Vec<&str> = before[..start].split_whitespace().skip(1).collect();
            match command::find(first) {
                Some(spec) => match offer(spec.complete, &typed, &known, &commands) {
                    Offer::Words(words) => words,
                    Offer::Paths => return suggest_paths(word, start, pos),
                },
                None => match (
                    known.plugins.iter().find(|c| c.name == first),
                    &self.scripting,
                ) {
                    (Some(command), Some(scripting)) => {
                        let args: Vec<String> = typed.iter().map(|w| w.to_string()).collect();
                        scripting.complete(&command.name, &args, &known.events, &known.seats)
                    }
                    _ => Vec::new(),
                },
            }
        };
        let span = Span::new(start, pos);
        candidates
            .into_iter()
            .filter(|c| {
                c.to_ascii_lowercase()
                    .starts_with(&word.to_ascii_lowercase())
            })
            .map(|value| Suggestion {
                value,
                span,
                append_whitespace: true,
                ..Suggestion::default()
            })
            .collect()
    }
}

/// What completion offers for the next word of a command.
enum Offer {
    Words(Vec<String>),
    /// Script files, completed from the file system.
    Paths,
}

/// What the table says a command's next word may be, given the words typed after its name.
fn offer(
    complete: Complete,
    typed: &[&str],
    known: &Known,
    commands: &dyn Fn() -> Vec<String>,
) -> Offer {
    let words = match complete {
        Complete::Nothing => Vec::new(),
        Complete::Events => known.events.clone(),
        Complete::FreeSeats => seat_candidates(known, "reserve", typed),
        Complete::MySeatsOrBookings => seat_candidates(known, "cancel", typed),
        Complete::MyHolds if typed.is_empty() => known.holds.clone(),
        Complete::MyHolds => Vec::new(),
        Complete::Commands => commands(),
        Complete::Paths if typed.is_empty() => return Offer::Paths,
        Complete::Paths => Vec::new(),
        Complete::Words(words) => words.iter().map(|w| w.to_string()).collect(),
        Complete::Subcommands(subcommands) => match typed.split_first() {
            None => subcommands
                .iter()
                .map(|(name, _)| name.to_string())
                .collect(),
            Some((sub, rest)) => match subcommands.iter().find(|(name, _)| name == sub) {
                Some((_, then)) => return offer(*then, rest, known, commands),
                None => Vec::new(),
            },
        },
    };
    Offer::Words(words)
}

/// What `reserve` and `cancel` may take next, given the words already typed after the
/// command: free seats to reserve; my seats or one of my bookings to cancel (a booking id
/// only as the first word, as `cancel` takes one booking or seats). Nothing typed twice.
fn seat_candidates(known: &Known, command: &str, typed: &[&str]) -> Vec<String> {
    let mut candidates = match command {
        "cancel" if typed.is_empty() => [known.mine.as_slice(), known.bookings.as_slice()].concat(),
        "cancel"
            if typed
                .iter()
                .any(|w| w.to_ascii_lowercase().starts_with("bk-")) =>
        {
            Vec::new()
        }
        "cancel" => known.mine.clone(),
        _ => known.free.clone(),
    };
    candidates.retain(|c| !typed.iter().any(|w| w.eq_ignore_ascii_case(c)));
    candidates
}

/// `line` up to byte `pos`, moved back to a character boundary: the editor's cursor is
/// trusted no more than the text is.
fn up_to(line: &str, pos: usize) -> &str {
    let mut pos = pos.min(line.len());
    while !line.is_char_boundary(pos) {
        pos -= 1;
    }
    &line[..pos]
}

/// Completes a path to a `.rhai` file (or a directory on the way to one).
fn suggest_paths(word: &str, start: usize, pos: usize) -> Vec<Suggestion> {
    let (dir, prefix) = match word.rfind('/') {
        Some(i) => (&word[..=i], &word[i + 1..]),
        None => ("", word),
    };
    let listing = std::fs::read_dir(if dir.is_empty() { "." } else { dir });
    let mut found: Vec<(String, bool)> = listing
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let is_dir = e.file_type().ok()?.is_dir();
            let wanted = name.starts_with(prefix)
                && !name.starts_with('.')
                && (is_dir || name.ends_with(".rhai"));
            wanted.then(|| {
                (
                    format!("{dir}{name}{}", if is_dir { "/" } else { "" }),
                    is_dir,
                )
            })
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(value, is_dir)| Suggestion {
            value,
            span: Span::new(start, pos),
            append_whitespace: !is_dir,
            ..Suggestion::default()
        })
        .collect()
}

/// Known commands (built in or from a plugin) in green, unknown ones in red; the rest plain.
struct CommandHighlighter {
    known: Arc<Mutex<Known>>,
}

impl Highlighter for CommandHighlighter {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut styled = StyledText::new();
        let trimmed = line.trim_start();
        let lead = &line[..line.len() - trimmed.len()];
        let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        let (word, rest) = trimmed.split_at(end);
        let plugin = || {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            known.plugins.iter().any(|c| c.name == word)
        };
        let style = if command::is_command(word) || plugin() {
            Style::new().fg(Color::Green).bold()
        } else {
            Style::new().fg(Color::Red)
        };
        styled.push((Style::new(), lead.to_string()));
        styled.push((style, word.to_string()));
        styled.push((Style::new(), rest.to_string()));
        styled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(completer: &ShellCompleter, line: &str) -> Vec<String> {
        completer
            .suggest(line, line.len())
            .into_iter()
            .map(|s| s.value)
            .collect()
    }

    fn completer(known: Known) -> ShellCompleter {
        ShellCompleter {
            known: Arc::new(Mutex::new(known)),
            scripting: None,
        }
    }

    /// The demo event as user1 sees it with S2 and S3 reserved as bk-4 and S5 as bk-9 (mine),
    /// and S7 someone else's.
    fn demo_known() -> Known {
        Known {
            events: vec!["demo".into(), "gala".into()],
            seats: (1..=10).map(|n| format!("S{n}")).collect(),
            free: ["S1", "S4", "S6", "S8", "S9", "S10"]
                .map(String::from)
                .into(),
            mine: ["S2", "S3", "S5"].map(String::from).into(),
            bookings: ["bk-4", "bk-9"].map(String::from).into(),
            holds: Vec::new(),
            plugins: Vec::new(),
        }
    }

    #[test]
    fn completes_commands_events_and_seats_of_the_event_in_use() {
        let completer = completer(demo_known());
        assert_eq!(values(&completer, "res"), vec!["reserve"]);
        assert_eq!(values(&completer, "use g"), vec!["gala"]);
        assert_eq!(values(&completer, "reserve S1 s1"), vec!["S10"]);
        assert_eq!(values(&completer, "event c"), vec!["create"]);
        // From the table: `event info` completes events, `event create` nothing.
        assert_eq!(values(&completer, "event i"), vec!["info"]);
        assert_eq!(values(&completer, "event info g"), vec!["gala"]);
        assert!(values(&completer, "event create g").is_empty());
        assert_eq!(values(&completer, "assistant use r"), vec!["rules"]);
        assert!(values(&completer, "status x").is_empty());
        assert_eq!(values(&completer, "plugins r"), vec!["reload"]);
    }

    #[test]
    fn reserve_offers_free_seats_and_cancel_offers_mine_and_my_bookings() {
        let completer = completer(demo_known());
        assert_eq!(
            values(&completer, "reserve "),
            vec!["S1", "S4", "S6", "S8", "S9", "S10"]
        );
        assert_eq!(
            values(&completer, "book S"),
            values(&completer, "reserve S")
        );
        assert!(values(&completer, "reserve S7").is_empty(), "taken");
        assert!(values(&completer, "reserve S2").is_empty(), "mine already");
        assert_eq!(
            values(&completer, "cancel "),
            vec!["S2", "S3", "S5", "bk-4", "bk-9"]
        );
        assert_eq!(values(&completer, "cancel b"), vec!["bk-4", "bk-9"]);
        // After a seat: more seats, not a booking, and not the same seat again.
        assert_eq!(values(&completer, "cancel S2 "), vec!["S3", "S5"]);
        assert!(values(&completer, "cancel bk-4 ").is_empty());
        assert!(values(&completer, "cancel S1").is_empty(), "not mine");
    }

    #[test]
    fn seats_learnt_from_a_map_split_into_free_mine_and_my_bookings() {
        use crate::pb::booking::v1::{GetSeatsReply, Seat, SeatStatus};
        let seat = |id: &str, status: SeatStatus, booking: &str| Seat {
            id: id.into(),
            row: "S".into(),
            status: status as i32,
            holder: String::new(),
            booking_id: booking.into(),
            ..Default::default()
        };
        let reply = GetSeatsReply {
            event: None,
            seats: vec![
                seat("S1", SeatStatus::Free, ""),
                seat("S2", SeatStatus::Mine, "bk-4"),
                seat("S3", SeatStatus::Mine, "bk-4"),
                seat("S4", SeatStatus::Taken, "bk-5"),
                seat("S5", SeatStatus::Mine, "bk-9"),
            ],
            applied_index: 1,
        };
        let mut known = demo_known();
        known.learn_seats(&reply);
        assert_eq!(known.seats, ["S1", "S2", "S3", "S4", "S5"]);
        assert_eq!(known.free, ["S1"]);
        assert_eq!(known.mine, ["S2", "S3", "S5"]);
        // Someone else's booking (an admin sees its id) is not one to cancel from here.
        assert_eq!(known.bookings, ["bk-4", "bk-9"]);
        assert_eq!(known.events, ["demo", "gala"], "events are kept");
    }

    #[test]
    fn checkout_commands_offer_free_seats_and_my_holds_learnt_from_a_map() {
        use crate::pb::booking::v1::{GetSeatsReply, Seat, SeatStatus};
        let seat = |id: &str, status: SeatStatus, hold: &str| Seat {
            id: id.into(),
            row: "S".into(),
            status: status as i32,
            hold_id: hold.into(),
            ..Default::default()
        };
        let reply = GetSeatsReply {
            event: None,
            seats: vec![
                seat("S1", SeatStatus::Free, ""),
                seat("S2", SeatStatus::HeldByYou, "hd-3"),
                seat("S3", SeatStatus::HeldByYou, "hd-3"),
                seat("S4", SeatStatus::Held, ""),
                seat("S5", SeatStatus::HeldByYou, "hd-8"),
            ],
            applied_index: 1,
        };
        let mut known = demo_known();
        known.learn_seats(&reply);
        let completer = completer(known);
        assert_eq!(values(&completer, "hold "), vec!["S1"], "only free seats");
        for command in ["confirm", "extend", "release"] {
            assert_eq!(
                values(&completer, &format!("{command} ")),
                vec!["hd-3", "hd-8"],
                "{command}"
            );
            assert!(values(&completer, &format!("{command} hd-3 ")).is_empty());
        }
        assert_eq!(values(&completer, "conf"), vec!["confirm"]);
        assert_eq!(values(&completer, "check"), vec!["check-in"]);
    }

    /// Tab after a multi-byte whitespace character (a no-break or an ideographic space)
    /// completes the word after it instead of panicking on a byte offset inside the
    /// character; a cursor inside a character is moved back to its start.
    #[test]
    fn completion_after_multibyte_whitespace_does_not_panic() {
        let completer = completer(demo_known());
        assert_eq!(values(&completer, "reserve\u{a0}S1"), vec!["S1", "S10"]);
        assert_eq!(values(&completer, "use\u{3000}g"), vec!["gala"]);
        assert_eq!(values(&completer, "\u{3000}res"), vec!["reserve"]);
        assert_eq!(
            values(&completer, "reserve S1\u{3000}"),
            vec!["S4", "S6", "S8", "S9", "S10"]
        );
        let line = "use\u{3000}g";
        for pos in 0..=line.len() + 2 {
            let _ = completer.suggest(line, pos);
        }
        assert_eq!(up_to("use\u{3000}g", 4), "use");
    }

    #[test]
    fn run_completes_rhai_files_and_directories() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("scripts")).expect("mkdir");
        std::fs::write(dir.path().join("scripts/race.rhai"), "").expect("write");
        std::fs::write(dir.path().join("scripts/notes.txt"), "").expect("write");
        let base = format!("{}/", dir.path().display());
        let word = format!("{base}scr");
        let found: Vec<String> = suggest_paths(&word, 4, 4 + word.len())
            .into_iter()
            .map(|s| s.value)
            .collect();
        assert_eq!(found, vec![format!("{base}scripts/")]);
        let word = format!("{base}scripts/");
        let found: Vec<String> = suggest_paths(&word, 4, 4 + word.len())
            .into_iter()
            .map(|s| s.value)
            .collect();
        assert_eq!(found, vec![format!("{base}scripts/race.rhai")]);
    }

    #[test]
    fn known_commands_are_styled_apart_from_unknown_ones() {
        let highlighter = CommandHighlighter {
            known: Arc::default(),
        };
        let known = highlighter.highlight("reserve S2", 0);
        let unknown = highlighter.highlight("reserv S2", 0);
        assert_ne!(known.buffer[1].0, unknown.buffer[1].0);
        assert_eq!(known.buffer[1].1, "reserve");
    }
}
