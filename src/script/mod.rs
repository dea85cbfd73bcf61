//! Rhai scenarios and plugins: `ticket run FILE.rhai`, `run` in the shell, and `plugins/*.rhai`.
//!
//! A script calls the booking commands as functions that return maps and arrays (see [`api`]);
//! a failed command throws an error the script can catch. Scripts run in a sandbox: bounded
//! operations, call depth, expression depth and sizes of strings, arrays and maps; no `eval`,
//! no `import`, and no file or network access except the cluster through the API. A script
//! that loops forever stops at the operations bound with a clear error, and Ctrl-C stops one.
//!
//! A script runs on a thread of its own and blocks on the shell's tokio runtime for each call
//! to the cluster, so `parallel(n, |i| ..)` can run a closure on n threads at once, each with
//! a session of its own (the engine is built with rhai's `sync` feature for that).
//!
//! Errors, syntax or runtime, come back as a [`Diagnostic`]: `file:line:col`, the message and
//! the offending line.

mod api;
mod diagnostic;
pub mod plugins;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Dynamic, Engine, Scope, AST};
use tokio::runtime::Handle;

pub use diagnostic::Diagnostic;
use plugins::Plugins;

use crate::cli::up::LocalCluster;
use crate::shell::Session;

/// Bounds of the sandbox. An endless loop reaches `OPERATIONS_MAX` in a second or two.
pub const OPERATIONS_MAX: u64 = 20_000_000;
pub const CALL_LEVELS_MAX: usize = 48;
pub const EXPR_DEPTH_MAX: usize = 64;
pub const FN_EXPR_DEPTH_MAX: usize = 32;
pub const STRING_BYTES_MAX: usize = 1 << 20;
pub const ARRAY_LEN_MAX: usize = 100_000;
pub const MAP_LEN_MAX: usize = 10_000;
pub const VARIABLES_MAX: usize = 1_000;
/// Threads `parallel` may start at once.
pub const PARALLEL_MAX: usize = 256;
/// `sleep(ms)` sleeps at most this long.
pub const SLEEP_MS_MAX: i64 = 60_000;
/// A script thread's stack: deep (but bounded) recursion must fail with rhai's error, not
/// overflow the thread.
const STACK_BYTES: usize = 16 << 20;

/// Where a script's `print` goes: straight to stdout, or collected (for `--json`).
pub enum Output {
    Print,
    Collect(Mutex<Vec<String>>),
}

impl Output {
    fn line(&self, text: &str) {
        match self {
            Output::Print => println!("{text}"),
            Output::Collect(lines) => lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(text.to_string()),
        }
    }

    pub fn collected(&self) -> Vec<String> {
        match self {
            Output::Print => Vec::new(),
            Output::Collect(lines) => lines.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// What the engine's functions share: the runtime to block on, the cluster this process
/// started (for `kill`, `restart`, ...), and the cancel switch.
pub(crate) struct Host {
    runtime: Handle,
    cluster: Option<Arc<Mutex<LocalCluster>>>,
    cancelled: AtomicBool,
    cancel: tokio::sync::watch::Sender<bool>,
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
        let this = self.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("script".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                let _runtime = this.host.runtime.enter();
                let _ = tx.send(work(&this));
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

fn sandboxed_engine(host: &Arc<Host>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(OPERATIONS_MAX)
        .set_max_call_levels(CALL_LEVELS_MAX)
        .set_max_expr_depths(EXPR_DEPTH_MAX, FN_EXPR_DEPTH_MAX)
        .set_max_string_size(STRING_BYTES_MAX)
        .set_max_array_size(ARRAY_LEN_MAX)
        .set_max_map_size(MAP_LEN_MAX)
        .set_max_variables(VARIABLES_MAX)
        .set_module_resolver(DummyModuleResolver::new())
        .disable_symbol("eval");
    let progress = host.clone();
    engine.on_progress(move |_| {
        progress
            .is_cancelled()
            .then(|| Dynamic::from("cancelled (Ctrl-C)"))
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
