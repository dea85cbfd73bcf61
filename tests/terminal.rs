//! The shell at a real terminal: a pseudo-terminal drives the interactive editor as a person
//! would, against a real cluster.

mod common;

use std::time::Duration;

use common::{Options, TestCluster, BIN};
use expectrl::process::unix::{PtyStream, UnixProcess};
use expectrl::{Captures, Expect, Regex, Session};

type Pty = Session<UnixProcess, PtyStream>;

/// Waits for `pattern` (a regex), answering the terminal's cursor-position queries on the
/// way as a real terminal would (reedline asks at every prompt and waits for the answer).
/// Returns what matched and everything the shell printed before it.
fn until(shell: &mut Pty, pattern: &str, what: &str) -> (String, String) {
    let either = format!(r"\x1b\[6n|{pattern}");
    let mut before = String::new();
    loop {
        let found: Captures = shell
            .expect(Regex(either.as_str()))
            .unwrap_or_else(|e| panic!("{what}: {e} (after {before:?})"));
        before.push_str(&String::from_utf8_lossy(found.before()));
        let matched = String::from_utf8_lossy(found.get(0).unwrap_or_default()).to_string();
        if matched == "\x1b[6n" {
            shell.send("\x1b[1;1R").expect("answer the cursor query");
            continue;
        }
        return (matched, before);
    }
}

/// Goal: at a terminal the password is never echoed, Tab completes a seat id of the event
/// in use, Ctrl-R finds an earlier command, and the death of the node serving the shell goes
/// unnoticed by the person typing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_login_completion_history_search_and_failover_work() {
    let mut cluster = TestCluster::with_user1(Options::default()).await;

    let mut command = std::process::Command::new(BIN);
    command
        .arg("--config")
        .arg(&cluster.config_path)
        .env("HOME", cluster.dir.path())
        .env_remove("TICKET_PASSWORD");
    let mut shell: Pty = Session::spawn(command).expect("spawn the shell on a pty");
    shell.set_expect_timeout(Some(Duration::from_secs(20)));
    until(&mut shell, "Type `help`", "greeting");

    shell.send("login user1\r").expect("send");
    until(&mut shell, "Password for user1:", "password prompt");
    shell.send("mysecret\r").expect("send");
    let (_, printed) = until(&mut shell, "logged in as user1", "login");
    assert!(
        !printed.contains("mysecret"),
        "the password was echoed: {printed:?}"
    );

    // Completion offers the seats of the event in use once the map has been seen. The menu
    // styles the typed prefix apart, so escape codes may split "S" from "10".
    shell.send("get\r").expect("send");
    until(&mut shell, "legend", "seat map");
    shell.send("reserve S\t").expect("send");
    until(
        &mut shell,
        r"S(\x1b\[[0-9;]*m)*10",
        "the completion menu lists the seats",
    );
    shell.send("\t").expect("tab");
    shell.send("\r").expect("accept the completion");
    shell.send("\r").expect("run it");
    // "reserve S" alone is no seat: the completion filled in a whole one (which one depends
    // on the menu's first selection).
    let (said, printed) = until(
        &mut shell,
        r"reserved S[0-9]+|error: [^\r\n]*",
        "the reservation ran",
    );
    assert!(said.starts_with("reserved S"), "{said:?} after {printed:?}");

    // Ctrl-R finds the reservation again; running it is refused, as the seat is now taken.
    shell.send("\x12reser").expect("ctrl-r");
    until(&mut shell, "reverse-search", "search prompt");
    shell.send("\r").expect("accept");
    shell.send("\r").expect("run");
    until(
        &mut shell,
        "already reserved",
        "the earlier command ran again",
    );

    // Kill the node the shell uses (the leader, where its writes went): nothing to notice.
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    cluster.kill(leader);
    shell.send("bookings\r").expect("send");
    until(
        &mut shell,
        "bk-[0-9]+",
        "bookings after the failover, still logged in",
    );

    shell.send("quit\r").expect("send");
    let status = shell.get_process_mut().wait().expect("wait");
    assert!(
        matches!(status, expectrl::process::unix::WaitStatus::Exited(_, 0)),
        "the shell exited with {status:?}"
    );
}

/// Goal: at a terminal a broken plugin is reported when the shell starts and the shell
/// runs; a runaway script stops with its error and the shell carries on; Ctrl-C stops a
/// running script (not the shell); `plugins reload` picks up a repaired plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_scripts_and_plugins_fail_without_taking_the_shell_down() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let dir = cluster.dir.path();
    std::fs::create_dir(dir.join("plugins")).expect("mkdir");
    let plugin = dir.join("plugins/hello.rhai");
    std::fs::write(
        &plugin,
        "register_command(#{ name: \"hello\",\n  help: 1 + });\n",
    )
    .expect("write");
    std::fs::write(dir.join("loop.rhai"), "loop {\n  let x = 1;\n}\n").expect("write");
    std::fs::write(
        dir.join("sleepy.rhai"),
        "print(\"sleeping\");\nsleep(60000);\n",
    )
    .expect("write");

    let mut command = std::process::Command::new(BIN);
    command
        .arg("--config")
        .arg(&cluster.config_path)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("TICKET_PASSWORD");
    let mut shell: Pty = Session::spawn(command).expect("spawn the shell on a pty");
    shell.set_expect_timeout(Some(Duration::from_secs(30)));
    let (_, printed) = until(&mut shell, "Type `help`", "greeting");
    assert!(
        printed.contains("plugin skipped: ") && printed.contains("hello.rhai:2:13: syntax error"),
        "the broken plugin is reported: {printed:?}"
    );

    shell.send("run loop.rhai\r").expect("send");
    until(
        &mut shell,
        r"loop.rhai:\d+:\d+: stopped after \d+ operations",
        "the endless loop stops",
    );
    shell.send("whoami\r").expect("send");
    until(
        &mut shell,
        "not logged in, using event demo",
        "the shell carries on",
    );

    shell.send("run sleepy.rhai\r").expect("send");
    until(&mut shell, "sleeping", "the script runs");
    shell.send("\x03").expect("ctrl-c");
    until(
        &mut shell,
        r"sleepy.rhai:2:1: cancelled \(Ctrl-C\)",
        "Ctrl-C stops the script",
    );
    shell.send("whoami\r").expect("send");
    until(
        &mut shell,
        "not logged in, using event demo",
        "the shell is still there",
    );

    std::fs::write(
        &plugin,
        "register_command(#{ name: \"hello\", help: \"greets\",\n  run: |args| `hello ${args[0]}` });\n",
    )
    .expect("repair the plugin");
    shell.send("plugins reload\r").expect("send");
    until(&mut shell, r"hello\s+greets", "the repaired plugin loads");
    shell.send("hello world\r").expect("send");
    until(&mut shell, "hello world", "its command runs");

    shell.send("quit\r").expect("send");
    let status = shell.get_process_mut().wait().expect("wait");
    assert!(
        matches!(status, expectrl::process::unix::WaitStatus::Exited(_, 0)),
        "the shell exited with {status:?}"
    );
}
