//! Rhai scenarios and plugins: `ticket run FILE.rhai`, `run` in the shell, and `plugins/*.rhai`.
//!
//! A script calls the booking commands as functions that return maps and arrays (see [`api`]);
//! a failed command throws an error the script can catch. Scripts run in a sandbox: bounded
//! operations, call depth, expression depth and sizes of strings, arrays and maps; no `eval`,
//! no `import`, and no file or network access except the cluster through the API. A script
//! that loops forever stops at the operations bound with a clear error, and Ctrl-C stops one.
//! A whole run, its `parallel` branches included, also has a time limit ([`TIME_LIMIT`] unless
//! set otherwise): the operations bound alone does not stop a loop that sleeps or waits on the
//! cluster, nor branches that each get an operations budget of their own. `parallel` cannot
//! be nested, so a run has at most [`PARALLEL_MAX`] threads.
//!
//! A script runs on a thread of its own and blocks on the shell's tokio runtime for each call
//! to the cluster, so `parallel(n, |i| ..)` can run a closure on n threads at once, each with
//! a session of its own (the engine is built with rhai's `sync` feature for that).
//!
//! Errors, syntax or runtime, come back as a [`Diagnostic`]: `file:line:col`, the message and
//! the offending line.

mod api;
mod diagnostic;
pub mod memory;
pub mod plugins;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope, AST};
use tokio::runtime::Handle;

pub use diagnostic::Diagnostic;
use plugins::Plugins;

use crate::local_cluster::LocalCluster;
use crate::session::{Output, Session};

/// Bounds of the sandbox. An endless loop reaches `OPERATIONS_MAX` in a second or two.
pub const OPERATIONS_MAX: u64 = 20_000_000;
pub const CALL_LEVELS_MAX: usize = 48;
pub const EXPR_DEPTH_MAX: usize = 64;
pub const FN_EXPR_DEPTH_MAX: usize = 32;
pub const STRING_MAX_BYTES: usize = 1 << 20;
pub const ARRAY_LEN_MAX: usize = 100_000;
pub const MAP_LEN_MAX: usize = 10_000;
pub const VARIABLES_MAX: usize = 1_000;
/// Threads `parallel` may start at once.
pub const PARALLEL_MAX: usize = 256;
/// `sleep(ms)` sleeps at most this long.
pub const SLEEP_MAX_MS: i64 = 60_000;
/// How long one run of a script (or a plugin command) may take, `parallel` branches
/// included, unless `TICKET_SCRIPT_TIMEOUT` (seconds) or [`Scripting::set_time_limit`] says
/// otherwise.
pub const TIME_LIMIT: Duration = Duration::from_secs(600);
/// The engine looks at the clock once in this many operations: often enough to stop within
/// a moment, rarely enough to cost nothing. Calls that wait (`sleep`, the cluster) watch the
/// deadline themselves.
const CLOCK_EVERY_OPS: u64 = 64;
/// A script thread's stack: deep (but bounded) recursion must fail with rhai's error, not
/// overflow the thread.
const STACK_BYTES: usize = 16 << 20;

/// What the engine's functions share: the runtime to block on, the cluster this process
/// started (for `kill`, `restart`, ...), and the cancel switch.
pub(crate) struct Host {
    runtime: Handle,
    cluster: Option<Arc<Mutex<LocalCluster>>>,
    cancelled: AtomicBool,
    cancel: tokio::sync::watch::Sender<bool>,
    /// The time limit of a run, in milliseconds.
    time_limit_ms: AtomicU64,
}

/// When the run on this thread must stop, and the limit that set it (for the message).
#[derive(Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    fn message(&self) -> String {
        format!(
            "the script ran longer than {} s, its time limit",
            self.limit.as_secs_f64()
        )
    }

    /// The error that ends the run: not one a script's `catch` can swallow.
    pub(crate) fn error(&self) -> Box<EvalAltResult> {
        EvalAltResult::ErrorTerminated(self.message().into(), Position::NONE).into()
    }

    /// Resolves when the deadline passes.
    pub(crate) async fn reached(&self) {
        tokio::time::sleep_until(self.at.into()).await;
    }
}

impl Host {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Resolves when the running script is cancelled.
    async fn until_cancelled(&self) {
        let mut rx = self.cancel.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// What a thread running script code has: its own session with the cluster, the AST its
/// closures belong to, and where its prints go.
struct Context {
    session: Session,
    ast: Arc<AST>,
    out: Arc<Output>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
    /// The deadline of the run this thread belongs to; none outside a run (a plugin loading
    /// or completing, which the operations bound stops and which may not wait).
    static DEADLINE: Cell<Option<Deadline>> = const { Cell::new(None) };
    /// Whether this thread is a `parallel` branch, which may not start branches of its own.
    static IN_PARALLEL: Cell<bool> = const { Cell::new(false) };
}

/// The deadline of the run on this thread, if it is in one.
pub(crate) fn deadline() -> Option<Deadline> {
    DEADLINE.with(Cell::get)
}

/// Makes this thread (a new one) part of a run with `deadline`, as a `parallel` branch when
/// `branch`.
pub(crate) fn join_run(deadline: Option<Deadline>, branch: bool) {
    DEADLINE.with(|d| d.set(deadline));
    IN_PARALLEL.with(|p| p.set(branch));
}

pub(crate) fn in_parallel() -> bool {
    IN_PARALLEL.with(Cell::get)
}

/// The engine, its host and the loaded plugins. One per shell (or `ticket run`).
pub struct Scripting {
    engine: Engine,
    host: Arc<Host>,
    pub plugins: Plugins,
}

impl Scripting {
    /// `cluster` is the local cluster this process started, if it did: only then can scripts
    /// kill, restart, pause and resume nodes.
    pub fn new(runtime: Handle, cluster: Option<Arc<Mutex<LocalCluster>>>) -> Arc<Scripting> {
        let host = Arc::new(Host {
            runtime,
            cluster,
            cancelled: AtomicBool::new(false),
            cancel: tokio::sync::watch::Sender::new(false),
            time_limit_ms: AtomicU64::new(time_limit_from_env().as_millis() as u64),
        });
        let plugins = Plugins::default();
        let mut engine = sandboxed_engine(&host);
        api::register(&mut engine, &host);
        plugins::register(&mut engine);
        Arc::new(Scripting {
            engine,
            host,
            plugins,
        })
    }

    /// How long each later run (a script, a plugin command) may take, branches included.
    pub fn set_time_limit(&self, limit: Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.host.time_limit_ms.store(ms, Ordering::Relaxed);
    }

    /// Stops the running script (and its `parallel` branches) at their next operation or call.
    pub fn cancel(&self) {
        self.host.cancelled.store(true, Ordering::Relaxed);
        self.host.cancel.send_replace(true);
    }

    fn reset_cancel(&self) {
        self.host.cancelled.store(false, Ordering::Relaxed);
        self.host.cancel.send_replace(false);
    }

    /// Compiles `source` (named `file` in diagnostics) in the sandbox.
    pub fn compile(&self, file: &Path, source: &str) -> Result<AST, Diagnostic> {
        let mut ast = self
            .engine
            .compile(source)
            .map_err(|e| Diagnostic::parse(file, source, &e))?;
        ast.set_source(file.display().to_string());
        Ok(ast)
    }

    /// Runs a script file to its end with `ARGS` bound to `args`; returns its last value.
    /// Blocks: call it from [`Scripting::run_file`]'s thread, not from the runtime.
    fn run_file_blocking(
        &self,
        file: &Path,
        args: &[String],
        session: Session,
        out: Arc<Output>,
    ) -> Result<Dynamic, Diagnostic> {
        let source = std::fs::read_to_string(file)
            .map_err(|e| Diagnostic::plain(file, format!("cannot read it: {e}")))?;
        let ast = Arc::new(self.compile(file, &source)?);
        let mut scope = Scope::new();
        let args: rhai::Array = args.iter().map(|a| Dynamic::from(a.clone())).collect();
        scope.push_constant("ARGS", args);
        let _context = enter(Context {
            session,
            ast: ast.clone(),
            out,
        });
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
            .map_err(|e| Diagnostic::runtime(file, &source, &e))
    }

    /// Runs a script file on a thread of its own and waits for it without blocking the
    /// runtime. The script gets `session`: its login and event, not the caller's to change.
    pub async fn run_file(
        self: &Arc<Self>,
        file: PathBuf,
        args: Vec<String>,
        session: Session,
        out: Arc<Output>,
    ) -> Result<Dynamic, Diagnostic> {
        let name = file.clone();
        self.on_script_thread(&name, move |this| {
            this.run_file_blocking(&file, &args, session, out)
        })
        .await
    }

    /// Runs `work` on a new thread with a deep stack, inside the runtime's context (so timers
    /// and connections can be made there), and awaits it without blocking the runtime.
    async fn on_script_thread(
        self: &Arc<Self>,
        file: &Path,
        work: impl FnOnce(&Scripting) -> Result<Dynamic, Diagnostic> + Send + 'static,
    ) -> Result<Dynamic, Diagnostic> {
        self.reset_cancel();
        let limit = Duration::from_millis(self.host.time_limit_ms.load(Ordering::Relaxed));
        // An absurd limit (beyond what Instant can hold) is no limit.
        let deadline = Instant::now()
            .checked_add(limit)
            .map(|at| Deadline { at, limit });
        let this = self.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("script".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                let runtime = this.host.runtime.enter();
                join_run(deadline, false);
                let memory = memory::enter(memory::Budget::new(memory::SCRIPT_MAX_BYTES));
                let result = work(&this);
                drop(memory);
                // Let go of the engine before answering: the caller may then drop the last
                // handle on a local cluster this holds and expect its nodes stopped, and a
                // process that exits first would leave them running.
                drop(runtime);
                drop(this);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Err(Diagnostic::plain(
                file,
                format!("cannot start a script thread: {e}"),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(Diagnostic::plain(
                file,
                "the script stopped without an answer (a bug: see the log)",
            ))
        })
    }
}

/// Sets this thread's context until the guard drops.
fn enter(context: Context) -> ContextGuard {
    CONTEXT.with(|c| *c.borrow_mut() = Some(context));
    ContextGuard
}

struct ContextGuard;

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.borrow_mut().take());
    }
}

/// Runs `f` with this thread's context, or fails when there is none (plugin code run while
/// loading or completing, which may not call the cluster).
fn with_context<T>(f: impl FnOnce(&mut Context) -> T) -> Result<T, String> {
    CONTEXT.with(|c| match c.borrow_mut().as_mut() {
        Some(context) => Ok(f(context)),
        None => Err(
            "the cluster can be reached only from a script or a plugin command's \
                     handler, not while a plugin loads or completes"
                .to_string(),
        ),
    })
}

/// `TICKET_SCRIPT_TIMEOUT` (whole seconds, more than 0) or [`TIME_LIMIT`].
fn time_limit_from_env() -> Duration {
    std::env::var("TICKET_SCRIPT_TIMEOUT")
        .ok()
        .and_then(|secs| secs.trim().parse::<u64>().ok())
        .filter(|secs| *secs > 0)
        .map_or(TIME_LIMIT, Duration::from_secs)
}

fn sandboxed_engine(host: &Arc<Host>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(OPERATIONS_MAX)
        .set_max_call_levels(CALL_LEVELS_MAX)
        .set_max_expr_depths(EXPR_DEPTH_MAX, FN_EXPR_DEPTH_MAX)
        .set_max_string_size(STRING_MAX_BYTES)
        .set_max_array_size(ARRAY_LEN_MAX)
        .set_max_map_size(MAP_LEN_MAX)
        .set_max_variables(VARIABLES_MAX)
        .set_module_resolver(DummyModuleResolver::new())
        .disable_symbol("eval");
    let progress = host.clone();
    engine.on_progress(move |operations| {
        if progress.is_cancelled() {
            return Some(Dynamic::from("cancelled (Ctrl-C)"));
        }
        if let Some(why) = memory::over_budget() {
            return Some(Dynamic::from(why));
        }
        if operations % CLOCK_EVERY_OPS != 0 {
            return None;
        }
        deadline()
            .filter(Deadline::passed)
            .map(|d| Dynamic::from(d.message()))
    });
    engine.on_print(|text| {
        let printed = with_context(|c| c.out.line(text));
        if printed.is_err() {
            println!("{text}");
        }
    });
    engine.on_debug(|text, source, pos| {
        tracing::debug!(source = source.unwrap_or(""), %pos, "{text}");
    });
    engine
}

/// The session's view of scripts: `run FILE.rhai`, plugin commands and their completion.
impl crate::session::Scripts for Arc<Scripting> {
    fn run_file(
        &self,
        file: PathBuf,
        args: Vec<String>,
        session: Session,
        out: Arc<Output>,
    ) -> crate::session::ScriptRun {
        let this = self.clone();
        Box::pin(async move {
            let value = Scripting::run_file(&this, file, args, session, out).await;
            value.map(|v| to_json(&v)).map_err(|d| d.to_string())
        })
    }

    fn run_command(
        &self,
        name: &str,
        args: Vec<String>,
        session: Session,
        out: Arc<Output>,
    ) -> Option<crate::session::ScriptRun> {
        let command = self.plugins.find(name)?;
        let this = self.clone();
        Some(Box::pin(async move {
            let value = this.run_command(command, args, session, out).await;
            // What the handler threw is its message to the user; a mistake in the plugin
            // shows where it is.
            value.map(|v| to_json(&v)).map_err(|d| match d.thrown {
                true => d.message,
                false => d.to_string(),
            })
        }))
    }

    fn commands(&self) -> Vec<crate::session::PluginCommand> {
        self.plugins
            .commands()
            .iter()
            .map(plugins::PluginCommand::describe)
            .collect()
    }

    fn reload(&self, dir: &Path) -> Vec<String> {
        self.load_plugins(dir)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn complete(
        &self,
        name: &str,
        args: &[String],
        events: &[String],
        seats: &[String],
    ) -> Vec<String> {
        match self.plugins.find(name) {
            Some(command) => Scripting::complete(self, &command, args, events, seats),
            None => Vec::new(),
        }
    }

    fn cancel(&self) {
        Scripting::cancel(self);
    }
}

/// A script's value as JSON (`()` is null; what JSON cannot hold, too).
fn to_json(value: &Dynamic) -> serde_json::Value {
    rhai::serde::from_dynamic(value).unwrap_or(serde_json::Value::Null)
}
