//! The functions a script calls.
//!
//! The booking ones are generated from the command table ([`COMMANDS`], each entry's
//! `script`): each runs the shell's own command line through the thread's
//! [`Session`](crate::session::Session) and returns the command's JSON reply (or the part the
//! entry names) as rhai maps and arrays, so a script sees exactly what `--json` prints. A new
//! command gets its function by a line in the table, not here. A command that fails throws
//! its message, which `try { } catch (e) { }` catches.
//!
//! | function (generated) | returns |
//! |---|---|
//! | `logout()`, `whoami()` | `#{user, event}` |
//! | `events()` | array of `#{name, rows, seats_per_row, max_seats_per_user, free, taken}` |
//! | `use_event(name)` | the event's name |
//! | `seats()`, `seats(event)` | `#{event, rows, seats: [#{id, row, status, holder, booking_id}]}` |
//! | `reserve(seat)`, `reserve([seats])` | the booking `#{id, event, seats, user, applied_index}` |
//! | `cancel(seat or "bk-N")`, `cancel([seats])` | `#{event, seats, applied_index}` |
//! | `bookings()` | array of bookings |
//! | `status()` | `#{leader, term, nodes: [#{id, addr, role, reachable, term, last_log_index, applied_index, lag}]}` |
//! | `ask(question)` | the answer, a string |
//! | `event_info(name)` | `#{event: #{name, rows, seats_per_row, max_seats_per_user, free, taken, holders_shown_to}}` |
//! | `create_event(name, rows, seats_per_row[, max_per_user])` | the event |
//!
//! Written here, because a password never travels as a word of a command line, or because
//! they are not booking commands:
//!
//! | function | returns |
//! |---|---|
//! | `login(user, password)`, `login(previous_login)` | `#{user, role, expires_at, token}` |
//! | `login_admin()`: as "admin", on a cluster this run started (or TICKET_ADMIN_PASSWORD) | the same |
//! | `add_user(name, password)`, `add_user(name, password, admin)` | `#{user, role}` |
//! | `parallel(n, \|i\| ..)` | the n results, in order of `i` (not nested: a branch cannot call it; each branch has its own copy of what the closure captured) |
//! | `leader()`, `kill(id)`, `restart(id)`, `pause(id)`, `resume(id)` | cluster control |
//! | `sleep(ms)`, `assert(cond, message)`, `now_ms()`, `print(x)` | |
//! | `random_password()` | 24 random hex digits, for an account the script makes for itself |
//!
//! [`COMMANDS`]: crate::session::command::COMMANDS

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use serde_json::Value;

use super::{
    deadline, enter, in_parallel, join_run, with_context, Context, Host, PARALLEL_MAX,
    SLEEP_MAX_MS, STACK_BYTES,
};
use crate::client::Client;
use crate::local_cluster::LocalCluster;
use crate::session::command::{Cmd, Returns, ScriptFn};

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
    register_accounts(engine, host);
    register_from_table(engine, host);
    register_utilities(engine, host);
    let h = host.clone();
    engine.register_fn(
        "parallel",
        move |context: NativeCallContext, n: i64, f: FnPtr| parallel(&h, context, n, f),
    );
    register_cluster_control(engine, host);
}

/// `login`, `login_admin` and `add_user`: by hand, since a password never travels as a word
/// of a command line.
fn register_accounts(engine: &mut Engine, host: &Arc<Host>) {
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
    engine.register_fn("add_user", move |name: &str, password: &str| {
        add_user(&h, name, password, false)
    });
    let h = host.clone();
    engine.register_fn(
        "add_user",
        move |name: &str, password: &str, admin: bool| add_user(&h, name, password, admin),
    );
    // `add_user(NAME, PASSWORD, "door")`: a role by name (customer, admin or door).
    let h = host.clone();
    engine.register_fn(
        "add_user",
        move |name: &str, password: &str, role: &str| -> Fallible<Map> {
            let role = match role {
                "customer" => crate::pb::booking::v1::Role::Customer,
                "admin" => crate::pb::booking::v1::Role::Admin,
                "door" => crate::pb::booking::v1::Role::Door,
                other => return Err(format!("no role '{other}': customer, admin or door").into()),
            };
            let reply = with_context(|c| {
                h.runtime
                    .block_on(h.cancellable(c.session.add_user_as(name, password, role)))
            })??;
            to_map(reply?.json)
        },
    );
}

/// `sleep`, `assert`, `now_ms` and `random_password`.
fn register_utilities(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    engine.register_fn("sleep", move |ms: i64| -> Fallible<()> {
        if !(0..=SLEEP_MAX_MS).contains(&ms) {
            return Err(format!("sleep takes 0 to {SLEEP_MAX_MS} ms, not {ms}").into());
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
}

/// The functions the command table gives (`event_info(NAME)` for `event info NAME`): each runs
/// its command line with the arguments in its slots and returns what the entry says of the
/// command's JSON reply.
fn register_from_table(engine: &mut Engine, host: &Arc<Host>) {
    for spec in crate::session::command::COMMANDS {
        for function in spec.script {
            let h = host.clone();
            match function.arity() {
                0 => engine.register_fn(function.name, move || call(&h, function, vec![])),
                1 => {
                    engine.register_fn(function.name, move |a: Dynamic| call(&h, function, vec![a]))
                }
                2 => engine.register_fn(function.name, move |a: Dynamic, b: Dynamic| {
                    call(&h, function, vec![a, b])
                }),
                3 => engine
                    .register_fn(function.name, move |a: Dynamic, b: Dynamic, c: Dynamic| {
                        call(&h, function, vec![a, b, c])
                    }),
                4 => engine.register_fn(
                    function.name,
                    move |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic| {
                        call(&h, function, vec![a, b, c, d])
                    },
                ),
                5 => engine.register_fn(
                    function.name,
                    move |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic, e: Dynamic| {
                        call(&h, function, vec![a, b, c, d, e])
                    },
                ),
                _ => engine.register_fn(
                    function.name,
                    move |a: Dynamic,
                          b: Dynamic,
                          c: Dynamic,
                          d: Dynamic,
                          e: Dynamic,
                          f: Dynamic| {
                        call(&h, function, vec![a, b, c, d, e, f])
                    },
                ),
            };
        }
    }
}

/// Runs `function`'s command line with `args` in its slots.
fn call(host: &Host, function: &ScriptFn, args: Vec<Dynamic>) -> Fallible<Dynamic> {
    let args = args
        .into_iter()
        .enumerate()
        .map(|(i, arg)| words_of(function.name, i + 1, arg))
        .collect::<Fallible<Vec<_>>>()?;
    let line = function.words(args);
    let (name, rest) = line.split_first().ok_or("an empty command")?;
    let spec = crate::session::command::find(name).ok_or("not a command of the table")?;
    let cmd = (spec.parse)(rest).map_err(|e| format!("{}: {e}", function.name))?;
    let reply = with_context(|c| host.runtime.block_on(host.cancellable(c.session.run(cmd))))???;
    let mut json = reply.json;
    let value = match function.returns {
        Returns::Reply => json,
        Returns::Field(name) => json[name].take(),
        Returns::FieldWithIndex(name) => {
            let mut value = json[name].take();
            if let Some(fields) = value.as_object_mut() {
                fields.insert("applied_index".into(), json["applied_index"].take());
            }
            value
        }
        Returns::Text => Value::String(reply.text),
    };
    rhai::serde::to_dynamic(value)
}

/// An argument as the command's words: a string or a number one word, an array one per item.
fn words_of(function: &str, position: usize, arg: Dynamic) -> Fallible<Vec<String>> {
    let word = |value: Dynamic| -> Fallible<String> {
        if value.is_string() || value.is_int() {
            return Ok(value.to_string());
        }
        Err(format!(
            "{function}: argument {position} must be a string or a number (or an array of \
             them), not {}",
            value.type_name()
        )
        .into())
    };
    match arg.is_array() {
        true => arg
            .try_cast::<Array>()
            .unwrap_or_default()
            .into_iter()
            .map(word)
            .collect(),
        false => Ok(vec![word(arg)?]),
    }
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

fn to_map(value: Value) -> Fallible<Map> {
    rhai::serde::to_dynamic(value)?
        .try_cast::<Map>()
        .ok_or_else(|| "the reply is not a map".into())
}

fn add_user(host: &Host, name: &str, password: &str, admin: bool) -> Fallible<Map> {
    let reply = with_context(|c| {
        host.runtime
            .block_on(host.cancellable(c.session.add_user(name, password, admin)))
    })??;
    to_map(reply?.json)
}

/// `parallel(n, |i| ..)`: runs the closure for i in 0..n, each on its own thread with its
/// own session (starting as the caller's login and event) and its own copy of what the
/// closure captured, and returns the results in order.
/// If a branch fails, `parallel` fails with the error of the first failing branch.
///
/// Each branch is a fresh call of the engine, with an operations budget and call depth of its
/// own; what bounds a run is that a branch cannot start branches (so at most `PARALLEL_MAX`
/// threads, each within the sandbox's bounds) and that every branch keeps the run's deadline.
fn parallel(host: &Host, context: NativeCallContext, n: i64, f: FnPtr) -> Fallible<Array> {
    if in_parallel() {
        return Err("parallel cannot be nested: call it from the script, not from a branch".into());
    }
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= PARALLEL_MAX)
        .ok_or_else(|| format!("parallel runs 0 to {PARALLEL_MAX} branches, not {n}"))?;
    let forks: Vec<Context> = (0..n)
        .map(|_| {
            with_context(|c| Context {
                session: c.session.fork(),
                ast: c.ast.clone(),
                out: c.out.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    let results = run_branches(host, context.engine(), forks, &f);
    branch_values(results, &context)
}

/// Runs `f(i)` for each fork on a thread of its own, within the run's deadline and memory
/// budget; the results in order of `i`.
fn run_branches(
    host: &Host,
    engine: &Engine,
    forks: Vec<Context>,
    f: &FnPtr,
) -> Vec<Fallible<Dynamic>> {
    let run_deadline = deadline();
    // Branches spend the run's one memory budget, not one each.
    let run_memory = super::memory::current();
    std::thread::scope(|scope| {
        let handles: Vec<_> = forks
            .into_iter()
            .enumerate()
            .map(|(i, fork)| {
                let run_memory = run_memory.clone();
                let f = with_own_captures(f);
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
    })
}

/// `f` with a copy of its own of every variable it captured. rhai shares a closure's captured
/// variables behind a lock that it only tries for 50 ms, so fifty branches reading one at once
/// on a loaded machine could fail with "Data race detected"; and a branch that changed one
/// would race the others anyway. A branch hands results back by returning them.
fn with_own_captures(f: &FnPtr) -> FnPtr {
    let mut own = f.clone();
    own.set_curry(
        f.iter_curry()
            .map(Dynamic::flatten_clone)
            .collect::<Vec<_>>(),
    );
    own
}

/// The branches' values in order, or the first branch's error: named by its branch, unless it
/// is one that stops the run.
fn branch_values(results: Vec<Fallible<Dynamic>>, context: &NativeCallContext) -> Fallible<Array> {
    let mut values = Array::with_capacity(results.len());
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
