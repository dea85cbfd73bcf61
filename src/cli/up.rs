//! `ticket up`: every node of cluster.toml on this machine, supervised, until Ctrl-C, SIGINT
//! or SIGTERM.
//!
//! A supervisor, not a fuse: a node that dies is logged and started again after a backoff
//! (0.5 s, doubling to 8 s), while the others keep serving. A node that dies
//! `CRASHES_MAX` times within `CRASH_WINDOW` is left down, and said so: its log says why.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::client::{Client, PROBE_WAIT};
use crate::config::Config;
use crate::local_cluster::LocalCluster;

/// How long a node is given to elect a leader with the others before `up` gives up.
const READY_WAIT: Duration = Duration::from_secs(15);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A node that crashes this often within the window is in a crash loop.
const CRASHES_MAX: usize = 5;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How often the supervisor looks at its children.
const POLL: Duration = Duration::from_millis(100);

pub async fn run(config: &Config) -> anyhow::Result<()> {
    // First, so that a signal during start-up is not lost (a background job starts with
    // SIGINT ignored until this handler is installed).
    let stop = crate::server::signal();
    tokio::pin!(stop);
    let client = Client::from_config(config);
    if client.probe(PROBE_WAIT).await.is_ok() {
        anyhow::bail!(
            "a node of {} is already answering: the cluster is running (see `ticket status`)",
            config.path.display()
        );
    }
    println!(
        "starting the {} nodes of {}",
        config.nodes.len(),
        config.path.display()
    );
    let mut cluster = LocalCluster::start(config)?;
    for (id, log) in &cluster.logs {
        let pid = cluster.pid(*id).unwrap_or_default();
        println!("node{id} started (pid {pid}), logs to {}", log.display());
    }
    tokio::select! {
        ready = cluster.wait_ready(&client, READY_WAIT) => ready?,
        _ = &mut stop => {
            cluster.stop();
            println!("stopped");
            return Ok(());
        }
    }
    let status = client.cluster_status().await?;
    print!("{}", crate::session::status::render(&status));
    let (_scripting, assistant) = super::plugins_and_assistant(config, None);
    super::serve_front(config, &assistant).await;
    println!(
        "\nThe cluster is up. In another terminal: `ticket user add NAME` or `ticket status`."
    );
    println!("A node that dies is started again. Ctrl-C stops every node.");
    let mut supervisor = Supervisor::default();
    tokio::select! {
        _ = &mut stop => {}
        _ = supervisor.watch(&mut cluster) => {}
    }
    cluster.stop();
    println!("stopped");
    Ok(())
}

/// What the supervisor knows of each node's crashes.
#[derive(Default)]
struct Supervisor {
    crashes: BTreeMap<u64, Vec<Instant>>,
    /// Nodes waiting to be started again, and when.
    due: BTreeMap<u64, Instant>,
}

impl Supervisor {
    /// Restarts nodes as they die, forever (the caller stops it with a signal).
    async fn watch(&mut self, cluster: &mut LocalCluster) {
        loop {
            let now = Instant::now();
            for (id, status) in cluster.reap_exited() {
                self.died(id, status, now);
            }
            let ready: Vec<u64> = self
                .due
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in ready {
                self.due.remove(&id);
                match cluster.restart(id) {
                    Ok(()) => {
                        let pid = cluster.pid(id).unwrap_or_default();
                        println!("node{id} started again (pid {pid})");
                    }
                    Err(e) => eprintln!("node{id} could not be started again: {e:#}"),
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn died(&mut self, id: u64, status: std::process::ExitStatus, now: Instant) {
        let crashes = self.crashes.entry(id).or_default();
        crashes.retain(|at| now.duration_since(*at) < CRASH_WINDOW);
        crashes.push(now);
        if crashes.len() >= CRASHES_MAX {
            eprintln!(
                "node{id} exited ({status}) {} times within {} s: leaving it down; see its log, \
                 then restart `ticket up`",
                crashes.len(),
                CRASH_WINDOW.as_secs()
            );
            return;
        }
        let wait = backoff(crashes.len());
        eprintln!(
            "node{id} exited ({status}); starting it again in {:.1} s",
            wait.as_secs_f32()
        );
        self.due.insert(id, now + wait);
    }
}

/// The wait before the `n`th restart within the window (n ≥ 1): doubling from the minimum.
fn backoff(n: usize) -> Duration {
    let doublings = u32::try_from(n.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    BACKOFF_MIN.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(5), BACKOFF_MAX);
        assert_eq!(backoff(usize::MAX), BACKOFF_MAX);
    }
}
