//! What the person at the terminal types that is not a shell command: a password (never
//! echoed).

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
