//! The subcommands of the `ticket` binary, each a thin layer over [`crate::client`] or
//! [`crate::server`].

pub mod bench;
pub mod logging;
pub mod status;
pub mod up;
pub mod user;
pub mod web;

use std::io::{BufRead, IsTerminal};

/// Reads a password: from stdin when asked to, else from `env` when set, else from the
/// terminal without echo (twice when `confirm`, to catch typos).
pub fn read_password(
    prompt: &str,
    from_stdin: bool,
    env: &str,
    confirm: bool,
) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    if let Ok(password) = std::env::var(env) {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no password: pass --password-stdin, or set {env}");
    }
    let password = rpassword::prompt_password(prompt)?;
    if confirm && rpassword::prompt_password("Again: ")? != password {
        anyhow::bail!("the two passwords differ");
    }
    Ok(password)
}

/// A status from the cluster as a sentence for a person.
pub fn explain(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unavailable if status.message().contains("connect") => {
            "no node of the cluster answered: is it running? (start it with `ticket up`)".into()
        }
        _ => status.message().to_string(),
    }
}
