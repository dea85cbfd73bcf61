//! `ticket` (or `ticket shell`) and `ticket run`: the session wired once, then handed to the
//! shell.
//!
//! If no node of `cluster.toml` answers and every node is on this machine, the interactive
//! shell (and `ticket run`) starts the local cluster itself (as `ticket up` does) and stops it
//! on exit; scripts can then kill, restart, pause and resume its nodes. Beside a cluster it
//! started, the shell also serves `/ask` and the page.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::{Client, PROBE_WAIT};
use crate::config::Config;
use crate::local_cluster::LocalCluster;
use crate::session::{Mode, Session};
use crate::shell::ShellOptions;

/// How long a local cluster this process started may take to elect a leader.
const READY_WAIT: Duration = Duration::from_secs(20);

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
    let local = match interactive {
        true => start_local_cluster_if_needed(config).await?,
        false => None,
    };
    let ours = local.is_some();
    let mut session = Session::new(Client::from_config(config), mode);
    let (scripting, assistant) = super::plugins_and_assistant(config, local);
    session.assistant = assistant;
    session.scripting = Some(Arc::new(scripting));
    session.plugin_dir = config.base_dir().join("plugins");
    session.history_file = Some(crate::shell::history_path(config));
    session.remember_plugins();
    if ours {
        super::serve_front(config, &session.assistant).await;
    }
    crate::shell::run(session, options, config).await
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
    let scripting = crate::script::Scripting::new(tokio::runtime::Handle::current(), local);
    if let Some(timeout) = timeout {
        scripting.set_time_limit(timeout);
    }
    session.scripting = Some(Arc::new(scripting));
    session.assistant = super::assistant(config);
    let cmd = crate::session::command::Cmd::Run {
        file: file.display().to_string(),
        args,
    };
    Ok(crate::shell::run_cmd(&mut session, cmd, json).await)
}

async fn start_local_cluster_if_needed(
    config: &Config,
) -> anyhow::Result<Option<Arc<Mutex<LocalCluster>>>> {
    let probe = Client::from_config(config).with_call_timeout(PROBE_WAIT);
    if probe.probe(PROBE_WAIT).await.is_ok() && probe.cluster_status().await.is_ok() {
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
    cluster.wait_ready(&probe, READY_WAIT).await?;
    for (id, log) in &cluster.logs {
        eprintln!("node{id} logs to {}", log.display());
    }
    eprintln!("It stops when this command ends.");
    Ok(Some(Arc::new(Mutex::new(cluster))))
}
