//! The booking shell: `ticket` with no subcommand (or `ticket shell`).
//!
//! Interactive at a terminal: a reedline editor with persistent history (Ctrl-R searches it),
//! Tab completion of commands, events and the current event's seats, hints from history, and
//! known commands highlighted apart from unknown ones. Non-interactive, as `psql` and
//! `redis-cli` are: `-c CMD` (repeatable), `-f FILE`, or commands piped on stdin; it stops at
//! the first failure with a non-zero exit status, prints plain text (or `--json`, one object a
//! line), and never prompts.
//!
//! If no node of `cluster.toml` answers and every node is on this machine, the interactive
//! shell (and `ticket run`) starts the local cluster itself (as `ticket up` does) and stops it
//! on exit; scripts can then kill, restart, pause and resume its nodes.
//!
//! `run FILE.rhai` and the commands of `plugins/*.rhai` go to [`crate::script`].
//!
//! What it does not do: talk to the cluster except through [`crate::client::Client`].

pub mod command;
mod editor;
mod render;
mod session;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::assistant::Assistant;
use crate::cli::up::LocalCluster;
use crate::client::Client;
use crate::config::Config;
use crate::script::Scripting;
pub use session::{Mode, Reply, Session};

pub struct ShellOptions {
    /// `-c`: commands to run, in order, instead of reading any.
    pub commands: Vec<String>,
    /// `-f`: a file of commands, one a line.
    pub file: Option<PathBuf>,
    pub json: bool,
    pub yes: bool,
    pub password_stdin: bool,
}

/// Runs the shell; returns whether every command succeeded.
pub async fn run(config: &Config, options: ShellOptions) -> anyhow::Result<bool> {
    let scripted = !options.commands.is_empty() || options.file.is_some();
    let interactive = !scripted && std::io::stdin().is_terminal();
    // Read before any command, so that piped commands start on the next line.
    let password = match options.password_stdin {
        true => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Some(line.trim_end_matches(['\n', '\r']).to_string())
        }
        false => None,
    };
    let mode = Mode {
        interactive,
        yes: options.yes,
        password,
        colour: interactive && std::io::stdout().is_terminal() && !options.json,
        json: options.json,
        script: false,
    };
    // Held by the session's scripting: the nodes stop when the shell ends.
    let local = if interactive {
        start_local_cluster_if_needed(config).await?
    } else {
        None
    };
    let mut session = Session::new(Client::from_config(config), mode);
    let ours = local.is_some();
    let scripting = Scripting::new(tokio::runtime::Handle::current(), local);
    session.assistant = assistant_with_plugins(config, &scripting);
    session.scripting = Some(scripting);
    session.plugin_dir = config.base_dir().join("plugins");
    session.history_file = Some(editor::history_path(config));
    for problem in session.load_plugins() {
        eprintln!("plugin skipped: {problem}");
    }
    // Beside a cluster this shell started, the assistant also answers over HTTP, and the
    // page is served.
    if ours {
        if let Some(addr) = crate::assistant::http::start(config, session.assistant.clone()).await {
            eprintln!("the assistant answers POST http://{addr}/ask");
        }
        if let Some(addr) = crate::web::start(config, session.assistant.clone()).await {
            eprintln!("the page is at http://{addr}/");
        }
    }
    if interactive {
        editor::run(&mut session, options.json, config).await?;
        return Ok(true);
    }
    // Lines are run as they arrive, so a program can drive the shell through a pipe.
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

/// The assistant of `config`, trying the rules that `scripting`'s plugins register (now and
/// after `plugins reload`) before its own.
pub fn assistant_with_plugins(config: &Config, scripting: &Arc<Scripting>) -> Arc<Assistant> {
    let assistant = Arc::new(Assistant::new(&config.assistant));
    let scripting = scripting.clone();
    assistant.set_plugin_rules(Arc::new(move |question: String| {
        let scripting = scripting.clone();
        Box::pin(async move {
            let outcome = scripting.answer_by_rule(&question).await;
            crate::assistant::PluginAnswer {
                answer: outcome
                    .answer
                    .map(|(answer, file)| (answer, file.display().to_string())),
                failures: outcome.failures,
            }
        })
    }));
    assistant
}

/// `ticket run FILE.rhai [ARGS]`: runs one script and returns whether it succeeded. If no
/// node answers and the cluster is local, it starts the cluster for the script (which can
/// then kill and restart nodes) and stops it afterwards. `timeout` replaces the scripts'
/// time limit.
pub async fn run_script(
    config: &Config,
    file: PathBuf,
    args: Vec<String>,
    json: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<bool> {
    let local = start_local_cluster_if_needed(config).await?;
    let mode = Mode {
        yes: true,
        json,
        ..Mode::default()
    };
    let mut session = Session::new(Client::from_config(config), mode);
    let scripting = Scripting::new(tokio::runtime::Handle::current(), local);
    if let Some(timeout) = timeout {
        scripting.set_time_limit(timeout);
    }
    session.scripting = Some(scripting);
    session.assistant = Arc::new(Assistant::new(&config.assistant));
    let line = command::Cmd::Run {
        file: file.display().to_string(),
        args,
    };
    Ok(print_reply(session.run(line).await, json))
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

fn print_reply(reply: Result<Reply, String>, json: bool) -> bool {
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

async fn start_local_cluster_if_needed(
    config: &Config,
) -> anyhow::Result<Option<Arc<Mutex<LocalCluster>>>> {
    let probe = Client::from_config(config).with_call_timeout(Duration::from_secs(2));
    if probe.cluster_status().await.is_ok() {
        return Ok(None);
    }
    if !config.all_local() {
        anyhow::bail!(
            "no node of {} answered: is the cluster running?",
            config.path.display()
        );
    }
    eprintln!(
        "No node answered; starting the local cluster of {} ...",
        config.path.display()
    );
    let mut cluster = LocalCluster::start(config)?;
    cluster.wait_ready(&probe, Duration::from_secs(20)).await?;
    for (id, log) in &cluster.logs {
        eprintln!("node{id} logs to {}", log.display());
    }
    eprintln!("It stops when this command ends.");
    Ok(Some(Arc::new(Mutex::new(cluster))))
}
