//! `ticket status`: the cluster as its nodes report it.

use crate::client::Client;
use crate::session::status::{render, to_json};

pub async fn run(client: &Client, json: bool) -> anyhow::Result<()> {
    let status = client.cluster_status().await?;
    if json {
        println!("{}", to_json(&status));
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}
