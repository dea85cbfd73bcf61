//! The shell driven without a terminal, as a script drives it: `-c`, `-f`, stdin, `--json`,
//! and exit codes, against a real cluster.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{run_ticket, Options, TestCluster, BIN};

/// Runs the shell with `args`, writing `stdin` to it. The password comes from
/// TICKET_PASSWORD, unless `--password-stdin` asks for it on stdin (then only from there).
fn ticket(cluster: &TestCluster, args: &[&str], stdin: &str) -> Output {
    let password = match args.contains(&"--password-stdin") {
        true => "",
        false => "mysecret",
    };
    let env = [
        ("TICKET_NEW_PASSWORD", "mysecret"),
        ("TICKET_PASSWORD", password),
    ];
    run_ticket(&cluster.config_path, args, stdin, &env)
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

/// Goal: the prototype's demo flow runs from `-c`, one JSON reply a line, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_flow_runs_from_dash_c_with_json_replies() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let args = [
        "--json",
        "--yes",
        "-c",
        "login user1",
        "-c",
        "get",
        "-c",
        "reserve S2",
        "-c",
        "bookings",
        "-c",
        "cancel S2",
        "-c",
        "seats",
        "-c",
        "status",
        "-c",
        "events",
        "-c",
        "whoami",
    ];
    let out = ticket(&cluster, &args, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = json_lines(&out);
    assert_eq!(replies.len(), 9, "{replies:?}");
    assert_eq!(replies[0]["user"], "user1");
    assert_eq!(replies[1]["seats"].as_array().expect("seats").len(), 10);
    assert_eq!(replies[2]["booking"]["seats"][0], "S2");
    assert_eq!(
        replies[3]["bookings"].as_array().expect("bookings").len(),
        1
    );
    assert_eq!(replies[4]["seats"][0], "S2");
    let s2 = &replies[5]["seats"][1];
    assert_eq!(
        (s2["id"].as_str(), s2["status"].as_str()),
        (Some("S2"), Some("free"))
    );
    assert!(replies[6]["leader"].as_u64().is_some());
    assert!(replies[7]["events"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    assert_eq!(replies[8]["event"], "demo");
}

/// Goal: piped commands run in order; the first failure stops the rest and exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_commands_stop_at_the_first_failure_with_a_nonzero_exit() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let out = ticket(
        &cluster,
        &[],
        "login user1\nreserve S4\nreserve S4\nreserve S5\n",
    );
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("reserved S4"), "{stdout}");
    assert!(
        stderr.contains("already reserved") && stderr.contains("S4"),
        "{stderr}"
    );
    // S5 was never tried.
    let seats = cluster
        .client()
        .get_seats("demo", ticket::client::Consistency::Linearizable)
        .await
        .expect("seats");
    let s5 = seats.seats.iter().find(|s| s.id == "S5").expect("S5");
    assert_eq!(s5.status, ticket::pb::booking::v1::SeatStatus::Free as i32);
    // Plain output when piped: no terminal colour codes.
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
}

/// Goal: without a terminal a confirmation is refused, not prompted; `--yes` gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_without_yes_is_refused_when_not_at_a_terminal() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let out = ticket(
        &cluster,
        &["-c", "login user1", "-c", "reserve S6", "-c", "cancel S6"],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let out = ticket(
        &cluster,
        &["--yes", "-c", "login user1", "-c", "cancel S6"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Goal: a file of commands runs like piped ones; an unknown command names itself and the
/// line it stopped at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_file_runs_and_reports_where_it_stopped() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let file = cluster.dir.path().join("flow.txt");
    std::fs::write(
        &file,
        "# the demo\nlogin user1\nreserve S8\nbogus\nreserve S9\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8");
    let out = ticket(&cluster, &["-f", path], "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown command 'bogus'"), "{stderr}");
    assert!(stderr.contains("flow.txt:4"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("reserved S8"));
}

/// Goal: errors are JSON too under `--json`, and a wrong password fails cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_under_json() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let args = ["--json", "--password-stdin", "-c", "login user1"];
    let out = ticket(&cluster, &args, "not-the-password\n");
    assert!(!out.status.success());
    let replies = json_lines(&out);
    assert!(replies[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("wrong user name or password")));
}

/// Goal: when the node the shell talks to dies, the shell moves to another node without
/// losing the login, and the next command just works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_survives_the_death_of_its_node_keeping_the_login() {
    use std::io::{BufRead, BufReader};

    let mut cluster = TestCluster::with_user1(Options::default()).await;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cluster.config_path)
        .arg("--json")
        .env("TICKET_PASSWORD", "mysecret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ticket");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut replies = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_reply = || -> serde_json::Value {
        let line = replies.next().expect("a reply").expect("read");
        serde_json::from_str(&line).expect("json")
    };
    writeln!(stdin, "login user1").expect("write");
    assert_eq!(next_reply()["user"], "user1");
    writeln!(stdin, "reserve S3").expect("write");
    assert_eq!(next_reply()["booking"]["seats"][0], "S3");
    // The prompt's node is the one the shell is using: kill it.
    writeln!(stdin, "status").expect("write");
    let leader = next_reply()["leader"].as_u64().expect("leader");
    cluster.kill(leader);
    writeln!(stdin, "reserve S7").expect("write");
    let reply = next_reply();
    assert_eq!(reply["booking"]["seats"][0], "S7", "{reply}");
    writeln!(stdin, "bookings").expect("write");
    assert_eq!(
        next_reply()["bookings"].as_array().expect("bookings").len(),
        2
    );
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(status.success());
}

/// Goal: `--password-stdin` takes the first line of stdin; the commands follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_comes_first_on_stdin_and_commands_follow() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let input = "mysecret\nlogin user1\nwhoami\n";
    let out = ticket(&cluster, &["--password-stdin", "--json"], input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = json_lines(&out);
    assert_eq!(replies[1]["user"], "user1");
}

/// Goal: `status` gives every node's lag behind the leader: a number for each node that
/// answered, in the JSON and as a column of the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_nodes_lag() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let out = ticket(&cluster, &["--json", "-c", "status"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = &json_lines(&out)[0];
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{status}");
    for node in nodes {
        let lag = node.get("lag").unwrap_or_else(|| panic!("no lag: {node}"));
        if node["reachable"] == true {
            assert!(lag.is_u64(), "a reachable node's lag is a number: {node}");
        } else {
            assert!(lag.is_null(), "{node}");
        }
    }
    assert!(
        nodes.iter().any(|n| n["reachable"] == true),
        "some node answered: {status}"
    );

    let out = ticket(&cluster, &["-c", "status"], "");
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table
        .lines()
        .find(|l| l.starts_with("node "))
        .unwrap_or_else(|| panic!("a header: {table}"));
    assert!(header.split_whitespace().any(|w| w == "lag"), "{table}");
    // Every node's row ends with its lag, a number (or - for one that did not answer).
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("node1 ") || l.starts_with("node2 ") || l.starts_with("node3 "))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in rows {
        let last = row.split_whitespace().last().unwrap_or("");
        assert!(last == "-" || last.parse::<u64>().is_ok(), "{row}");
    }
}

/// Goal: `history` without a terminal prints the shell's history file (the one `TICKET_HISTORY`
/// names), numbered, or as a JSON array under `--json`; no file yet is an empty history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_the_history_file_without_a_terminal() {
    let cluster = TestCluster::start(Options {
        nodes: 1,
        ..Options::default()
    });
    let file = cluster.dir.path().join("history");
    let history = file.to_str().expect("utf-8");
    let env = [("TICKET_HISTORY", history)];

    let out = run_ticket(&cluster.config_path, &["--json", "-c", "history"], "", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out)[0]["history"], serde_json::json!([]));

    // As reedline writes it: one entry a line, a newline within one as <\n>.
    std::fs::write(&file, "login user1\nreserve S2\nrun x.rhai<\\n>more\n").expect("write");
    let out = run_ticket(&cluster.config_path, &["-c", "history"], "", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["1  login user1", "2  reserve S2"], "{text}");
    assert!(text.contains("3  run x.rhai\nmore"), "{text}");

    let out = run_ticket(&cluster.config_path, &["--json"], "history\n", &env);
    assert!(out.status.success());
    let reply = &json_lines(&out)[0];
    assert_eq!(
        reply["history"],
        serde_json::json!(["login user1", "reserve S2", "run x.rhai\nmore"]),
        "{reply}"
    );
    assert_eq!(reply["file"], history);
}

/// Goal: every kind of command answers `--json` with one JSON object a line and exit status
/// 0: help, help CMD, login, whoami, event create and user add (as the admin), use, seats,
/// reserve, cancel bk-N, plugins, history, logout; and a failing command ends the run with
/// exit status 1 and a JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_json_with_an_exit_status() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let history = cluster.dir.path().join("history");
    let history = history.to_str().expect("utf-8");
    let env = [
        ("TICKET_PASSWORD", common::ADMIN_PASSWORD),
        ("TICKET_NEW_PASSWORD", "carols-secret"),
        ("TICKET_HISTORY", history),
    ];
    let commands = [
        "help",
        "help reserve",
        "login admin",
        "whoami",
        "event create jsongala --rows 2 --seats-per-row 3",
        "use jsongala",
        "seats",
        "use demo",
        "reserve S9",
        "user add carol",
        "plugins",
        "history",
    ];
    let mut args = vec!["--json", "--yes"];
    for command in &commands {
        args.extend(["-c", command]);
    }
    let out = run_ticket(&cluster.config_path, &args, "", &env);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = json_lines(&out);
    assert_eq!(replies.len(), commands.len(), "{replies:?}");
    assert!(
        replies
            .iter()
            .all(|r| r.is_object() && r.get("error").is_none()),
        "{replies:?}"
    );
    let names = replies[0]["commands"]
        .as_array()
        .expect("help lists commands");
    assert!(names.iter().any(|n| n == "reserve"), "{}", replies[0]);
    assert_eq!(replies[1]["command"], "reserve");
    assert!(replies[1]["usage"]
        .as_str()
        .is_some_and(|u| u.starts_with("reserve")));
    assert_eq!(
        (&replies[2]["user"], &replies[2]["role"]),
        (&"admin".into(), &"admin".into())
    );
    assert_eq!(replies[3]["user"], "admin");
    let gala = &replies[4]["event"];
    assert_eq!(
        (&gala["name"], &gala["rows"], &gala["seats_per_row"]),
        (&"jsongala".into(), &2.into(), &3.into()),
        "{gala}"
    );
    assert_eq!(replies[5]["event"], "jsongala");
    assert_eq!(
        replies[6]["seats"].as_array().map(Vec::len),
        Some(6),
        "{}",
        replies[6]
    );
    assert_eq!(replies[7]["event"], "demo");
    let booking = replies[8]["booking"]["id"]
        .as_str()
        .expect("a booking id")
        .to_string();
    assert!(booking.starts_with("bk-"), "{booking}");
    assert_eq!(
        (&replies[9]["user"], &replies[9]["role"]),
        (&"carol".into(), &"customer".into())
    );
    assert!(replies[10]["commands"].is_array(), "{}", replies[10]);
    assert!(replies[11]["history"].is_array(), "{}", replies[11]);

    // Cancel that booking by id, log out, and show who is left; then a failure.
    let cancel = format!("cancel {booking}");
    let args = [
        "--json",
        "--yes",
        "-c",
        "login admin",
        "-c",
        &cancel,
        "-c",
        "logout",
        "-c",
        "whoami",
        "-c",
        "reserve S9",
        "-c",
        "whoami",
    ];
    let out = run_ticket(&cluster.config_path, &args, "", &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = json_lines(&out);
    assert_eq!(
        replies.len(),
        5,
        "the run stops at the failure: {replies:?}"
    );
    assert_eq!(
        replies[1]["seats"],
        serde_json::json!(["S9"]),
        "{}",
        replies[1]
    );
    assert_eq!(replies[2]["logged_out"], "admin");
    assert!(replies[3]["user"].is_null(), "{}", replies[3]);
    assert!(
        replies[4]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "reserve without a login fails as JSON: {}",
        replies[4]
    );

    // The new customer can log in with the password given on the way in.
    let env = [
        ("TICKET_PASSWORD", "carols-secret"),
        ("TICKET_HISTORY", history),
    ];
    let out = run_ticket(
        &cluster.config_path,
        &["--json", "-c", "login carol"],
        "",
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_lines(&out)[0]["user"], "carol");

    // A command that does not parse fails the same way.
    let out = run_ticket(&cluster.config_path, &["--json", "-c", "bogus"], "", &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(json_lines(&out)[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("unknown command 'bogus'")));
}

/// Goal: `seats --watch` prints the map, then a change someone else makes, as it is applied,
/// and stops after the number of changes asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_watch_shows_another_persons_booking_live() {
    use std::io::BufRead;
    let cluster = TestCluster::with_user1(Options::default()).await;
    let booker = cluster.customer("user2").await;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cluster.config_path)
        .args([
            "--json",
            "-c",
            "login user1",
            "-c",
            "seats --watch --updates 1",
        ])
        .env("TICKET_PASSWORD", "mysecret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the shell");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let value = serde_json::from_str(&line).expect("one JSON object a line");
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    let next = || {
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the shell printed in time")
    };
    assert_eq!(next()["user"], "user1", "the login");
    let map = next();
    assert_eq!(map["seats"].as_array().map(Vec::len), Some(10), "{map}");
    // The map is out: the watch is open (or opening; it resumes from the map's index).
    booker.reserve("demo", &["S9"]).await.expect("reserve");
    let change = next();
    assert_eq!(change["reset"], false, "{change}");
    assert_eq!(change["seats"][0]["id"], "S9");
    assert_eq!(change["seats"][0]["status"], "taken");
    assert_eq!(change["seats"][0]["holder"], "", "not told who holds it");
    let done = next();
    assert_eq!(done["watched"], 1, "{done}");
    let status = child.wait().expect("the shell exits");
    assert!(status.success());
}

/// Goal: `event info NAME`, added through the command table only, answers in the shell (text
/// and `--json`), in `help`, and as the script function the table generates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_info_comes_from_the_table_to_the_shell_help_and_scripts() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    user1.reserve("demo", &["S1", "S2"]).await.expect("book");

    let out = ticket(
        &cluster,
        &["--json", "-c", "event info demo", "-c", "help event"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = json_lines(&out);
    let event = &replies[0]["event"];
    assert_eq!(event["name"], "demo");
    assert_eq!(event["taken"], 2);
    assert_eq!(event["free"], 8);
    assert_eq!(event["holders_shown_to"], "the holder and admins");
    assert!(replies[1]["usage"]
        .as_str()
        .is_some_and(|u| u.contains("event info NAME")));

    let text = ticket(&cluster, &["-c", "event info demo"], "");
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(said.contains("8 free, 2 taken"), "{said}");
    let missing = ticket(&cluster, &["-c", "event info nowhere"], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("there is no event 'nowhere'"));

    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("info.rhai");
    std::fs::write(
        &script,
        "let info = event_info(\"demo\");\ninfo.event.taken\n",
    )
    .expect("write");
    let script = script.display().to_string();
    let run = ticket(&cluster, &["run", &script, "--json"], "");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let reply: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&run.stdout).trim()).expect("json");
    assert_eq!(reply["result"], 2, "{reply}");
}

/// Goal: a venue's categories come from a TOML file given to `event create`; `event info`
/// shows their prices and per-person limits; a hold past a category's own limit is refused
/// while the event's limit still has room, and changes nothing; a mistake in the file names
/// its line and key and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_categories_file_prices_a_venue_and_limits_a_category_per_person() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let venue = dir.path().join("venue.toml");
    std::fs::write(
        &venue,
        "currency = \"chf\"\n\n[[category]]\nname = \"front\"\nprice = \"80\"\ncovers = [\"A\"]\nmax_per_user = 2\n\n[[category]]\nname = \"rear\"\nprice = 45\ncovers = [\"B-C\"]\n",
    )
    .expect("write the venue");
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[category]]\nname = \"front\"\nprice = 80.5\ncovers = [\"A\"]\n",
    )
    .expect("write the broken venue");
    let admin_env = [("TICKET_PASSWORD", common::ADMIN_PASSWORD)];
    let create = |file: &std::path::Path, name: &str| {
        let line = format!(
            "event create {name} --rows 3 --seats-per-row 6 --max-per-user 8 --categories {}",
            file.display()
        );
        run_ticket(
            &cluster.config_path,
            &["--json", "-c", "login admin", "-c", &line],
            "",
            &admin_env,
        )
    };
    let refused = create(&broken, "brokenhall");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(
        said.contains("broken.toml:3:9") && said.contains("category[0].price"),
        "{said}"
    );
    let made = create(&venue, "hall");
    assert!(
        made.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&made.stdout),
        String::from_utf8_lossy(&made.stderr)
    );
    let event = &json_lines(&made)[1]["event"];
    assert_eq!(event["currency"], "CHF");
    assert_eq!(event["categories"][0]["max_seats_per_user"], 2);
    assert_eq!(event["categories"][1]["price_minor"], 4_500);

    let info = ticket(
        &cluster,
        &["-c", "event info hall", "-c", "event info brokenhall"],
        "",
    );
    let said = String::from_utf8_lossy(&info.stdout);
    assert!(
        said.contains("front 80.00 CHF (A, at most 2 a person), rear 45.00 CHF (B-C)"),
        "{said}"
    );
    assert!(
        String::from_utf8_lossy(&info.stderr).contains("there is no event 'brokenhall'"),
        "the broken file created nothing"
    );

    let user1 = ticket(
        &cluster,
        &[
            "--json",
            "-c",
            "login user1",
            "-c",
            "use hall",
            "-c",
            "hold A1 A2 B1",
            "-c",
            "hold A3",
        ],
        "",
    );
    assert!(!user1.status.success(), "the third front seat is refused");
    let replies = json_lines(&user1);
    assert_eq!(
        replies[2]["hold"]["seats"],
        serde_json::json!(["A1", "A2", "B1"])
    );
    let error = replies[3]["error"].as_str().expect("an error");
    assert!(
        error.contains("'hall' allows 2 front seats per person; you have 2 and asked for 1 more"),
        "{error}"
    );
    let seats = ticket(
        &cluster,
        &["--json", "-c", "login user1", "-c", "seats hall"],
        "",
    );
    let map = &json_lines(&seats)[1];
    let a3 = map["seats"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "A3"))
        .expect("A3");
    assert_eq!(a3["status"], "free", "a refused hold changes nothing");
}
