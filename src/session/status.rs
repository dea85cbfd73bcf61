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
    /// The live membership, from the log.
    voters: Vec<u64>,
    learners: Vec<u64>,
    joint: bool,
    /// How the live membership differs from cluster.toml; null when it does not.
    differs: Option<String>,
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
    /// voter, learner, or empty when not a member.
    membership: String,
    /// Whether cluster.toml lists it.
    configured: bool,
}

/// How the live membership differs from the answering node's cluster.toml, if it does (and
/// the node said what the membership is).
fn difference(status: &ClusterStatusReply) -> Option<String> {
    if status.voters.is_empty() {
        return None;
    }
    let list = |ids: &[u64]| {
        ids.iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let member = |id: u64| status.voters.contains(&id) || status.learners.contains(&id);
    let configured: Vec<u64> = status
        .nodes
        .iter()
        .filter(|n| n.configured)
        .map(|n| n.id)
        .collect();
    let gone: Vec<u64> = configured
        .iter()
        .copied()
        .filter(|&id| !member(id))
        .collect();
    let added: Vec<u64> = status
        .voters
        .iter()
        .chain(&status.learners)
        .copied()
        .filter(|id| !configured.contains(id))
        .collect();
    let mut parts = Vec::new();
    if !gone.is_empty() {
        parts.push(format!("not members: {}", list(&gone)));
    }
    if !added.is_empty() {
        parts.push(format!("not in cluster.toml: {}", list(&added)));
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "the live membership (voters {}{}) differs from cluster.toml (nodes {}): {}",
        list(&status.voters),
        if status.learners.is_empty() {
            String::new()
        } else {
            format!("; learners {}", list(&status.learners))
        },
        list(&configured),
        parts.join("; ")
    ))
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
        voters: status.voters.clone(),
        learners: status.learners.clone(),
        joint: status.joint,
        differs: difference(status),
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
                membership: n.membership.clone(),
                configured: n.configured,
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
        "node", "address", "role", "member", "term", "last log", "applied", "lag",
    ]);
    for (n, lag) in status.nodes.iter().zip(lags(status)) {
        table.add_row(vec![
            format!("node{}", n.id),
            n.addr.clone(),
            n.role.clone(),
            if n.membership.is_empty() {
                "-".to_string()
            } else {
                n.membership.clone()
            },
            n.term.to_string(),
            n.last_log_index.to_string(),
            n.applied_index.to_string(),
            lag.map_or_else(|| "-".to_string(), |lag| lag.to_string()),
        ]);
    }
    // The numbers (and their headers) to the right; the node starts its line, so a row reads
    // `node2 ...` as it did before the table, and the lag ends it, with no space after.
    for column in table.column_iter_mut().skip(4) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    if let Some(node) = table.column_mut(0) {
        node.set_padding((0, 1));
    }
    if let Some(lag) = table.column_iter_mut().last() {
        lag.set_padding((1, 0));
    }
    let mut text = format!("{leader}\n{table}\n");
    if status.joint {
        text.push_str("a membership change is half done (joint consensus)\n");
    }
    if let Some(difference) = difference(status) {
        text.push_str(&difference);
        text.push('\n');
    }
    text
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
            ..Default::default()
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
            ..Default::default()
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
            ..Default::default()
        };
        assert_eq!(lags(&ahead), [Some(1), Some(0)]);
        let leaderless = ClusterStatusReply {
            leader: 0,
            term: 4,
            nodes: vec![node(1, true, 10, 9), node(2, true, 12, 12)],
            ..Default::default()
        };
        assert_eq!(lags(&leaderless), [None, None]);
        let leader_gone = ClusterStatusReply {
            leader: 3,
            ..leaderless
        };
        assert_eq!(lags(&leader_gone), [None, None]);
    }

    #[test]
    fn a_membership_that_differs_from_cluster_toml_is_said_so() {
        let member = |id, membership: &str, configured| NodeStatus {
            membership: membership.into(),
            configured,
            ..node(id, true, 10, 10)
        };
        let same = ClusterStatusReply {
            leader: 1,
            term: 2,
            voters: vec![1, 2, 3],
            nodes: vec![
                member(1, "voter", true),
                member(2, "voter", true),
                member(3, "voter", true),
            ],
            ..Default::default()
        };
        assert_eq!(difference(&same), None);
        assert_eq!(render(&same).lines().count(), 5);
        let changed = ClusterStatusReply {
            voters: vec![1, 2, 4],
            learners: vec![5],
            nodes: vec![
                member(1, "voter", true),
                member(2, "voter", true),
                member(3, "", true),
                member(4, "voter", false),
                member(5, "learner", false),
            ],
            ..same
        };
        let said = difference(&changed).expect("a difference");
        assert_eq!(
            said,
            "the live membership (voters 1, 2, 4; learners 5) differs from cluster.toml \
             (nodes 1, 2, 3): not members: 3; not in cluster.toml: 4, 5"
        );
        let text = render(&changed);
        assert!(text.ends_with(&format!("{said}\n")), "{text}");
        let row3 = text.lines().find(|l| l.starts_with("node3")).expect("row");
        assert!(row3.contains(" - "), "{text}");
        let json = to_json(&changed);
        assert_eq!(json["voters"], serde_json::json!([1, 2, 4]));
        assert_eq!(json["nodes"][4]["membership"], "learner");
        assert_eq!(json["differs"], serde_json::json!(said));
    }
}
