//! The cluster as its nodes report it, for a person (a table) and for a script (JSON):
//! `status` in the shell, `ticket status`, `ticket up` and the page.

use serde::Serialize;

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
    /// Entries the leader has that this node has not applied; `None` (null) when the node or
    /// the leader did not answer.
    lag: Option<u64>,
}

/// Each node's lag: the leader's last log index minus the node's applied index (0 when it is
/// ahead, as a node applying a snapshot may briefly seem). Without a leader that answered
/// there is nothing to measure against, and an unreachable node reports nothing.
fn lags(status: &ClusterStatusReply) -> Vec<Option<u64>> {
    let head = status
        .nodes
        .iter()
        .find(|n| n.id == status.leader && n.reachable)
        .map(|leader| leader.last_log_index);
    status
        .nodes
        .iter()
        .map(|n| {
            let head = head.filter(|_| n.reachable)?;
            Some(head.saturating_sub(n.applied_index))
        })
        .collect()
}

pub fn to_json(status: &ClusterStatusReply) -> serde_json::Value {
    let json = StatusJson {
        leader: (status.leader != 0).then_some(status.leader),
        term: status.term,
        nodes: status
            .nodes
            .iter()
            .zip(lags(status))
            .map(|(n, lag)| NodeJson {
                id: n.id,
                addr: n.addr.clone(),
                role: n.role.clone(),
                reachable: n.reachable,
                term: n.term,
                last_log_index: n.last_log_index,
                applied_index: n.applied_index,
                lag,
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
        "{:<7} {:<22} {:<12} {:>6} {:>10} {:>10} {:>6}\n",
        "node", "address", "role", "term", "last log", "applied", "lag"
    ));
    for (n, lag) in status.nodes.iter().zip(lags(status)) {
        out.push_str(&format!(
            "{:<7} {:<22} {:<12} {:>6} {:>10} {:>10} {:>6}\n",
            format!("node{}", n.id),
            n.addr,
            n.role,
            n.term,
            n.last_log_index,
            n.applied_index,
            lag.map_or_else(|| "-".to_string(), |lag| lag.to_string())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::booking::v1::NodeStatus;

    fn node(id: u64, reachable: bool, last_log_index: u64, applied_index: u64) -> NodeStatus {
        NodeStatus {
            id,
            addr: format!("127.0.0.1:{}", 60050 + id),
            role: if reachable { "follower" } else { "unreachable" }.into(),
            reachable,
            last_log_index,
            applied_index,
            ..NodeStatus::default()
        }
    }

    #[test]
    fn lag_is_the_leaders_log_head_minus_each_nodes_applied_index() {
        let status = ClusterStatusReply {
            leader: 1,
            term: 3,
            nodes: vec![
                node(1, true, 40, 40),
                node(2, true, 38, 33),
                node(3, false, 0, 0),
            ],
        };
        let json = to_json(&status);
        let lags: Vec<&serde_json::Value> = json["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| &n["lag"])
            .collect();
        assert_eq!(
            lags,
            [
                &serde_json::json!(0),
                &serde_json::json!(7),
                &serde_json::Value::Null
            ]
        );
        let text = render(&status);
        let header = text.lines().nth(1).expect("header");
        assert!(header.trim_end().ends_with("lag"), "{text}");
        let row = |id: &str| {
            text.lines()
                .find(|l| l.starts_with(id))
                .expect("row")
                .to_string()
        };
        assert!(row("node2").trim_end().ends_with(" 7"), "{text}");
        assert!(row("node3").trim_end().ends_with(" -"), "{text}");
    }

    #[test]
    fn a_node_ahead_of_the_head_or_no_leader_gives_no_negative_or_made_up_lag() {
        let ahead = ClusterStatusReply {
            leader: 1,
            term: 3,
            nodes: vec![node(1, true, 10, 9), node(2, true, 12, 12)],
        };
        assert_eq!(lags(&ahead), [Some(1), Some(0)]);
        let leaderless = ClusterStatusReply {
            leader: 0,
            term: 4,
            nodes: vec![node(1, true, 10, 9), node(2, true, 12, 12)],
        };
        assert_eq!(lags(&leaderless), [None, None]);
        let leader_gone = ClusterStatusReply {
            leader: 3,
            ..leaderless
        };
        assert_eq!(lags(&leader_gone), [None, None]);
    }
}
