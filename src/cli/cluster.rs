//! `ticket cluster add|remove|replace`: the membership changed at run time, as an admin.
//!
//! Adding waits for the new node to catch up: the leader answers "not yet" after a while,
//! and this asks again (each call goes on where the last left off) until `--wait` runs out.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::client::Client;
use crate::config::Config;
use crate::pb::booking::v1::MembershipReply;

/// What to change.
pub enum Change {
    Add {
        id: u64,
        peer_addr: SocketAddr,
    },
    Remove {
        id: u64,
        force: bool,
    },
    Replace {
        old: u64,
        new: u64,
        peer_addr: SocketAddr,
        force: bool,
    },
}

/// Where peers dial node `id`: `peer_addr` if given; else, from `addr` (given, or the node's
/// entry in cluster.toml), its `peer_advertise` as cluster.toml would default it.
pub fn peer_addr(
    config: &Config,
    id: u64,
    addr: Option<SocketAddr>,
    peer_addr: Option<SocketAddr>,
) -> anyhow::Result<SocketAddr> {
    if let Some(peer_addr) = peer_addr {
        return Ok(peer_addr);
    }
    if let Some(addr) = addr {
        let port = addr
            .port()
            .checked_add(1000)
            .context("the port is too high to default --peer-addr to port + 1000")?;
        return Ok(SocketAddr::new(addr.ip(), port));
    }
    match config.node(id) {
        Some(node) => Ok(node.peer_advertise),
        None => bail!(
            "{} does not list node {id}: give its address (--addr IP:PORT, and --peer-addr \
             if its peer port is not the client port + 1000)",
            config.path.display()
        ),
    }
}

/// Carries out `change` as `admin`, asking again while an added node catches up, for
/// `wait` at most.
pub async fn run(
    mut client: Client,
    admin: &str,
    change: Change,
    wait: Duration,
) -> anyhow::Result<()> {
    super::user::login_as_admin(&mut client, admin).await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let reply = match &change {
            Change::Add { id, peer_addr } => client.add_node(*id, &peer_addr.to_string()).await?,
            Change::Remove { id, force } => client.remove_node(*id, *force).await?,
            Change::Replace {
                old,
                new,
                peer_addr,
                force,
            } => {
                client
                    .replace_node(*old, *new, &peer_addr.to_string(), *force)
                    .await?
            }
        };
        if !reply.warning.is_empty() {
            eprintln!("warning: {}", reply.warning);
        }
        if reply.promoted {
            println!("{}", summary(&reply));
            return Ok(());
        }
        println!(
            "catching up: applied {} of {}",
            reply.applied_index, reply.leader_index
        );
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the new node did not catch up within {} s; it stays a learner (it receives \
                 the log but does not vote). Run the same command again to promote it once it \
                 has, or `ticket cluster remove` it",
                wait.as_secs()
            );
        }
    }
}

fn summary(reply: &MembershipReply) -> String {
    let list = |ids: &[u64]| {
        ids.iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = String::new();
    if reply.handed_over_to != 0 {
        text.push_str(&format!(
            "the leader handed leadership to node {} before it left\n",
            reply.handed_over_to
        ));
    }
    text.push_str(&format!("membership: voters {}", list(&reply.voters)));
    if !reply.learners.is_empty() {
        text.push_str(&format!("; learners {}", list(&reply.learners)));
    }
    text
}
