//! The functions a script calls. The booking ones run the shell's own commands through the
//! thread's [`Session`](crate::session::Session) and return the command's JSON reply as rhai
//! maps and arrays, so a script sees exactly what `--json` prints. A command that fails throws
//! its message, which `try { } catch (e) { }` catches.
//!
//! | function | returns |
//! |---|---|
//! | `login(user, password)`, `login(previous_login)` | `#{user, role, expires_at, token}` |
//! | `login_admin()`: as "admin", on a cluster this run started (or TICKET_ADMIN_PASSWORD) | the same |
//! | `logout()`, `whoami()` | `#{user, event}` |
//! | `events()` | array of `#{name, rows, seats_per_row, max_seats_per_user, free, taken}` |
//! | `use_event(name)` | the event's name |
//! | `seats()`, `seats(event)` | `#{event, rows, seats: [#{id, row, status, holder, booking_id}]}` |
//! | `reserve(seat)`, `reserve([seats])` | the booking `#{id, event, seats, user, applied_index}` |
//! | `cancel(seat or "bk-N")`, `cancel([seats])` | `#{event, seats, applied_index}` |
//! | `bookings()` | array of bookings |
//! | `status()` | `#{leader, term, nodes: [#{id, addr, role, reachable, term, last_log_index, applied_index, lag}]}` |
//! | `ask(question)` | the answer, a string |
//! | `add_user(name, password)`, `add_user(name, password, admin)` | `#{user, role}` |
//! | `create_event(name, rows, seats_per_row[, max_per_user])` | the event |
//! | `parallel(n, \|i\| ..)` | the n results, in order of `i` (not nested: a branch cannot call it) |
//! | `leader()`, `kill(id)`, `restart(id)`, `pause(id)`, `resume(id)` | cluster control |
//! | `sleep(ms)`, `assert(cond, message)`, `now_ms()`, `print(x)` | |
//! | `event_info(name)` (generated from the command table, as every command with a script name is) | `#{event: #{name, rows, seats_per_row, max_seats_per_user, free, taken, holders_shown_to}}` |
//! | `random_password()` | 24 random hex digits, for an account the script makes for itself |

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use serde_json::Value;

use super::{
    deadline, enter, in_parallel, join_run, with_context, Context, Host, PARALLEL_MAX,
    SLEEP_MS_MAX, STACK_BYTES,
};
use crate::client::Client;
use crate::local_cluster::LocalCluster;
use crate::session::command::Cmd;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// How long `leader()` and `restart()` wait for the cluster to answer.
const CLUSTER_WAIT: Duration = Duration::from_secs(15);
const CLUSTER_POLL: Duration = Duration::from_millis(50);

fn login(host: &Host, user: &str, password: &str) -> Fallible<Map> {
    let json = run(host, |session| {
        session.mode.password = Some(password.to_string());
        Cmd::Login(Some(user.to_string()))
    })?;
    with_context(|c| c.session.mode.password = None)?;
    let token = with_context(|c| c.session.client.token().map(str::to_string))?;
    let mut map = to_map(json)?;
    map.insert("token".into(), token.unwrap_or_default().into());
    Ok(map)
}

/// The first admin's password, known to this process when it started the local cluster (or
/// given as TICKET_ADMIN_PASSWORD): scripts never carry one of their own.
fn admin_password(host: &Host) -> Fallible<String> {
    if let Some(cluster) = &host.cluster {
        let cluster = cluster.lock().unwrap_or_else(|e| e.into_inner());
        return Ok(cluster.admin_password().to_string());
    }
    std::env::var(crate::config::ADMIN_PASSWORD_ENV).map_err(|_| {
        "login_admin() knows the admin's password only for a cluster this run started, or from \
         TICKET_ADMIN_PASSWORD; pass it to the script instead"
            .into()
    })
}

pub(super) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    engine.register_fn("login", move |user: &str, password: &str| {
        login(&h, user, password)
    });
    let h = host.clone();
    engine.register_fn("login_admin", move || -> Fallible<Map> {
        let password = admin_password(&h)?;
        login(&h, "admin", &password)
    });
    engine.register_fn("login", |previous: Map| -> Fallible<Map> {
        let field = |name: &str| {
            previous
                .get(name)
                .and_then(|v| v.clone().into_string().ok())
                .ok_or_else(|| {
                    format!(
                        "login(map) takes what login(user, password) returned; it has no '{name}'"
                    )
                })
        };
        let (user, token) = (field("user")?, field("token")?);
        with_context(|c| c.session.client.set_token(&user, &token))?.map_err(|e| e.to_string())?;
        Ok(previous)
    });
    let h = host.clone();
    engine.register_fn("logout", move || run_map(&h, Cmd::Logout));
    let h = host.clone();
    engine.register_fn("whoami", move || run_map(&h, Cmd::Whoami));
    let h = host.clone();
    engine.register_fn("events", move || field(run(&h, |_| Cmd::Events)?, "events"));
    let h = host.clone();
    engine.register_fn("use_event", move |name: &str| {
        field(run(&h, |_| Cmd::Use(name.to_string()))?, "event")
    });
    let h = host.clone();
    engine.register_fn("seats", move || run_map(&h, Cmd::Seats(None)));
    let h = host.clone();
    engine.register_fn("seats", move |event: &str| {
        run_map(&h, Cmd::Seats(Some(event.to_string())))
    });
    let h = host.clone();
    engine.register_fn("reserve", move |seat: &str| {
        reserve(&h, vec![seat.to_string()])
    });
    let h = host.clone();
    engine.register_fn("reserve", move |seats: Array| {
        reserve(&h, strings(seats, "reserve")?)
    });
    let h = host.clone();
    engine.register_fn("cancel", move |what: &str| {
        let cmd = if what.to_ascii_lowercase().starts_with("bk-") {
            Cmd::CancelBooking(what.to_ascii_lowercase())
        } else {
            Cmd::CancelSeats(vec![what.to_string()])
        };
        run_map(&h, cmd)
    });
    let h = host.clone();
    engine.register_fn("cancel", move |seats: Array| {
        run_map(&h, Cmd::CancelSeats(strings(seats, "cancel")?))
    });
    let h = host.clone();
    engine.register_fn("bookings", move || {
        field(run(&h, |_| Cmd::Bookings)?, "bookings")
    });
    let h = host.clone();
    engine.register_fn("status", move || run_map(&h, Cmd::Status));
    let h = host.clone();
    engine.register_fn("ask", move |question: &str| -> Fallible<String> {
        let cmd = Cmd::Ask {
            question: question.to_string(),
            backend: None,
        };
        let reply = with_context(|c| h.runtime.block_on(h.cancellable(c.session.run(cmd))))??;
        Ok(reply?.text)
    });
    let h = host.clone();
    engine.register_fn("add_user", move |name: &str, password: &str| {
        add_user(&h, name, password, false)
    });
    let h = host.clone();
    engine.register_fn(
        "add_user",
        move |name: &str, password: &str, admin: bool| add_user(&h, name, password, admin),
    );
    let h = host.clone();
    engine.register_fn(
        "create_event",
        move |name: &str, rows: i64, per_row: i64| create_event(&h, name, rows, per_row, 0),
    );
    let h = host.clone();
    engine.register_fn(
        "create_event",
        move |name: &str, rows: i64, per_row: i64, max_per_user: i64| {
            create_event(&h, name, rows, per_row, max_per_user)
        },
    );
    let h = host.clone();
    engine.register_fn("sleep", move |ms: i64| -> Fallible<()> {
        if !(0..=SLEEP_MS_MAX).contains(&ms) {
            return Err(format!("sleep takes 0 to {SLEEP_MS_MAX} ms, not {ms}").into());
        }
        // Outside a run (a plugin loading or completing, on the shell's own thread) there is
        // no deadline to stop it, and blocking there would stall, or panic inside, the runtime.
        if deadline().is_none() {
            return Err("sleep works only in a script or a plugin command's handler".into());
        }
        let wait = tokio::time::sleep(Duration::from_millis(ms as u64));
        h.runtime.block_on(h.cancellable(wait))
    });
    engine.register_fn("assert", |ok: bool, message: &str| -> Fallible<()> {
        match ok {
            true => Ok(()),
            false => Err(format!("assertion failed: {message}").into()),
        }
    });
    engine.register_fn("assert", |ok: bool| -> Fallible<()> {
        match ok {
            true => Ok(()),
            false => Err("assertion failed".into()),
        }
    });
    engine.register_fn("now_ms", || crate::clock::now_ms() as i64);
    // For accounts a scenario makes for itself: nobody who reads the script knows it.
    engine.register_fn("random_password", || {
        let bytes: [u8; 12] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
    register_from_table(engine, host);
    let h = host.clone();
    engine.register_fn(
        "parallel",
        move |context: NativeCallContext, n: i64, f: FnPtr| parallel(&h, context, n, f),
    );
    register_cluster_control(engine, host);
}

/// The functions the command table names (`event_info(NAME)` for `event info NAME`): each
/// takes its arguments as the command's words, in order, and returns the command's JSON reply.
fn register_from_table(engine: &mut Engine, host: &Arc<Host>) {
    for spec in crate::session::command::COMMANDS {
        let Some((function, words)) = spec.script else {
            continue;
        };
        let h = host.clone();
        engine.register_fn(function, move || run_words(&h, words, &[]));
        let h = host.clone();
        engine.register_fn(function, move |a: Dynamic| run_words(&h, words, &[a]));
        let h = host.clone();
        engine.register_fn(function, move |a: Dynamic, b: Dynamic| {
            run_words(&h, words, &[a, b])
        });
    }
}

/// Runs the command line `words ARGS...` (each argument one word, however it is spelled) and
/// returns its reply as a map.
fn run_words(host: &Host, words: &str, args: &[Dynamic]) -> Fallible<Map> {
    let mut line: Vec<String> = crate::session::command::split(words)?;
    line.extend(args.iter().map(ToString::to_string));
    let (name, rest) = line.split_first().ok_or("an empty command")?;
    let spec = crate::session::command::find(name).ok_or("not a command of the table")?;
    let cmd = (spec.parse)(rest)?;
    run_map(host, cmd)
}

impl Host {
    /// Runs `work` unless the script is cancelled, or its run's time is up, first. Call it on
    /// the script's thread: the deadline is that thread's.
    fn cancellable<'a, T>(
        &'a self,
        work: impl std::future::Future<Output = T> + 'a,
    ) -> impl std::future::Future<Output = Fallible<T>> + 'a {
        let deadline = deadline();
        async move {
            let time_up = async {
                match deadline {
                    Some(deadline) => deadline.reached().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = work => Ok(result),
                _ = self.until_cancelled() => Err("cancelled (Ctrl-C)".into()),
                _ = time_up => Err(deadline.map_or_else(
                    || "the script's time is up".into(),
                    |d| d.error(),
                )),
            }
        }
    }
}

/// Runs the command `make` builds (it may adjust the session first) and returns its JSON.
fn run(host: &Host, make: impl FnOnce(&mut crate::session::Session) -> Cmd) -> Fallible<Value> {
    let reply = with_context(|c| {
        let cmd = make(&mut c.session);
        host.runtime.block_on(host.cancellable(c.session.run(cmd)))
    })??;
    Ok(reply?.json)
}

fn run_map(host: &Host, cmd: Cmd) -> Fallible<Map> {
    to_map(run(host, |_| cmd)?)
}

fn to_map(value: Value) -> Fallible<Map> {
    rhai::serde::to_dynamic(value)?
        .try_cast::<Map>()
        .ok_or_else(|| "the reply is not a map".into())
}

fn field(mut value: Value, name: &str) -> Fallible<Dynamic> {
    rhai::serde::to_dynamic(value[name].take())
}

fn strings(values: Array, function: &str) -> Fallible<Vec<String>> {
    values
        .into_iter()
        .map(|v| {
            let type_name = v.type_name();
            v.into_string().map_err(|_| {
                format!("{function} takes seat ids as strings, not {type_name}").into()
            })
        })
        .collect()
}

fn reserve(host: &Host, seats: Vec<String>) -> Fallible<Map> {
    let mut reply = run(host, |_| Cmd::Reserve(seats))?;
    let mut booking = to_map(reply["booking"].take())?;
    booking.insert(
        "applied_index".into(),
        rhai::serde::to_dynamic(reply["applied_index"].take())?,
    );
    Ok(booking)
}

fn add_user(host: &Host, name: &str, password: &str, admin: bool) -> Fallible<Map> {
    let reply = with_context(|c| {
        host.runtime
            .block_on(host.cancellable(c.session.add_user(name, password, admin)))
    })??;
    to_map(reply?.json)
}

fn create_event(
    host: &Host,
    name: &str,
    rows: i64,
    per_row: i64,
    max_per_user: i64,
) -> Fallible<Map> {
    let number = |what: &str, n: i64| {
        u32::try_from(n)
            .map_err(|_| format!("create_event: {what} must be a positive number, not {n}"))
    };
    let cmd = Cmd::EventCreate {
        name: name.to_string(),
        rows: number("rows", rows)?,
        seats_per_row: number("seats_per_row", per_row)?,
        max_per_user: number("max_per_user", max_per_user)?,
    };
    let mut reply = run(host, |_| cmd)?;
    to_map(reply["event"].take())
}

/// `parallel(n, |i| ..)`: runs the closure for i in 0..n, each on its own thread with its
/// own session (starting as the caller's login and event), and returns the results in order.
/// If a branch fails, `parallel` fails with the error of the first failing branch.
///
/// Each branch is a fresh call of the engine, with an operations budget and call depth of its
/// own; what bounds a run is that a branch cannot start branches (so at most `PARALLEL_MAX`
/// threads, each within the sandbox's bounds) and that every branch keeps the run's deadline.
fn parallel(host: &Host, context: NativeCallContext, n: i64, f: FnPtr) -> Fallible<Array> {
    if in_parallel() {
        return Err("parallel cannot be nested: call it from the script, not from a branch".into());
    }
    let run_deadline = deadline();
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= PARALLEL_MAX)
        .ok_or_else(|| format!("parallel runs 0 to {PARALLEL_MAX} branches, not {n}"))?;
    let engine = context.engine();
    let forks: Vec<Context> = (0..n)
        .map(|_| {
            with_context(|c| Context {
                session: c.session.fork(),
                ast: c.ast.clone(),
                out: c.out.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    // Branches spend the run's one memory budget, not one each.
    let run_memory = super::memory::current();
    let results: Vec<Fallible<Dynamic>> = std::thread::scope(|scope| {
        let handles: Vec<_> = forks
            .into_iter()
            .enumerate()
            .map(|(i, fork)| {
                let f = &f;
                let run_memory = run_memory.clone();
                std::thread::Builder::new()
                    .name(format!("parallel-{i}"))
                    .stack_size(STACK_BYTES)
                    .spawn_scoped(scope, move || {
                        let _runtime = host.runtime.enter();
                        join_run(run_deadline, true);
                        let _memory = run_memory.map(super::memory::enter);
                        let ast = fork.ast.clone();
                        let _context = enter(fork);
                        f.call::<Dynamic>(engine, &ast, (i as i64,))
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|_| Err("a parallel branch panicked".into())),
                Err(e) => Err(format!("cannot start a parallel branch: {e}").into()),
            })
            .collect()
    });
    let mut values = Array::with_capacity(n);
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => values.push(value),
            // As rhai does for its own calls: what stops a run (time up, Ctrl-C, a sandbox
            // bound) passes through unwrapped, so no `catch` around `parallel` can swallow it.
            Err(error) if error.is_system_exception() => return Err(error),
            Err(error) => {
                return Err(EvalAltResult::ErrorInFunctionCall(
                    format!("parallel branch {i}"),
                    String::new(),
                    error,
                    context.call_position(),
                )
                .into())
            }
        }
    }
    Ok(values)
}

fn register_cluster_control(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    engine.register_fn("leader", move || -> Fallible<i64> {
        let client = with_context(|c| c.session.client.clone())?;
        let found = h.runtime.block_on(h.cancellable(async {
            let deadline = tokio::time::Instant::now() + CLUSTER_WAIT;
            loop {
                if let Ok(status) = client.cluster_status().await {
                    if status.leader != 0 {
                        return Some(status.leader);
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(CLUSTER_POLL).await;
            }
        }))?;
        match found {
            Some(id) => Ok(id as i64),
            None => Err(format!("no leader within {} s", CLUSTER_WAIT.as_secs()).into()),
        }
    });
    let h = host.clone();
    engine.register_fn("kill", move |id: i64| {
        control(&h, "kill", id, LocalCluster::kill)
    });
    let h = host.clone();
    engine.register_fn("pause", move |id: i64| {
        control(&h, "pause", id, LocalCluster::pause)
    });
    let h = host.clone();
    engine.register_fn("resume", move |id: i64| {
        control(&h, "resume", id, LocalCluster::resume)
    });
    let h = host.clone();
    engine.register_fn("restart", move |id: i64| -> Fallible<()> {
        control(&h, "restart", id, LocalCluster::restart)?;
        let client = cluster(&h, "restart", id)?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .node_client(id as u64);
        wait_answering(&h, id as u64, client)
    });
}

fn cluster<'h>(host: &'h Host, function: &str, id: i64) -> Fallible<&'h Mutex<LocalCluster>> {
    host.cluster.as_deref().ok_or_else(|| {
        format!(
            "{function}({id}) controls only a cluster this process started: run the script \
             while no node is up (`ticket run` then starts the cluster), or from the shell \
             that started it"
        )
        .into()
    })
}

fn control(
    host: &Host,
    function: &str,
    id: i64,
    act: fn(&mut LocalCluster, u64) -> anyhow::Result<()>,
) -> Fallible<()> {
    let cluster = cluster(host, function, id)?;
    let id = u64::try_from(id).map_err(|_| format!("{function}: no node {id}"))?;
    let mut cluster = cluster.lock().unwrap_or_else(|e| e.into_inner());
    act(&mut cluster, id).map_err(|e| format!("{function}({id}): {e:#}").into())
}

/// Waits until node `id` answers a status call of its own.
fn wait_answering(host: &Host, id: u64, client: Option<Client>) -> Fallible<()> {
    let client = client
        .ok_or_else(|| format!("restart: no node {id}"))?
        .with_call_timeout(Duration::from_secs(1));
    let answered = host.runtime.block_on(host.cancellable(async {
        let deadline = tokio::time::Instant::now() + CLUSTER_WAIT;
        while client.cluster_status().await.is_err() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(CLUSTER_POLL).await;
        }
        true
    }))?;
    match answered {
        true => Ok(()),
        false => Err(format!(
            "restart({id}): the node did not answer within {} s; see its log",
            CLUSTER_WAIT.as_secs()
        )
        .into()),
    }
}
