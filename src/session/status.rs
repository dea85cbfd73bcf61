//! The cluster as its nodes report it, for a person (a table) and for a script (JSON):
//! `status` in the shell, `ticket status`, `ticket up` and the page.

use comfy_table::CellAlignment;
use serde::Serialize;

use super::render::table;
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

/// The leader and term on a line, then a table of the nodes (the shell's plain style, as
/// `events` draws): a row per node, `node2 ...`, its lag last (`-` when unknown).
pub fn render(status: &ClusterStatusReply) -> String {
    let leader = match status.leader {
        0 => format!("no leader (term {})", status.term),
        leader => format!("leader: node{leader}, term {}", status.term),
    };
    let mut table = table(&[
        "node", "address", "role", "term", "last log", "applied", "lag",
    ]);
    for (n, lag) in status.nodes.iter().zip(lags(status)) {
        table.add_row(vec![
            format!("node{}", n.id),
            n.addr.clone(),
            n.role.clone(),
            n.term.to_string(),
            n.last_log_index.to_string(),
            n.applied_index.to_string(),
            lag.map_or_else(|| "-".to_string(), |lag| lag.to_string()),
        ]);
    }
    // The numbers (and their headers) to the right; the node starts its line, so a row reads
    // `node2 ...` as it did before the table, and the lag ends it, with no space after.
    for column in table.column_iter_mut().skip(3) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    if let Some(node) = table.column_mut(0) {
        node.set_padding((0, 1));
    }
    if let Some(lag) = table.column_iter_mut().last() {
        lag.set_padding((1, 0));
    }
    format!("{leader}\n{table}\n")
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
    fn the_node_table_starts_each_row_with_its_node_and_lines_up_the_numbers() {
        let status = ClusterStatusReply {
            leader: 1,
            term: 12,
            nodes: vec![
                node(1, true, 1234, 1234),
                node(2, true, 1234, 9),
                node(3, false, 0, 0),
            ],
        };
        let text = render(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "leader: node1, term 12", "{text}");
        assert!(lines[1].starts_with("node "), "{text}");
        for (line, id) in lines[2..].iter().zip(["node1 ", "node2 ", "node3 "]) {
            assert!(line.starts_with(id), "{text}");
        }
        assert_eq!(lines.len(), 5, "{text}");
        // The numbers are right-aligned under their headers: every line ends at the same place,
        // with no space after.
        let ends: Vec<usize> = lines[1..].iter().map(|l| l.len()).collect();
        assert!(ends.iter().all(|&end| end == ends[0]), "{text}");
        assert!(text.ends_with('\n'));
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
