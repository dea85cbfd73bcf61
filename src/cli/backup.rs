//! `ticket backup FILE` and `ticket restore FILE`: the whole state at one log index, saved
//! from a running cluster, and new nodes seeded from it (see `consensus::backup`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::client::Client;
use crate::config::Config;
use crate::consensus::backup;

/// Takes a backup as `admin` (password from TICKET_ADMIN_PASSWORD or the terminal) and
/// writes it to `path`, checked before it is written, 0600 (it holds password hashes), and
/// renamed into place only once it is on disk.
pub async fn save(mut client: Client, admin: &str, path: &Path) -> anyhow::Result<()> {
    super::user::login_as_admin(&mut client, admin).await?;
    let (file, index) = client.backup().await?;
    let checked = backup::decode_file(&file).context("the backup the cluster sent")?;
    let partial = path.with_extension("partial");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        out.write_all(&file)?;
        out.sync_all()?;
    }
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot move the backup to {}", path.display()))?;
    println!(
        "backed up the state at log index {index} (term {}): {} bytes, {} events, to {}",
        checked.last_applied.leader_id.term,
        file.len(),
        checked.state.events().count(),
        path.display()
    );
    Ok(())
}

/// Seeds node `id` of `config` (every node when None) from the backup at `path`, in
/// `data_dir` (default: the file's `data_dir`) under `node<ID>`. The nodes then start as a
/// new cluster of `config`'s nodes with the backup's state.
pub fn restore(
    config: &Config,
    path: &Path,
    id: Option<u64>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let checked =
        backup::decode_file(&bytes).with_context(|| format!("{} is refused", path.display()))?;
    let members = config.bootstrap_members();
    let ids: Vec<u64> = match id {
        Some(id) if members.contains_key(&id) => vec![id],
        Some(id) => anyhow::bail!("{} has no node with id {id}", config.path.display()),
        None => members.keys().copied().collect(),
    };
    let last = checked.last_applied;
    for id in ids {
        let dir = match &data_dir {
            Some(dir) => dir.join(format!("node{id}")),
            None => config.node_data_dir(id),
        };
        let copy = backup::Backup {
            version: checked.version,
            last_applied: last,
            taken_at_ms: checked.taken_at_ms,
            state: checked.state.clone(),
        };
        backup::seed(&dir, id, members.clone(), copy)
            .with_context(|| format!("restoring node {id}"))?;
        println!(
            "restored node {id} in {} from the state at log index {} (term {})",
            dir.display(),
            last.index,
            last.leader_id.term
        );
    }
    println!("start the nodes (`ticket up`, or `ticket node --id N` on each machine)");
    Ok(())
}
