//! The subcommands of the `ticket` binary, and the one place that wires the front half
//! together: plugins into the assistant, the assistant into `/ask`, the page and the shell.
//! Nothing imports this module but the binary.

pub mod backup;
pub mod bench;
pub mod cluster;
pub mod logging;
pub mod shell;
pub mod status;
pub mod up;
pub mod user;
pub mod web;

use std::sync::{Arc, Mutex};

use crate::assistant::Assistant;
use crate::config::Config;
use crate::local_cluster::LocalCluster;
use crate::script::Scripting;

pub use crate::prompt::read_password;

/// The plugins of `plugins/` beside cluster.toml, loaded (what is skipped is said), and an
/// assistant that tries their rules before its own (now and after `plugins reload`).
pub fn plugins_and_assistant(
    config: &Config,
    cluster: Option<Arc<Mutex<LocalCluster>>>,
) -> (Arc<Scripting>, Arc<Assistant>) {
    let scripting = Scripting::new(tokio::runtime::Handle::current(), cluster);
    for problem in scripting.load_plugins(&config.base_dir().join("plugins")) {
        eprintln!("plugin skipped: {problem}");
    }
    let assistant = assistant_with_plugins(config, &scripting);
    (scripting, assistant)
}

/// The assistant of `config`, trying the rules that `scripting`'s plugins register (now and
/// after `plugins reload`) before its own.
pub fn assistant_with_plugins(config: &Config, scripting: &Arc<Scripting>) -> Arc<Assistant> {
    let assistant = assistant(config);
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

/// The assistant of `config`, its model given the command table's tools.
pub fn assistant(config: &Config) -> Arc<Assistant> {
    let assistant = Arc::new(Assistant::new(&config.assistant));
    assistant.set_command_tools(Arc::new(crate::session::tools::TableTools));
    assistant
}

/// Beside a cluster this process started: the assistant's `/ask` and the page, each on its
/// address of cluster.toml (a taken port is said, not fatal).
pub async fn serve_front(config: &Config, assistant: &Arc<Assistant>) {
    if let Some(addr) = crate::assistant::http::start(config, assistant.clone()).await {
        println!("the assistant answers POST http://{addr}/ask");
    }
    if let Some(addr) = crate::web::start(config, assistant.clone()).await {
        println!("the page is at http://{addr}/");
    }
}
