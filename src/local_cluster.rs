//! A cluster of this machine's nodes as child processes of this one: `ticket up` supervises
//! one; the shell and `ticket run` start one when no node answers, and a scenario can kill,
//! restart, pause and resume its nodes.
//!
//! Each node runs in a process group of its own, so a Ctrl-C at the terminal reaches only the
//! process that started them, which then stops them in order (SIGTERM, then SIGKILL after
//! 6 s).
//!
//! What it does not do: decide when to restart a node (`cli::up` does, for `ticket up`).

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::client::Client;
use crate::config::Config;

/// Nodes started by this process. Dropping it stops them.
///
/// It can also kill, restart, pause and resume one of them: the script API's cluster control
/// (`kill(2)` in a scenario) works on the nodes of the process that started them.
pub struct LocalCluster {
    children: Vec<(u64, Child)>,
    pub logs: Vec<(u64, PathBuf)>,
    exe: PathBuf,
    config_path: PathBuf,
    addrs: Vec<(u64, SocketAddr)>,
    paused: BTreeSet<u64>,
    /// The first admin's password, handed to the nodes for the cluster's seed.
    admin_password: String,
    config: Config,
}

/// Where a local cluster keeps its first admin's password when the operator typed none.
pub fn admin_password_file(config: &Config) -> PathBuf {
    config.data_dir.join("admin-password")
}

/// The first admin's password for a local cluster: TICKET_ADMIN_PASSWORD if set; else the one
/// chosen before (kept 0600 in the data directory); else, for a new cluster, one the
/// operator types at a terminal, or a random one written 0600 beside the data and said once.
fn local_admin_password(config: &Config) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let env = crate::config::ADMIN_PASSWORD_ENV;
    if let Ok(password) = std::env::var(env) {
        return Ok(password);
    }
    let file = admin_password_file(config);
    if let Ok(password) = std::fs::read_to_string(&file) {
        return Ok(password.trim().to_string());
    }
    let fresh = !config.data_dir.join("pki").exists();
    if fresh && std::io::stdin().is_terminal() {
        eprintln!("A new cluster: choose the password of its first admin, 'admin'.");
        let password = crate::prompt::read_password("Admin password: ", false, env, true)?;
        crate::domain::validate::password(&password).map_err(|e| anyhow::anyhow!(e))?;
        return Ok(password);
    }
    let bytes: [u8; 15] = rand::random();
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::pki::private_dir(&config.data_dir)?;
    crate::pki::write_private(&file, format!("{password}\n").as_bytes())?;
    if fresh {
        eprintln!(
            "A new cluster: its first admin is 'admin', with the password in {} (0600).",
            file.display()
        );
    }
    Ok(password)
}

impl LocalCluster {
    /// Starts `ticket node --id N` for every node of the file, each logging to
    /// `<data_dir>/node<N>.log`.
    pub fn start(config: &Config) -> anyhow::Result<LocalCluster> {
        let exe = std::env::current_exe().context("finding the ticket binary")?;
        let admin_password = local_admin_password(config)?;
        crate::pki::private_dir(&config.data_dir)?;
        // Made here, before the nodes start, so the message is said once, on this screen.
        let mut made = false;
        for node in &config.nodes {
            made |= crate::pki::ensure_local(config, node.id)?;
        }
        if made {
            eprintln!(
                "A new cluster: made its CA, node certificates and token key in {} (files 0600).",
                config.data_dir.join("pki").display()
            );
        }
        let mut cluster = LocalCluster {
            children: Vec::new(),
            logs: Vec::new(),
            exe,
            config_path: config.path.clone(),
            addrs: config.nodes.iter().map(|n| (n.id, n.addr)).collect(),
            paused: BTreeSet::new(),
            admin_password,
            config: config.clone(),
        };
        for node in &config.nodes {
            let log_path = config.data_dir.join(format!("node{}.log", node.id));
            cluster.logs.push((node.id, log_path));
            cluster.spawn(node.id)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let log_path = self.log_path(id)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = Command::new(&self.exe)
            .process_group(0)
            .arg("--config")
            .arg(&self.config_path)
            .arg("node")
            .arg("--id")
            .arg(id.to_string())
            .env(crate::config::ADMIN_PASSWORD_ENV, &self.admin_password)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        self.children.push((id, child));
        Ok(())
    }

    /// The first admin's password (for scripts run against the cluster this process started).
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// A client of node `id` alone, reaching it as clients of this cluster do (TLS or not).
    pub fn node_client(&self, id: u64) -> Option<Client> {
        let addr = self.addr(id)?;
        Some(Client::of_nodes(&self.config, &[(id, addr)]))
    }

    /// Where node `id` answers.
    pub fn addr(&self, id: u64) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| *n == id).map(|(_, a)| *a)
    }

    fn log_path(&self, id: u64) -> anyhow::Result<PathBuf> {
        self.logs
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, path)| path.clone())
            .ok_or_else(|| {
                anyhow::anyhow!("there is no node {id} in {}", self.config_path.display())
            })
    }

    fn child(&mut self, id: u64) -> anyhow::Result<&mut Child> {
        self.log_path(id)?;
        self.children
            .iter_mut()
            .find(|(n, _)| *n == id)
            .map(|(_, child)| child)
            .ok_or_else(|| anyhow::anyhow!("node {id} is not running (restart it first)"))
    }

    fn signal(&mut self, id: u64, signal: i32) -> anyhow::Result<()> {
        let pid = self.child(id)?.id() as i32;
        // SAFETY: kill(2) with a pid this process spawned and has not yet reaped.
        if unsafe { libc::kill(pid, signal) } != 0 {
            anyhow::bail!(
                "cannot signal node {id}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Kills one node with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let child = self.child(id)?;
        child.kill().with_context(|| format!("killing node {id}"))?;
        child.wait().with_context(|| format!("reaping node {id}"))?;
        self.children.retain(|(n, _)| *n != id);
        self.paused.remove(&id);
        Ok(())
    }

    /// Starts a node again after `kill`; it recovers from its own store.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.log_path(id)?;
        if self.children.iter().any(|(n, _)| *n == id) {
            anyhow::bail!("node {id} is running (kill it first)");
        }
        self.spawn(id)
    }

    /// Freezes a node (SIGSTOP): it holds its connections but answers nothing, like a long
    /// garbage-collection pause or a hung machine.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, libc::SIGSTOP)?;
        self.paused.insert(id);
        Ok(())
    }

    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, libc::SIGCONT)?;
        self.paused.remove(&id);
        Ok(())
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

    /// The nodes that have exited since the last call, with how; they are no longer counted
    /// as running, so `restart` can start them again.
    pub fn reap_exited(&mut self) -> Vec<(u64, std::process::ExitStatus)> {
        let mut exited = Vec::new();
        self.children
            .retain_mut(|(id, child)| match child.try_wait() {
                Ok(Some(status)) => {
                    exited.push((*id, status));
                    false
                }
                _ => true,
            });
        for (id, _) in &exited {
            self.paused.remove(id);
        }
        exited
    }

    /// The process id of node `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, child)| child.id())
    }

    /// A child that has exited, if any.
    pub fn exited(&mut self) -> Option<(u64, std::process::ExitStatus)> {
        self.children
            .iter_mut()
            .find_map(|(id, child)| child.try_wait().ok().flatten().map(|s| (*id, s)))
    }

    /// SIGTERM to every node, then waits for each (SIGKILL after 6 s).
    pub fn stop(&mut self) {
        for (id, child) in &self.children {
            let pid = child.id() as i32;
            // SAFETY: kill(2) with a pid this process spawned and has not yet reaped.
            unsafe {
                if self.paused.contains(id) {
                    libc::kill(pid, libc::SIGCONT);
                }
                libc::kill(pid, libc::SIGTERM);
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
