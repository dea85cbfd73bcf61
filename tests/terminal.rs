//! The shell at a real terminal: a pseudo-terminal drives the interactive editor as a person
//! would, against a real cluster.

mod common;

use std::time::Duration;

use common::terminal::Terminal;
use common::{Options, TestCluster, BIN};
use expectrl::process::unix::WaitStatus;

/// Opens the interactive shell on `cluster` in its directory (plugins/ and scripts there),
/// with its HOME there too (history), and waits for the greeting; returns what came before.
fn open_shell(cluster: &TestCluster) -> (Terminal, String) {
    let mut shell = spawn_shell(cluster);
    let (_, printed) = shell.until("Type `help`", "greeting");
    (shell, printed)
}

fn spawn_shell(cluster: &TestCluster) -> Terminal {
    let mut command = std::process::Command::new(BIN);
    command
        .arg("--config")
        .arg(&cluster.config_path)
        .current_dir(cluster.dir.path())
        .env("HOME", cluster.dir.path())
        .env_remove("TICKET_PASSWORD");
    Terminal::spawn(command, Duration::from_secs(30))
}

/// `quit`, and the shell ends with status 0.
fn quit(shell: Terminal) {
    let status = shell.quit();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "the shell exited with {status:?}"
    );
}

/// Goal: at a terminal the password is never echoed, Tab completes a free seat id of the
/// event in use right after login, Ctrl-R finds an earlier command, and the death of the node serving the shell goes
/// unnoticed by the person typing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_login_completion_history_search_and_failover_work() {
    let mut cluster = TestCluster::with_user1(Options::default()).await;

    let (mut shell, _) = open_shell(&cluster);

    shell.send("login user1\r");
    shell.until("Password for user1:", "password prompt");
    shell.send("mysecret\r");
    let (_, printed) = shell.until("logged in as user1", "login");
    assert!(
        !printed.contains("mysecret"),
        "the password was echoed: {printed:?}"
    );

    // Completion offers the free seats of the event in use as soon as the login is done,
    // nothing else asked for. The menu styles the typed prefix apart, so escape codes may
    // split "S" from "10".
    shell.send("reserve S\t");
    shell.until(
        r"S(\x1b\[[0-9;]*m)*10",
        "the completion menu lists the seats",
    );
    shell.send("\t");
    shell.send("\r");
    shell.send("\r");
    // "reserve S" alone is no seat: the completion filled in a whole one (which one depends
    // on the menu's first selection).
    let (said, printed) = shell.until(r"reserved S[0-9]+|error: [^\r\n]*", "the reservation ran");
    assert!(said.starts_with("reserved S"), "{said:?} after {printed:?}");

    // Ctrl-R finds the reservation again; running it is refused, as the seat is now taken.
    shell.send("\x12reser");
    shell.until("reverse-search", "search prompt");
    shell.send("\r");
    shell.send("\r");
    shell.until("already reserved", "the earlier command ran again");

    // Kill the node the shell uses (the leader, where its writes went): nothing to notice.
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    cluster.kill(leader);
    shell.send("bookings\r");
    shell.until("bk-[0-9]+", "bookings after the failover, still logged in");

    quit(shell);
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

    let (mut shell, printed) = open_shell(&cluster);
    assert!(
        printed.contains("plugin skipped: ") && printed.contains("hello.rhai:2:13: syntax error"),
        "the broken plugin is reported: {printed:?}"
    );

    shell.send("run loop.rhai\r");
    shell.until(
        r"loop.rhai:\d+:\d+: stopped after \d+ operations",
        "the endless loop stops",
    );
    shell.send("whoami\r");
    shell.until("not logged in, using event demo", "the shell carries on");

    shell.send("run sleepy.rhai\r");
    shell.until("sleeping", "the script runs");
    shell.send("\x03");
    shell.until(
        r"sleepy.rhai:2:1: cancelled \(Ctrl-C\)",
        "Ctrl-C stops the script",
    );
    shell.send("whoami\r");
    shell.until(
        "not logged in, using event demo",
        "the shell is still there",
    );

    std::fs::write(
        &plugin,
        "register_command(#{ name: \"hello\", help: \"greets\",\n  run: |args| `hello ${args[0]}` });\n",
    )
    .expect("repair the plugin");
    shell.send("plugins reload\r");
    shell.until(r"hello\s+greets", "the repaired plugin loads");
    shell.send("hello world\r");
    shell.until("hello world", "its command runs");

    quit(shell);
}

/// Goal: at a terminal, when no node of cluster.toml answers and every node is on this
/// machine, the shell starts the local cluster itself, works against it, and stops it when
/// the person quits. (Without a terminal it does not: a script gets an error instead.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_the_shell_starts_the_local_cluster_and_stops_it_on_quit() {
    let cluster = TestCluster::configure(Options::default());
    let mut shell = spawn_shell(&cluster);
    // A new cluster: the first admin's password is asked for, twice, never echoed.
    let (_, before) = shell.until("Admin password: ", "the first admin's password asked for");
    shell.send("first-admin-pw\r");
    shell.until("Again: ", "the password asked again");
    shell.send("first-admin-pw\r");
    let (_, printed) = shell.until("Type `help`", "greeting");
    assert!(!printed.contains("first-admin-pw"), "echoed: {printed:?}");
    assert!(
        before.contains("No node answered; starting the local cluster"),
        "{before:?}"
    );
    shell.send("status\r");
    shell.until(r"leader: node[0-9]", "the status of the cluster it started");
    shell.send("seats\r");
    shell.until("legend", "the demo event's seat map");
    let client = cluster.client().with_call_timeout(Duration::from_secs(1));
    assert!(client.cluster_status().await.is_ok(), "the nodes serve");
    let mut admin = cluster.client();
    admin
        .login("admin", "first-admin-pw")
        .await
        .expect("the admin has the password typed at first start");
    quit(shell);
    let client = &client;
    common::poll_for(
        "the shell's nodes to stop",
        Duration::from_secs(10),
        || async move { client.cluster_status().await.is_err().then_some(()) },
    )
    .await;
}

/// A chat-completions server whose answers wait at gates the test opens: the first request
/// streams "S2 is ", waits for `release`, then "free."; every later request waits forever.
async fn gated_model(
    release: std::sync::Arc<tokio::sync::Notify>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use futures::StreamExt;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let handler = move || {
        let (release, calls) = (release.clone(), calls.clone());
        async move {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let chunk = |text: &str| {
                let json = serde_json::json!({ "choices": [{ "index": 0, "delta": { "content": text } }] });
                Ok::<_, std::convert::Infallible>(format!("data: {json}\n\n"))
            };
            let head = futures::stream::iter(if first { vec![chunk("S2 is ")] } else { vec![] });
            let tail = futures::stream::once(async move {
                if first {
                    release.notified().await;
                } else {
                    std::future::pending::<()>().await;
                }
                chunk("free.")
            })
            .chain(futures::stream::iter(vec![Ok(
                "data: [DONE]\n\n".to_string()
            )]));
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(head.chain(tail)),
            )
        }
    };
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), counted)
}

/// Goal: an openai answer streams into the shell as it arrives (the first words are on the
/// screen while the rest is still coming), the tools it used are named, and Ctrl-C cancels a
/// question that hangs without ending the shell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_an_openai_answer_streams_and_ctrl_c_cancels_a_question() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (base_url, calls) = gated_model(release.clone()).await;
    let mut text = std::fs::read_to_string(&cluster.config_path).expect("config");
    text.push_str(&format!(
        "\n[assistant.openai]\nbase_url = \"{base_url}\"\nmodel = \"m\"\napi_key_env = \"NO_KEY_HERE\"\n"
    ));
    std::fs::write(&cluster.config_path, text).expect("config");

    let (mut shell, _) = open_shell(&cluster);

    shell.send("ask --openai is S2 free\r");
    let (_, before) = shell.until("S2 is ", "the first words");
    assert!(!before.contains("free."), "{before:?}");
    release.notify_one();
    let (_, between) = shell.until(r"\[openai; tools used: none\]", "the rest and the tools");
    assert!(between.contains("free."), "{between:?}");
    shell.until("demo node[0-9]", "the next prompt");

    shell.send("ask --openai and S3?\r");
    // Once the question has reached the model the shell is waiting, not editing.
    let calls = &calls;
    common::poll_for(
        "the second question at the model",
        Duration::from_secs(10),
        || async move { (calls.load(std::sync::atomic::Ordering::SeqCst) >= 2).then_some(()) },
    )
    .await;
    shell.send("\x03");
    shell.until("cancelled", "Ctrl-C cancels the question");
    shell.send("whoami\r");
    shell.until("not logged in, using event demo", "the shell carries on");
    quit(shell);
}
