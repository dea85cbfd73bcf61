//! The booking shell: `ticket` with no subcommand (or `ticket shell`).
//!
//! Interactive at a terminal: a reedline editor with persistent history (Ctrl-R searches it),
//! Tab completion of commands, events and the current event's seats, hints from history, and
//! known commands highlighted apart from unknown ones. Non-interactive, as `psql` and
//! `redis-cli` are: `-c CMD` (repeatable), `-f FILE`, or commands piped on stdin; it stops at
//! the first failure with a non-zero exit status, prints plain text (or `--json`, one object a
//! line), and never prompts.
//!
//! It is handed a [`Session`] wired by the binary (`cli::shell`: the local cluster, plugins,
//! the assistant).
//!
//! `run FILE.rhai` and the commands of `plugins/*.rhai` go to [`crate::script`].
//!
//! What it does not do: talk to the cluster except through [`crate::client::Client`].

mod editor;

use std::io::BufRead;
use std::path::PathBuf;

use crate::config::Config;
pub use crate::session::{command, CommandOutput, Mode, Session};

pub struct ShellOptions {
    /// `-c`: commands to run, in order, instead of reading any.
    pub commands: Vec<String>,
    /// `-f`: a file of commands, one a line.
    pub file: Option<PathBuf>,
    pub json: bool,
    pub yes: bool,
    pub password_stdin: bool,
}

/// Runs the shell over `session` (made and wired by the binary): the line editor at a
/// terminal, else the commands of `-c`, `-f` or stdin. Returns whether every command
/// succeeded.
pub async fn run(
    mut session: Session,
    options: ShellOptions,
    config: &Config,
) -> anyhow::Result<bool> {
    if session.mode.interactive {
        editor::run(&mut session, options.json, config).await?;
        return Ok(true);
    }
    // Lines are run as they arrive, so a program can drive the shell through a pipe.
    let scripted = !options.commands.is_empty();
    let (lines, source): (Box<dyn Iterator<Item = String>>, Option<&PathBuf>) =
        match (&options.file, scripted) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                let lines: Vec<String> = text.lines().map(str::to_string).collect();
                (Box::new(lines.into_iter()), Some(file))
            }
            (None, true) => (Box::new(options.commands.clone().into_iter()), None),
            (None, false) => (
                Box::new(std::io::stdin().lock().lines().map_while(Result::ok)),
                None,
            ),
        };
    for (n, line) in lines.enumerate() {
        if !run_line(&mut session, &line, options.json).await {
            if let Some(file) = source {
                eprintln!("stopped at {}:{}", file.display(), n + 1);
            }
            return Ok(false);
        }
        if session.done {
            break;
        }
    }
    Ok(true)
}

/// Where the interactive shell keeps its history.
pub fn history_path(config: &Config) -> PathBuf {
    editor::history_path(config)
}

/// Runs one command already parsed (`ticket run` hands `run FILE`), printing its reply;
/// returns whether it succeeded.
pub async fn run_cmd(session: &mut Session, cmd: command::Cmd, json: bool) -> bool {
    print_reply(session.run(cmd).await, json)
}

/// Parses and runs one line, printing its reply; returns whether it succeeded.
pub async fn run_line(session: &mut Session, line: &str, json: bool) -> bool {
    let cmd = match session.parse(line) {
        Ok(Some(cmd)) => cmd,
        Ok(None) => return true,
        Err(message) => {
            print_error(&message, json);
            return false;
        }
    };
    print_reply(session.run(cmd).await, json)
}

fn print_reply(reply: Result<CommandOutput, String>, json: bool) -> bool {
    match reply {
        Ok(reply) => {
            if json {
                println!("{}", reply.json);
            } else if !reply.text.is_empty() {
                println!("{}", reply.text);
            }
            true
        }
        Err(message) => {
            print_error(&message, json);
            false
        }
    }
}

fn print_error(message: &str, json: bool) {
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    } else {
        eprintln!("error: {message}");
    }
}
