//! The command table's commands that only read, as the assistant's tools: an entry with a
//! `tool` becomes one, with no code in the assistant. A tool runs the command line its entry
//! gives, as the asker (their client), in a session of its own, and answers what the command's
//! `--json` prints.

use std::future::Future;
use std::pin::Pin;

use serde_json::{json, Map, Value};

use super::command::{self, COMMANDS};
use super::Session;
use crate::assistant::CommandTools;
use crate::client::Client;

/// The tools of [`COMMANDS`], for [`Assistant::set_command_tools`](crate::assistant::Assistant::set_command_tools).
pub struct TableTools;

fn tools() -> impl Iterator<Item = &'static command::Tool> {
    COMMANDS.iter().filter_map(|spec| spec.tool.as_ref())
}

impl CommandTools for TableTools {
    fn names(&self) -> Vec<&'static str> {
        tools().map(|t| t.name).collect()
    }

    fn schemas(&self) -> Vec<Value> {
        tools()
            .map(|t| {
                json!({ "type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters() } })
            })
            .collect()
    }

    fn run<'a>(
        &'a self,
        client: &'a Client,
        event_in_use: &'a str,
        name: &'a str,
        args: Map<String, Value>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'a>> {
        Box::pin(async move {
            let tool = tools()
                .find(|t| t.name == name)
                .ok_or_else(|| format!("there is no tool '{name}'"))?;
            let words = tool.words(&args, event_in_use)?;
            let (first, rest) = words.split_first().ok_or("the tool's command is empty")?;
            let spec = command::find(first).ok_or("the tool's command is not in the table")?;
            let cmd = (spec.parse)(rest)?;
            let mut session = Session::for_tool(client.clone(), event_in_use);
            Ok(session.run(cmd).await?.json)
        })
    }
}
