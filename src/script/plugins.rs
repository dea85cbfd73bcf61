//! Plugins: every `plugins/*.rhai` runs once when the shell starts (and on `plugins reload`)
//! and registers shell commands:
//!
//! ```rhai
//! register_command(#{
//!     name: "together",                  // the command word
//!     usage: "together N",               // for `help`
//!     help: "reserve N adjacent seats",  // for `help`
//!     run: |args| { ... },               // args: the words after the command, as strings
//!     complete: |args, known| [...],     // optional: candidates for the next word;
//! });                                    // known = #{events: [..], seats: [..]}
//! ```
//!
//! A handler calls the same API as a script, as the shell's user. What it returns is printed
//! (a string as it is, anything else as JSON). A plugin that fails to parse or throws while
//! loading is reported with `file:line:col` and skipped; the others load.
//!
//! Plugins also add assistant rules (`register_rule`). Their handlers answer questions from
//! `/ask` as well as from the shell, so they run apart from scripts: on a thread of their own
//! (never a runtime worker), on an engine of their own with a far smaller budget
//! ([`RULE_OPERATIONS_MAX`], [`RULE_TIME_MAX`]), without the cluster and without the scripts'
//! cancel switch (a question must not clear a script's Ctrl-C, nor a Ctrl-C fail a question).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, Position, AST};

use super::{enter, Context, Diagnostic, Output, Scripting};
use crate::session::command;
use crate::session::Session;

/// A command a plugin registered.
#[derive(Clone)]
pub struct PluginCommand {
    pub name: String,
    pub usage: String,
    pub about: String,
    pub file: PathBuf,
    run: FnPtr,
    complete: Option<FnPtr>,
    ast: Arc<AST>,
    source: Arc<str>,
}

impl PluginCommand {
    /// What help and completion show of it.
    pub fn describe(&self) -> crate::session::PluginCommand {
        crate::session::PluginCommand {
            name: self.name.clone(),
            usage: self.usage.clone(),
            about: self.about.clone(),
            file: self.file.clone(),
        }
    }
}

/// What loaded: the commands, and the files that did not.
#[derive(Default)]
pub struct Plugins {
    commands: RwLock<Vec<PluginCommand>>,
    rules: RwLock<Vec<PluginRule>>,
}

/// An assistant rule a plugin registered: phrases (a question matches a phrase when it has
/// all of the phrase's words, in any order) and a handler that returns the answer.
#[derive(Clone)]
pub struct PluginRule {
    pub file: PathBuf,
    phrases: Vec<Vec<String>>,
    run: FnPtr,
    ast: Arc<AST>,
    source: Arc<str>,
}

/// A command as `register_command` received it, before its plugin finished loading.
struct Registered {
    name: String,
    usage: String,
    about: String,
    run: FnPtr,
    complete: Option<FnPtr>,
}

thread_local! {
    /// Set while a plugin file runs: where `register_command` puts what it is given.
    static LOADING: RefCell<Option<Vec<Registered>>> = const { RefCell::new(None) };
    /// The same for `register_rule`: (phrases, handler).
    static LOADING_RULES: RefCell<Vec<(Vec<Vec<String>>, FnPtr)>> = const { RefCell::new(Vec::new()) };
    /// When the rule handlers running on this thread must stop.
    static RULE_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Operations one rule handler may take: a rule answers from its own text, so a hundredth
/// of a script's budget is plenty, and an endless loop ends in a moment.
pub const RULE_OPERATIONS_MAX: u64 = 200_000;
/// How long the rules matching one question may take in all, sleeps included: someone is
/// waiting for the answer.
pub const RULE_TIME_MAX: Duration = Duration::from_secs(2);

const RULE_TIME_UP: &str = "the rule ran past its time limit";

/// What the plugin rules made of a question: the first answer (and its rule's file), and the
/// rules that matched but failed on the way.
#[derive(Debug, Default)]
pub struct RuleOutcome {
    pub answer: Option<(String, PathBuf)>,
    pub failures: Vec<String>,
}

fn rule_time_up() -> bool {
    RULE_DEADLINE.with(|d| d.get().is_some_and(|at| Instant::now() >= at))
}

/// The engine rule handlers run on: the sandbox's bounds with a smaller operations budget, a
/// deadline of its own, and only functions that need no session (no cluster, no cancel
/// switch shared with scripts). A handler's closure was compiled by the scripts' engine;
/// calling it here needs only its AST.
fn rule_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut engine = Engine::new();
        engine
            .set_max_operations(RULE_OPERATIONS_MAX)
            .set_max_call_levels(super::CALL_LEVELS_MAX)
            .set_max_expr_depths(super::EXPR_DEPTH_MAX, super::FN_EXPR_DEPTH_MAX)
            .set_max_string_size(super::STRING_MAX_BYTES)
            .set_max_array_size(super::ARRAY_LEN_MAX)
            .set_max_map_size(super::MAP_LEN_MAX)
            .set_max_variables(super::VARIABLES_MAX)
            .set_module_resolver(DummyModuleResolver::new())
            .disable_symbol("eval");
        engine.on_progress(|_| {
            if rule_time_up() {
                return Some(Dynamic::from(RULE_TIME_UP));
            }
            super::memory::over_budget().map(Dynamic::from)
        });
        engine.on_print(|text| tracing::debug!("plugin rule printed: {text}"));
        engine.on_debug(|text, source, pos| {
            tracing::debug!(source = source.unwrap_or(""), %pos, "{text}");
        });
        // On a rule's own thread sleeping blocks nobody else; the deadline still holds.
        engine.register_fn("sleep", |ms: i64| -> Result<(), Box<EvalAltResult>> {
            if !(0..=super::SLEEP_MAX_MS).contains(&ms) {
                let max = super::SLEEP_MAX_MS;
                return Err(format!("sleep takes 0 to {max} ms, not {ms}").into());
            }
            let wanted = Duration::from_millis(ms.unsigned_abs());
            let left = RULE_DEADLINE.with(Cell::get).map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(Instant::now())
            });
            std::thread::sleep(wanted.min(left));
            match wanted > left {
                true => {
                    Err(EvalAltResult::ErrorTerminated(RULE_TIME_UP.into(), Position::NONE).into())
                }
                false => Ok(()),
            }
        });
        engine.register_fn("now_ms", || crate::clock::now_ms() as i64);
        engine
    })
}

/// Runs the handlers of `rules` (all matching `question`) in order until one answers, within
/// [`RULE_TIME_MAX`] in all. Blocks: run it on a thread of its own.
fn run_rules(rules: &[PluginRule], question: &str) -> RuleOutcome {
    let _memory = super::memory::enter(super::memory::Budget::new(super::memory::RULE_MAX_BYTES));
    RULE_DEADLINE.with(|d| d.set(Instant::now().checked_add(RULE_TIME_MAX)));
    let mut failures = Vec::new();
    for rule in rules {
        let ran = rule
            .run
            .call::<Dynamic>(rule_engine(), &rule.ast, (question.to_string(),));
        match ran {
            Ok(answer) => {
                return RuleOutcome {
                    answer: Some((answer.to_string(), rule.file.clone())),
                    failures,
                }
            }
            Err(error) => {
                let why = rule_failure(rule, &error);
                tracing::warn!("a plugin rule failed: {why}");
                failures.push(why);
            }
        }
    }
    RuleOutcome {
        answer: None,
        failures,
    }
}

/// Why a rule failed, for the person who asked: its file's name (not where it lives) and
/// what stopped it.
fn rule_failure(rule: &PluginRule, error: &EvalAltResult) -> String {
    let name = rule
        .file
        .file_name()
        .map_or_else(|| rule.file.clone(), PathBuf::from);
    let mut inner = error;
    while let EvalAltResult::ErrorInFunctionCall(_, _, cause, _) = inner {
        inner = cause;
    }
    match inner {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "{}: stopped after {RULE_OPERATIONS_MAX} operations, a rule's bound",
            name.display()
        ),
        EvalAltResult::ErrorTerminated(..) => format!(
            "{}: stopped after {} s, a rule's time limit",
            name.display(),
            RULE_TIME_MAX.as_secs()
        ),
        _ => Diagnostic::runtime(&name, &rule.source, error).to_string(),
    }
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn(
        "register_command",
        |spec: Map| -> Result<(), Box<EvalAltResult>> {
            let registered = parse_spec(spec)?;
            LOADING.with(|l| match l.borrow_mut().as_mut() {
                Some(list) => {
                    list.push(registered);
                    Ok(())
                }
                None => Err("register_command works only while a plugin file loads".into()),
            })
        },
    );
    engine.register_fn(
        "register_rule",
        |mut spec: Map| -> Result<(), Box<EvalAltResult>> {
            let usage =
                "register_rule(#{ phrases: [\"phrase\", ...], run: |question| \"answer\" })";
            let phrases: Vec<Vec<String>> = spec
                .remove("phrases")
                .and_then(|m| m.try_cast::<Array>())
                .ok_or_else(|| {
                    format!("register_rule: 'phrases' must be a list of phrases: {usage}")
                })?
                .into_iter()
                .map(|p| p.into_string().map(|p| crate::assistant::rules::words(&p)))
                .collect::<Result<_, _>>()
                .map_err(|t| format!("register_rule: a phrase must be a string, not {t}"))?;
            if phrases.is_empty() || phrases.iter().any(Vec::is_empty) {
                return Err(format!(
                    "register_rule: 'phrases' needs at least one phrase with words: {usage}"
                )
                .into());
            }
            let run = spec
                .remove("run")
                .and_then(|r| r.try_cast::<FnPtr>())
                .ok_or_else(|| format!("register_rule: 'run' must be a function: {usage}"))?;
            if let Some(key) = spec.keys().next() {
                return Err(format!("register_rule: unknown key '{key}' (phrases, run)").into());
            }
            let loading = LOADING.with(|l| l.borrow().is_some());
            if !loading {
                return Err("register_rule works only while a plugin file loads".into());
            }
            LOADING_RULES.with(|l| l.borrow_mut().push((phrases, run)));
            Ok(())
        },
    );
}

fn parse_spec(mut spec: Map) -> Result<Registered, Box<EvalAltResult>> {
    let mut text = |key: &str, required: bool| -> Result<Option<String>, Box<EvalAltResult>> {
        match spec.remove(key) {
            None if required => Err(format!("register_command: '{key}' is missing").into()),
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|t| format!("register_command: '{key}' must be a string, not {t}").into()),
        }
    };
    let name = text("name", true)?.unwrap_or_default();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "register_command: the name '{name}' must be lower-case letters, digits, - or _"
        )
        .into());
    }
    let usage = text("usage", false)?.unwrap_or_else(|| name.clone());
    let about = text("help", true)?.unwrap_or_default();
    let mut function = |key: &str| -> Result<Option<FnPtr>, Box<EvalAltResult>> {
        match spec.remove(key) {
            None => Ok(None),
            Some(v) if v.is_fnptr() => Ok(v.try_cast::<FnPtr>()),
            Some(v) => Err(format!(
                "register_command: '{key}' must be a function (|args| ...), not {}",
                v.type_name()
            )
            .into()),
        }
    };
    let run = function("run")?.ok_or("register_command: 'run' is missing")?;
    let complete = function("complete")?;
    if let Some(key) = spec.keys().next() {
        return Err(format!(
            "register_command: unknown key '{key}' (name, usage, help, run, complete)"
        )
        .into());
    }
    Ok(Registered {
        name,
        usage,
        about,
        run,
        complete,
    })
}

impl Plugins {
    pub fn commands(&self) -> Vec<PluginCommand> {
        self.commands
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn rules(&self) -> Vec<PluginRule> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn find(&self, name: &str) -> Option<PluginCommand> {
        self.commands
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|c| c.name == name)
            .cloned()
    }
}

impl Scripting {
    /// Loads every `*.rhai` of `dir` (in name order), replacing what was loaded before.
    /// Returns what failed; a missing directory is no plugins, not an error.
    pub fn load_plugins(&self, dir: &Path) -> Vec<Diagnostic> {
        self.reset_cancel();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        let mut commands: Vec<PluginCommand> = Vec::new();
        let mut rules: Vec<PluginRule> = Vec::new();
        let mut problems = Vec::new();
        for file in files {
            match self.load_plugin(&file) {
                Ok((loaded, added)) => {
                    rules.extend(added);
                    for c in loaded {
                        let clash = if command::is_command(&c.name) {
                            Some("a built-in command".to_string())
                        } else {
                            commands
                                .iter()
                                .find(|o| o.name == c.name)
                                .map(|o| o.file.display().to_string())
                        };
                        match clash {
                            Some(other) => problems.push(Diagnostic::plain(
                                &file,
                                format!("command '{}' is already {other}; skipped", c.name),
                            )),
                            None => commands.push(c),
                        }
                    }
                }
                Err(problem) => problems.push(problem),
            }
        }
        *self
            .plugins
            .commands
            .write()
            .unwrap_or_else(|e| e.into_inner()) = commands;
        *self
            .plugins
            .rules
            .write()
            .unwrap_or_else(|e| e.into_inner()) = rules;
        problems
    }

    fn load_plugin(
        &self,
        file: &Path,
    ) -> Result<(Vec<PluginCommand>, Vec<PluginRule>), Diagnostic> {
        let source: Arc<str> = std::fs::read_to_string(file)
            .map_err(|e| Diagnostic::plain(file, format!("cannot read it: {e}")))?
            .into();
        let ast = Arc::new(self.compile(file, &source)?);
        LOADING.with(|l| *l.borrow_mut() = Some(Vec::new()));
        LOADING_RULES.with(|l| l.borrow_mut().clear());
        let ran = self.engine.run_ast(&ast);
        let registered = LOADING.with(|l| l.borrow_mut().take()).unwrap_or_default();
        let rules = LOADING_RULES.with(|l| std::mem::take(&mut *l.borrow_mut()));
        ran.map_err(|e| Diagnostic::runtime(file, &source, &e))?;
        let rules = rules
            .into_iter()
            .map(|(phrases, run)| PluginRule {
                file: file.to_path_buf(),
                phrases,
                run,
                ast: ast.clone(),
                source: source.clone(),
            })
            .collect();
        let commands = registered
            .into_iter()
            .map(|r| PluginCommand {
                name: r.name,
                usage: r.usage,
                about: r.about,
                file: file.to_path_buf(),
                run: r.run,
                complete: r.complete,
                ast: ast.clone(),
                source: source.clone(),
            })
            .collect();
        Ok((commands, rules))
    }

    /// The answer of the first plugin rule that matches `question`, if any, and the matching
    /// rules that failed before it (passed over). Rules answer from their own text: they run
    /// without a session and cannot reach the cluster. Matching is done here; only when a
    /// rule matches does a thread start for the handlers (see [`run_rules`]).
    pub async fn answer_by_rule(&self, question: &str) -> RuleOutcome {
        let words = crate::assistant::rules::words(question);
        let matched: Vec<PluginRule> = self
            .plugins
            .rules()
            .into_iter()
            .filter(|rule| {
                rule.phrases
                    .iter()
                    .any(|phrase| phrase.iter().all(|w| words.contains(w)))
            })
            .collect();
        if matched.is_empty() {
            return RuleOutcome::default();
        }
        let failed = |why: String| RuleOutcome {
            answer: None,
            failures: vec![why],
        };
        let question = question.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A thread of its own with a script thread's deep stack, not a runtime worker: a
        // handler may sleep or spin until its bounds stop it.
        let spawned = std::thread::Builder::new()
            .name("plugin-rule".into())
            .stack_size(super::STACK_BYTES)
            .spawn(move || {
                let _ = tx.send(run_rules(&matched, &question));
            });
        if let Err(e) = spawned {
            return failed(format!("cannot start a thread for the plugin rules: {e}"));
        }
        rx.await.unwrap_or_else(|_| {
            failed("the plugin rules stopped without an answer (a bug: see the log)".into())
        })
    }

    /// Runs a plugin command's handler on a thread of its own, as `session`'s user.
    pub async fn run_command(
        self: &Arc<Self>,
        command: PluginCommand,
        args: Vec<String>,
        session: Session,
        out: Arc<Output>,
    ) -> Result<Dynamic, Diagnostic> {
        let file = command.file.clone();
        self.on_script_thread(&file, move |this| {
            let _context = enter(Context {
                session,
                ast: command.ast.clone(),
                out,
            });
            let args: Array = args.into_iter().map(Dynamic::from).collect();
            command
                .run
                .call::<Dynamic>(&this.engine, &command.ast, (args,))
                .map_err(|e| Diagnostic::runtime(&command.file, &command.source, &e))
        })
        .await
    }

    /// Candidates for the next word of a plugin command, from its `complete` function.
    /// Runs on the caller's thread without a session: it cannot reach the cluster.
    pub fn complete(
        &self,
        command: &PluginCommand,
        args: &[String],
        events: &[String],
        seats: &[String],
    ) -> Vec<String> {
        let Some(complete) = &command.complete else {
            return Vec::new();
        };
        self.reset_cancel();
        let list = |v: &[String]| -> Array { v.iter().cloned().map(Dynamic::from).collect() };
        let mut known = Map::new();
        known.insert("events".into(), list(events).into());
        known.insert("seats".into(), list(seats).into());
        match complete.call::<Array>(&self.engine, &command.ast, (list(args), known)) {
            Ok(values) => values.into_iter().map(|v| v.to_string()).collect(),
            Err(error) => {
                tracing::debug!(command = %command.name, %error, "completion failed");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripting_with(plugins: &[(&str, &str)]) -> (Arc<Scripting>, Vec<Diagnostic>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, source) in plugins {
            std::fs::write(dir.path().join(name), source).expect("write");
        }
        let scripting = Scripting::new(runtime.handle().clone(), None);
        let problems = scripting.load_plugins(dir.path());
        (scripting, problems)
    }

    /// Goal: an assistant rule runs on its own thread with its own bounds: it neither clears
    /// a script's Ctrl-C (a question from /ask used to) nor is stopped by it; it may sleep;
    /// an endless loop stops at the rule's operations bound, and the next matching rule
    /// answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_assistant_rule_runs_apart_from_scripts_within_its_bounds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = r#"
            register_rule(#{ phrases: ["hours"], run: |q| { sleep(5); "open " + q } });
            register_rule(#{ phrases: ["refund"], run: |q| { loop {} } });
            register_rule(#{ phrases: ["refund"], run: |q| "no refunds" });
        "#;
        std::fs::write(dir.path().join("faq.rhai"), source).expect("write");
        let scripting = Scripting::new(tokio::runtime::Handle::current(), None);
        assert!(scripting.load_plugins(dir.path()).is_empty());
        // A script was cancelled with Ctrl-C and has not yet seen it.
        scripting.cancel();
        let outcome = scripting.answer_by_rule("opening hours?").await;
        let (answer, file) = outcome.answer.expect("answered");
        assert_eq!(answer, "open opening hours?");
        assert_eq!(file, dir.path().join("faq.rhai"));
        assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        assert!(
            scripting.host.is_cancelled(),
            "the script's Ctrl-C still stands"
        );

        let outcome = scripting.answer_by_rule("a refund").await;
        assert_eq!(outcome.answer.map(|a| a.0).as_deref(), Some("no refunds"));
        assert_eq!(
            outcome.failures,
            [format!(
                "faq.rhai: stopped after {RULE_OPERATIONS_MAX} operations, a rule's bound"
            )]
        );
        let none = scripting.answer_by_rule("is S2 free").await;
        assert!(none.answer.is_none() && none.failures.is_empty());
    }

    #[test]
    fn a_plugin_completes_its_arguments_from_what_the_shell_knows() {
        let source = r#"
            register_command(#{
                name: "pick",
                help: "picks",
                run: |args| args,
                complete: |args, known| if args.is_empty() { known.seats } else { ["done"] },
            });
        "#;
        let (scripting, problems) = scripting_with(&[("pick.rhai", source)]);
        assert!(problems.is_empty(), "{problems:?}");
        let pick = scripting.plugins.find("pick").expect("registered");
        let seats = ["S1".to_string(), "S2".to_string()];
        assert_eq!(scripting.complete(&pick, &[], &[], &seats), ["S1", "S2"]);
        assert_eq!(
            scripting.complete(&pick, &["S1".into()], &[], &seats),
            ["done"]
        );
    }

    #[test]
    fn a_plugin_may_not_reach_the_cluster_while_it_loads_nor_register_nonsense() {
        let reaches = "let map = seats();\n";
        let unnamed = "register_command(#{ name: \"Bad Name\", help: \"x\", run: |a| 1 });\n";
        let no_run = "register_command(#{ name: \"ok\", help: \"x\" });\n";
        let extra = "register_command(#{ name: \"ok\", help: \"x\", run: |a| 1, colour: 1 });\n";
        let (scripting, problems) = scripting_with(&[
            ("a.rhai", reaches),
            ("b.rhai", unnamed),
            ("c.rhai", no_run),
            ("d.rhai", extra),
        ]);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(
            text[0].contains("a.rhai:1:11: the cluster can be reached only"),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("the name 'Bad Name' must be lower-case"),
            "{}",
            text[1]
        );
        assert!(text[2].contains("'run' is missing"), "{}", text[2]);
        assert!(text[3].contains("unknown key 'colour'"), "{}", text[3]);
        assert!(scripting.plugins.commands().is_empty());
    }
}
