//! `ticket status`: the cluster as its nodes report it.

use serde::Serialize;

use crate::client::Client;
use crate::pb::booking::v1::ClusterStatusReply;

#[derive(Serialize)]
struct StatusJson {
    leader: Option<u64>,
    term: u64,
    nodes: Vec<NodeJson>,
}

#[derive(Serialize)]
struct NodeJson {
    id: u64,
    addr: String,
    role: String,
    reachable: bool,
    term: u64,
    last_log_index: u64,
    applied_index: u64,
}

pub fn to_json(status: &ClusterStatusReply) -> serde_json::Value {
    let json = StatusJson {
        leader: (status.leader != 0).then_some(status.leader),
        term: status.term,
        nodes: status
            .nodes
            .iter()
            .map(|n| NodeJson {
                id: n.id,
                addr: n.addr.clone(),
                role: n.role.clone(),
                reachable: n.reachable,
                term: n.term,
                last_log_index: n.last_log_index,
                applied_index: n.applied_index,
            })
            .collect(),
    };
    serde_json::to_value(json).unwrap_or_default()
}

pub fn render(status: &ClusterStatusReply) -> String {
    let mut out = String::new();
    match status.leader {
        0 => out.push_str(&format!("no leader (term {})\n", status.term)),
        leader => out.push_str(&format!("leader: node{leader}, term {}\n", status.term)),
    }
    out.push_str(&format!(
        "{:<7} {:<22} {:<12} {:>6} {:>10} {:>10}\n",
        "node", "address", "role", "term", "last log", "applied"
    ));
    for n in &status.nodes {
        out.push_str(&format!(
            "{:<7} {:<22} {:<12} {:>6} {:>10} {:>10}\n",
            format!("node{}", n.id),
            n.addr,
            n.role,
            n.term,
            n.last_log_index,
            n.applied_index
        ));
    }
    out
}

pub async fn run(client: &Client, json: bool) -> anyhow::Result<()> {
    let status = client
        .cluster_status()
        .await
        .map_err(|s| anyhow::anyhow!(super::explain(&s)))?;
    if json {
        println!("{}", to_json(&status));
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}
