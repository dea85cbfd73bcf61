//! Rhai scenarios and plugins against real clusters: every script of `scripts/` runs green,
//! the sandbox stops what it must with `file:line:col`, and plugins load, work, or are
//! reported and skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{run_ticket, Options, TestCluster};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// `ticket run FILE ARGS...` against `cluster`'s config.
fn run_script(cluster: &TestCluster, file: &Path, args: &[&str]) -> Output {
    let file = file.display().to_string();
    let mut all = vec!["run", file.as_str()];
    all.extend_from_slice(args);
    run_ticket(&cluster.config_path, &all, "", &[])
}

/// A one-node cluster with a leader, and a folder for the scripts a test writes.
async fn one_node() -> (TestCluster, tempfile::TempDir) {
    let cluster = TestCluster::start(Options {
        nodes: 1,
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(5)).await;
    (cluster, tempfile::tempdir().expect("temp dir"))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Goal: the demo, race and flash-sale scenarios run green one after another against a
/// cluster someone else started (each can run again on the state the others left), and
/// the race has exactly one winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_scenarios_run_green_against_a_running_cluster() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;

    let demo = run_script(&cluster, &repo("scripts/demo.rhai"), &[]);
    assert_ok(&demo, "demo.rhai");
    let said = text(&demo.stdout);
    assert!(said.contains("reserved S2 as bk-"), "{said}");
    assert!(said.contains("cancelled S2"), "{said}");
    assert!(said.contains("demo done"), "{said}");

    let race = run_script(&cluster, &repo("scripts/race.rhai"), &[]);
    assert_ok(&race, "race.rhai");
    let said = text(&race.stdout);
    assert!(said.contains("49 were told it is taken"), "{said}");

    // A cluster it did not start: the admin's password comes as the argument.
    let sale = run_script(
        &cluster,
        &repo("scripts/flash_sale.rhai"),
        &[common::ADMIN_PASSWORD],
    );
    assert_ok(&sale, "flash_sale.rhai");
    assert!(
        text(&sale.stdout).contains("each sold once"),
        "{}",
        text(&sale.stdout)
    );

    // The whole checkout: hold the best four, extend, confirm, tickets, check-in once.
    let checkout = run_script(
        &cluster,
        &repo("scripts/checkout.rhai"),
        &[common::ADMIN_PASSWORD],
    );
    assert_ok(&checkout, "checkout.rhai");
    let said = text(&checkout.stdout);
    assert!(said.contains("second scan refused"), "{said}");
    assert!(said.contains("checkout done"), "{said}");

    // Again, on what the first runs left behind: the scenarios clean up or make their own.
    for script in ["demo", "race", "flash_sale", "checkout"] {
        let args: &[&str] = match script {
            "flash_sale" | "checkout" => &[common::ADMIN_PASSWORD],
            _ => &[],
        };
        let again = run_script(&cluster, &repo(&format!("scripts/{script}.rhai")), args);
        assert_ok(&again, &format!("{script}.rhai, the second time"));
    }

    // This cluster is not the script's: it may not kill a node of it, and says why.
    let dir = tempfile::tempdir().expect("temp dir");
    let kill = dir.path().join("kill.rhai");
    std::fs::write(&kill, "print(leader());\nkill(1);\n").expect("write");
    let out = run_script(&cluster, &kill, &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("kill.rhai:2:1: kill(1) controls only a cluster this process started"),
        "{err}"
    );
    assert!(
        cluster.client().cluster_status().await.is_ok(),
        "node 1 still serves"
    );
}

/// Goal: failover.rhai, given a cluster of its own (`ticket run` starts it when no node
/// answers), kills the leader mid-sale, sees bookings continue under a new leader, finds
/// every acknowledged booking, restarts the node, and stops the cluster when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_scenario_kills_the_leader_of_its_own_cluster() {
    let cluster = TestCluster::configure(Options::default());
    let started = Instant::now();
    let out = run_script(&cluster, &repo("scripts/failover.rhai"), &[]);
    assert_ok(&out, "failover.rhai");
    let said = text(&out.stdout);
    assert!(said.contains("took over"), "{said}");
    assert!(said.contains("none lost"), "{said}");
    assert!(said.contains("restarted and rejoined"), "{said}");
    assert!(text(&out.stderr).contains("starting the local cluster"));
    assert!(started.elapsed() < Duration::from_secs(60));
    // Its nodes are gone with it.
    let down = cluster
        .client()
        .with_call_timeout(Duration::from_secs(1))
        .cluster_status()
        .await;
    assert!(down.is_err(), "the script's cluster should stop with it");
}

/// Goal: the sandbox stops an endless loop, a string doubling without end, endless
/// recursion and a call to a function that does not exist, each within seconds, each with
/// `file:line:col`, the offending line and a message that says what happened; a syntax error
/// is reported the same way before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_stops_runaway_scripts_with_a_clear_error() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "loop.rhai",
            "let n = 0;\nloop {\n    n += 1;\n}\n",
            "loop.rhai:3:5: stopped after",
            "an endless loop?",
        ),
        (
            "huge.rhai",
            "let s = \"x\";\nwhile true {\n    s += s;\n}\n",
            "huge.rhai:3:7: Length of string",
            "strings 1 MiB",
        ),
        (
            "deep.rhai",
            "fn down(n) {\n    down(n + 1)\n}\ndown(0);\n",
            "deep.rhai:4:1: stopped at",
            "endless recursion?",
        ),
        (
            "missing.rhai",
            "let n = 3;\nreserve_everything(n);\n",
            "missing.rhai:2:1: there is no function reserve_everything (i64)",
            "2 | reserve_everything(n);",
        ),
        (
            "syntax.rhai",
            "let a = [1, 2;\n",
            "syntax.rhai:1:14: syntax error",
            "1 | let a = [1, 2;",
        ),
        (
            "throws.rhai",
            "login(\"nobody\", \"wrong-password\");\n",
            "throws.rhai:1:1: wrong user name or password",
            "1 | login(",
        ),
    ];
    for (name, source, location, detail) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, source).expect("write");
        let started = Instant::now();
        let out = run_script(&cluster, &file, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(location), "{name}: {err}");
        assert!(err.contains(detail), "{name}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

/// Goal: scripts are reachable from the shell (`run` with ARGS, `--json` carrying the value
/// and the prints), and a failing script is an error of the shell's, not its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_in_the_shell_passes_args_and_reports_json() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("hello.rhai");
    std::fs::write(
        &file,
        "print(`hello ${ARGS[0]}`);\nlet e = events();\n#{ first: e[0].name, args: ARGS.len() }\n",
    )
    .expect("write");
    let line = format!("run {} world two", file.display());
    let out = run_ticket(
        &cluster.config_path,
        &["--json", "-c", &line, "-c", "whoami"],
        "",
        &[],
    );
    assert_ok(&out, "run in the shell");
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines[0]["output"], serde_json::json!(["hello world"]));
    assert_eq!(
        lines[0]["result"],
        serde_json::json!({ "first": "demo", "args": 2 })
    );
    assert!(
        lines[1]["event"].is_string(),
        "the next command ran: {}",
        lines[1]
    );

    // Piped commands stop at the first failure, and a script's failure is one.
    let bad = dir.path().join("bad.rhai");
    std::fs::write(&bad, "assert(1 == 2, \"one is not two\");\n").expect("write");
    let stdin = format!("run {}\nwhoami\n", bad.display());
    let out = run_ticket(&cluster.config_path, &[], &stdin, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.rhai:1:1: assertion failed: one is not two"),
        "{err}"
    );
    assert!(
        text(&out.stdout).is_empty(),
        "whoami did not run after the failure"
    );
}

/// Goal: the shipped plugins load with the shell and work (`together` books N adjacent
/// seats of one row in one booking; `occupancy` counts per row and in total); a plugin that
/// fails to parse, one that throws while loading and one that takes a built-in's name are
/// each reported with where and why, and skipped, while the rest load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_load_work_and_broken_ones_are_skipped() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let plugins = cluster.dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    for name in ["together.rhai", "occupancy.rhai"] {
        std::fs::copy(repo(&format!("plugins/{name}")), plugins.join(name)).expect("copy");
    }
    std::fs::write(
        plugins.join("a_broken.rhai"),
        "register_command(#{ name: \"x\"\n",
    )
    .expect("write");
    std::fs::write(
        plugins.join("b_throws.rhai"),
        "let limit = 3;\nthrow `cannot start: ${limit}`;\n",
    )
    .expect("write");
    std::fs::write(
        plugins.join("c_clash.rhai"),
        "register_command(#{ name: \"reserve\", help: \"mine\", run: |args| 1 });\n",
    )
    .expect("write");

    let args = [
        "-c",
        "login user1",
        "-c",
        "reserve S1 S4",
        "-c",
        "together 3",
        "-c",
        "occupancy",
        "-c",
        "plugins",
        "-c",
        "help together",
    ];
    let out = run_ticket(
        &cluster.config_path,
        &args,
        "",
        &[("TICKET_PASSWORD", "mysecret")],
    );
    assert_ok(&out, "plugin commands");
    let said = text(&out.stdout);
    assert!(
        said.contains("reserved S5, S6, S7 together in demo"),
        "{said}"
    );
    assert!(said.contains("    S     5     5"), "{said}");
    assert!(
        said.contains("total: 5 sold, 5 free of 10 (50% sold)"),
        "{said}"
    );
    assert!(said.contains("together N"), "{said}");
    let err = text(&out.stderr);
    assert!(err.contains("a_broken.rhai:2:1: syntax error"), "{err}");
    assert!(err.contains("b_throws.rhai:2:1: cannot start: 3"), "{err}");
    assert!(
        err.contains("command 'reserve' is already a built-in command; skipped"),
        "{err}"
    );

    // The booking is one: S5-S7 share an id; and a request it cannot meet changes nothing.
    let mut client = cluster.client();
    client.login("user1", "mysecret").await.expect("login");
    let bookings = client.my_bookings().await.expect("bookings").bookings;
    assert!(
        bookings.iter().any(|b| b.seats == ["S5", "S6", "S7"]),
        "{bookings:?}"
    );
    let args = ["-c", "login user1", "-c", "together 6"];
    let out = run_ticket(
        &cluster.config_path,
        &args,
        "",
        &[("TICKET_PASSWORD", "mysecret")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no 6 adjacent free seats in one row of demo"));
    assert_eq!(
        client.my_bookings().await.expect("bookings").bookings.len(),
        2
    );
}

/// Goal: each `parallel` branch has its own copy of what the closure captured. Many branches
/// read a captured array at once without "Data race detected" (rhai's lock on a shared
/// variable gives up after 50 ms, which fifty branches on two busy cores could reach), and a
/// branch that changes it changes only its copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_have_their_own_copy_of_what_they_capture() {
    let (cluster, dir) = one_node().await;
    let file = dir.path().join("captures.rhai");
    std::fs::write(
        &file,
        "let seen = [1, 2, 3];\n\
         let lens = parallel(64, |i| {\n\
             let sum = 0;\n\
             for k in 0..2000 {\n\
                 sum += seen[k % seen.len()];\n\
             }\n\
             seen.push(i);\n\
             [seen.len(), sum]\n\
         });\n\
         for r in lens {\n\
             assert(r[0] == 4, `a branch saw another's push: ${r}`);\n\
             assert(r[1] == 3999, `a branch read ${r[1]}`);\n\
         }\n\
         assert(seen.len() == 3, `the caller's array changed: ${seen}`);\n\
         print(\"own copies\");\n",
    )
    .expect("write");
    let out = run_script(&cluster, &file, &[]);
    assert_ok(&out, "captures.rhai");
    assert!(text(&out.stdout).contains("own copies"));
}

/// Goal: `parallel` cannot be nested: a branch that calls it gets a catchable error saying
/// so (so recursion through `parallel` and 256 × 256 threads are both refused at once), and
/// uncaught it ends the script with `file:line:col`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_parallel_is_refused() {
    let (cluster, dir) = one_node().await;

    let caught = dir.path().join("caught.rhai");
    std::fs::write(
        &caught,
        "let inner = parallel(2, |i| {\n    let said = \"nested ran\";\n    \
         try {\n        parallel(256, |j| parallel(256, |k| k));\n    } catch (e) {\n        \
         said = `${e}`;\n    }\n    said\n});\n\
         assert(inner.len() == 2, \"two branches\");\n\
         for said in inner {\n    assert(said.contains(\"parallel cannot be nested\"), said);\n}\n\
         print(\"refused twice\");\n",
    )
    .expect("write");
    let started = Instant::now();
    let out = run_script(&cluster, &caught, &[]);
    assert_ok(&out, "caught.rhai");
    assert!(text(&out.stdout).contains("refused twice"));
    assert!(started.elapsed() < Duration::from_secs(30));

    let cases = [
        (
            "recursive.rhai",
            "fn r(d) {\n    parallel(1, |i| r(d + 1))\n}\nr(0);\n",
            "recursive.rhai:2:5: parallel cannot be nested",
        ),
        (
            "square.rhai",
            "let n = 256;\nparallel(n, |i| {\n    parallel(n, |j| j)\n});\n",
            "square.rhai:3:5: parallel cannot be nested",
        ),
    ];
    for (name, source, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, source).expect("write");
        let started = Instant::now();
        let out = run_script(&cluster, &file, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

/// Goal: a run has a time limit (`--timeout SECS` here) that the operations bound cannot
/// give: a loop that sleeps, a loop of calls to the cluster, a loop that catches every
/// error, and `parallel` branches that sleep are each stopped soon after it with
/// `file:line:col` and "the script ran longer than N s".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_limit_stops_sleeping_and_calling_loops() {
    let (cluster, dir) = one_node().await;
    let cases = [
        ("sleepy.rhai", "let n = 0;\nloop {\n    sleep(50);\n}\n", "sleepy.rhai:3:5: "),
        ("calls.rhai", "loop {\n    seats();\n}\n", "calls.rhai:2:5: "),
        (
            "stubborn.rhai",
            "loop {\n    try {\n        sleep(1000);\n    } catch (e) {\n        print(e);\n    }\n}\n",
            "stubborn.rhai:3:9: ",
        ),
        (
            "branches.rhai",
            "parallel(3, |i| {\n    loop {\n        sleep(1000);\n    }\n});\n",
            // As rhai reports what ends a run inside a call: where the call is.
            "branches.rhai:1:1: ",
        ),
    ];
    for (name, source, location) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, source).expect("write");
        let started = Instant::now();
        let out = run_script(&cluster, &file, &["--timeout", "2"]);
        let took = started.elapsed();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        let message = format!("{location}the script ran longer than 2 s");
        assert!(err.contains(&message), "{name}: {err}");
        // It ran its 2 s, and stopped soon after (the run includes starting the process).
        assert!(
            took >= Duration::from_secs(2),
            "{name} stopped after {took:?}"
        );
        assert!(took < Duration::from_secs(20), "{name} took {took:?}");
    }
}

/// Goal: values a script holds where rhai's size limits do not look (strings curried into
/// function pointers, a thousand of a megabyte each) are still bounded: the run stops at its
/// memory budget with a clear error, and the process never holds the gigabyte it asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curried_strings_cannot_hold_more_than_the_memory_budget() {
    let cluster = TestCluster::start(Options::default());
    cluster.wait_leader(Duration::from_secs(5)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("curry.rhai");
    let source = "let s = \"x\";\nfor i in 0..19 { s += s; }\nlet held = [];\n\
                  for i in 0..1000 {\n    held.push(Fn(\"len\").curry(s + i));\n}\n";
    std::fs::write(&file, source).expect("write");
    let out = run_script(&cluster, &file, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("more than 256 MiB of memory"), "{err}");
    assert!(err.contains("curry.rhai:"), "{err}");
    // The largest child this test process has waited for: the script's `ticket run`.
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let peak_mib = usage.ru_maxrss / 1024;
    assert!(peak_mib < 600, "a child peaked at {peak_mib} MiB");
}
