//! A script's error as a person reads it: `file:line:col: message`, then the offending line
//! with a caret under the column, then where it was called from.

use std::fmt;
use std::path::Path;

use rhai::{EvalAltResult, ParseError, Position};

use super::{CALL_LEVELS_MAX, OPERATIONS_MAX};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; 0 when the error has no place in the file (it could not be read, say).
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// The text of line `line`.
    pub source_line: Option<String>,
    /// The calls that led to it, innermost last: ("closure", line, col).
    pub called_from: Vec<(String, usize, usize)>,
    /// A message the script threw or a command failed with (as opposed to a mistake in the
    /// script): a plugin command shows just the message.
    pub thrown: bool,
}

impl Diagnostic {
    pub fn plain(file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.display().to_string(),
            line: 0,
            col: 0,
            message: message.into(),
            source_line: None,
            called_from: Vec::new(),
            thrown: false,
        }
    }

    pub fn parse(file: &Path, source: &str, error: &ParseError) -> Diagnostic {
        Diagnostic::at(
            file,
            source,
            error.position(),
            format!("syntax error: {}", error.err_type()),
        )
    }

    pub fn runtime(file: &Path, source: &str, error: &EvalAltResult) -> Diagnostic {
        let mut called_from = Vec::new();
        let mut error = error;
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) = error {
            if let (Some(line), Some(col)) = (pos.line(), pos.position()) {
                let name = if name.starts_with("anon$") {
                    "a closure".to_string()
                } else {
                    format!("{name}()")
                };
                called_from.push((name, line, col));
            }
            error = inner;
        }
        let mut diagnostic =
            Diagnostic::at(file, source, error.position(), eval_error_message(error));
        diagnostic.called_from = called_from;
        diagnostic.thrown = matches!(error, EvalAltResult::ErrorRuntime(v, _) if v.is_string());
        diagnostic
    }

    fn at(file: &Path, source: &str, pos: Position, message: String) -> Diagnostic {
        let (line, col) = (pos.line().unwrap_or(0), pos.position().unwrap_or(0));
        let source_line = line
            .checked_sub(1)
            .and_then(|n| source.lines().nth(n))
            .map(str::to_string);
        Diagnostic {
            file: file.display().to_string(),
            line,
            col,
            message,
            source_line,
            called_from: Vec::new(),
            thrown: false,
        }
    }
}

/// The error's message, without rhai's "(line 3, position 5)": the diagnostic says where.
fn eval_error_message(error: &EvalAltResult) -> String {
    match error {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "stopped after {OPERATIONS_MAX} operations: the script's limit (an endless loop?)"
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "stopped at {CALL_LEVELS_MAX} nested calls: the script's limit (endless recursion?)"
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!(
            "{what} is over the script's limit (strings 1 MiB, arrays 100000 items, maps 10000)"
        ),
        EvalAltResult::ErrorTerminated(reason, _) => match reason.clone().into_string() {
            Ok(reason) => reason,
            Err(_) => "stopped".to_string(),
        },
        EvalAltResult::ErrorFunctionNotFound(signature, _) => {
            format!("there is no function {signature} (the README lists the script API)")
        }
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => value.to_string(),
        other => {
            // rhai appends " (line L, position C)"; the diagnostic says where already.
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(at) if text.ends_with(')') => text[..at].to_string(),
                _ => text,
            }
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(text) = &self.source_line {
            let gutter = self.line.to_string().len();
            write!(f, "\n{} | {text}", self.line)?;
            let pad: String = text
                .chars()
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{:gutter$} | {pad}^", "")?;
        }
        for (name, line, col) in self.called_from.iter().rev() {
            write!(f, "\n  in {name} called at {}:{line}:{col}", self.file)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_the_line_and_column() {
        let source = "let a = 1;\nlet b = a +;\n";
        let engine = rhai::Engine::new();
        let error = engine.compile(source).expect_err("a syntax error");
        let d = Diagnostic::parse(Path::new("x.rhai"), source, &error);
        assert_eq!((d.line, d.col), (2, 12), "{d}");
        let text = d.to_string();
        assert!(text.starts_with("x.rhai:2:12: syntax error"), "{text}");
        assert!(
            text.contains("2 | let b = a +;\n  |            ^"),
            "{text}"
        );
    }

    #[test]
    fn a_runtime_error_in_a_function_names_the_call() {
        let source = "fn f(x) {\n  throw \"no \" + x;\n}\nf(\"seat\");\n";
        let engine = rhai::Engine::new();
        let error = engine.run(source).expect_err("it throws");
        let d = Diagnostic::runtime(Path::new("y.rhai"), source, &error);
        assert_eq!(
            (d.line, d.col, d.message.as_str()),
            (2, 3, "no seat"),
            "{d}"
        );
        assert!(d.to_string().contains("in f() called at y.rhai:4:1"), "{d}");
    }
}
