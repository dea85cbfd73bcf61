//! `ticket status`: the cluster as its nodes report it.

use crate::client::{explain, Client};
use crate::session::status::{render, to_json};

pub async fn run(client: &Client, json: bool) -> anyhow::Result<()> {
    let status = client
        .cluster_status()
        .await
        .map_err(|s| anyhow::anyhow!(explain(&s)))?;
    if json {
        println!("{}", to_json(&status));
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}
