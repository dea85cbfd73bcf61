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

use super::command::{self, Cmd, COMMANDS};
use super::session::{Known, Session};
use crate::config::Config;
use crate::script::Scripting;

/// Lines of history kept.
const HISTORY_LINES_MAX: usize = 10_000;

/// Where history lives: `$HOME/.ticket_history`, else beside the cluster's data.
fn history_path(config: &Config) -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".ticket_history"),
        None => config.data_dir.join("shell_history"),
    }
}

pub async fn run(session: &mut Session, json: bool, config: &Config) -> anyhow::Result<()> {
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
    let mut editor = Reedline::create()
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
        .with_edit_mode(Box::new(Emacs::new(keybindings)));

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
                let parsed = session.parse(&line);
                if parsed == Ok(Some(Cmd::History)) {
                    let _ = editor.print_history();
                    continue;
                }
                let script = matches!(parsed, Ok(Some(Cmd::Run { .. } | Cmd::Plugin { .. })));
                let scripting = session.scripting.clone();
                let run = super::run_line(session, &line, json);
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
            Ok(Signal::CtrlC) => continue,
            Ok(Signal::CtrlD) => break,
            Ok(_) => continue,
            Err(e) => anyhow::bail!("the terminal failed: {e}"),
        }
    }
    Ok(())
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
    scripting: Option<Arc<Scripting>>,
}

impl Completer for ShellCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        CompletionResult::fresh(self.suggest(line, pos))
    }
}

impl ShellCompleter {
    fn suggest(&self, line: &str, pos: usize) -> Vec<Suggestion> {
        let before = &line[..pos.min(line.len())];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
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
        let candidates: Vec<String> = if start == 0 {
            commands()
        } else {
            match first {
                "use" | "seats" | "get" => known.events.clone(),
                "reserve" | "book" | "cancel" => known.seats.clone(),
                "event" => vec!["create".into()],
                "user" => vec!["add".into()],
                "plugins" => vec!["reload".into()],
                "assistant" if before.contains(" use ") => vec!["rules".into(), "openai".into()],
                "assistant" => vec!["use".into(), "status".into()],
                "ask" => vec!["--rules".into(), "--openai".into()],
                "help" => commands(),
                "run" if before.split_whitespace().count() <= 2 && start > 0 => {
                    return suggest_paths(word, start, pos)
                }
                plugin => match (
                    known.plugins.iter().find(|c| c.name == plugin),
                    &self.scripting,
                ) {
                    (Some(command), Some(scripting)) => {
                        let args: Vec<String> = before[..start]
                            .split_whitespace()
                            .skip(1)
                            .map(str::to_string)
                            .collect();
                        scripting.complete(command, &args, &known.events, &known.seats)
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

    #[test]
    fn completes_commands_events_and_seats_of_the_event_in_use() {
        let known = Arc::new(Mutex::new(Known {
            events: vec!["demo".into(), "gala".into()],
            seats: vec!["S1".into(), "S2".into(), "S10".into()],
            plugins: Vec::new(),
        }));
        let completer = ShellCompleter {
            known,
            scripting: None,
        };
        assert_eq!(values(&completer, "res"), vec!["reserve"]);
        assert_eq!(values(&completer, "use g"), vec!["gala"]);
        assert_eq!(values(&completer, "reserve S1 s1"), vec!["S1", "S10"]);
        assert_eq!(values(&completer, "event c"), vec!["create"]);
        assert!(values(&completer, "status x").is_empty());
        assert_eq!(values(&completer, "plugins r"), vec!["reload"]);
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
