//! `ticket up`: every node of cluster.toml as a child process of this one, until Ctrl-C.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::client::Client;
use crate::config::Config;

/// Nodes started by this process. Dropping it stops them.
pub struct LocalCluster {
    children: Vec<(u64, Child)>,
    pub logs: Vec<(u64, PathBuf)>,
}

impl LocalCluster {
    /// Starts `ticket node --id N` for every node of the file, each logging to
    /// `<data_dir>/node<N>.log`.
    pub fn start(config: &Config) -> anyhow::Result<LocalCluster> {
        let exe = std::env::current_exe().context("finding the ticket binary")?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let mut cluster = LocalCluster {
            children: Vec::new(),
            logs: Vec::new(),
        };
        for node in &config.nodes {
            let log_path = config.data_dir.join(format!("node{}.log", node.id));
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            let child = Command::new(&exe)
                .arg("--config")
                .arg(&config.path)
                .arg("node")
                .arg("--id")
                .arg(node.id.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting node {}", node.id))?;
            cluster.children.push((node.id, child));
            cluster.logs.push((node.id, log_path));
        }
        Ok(cluster)
    }

    /// Waits until the cluster has a leader and every node answers.
    pub async fn wait_ready(&mut self, client: &Client, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((id, status)) = self.exited() {
                anyhow::bail!("node {id} exited ({status}); see its log");
            }
            if let Ok(status) = client.cluster_status().await {
                if status.leader != 0 && status.nodes.iter().all(|n| n.reachable) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "no leader within {} s; see the node logs",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A child that has exited, if any.
    pub fn exited(&mut self) -> Option<(u64, std::process::ExitStatus)> {
        self.children
            .iter_mut()
            .find_map(|(id, child)| child.try_wait().ok().flatten().map(|s| (*id, s)))
    }

    /// SIGTERM to every node, then waits for each (SIGKILL after 6 s).
    pub fn stop(&mut self) {
        for (_, child) in &self.children {
            // SAFETY: kill(2) with a pid this process spawned and has not yet reaped.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
        }
        for (id, child) in &mut self.children {
            let deadline = std::time::Instant::now() + Duration::from_secs(6);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() >= deadline => {
                        eprintln!("node {id} did not stop in time; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let client = Client::from_config(config);
    if client.cluster_status().await.is_ok() {
        anyhow::bail!(
            "a node of {} is already answering: the cluster is running (see `ticket status`)",
            config.path.display()
        );
    }
    let mut cluster = LocalCluster::start(config)?;
    cluster.wait_ready(&client, Duration::from_secs(15)).await?;
    let status = client
        .cluster_status()
        .await
        .map_err(|s| anyhow::anyhow!(super::explain(&s)))?;
    print!("{}", super::status::render(&status));
    for (id, log) in &cluster.logs {
        println!("node{id} logs to {}", log.display());
    }
    println!(
        "\nThe cluster is up. In another terminal: `ticket user add NAME` or `ticket status`."
    );
    println!("Ctrl-C stops every node.");
    tokio::select! {
        _ = crate::server::signal() => {}
        id = watch_children(&mut cluster) => eprintln!("node {id} exited unexpectedly; stopping the others"),
    }
    cluster.stop();
    println!("stopped");
    Ok(())
}

async fn watch_children(cluster: &mut LocalCluster) -> u64 {
    loop {
        if let Some((id, _)) = cluster.exited() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
