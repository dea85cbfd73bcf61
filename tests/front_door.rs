//! The front door, tried as a new user would: a cluster that is down is said so at once,
//! `ticket up` supervises its nodes and stops on SIGINT, completions and a man page are
//! generated, typos get a suggestion, and no shipped script leaves an account whose password
//! anyone can read.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{eventually, poll_for, run_ticket, Options, TestCluster, BIN};

/// A command against a cluster that is down answers within this (the probe's 2 s, plus a
/// process start on a busy machine).
const DOWN_ANSWER_MAX: Duration = Duration::from_secs(3);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Goal: with no node running, `ticket status`, `ticket -c status` and `ticket shell -c
/// status` say so within 2 s, with what to do, instead of retrying for 20 s.
#[test]
fn a_cluster_that_is_down_is_said_so_within_two_seconds() {
    let cluster = TestCluster::configure(Options::default());
    for args in [
        &["status"][..],
        &["-c", "status"],
        &["shell", "-c", "status"],
        &["--json", "-c", "events"],
    ] {
        let started = Instant::now();
        let out = run_ticket(&cluster.config_path, args, "", &[]);
        let took = started.elapsed();
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(took < DOWN_ANSWER_MAX, "{args:?} took {took:?}");
        let said = text(&out.stderr) + text(&out.stdout).as_str();
        assert!(
            said.contains("no node of the cluster answered") && said.contains("ticket up"),
            "{args:?}: {said}"
        );
    }
}

/// Goal: `TICKET_CONFIG` names the file, `ticket shell` takes the shell's flags, and a
/// command that needs no cluster (help) runs without one.
#[test]
fn ticket_config_names_the_file_and_shell_takes_the_shells_flags() {
    let cluster = TestCluster::configure(Options::default());
    let out = Command::new(BIN)
        .args(["shell", "--json", "-c", "help reserve"])
        .env("TICKET_CONFIG", &cluster.config_path)
        .current_dir(cluster.dir.path())
        .output()
        .expect("run ticket");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reply: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON reply");
    assert_eq!(reply["command"], "reserve");

    let missing = Command::new(BIN)
        .args(["status"])
        .env("TICKET_CONFIG", cluster.dir.path().join("nowhere.toml"))
        .output()
        .expect("run ticket");
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("nowhere.toml"));
}

/// Goal: a mistyped shell command is answered with the command that was meant.
#[test]
fn a_typo_gets_a_suggestion() {
    let cluster = TestCluster::configure(Options::default());
    let out = run_ticket(&cluster.config_path, &["-c", "resrve S2"], "", &[]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("did you mean 'reserve'"), "{said}");
}

/// Goal: completion scripts for bash, zsh and fish, and a man page, come from the binary.
#[test]
fn completions_and_a_man_page_are_generated() {
    let bash = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .expect("run ticket");
    assert!(bash.status.success());
    let script = text(&bash.stdout);
    assert!(script.contains("_ticket()"), "{script}");
    for subcommand in ["up", "status", "shell", "completions", "bench"] {
        assert!(
            script.contains(subcommand),
            "bash completion lacks {subcommand}"
        );
    }
    for shell in ["zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("run ticket");
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let man = Command::new(BIN).arg("man").output().expect("run ticket");
    assert!(man.status.success());
    assert!(text(&man.stdout).contains(".TH ticket 1"));
}

/// `ticket up`, its stdout read line by line on a thread of its own.
struct Up {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Up {
    fn start(cluster: &TestCluster) -> Up {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&cluster.config_path)
            .arg("up")
            .env("TICKET_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ticket up");
        let (send, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = send.send(line);
                }
            });
        }
        Up {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (seen before or arriving within `within`) that contains `what`.
    fn line(&mut self, what: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(what)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "`ticket up` did not say {what:?} within {within:?}; it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The pid in a line such as "node1 started (pid 1234), ...".
    fn pid(&mut self, what: &str, within: Duration) -> i32 {
        let line = self.line(what, within);
        line.split("(pid ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // SAFETY: signals a child this test spawned; it stops its nodes on SIGTERM.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Goal: `ticket up` starts its nodes at once; a node killed with -9 is started again while
/// the other two keep booking; SIGINT to `up`'s pid (not a terminal's Ctrl-C) stops it and
/// every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_restarts_a_killed_node_and_stops_on_sigint() {
    let cluster = TestCluster::configure(Options::default());
    let mut up = Up::start(&cluster);
    let mut pids: Vec<i32> = (1..=3)
        .map(|id| up.pid(&format!("node{id} started ("), Duration::from_secs(2)))
        .collect();
    up.line("The cluster is up", Duration::from_secs(30));

    let admin = cluster.admin().await;
    admin
        .create_event("up", 10, 20, 200)
        .await
        .expect("an event");
    cluster
        .client()
        .add_user("upuser", "up-password-1", false)
        .await
        .expect("register");

    // SAFETY: node 1 is a child of `ticket up`, which this test spawned.
    unsafe {
        libc::kill(pids[0], libc::SIGKILL);
    }
    // The other two keep booking, while node 1 is down and while it comes back.
    let mut others = ticket::client::Client::of_nodes(
        &cluster.config,
        &[(2, cluster.addr(2)), (3, cluster.addr(3))],
    );
    others
        .login("upuser", "up-password-1")
        .await
        .expect("login");
    let mut booked = 0;
    let restarted = poll_for("node1 to be started again", Duration::from_secs(20), || {
        booked += 1;
        let seat = format!(
            "{}{}",
            (b'A' + (booked / 20) as u8) as char,
            booked % 20 + 1
        );
        let others = others.clone();
        let line = up
            .seen
            .iter()
            .find(|l| l.contains("node1 started again"))
            .cloned();
        for line in up.lines.try_iter() {
            up.seen.push(line);
        }
        async move {
            others
                .reserve("up", &[seat.as_str()])
                .await
                .expect("the others book");
            line
        }
    })
    .await;
    assert!(booked >= 1);
    pids[0] = up.pid("node1 started again", Duration::ZERO);
    assert!(restarted.contains("pid"), "{restarted}");
    let node1 = cluster.node_client(1);
    eventually("node 1 to serve again", Duration::from_secs(20), || {
        let node1 = node1.clone();
        async move { node1.cluster_status().await.is_ok() }
    })
    .await;

    // SIGINT to the pid alone, as `kill -INT` does.
    // SAFETY: signals the `ticket up` this test spawned.
    unsafe {
        libc::kill(up.child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = up.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "`ticket up` ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(gone(pid), "node pid {pid} outlived `ticket up`");
    }
}

/// Goal: a shipped scenario run on a fresh cluster (which `ticket run` starts itself) leaves
/// no account with a password written in the repository: the first admin's is random, and
/// the accounts scripts make get `random_password()`.
#[test]
fn a_script_on_a_fresh_cluster_leaves_no_known_password() {
    let cluster = TestCluster::configure(Options::default());
    let script = repo("scripts/flash_sale.rhai").display().to_string();
    let out = run_ticket(
        &cluster.config_path,
        &["run", &script],
        "",
        &[("TICKET_ADMIN_PASSWORD", "")],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let file = cluster.dir.path().join("data").join("admin-password");
    let admin_password = std::fs::read_to_string(&file).expect("the admin's password file");
    let admin_password = admin_password.trim();
    assert!(admin_password.len() >= 20, "a random password");

    let mut shipped = String::new();
    for dir in ["scripts", "plugins"] {
        for entry in std::fs::read_dir(repo(dir)).expect("read dir") {
            let path = entry.expect("entry").path();
            shipped.push_str(&std::fs::read_to_string(&path).expect("read script"));
        }
    }
    shipped.push_str(&std::fs::read_to_string(repo("README.md")).expect("README"));
    assert!(!shipped.contains(admin_password));
    // No account a script makes has a password written in it.
    // (The password is the second argument; a third may name a role: `"door"`.)
    for call in shipped.split("add_user(").skip(1) {
        let args = call.split(')').next().unwrap_or_default();
        let password = args.split(',').nth(1).unwrap_or_default();
        assert!(
            !password.contains('"'),
            "add_user with a literal password: add_user({args})"
        );
    }
}
