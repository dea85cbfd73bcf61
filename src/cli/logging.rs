//! Structured logs to stderr, as text (the default) or one JSON object a line
//! (`--log-format json`, or `TICKET_LOG_FORMAT=json`, which `ticket up` passes on to its
//! nodes). A node's every text line starts with `node=<id>`; its every JSON line carries
//! `node`, `term` and `role`, so the logs of several nodes can be merged and still read.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: a line of text an event.
    Text,
    /// For log collectors: one JSON object a line.
    Json,
}

struct Prefixed<F> {
    prefix: String,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "{} ", self.prefix)?;
        self.inner.format_event(ctx, writer, event)
    }
}

/// One JSON object a line: `ts_ms`, `level`, `target`, for a node `node`, `term` and `role`,
/// the names of the spans the event is in (`spans`), `message`, and the event's own fields.
struct JsonLines {
    node: Option<u64>,
}

/// Collects an event's fields into a JSON object, numbers and booleans as such.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("ts_ms".into(), Value::from(crate::clock::now_ms()));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        if let Some(node) = self.node {
            let (term, role) = crate::log_context::get();
            line.insert("node".into(), Value::from(node));
            line.insert("term".into(), Value::from(term));
            line.insert("role".into(), Value::from(role));
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope.from_root().map(|s| Value::from(s.name())).collect();
            line.insert("spans".into(), Value::from(spans));
        }
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        for (key, value) in fields {
            // The line's own keys win: a field named `node` or `level` is kept beside them.
            match line.contains_key(&key) {
                true => line.insert(format!("field.{key}"), value),
                false => line.insert(key, value),
            };
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// `RUST_LOG` overrides the default level (`info` for this crate, `warn` for libraries).
pub fn init(node: Option<u64>, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,ticket=info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour && format == LogFormat::Text)
        .with_target(false);
    match (format, node) {
        (LogFormat::Json, node) => builder.event_format(JsonLines { node }).init(),
        (LogFormat::Text, Some(id)) => builder
            .event_format(Prefixed {
                prefix: format!("node={id}"),
                inner: Format::default().with_target(false).with_ansi(colour),
            })
            .init(),
        (LogFormat::Text, None) => builder.init(),
    }
}
