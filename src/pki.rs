//! The cluster's secrets, in files each node reads and never in the replicated log: its own
//! certificate authority (peers prove who they are with certificates it signed, and a node
//! reads a peer's id out of the certificate, never out of a message), and the keys tokens are
//! signed with (`token.keys`: one `VERSION HEX` a line; the highest version signs).
//!
//! `ticket cert init` makes the CA; `ticket cert issue --node N` a node's key and
//! certificate; `ticket cert issue --server` a certificate for the client API. A cluster whose
//! nodes are all on loopback makes all of them under `<data_dir>/pki` on first start. Every
//! key is written 0600, in a directory 0700.
//!
//! What it does not do: revoke certificates (replace the CA and reissue), or serve anything.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::config::Config;

/// The DNS name a node's certificate carries, and the name a peer dialing it expects.
pub fn node_name(id: u64) -> String {
    format!("node{id}.peer.ticket")
}

/// The node id a peer certificate was issued for, read from its DNS names; None when it
/// names no node (or names two).
pub fn node_id_of(cert_der: &[u8]) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut ids = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => dns
                .strip_prefix("node")?
                .strip_suffix(".peer.ticket")?
                .parse::<u64>()
                .ok(),
            _ => None,
        });
    let id = ids.next()?;
    ids.next().is_none().then_some(id)
}

/// The PEM texts one TLS endpoint needs.
#[derive(Clone)]
pub struct Identity {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Identity {
    /// Reads node `id`'s peer identity from the files `cluster.toml` names (or the defaults).
    pub fn load_peer(config: &Config, id: u64) -> anyhow::Result<Identity> {
        let (cert, key) = config.peer_tls.node_files(id);
        Ok(Identity {
            ca_pem: read(&config.peer_tls.ca)?,
            cert_pem: read(&cert)?,
            key_pem: read(&key)?,
        })
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: make the cluster's certificates with `ticket cert init` and \
             `ticket cert issue --node N`, and name them in [peer_tls]",
            path.display()
        )
    })
}

/// Creates `dir` (and its parents) private to this user: 0700.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `bytes` to a new file readable by this user only (0600), flushed to disk.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Makes a new CA in `dir`: `ca.pem` and `ca.key`. Refuses to replace one.
pub fn init_ca(dir: &Path) -> anyhow::Result<()> {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    if cert.exists() || key.exists() {
        bail!(
            "{} already holds a CA; remove it first to make a new one",
            dir.display()
        );
    }
    private_dir(dir)?;
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "ticket cluster CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_after = years_from_now(10);
    let key_pair = KeyPair::generate().context("generating the CA key")?;
    let ca = params.self_signed(&key_pair).context("signing the CA")?;
    write_private(&key, key_pair.serialize_pem().as_bytes())?;
    write_private(&cert, ca.pem().as_bytes())?;
    let keys = dir.join(TOKEN_KEYS_FILE);
    if !keys.exists() {
        add_token_key(&keys)?;
    }
    Ok(())
}

/// What a certificate is for.
pub enum Subject {
    /// A node's peer identity: client and server of the peer protocol.
    Node(u64),
    /// The client API's server certificate, valid for these names and addresses.
    Server(Vec<String>),
}

/// Issues a key and certificate signed by the CA in `ca_dir`, written as `<stem>.pem` and
/// `<stem>.key` in `out_dir`; returns their paths.
pub fn issue(
    ca_dir: &Path,
    subject: &Subject,
    out_dir: &Path,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let ca_key = KeyPair::from_pem(
        &std::fs::read_to_string(ca_dir.join("ca.key")).with_context(|| {
            format!(
                "no CA key in {}: run `ticket cert init` first",
                ca_dir.display()
            )
        })?,
    )
    .context("reading the CA key")?;
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem"))
        .with_context(|| format!("no CA certificate in {}", ca_dir.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("reading the CA certificate")?;
    let mut params = CertificateParams::default();
    params.not_after = years_from_now(5);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let stem = match subject {
        Subject::Node(id) => {
            params.subject_alt_names = vec![SanType::DnsName(node_name(*id).try_into()?)];
            params
                .distinguished_name
                .push(DnType::CommonName, format!("ticket node {id}"));
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            format!("node{id}")
        }
        Subject::Server(names) => {
            for name in names {
                params.subject_alt_names.push(match name.parse() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(name.clone().try_into()?),
                });
            }
            params
                .distinguished_name
                .push(DnType::CommonName, "ticket client API");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            "server".to_string()
        }
    };
    let key_pair = KeyPair::generate().context("generating a key")?;
    let cert = params
        .signed_by(&key_pair, &issuer)
        .context("signing the certificate")?;
    private_dir(out_dir)?;
    let (cert_path, key_path) = (
        out_dir.join(format!("{stem}.pem")),
        out_dir.join(format!("{stem}.key")),
    );
    write_private(&key_path, key_pair.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    Ok((cert_path, key_path))
}

/// The first of January `years` after this one: far enough that no one renews by accident,
/// near enough that a lost key does not stay good forever.
fn years_from_now(years: i32) -> time::OffsetDateTime {
    let now = crate::clock::now_ms() / 1000;
    let year = 1970 + (now / 31_556_952) as i32;
    rcgen::date_time_ymd(year + years, 1, 1)
}

pub use crate::config::TOKEN_KEYS_FILE;

/// Reads a token-key file: every version it lists, the newest last.
pub fn read_token_keys(path: &Path) -> anyhow::Result<Vec<crate::domain::auth::TokenKey>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the token keys {}: `ticket cert init` makes them; copy the file to \
             every node",
            path.display()
        )
    })?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || anyhow::anyhow!("{}:{}: expected `VERSION HEX64`", path.display(), n + 1);
        let (version, hex) = line.split_once(' ').ok_or_else(bad)?;
        let version: u32 = version.parse().map_err(|_| bad())?;
        let hex = hex.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut secret = [0u8; 32];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        keys.push(crate::domain::auth::TokenKey { version, secret });
    }
    keys.sort_by_key(|k| k.version);
    if keys.is_empty() {
        anyhow::bail!("{} holds no token key", path.display());
    }
    Ok(keys)
}

/// Adds a new token key (version one past the newest) to the file, making the file (0600)
/// if there is none; returns the new version. Tokens signed with older keys stay good until
/// they expire; remove an old line to revoke every token signed with it.
pub fn add_token_key(path: &Path) -> anyhow::Result<u32> {
    let secret: [u8; 32] = rand::random();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    if !path.exists() {
        let text = format!(
            "# ticket token keys: one `VERSION HEX` a line; the highest version signs.\n1 {hex}\n"
        );
        write_private(path, text.as_bytes())?;
        return Ok(1);
    }
    let version = read_token_keys(path)?
        .last()
        .map_or(1, |k| k.version.saturating_add(1));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{version} {hex}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(version)
}

/// For a cluster on loopback whose `cluster.toml` names no `[peer_tls]`: makes the CA and
/// every node's certificate under `<data_dir>/pki` unless they exist, and node `id`'s if it
/// joined the file later (`ticket cluster add`). Nodes started together race here; the files
/// appear by one atomic rename of a whole directory, so every node reads the same CA. Returns
/// whether this call made them.
pub fn ensure_local(config: &Config, id: u64) -> anyhow::Result<bool> {
    if config.peer_tls.configured {
        return Ok(false);
    }
    let pki = config.data_dir.join("pki");
    if pki.join("ca.pem").exists() {
        return issue_missing_local(&pki, id);
    }
    if !config.all_local() {
        bail!(
            "{} names nodes on other machines but no [peer_tls]: make the certificates with \
             `ticket cert init` and `ticket cert issue --node N` (see README, Security)",
            config.path.display()
        );
    }
    private_dir(&config.data_dir)?;
    let staging = config
        .data_dir
        .join(format!("pki.new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    // (with the token key)
    init_ca(&staging)?;
    for node in &config.nodes {
        issue(&staging, &Subject::Node(node.id), &staging)?;
    }
    match std::fs::rename(&staging, &pki) {
        Ok(()) => Ok(true),
        // Another node got there first: use its files.
        Err(_) if pki.join("ca.pem").exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            issue_missing_local(&pki, id)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e).with_context(|| format!("cannot create {}", pki.display()))
        }
    }
}

/// Node `id`'s certificate in a local cluster's `pki`, made with its CA if missing (a node
/// added after the cluster was made). The key is renamed into place before the certificate,
/// so a certificate that exists has its key.
fn issue_missing_local(pki: &Path, id: u64) -> anyhow::Result<bool> {
    let stem = format!("node{id}");
    if pki.join(format!("{stem}.pem")).exists() || !pki.join("ca.key").exists() {
        return Ok(false);
    }
    let staging = pki.join(format!("{stem}.new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    private_dir(&staging)?;
    let (cert, key) = issue(pki, &Subject::Node(id), &staging)?;
    let placed = std::fs::rename(&key, pki.join(format!("{stem}.key")))
        .and_then(|()| std::fs::rename(&cert, pki.join(format!("{stem}.pem"))));
    let _ = std::fs::remove_dir_all(&staging);
    placed.with_context(|| format!("cannot place node {id}'s certificate in {}", pki.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node certificate names exactly its node, and the CA signed it.
    #[test]
    fn a_node_certificate_carries_its_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        init_ca(dir.path()).expect("ca");
        let (cert, key) = issue(dir.path(), &Subject::Node(7), dir.path()).expect("issue");
        let pem = std::fs::read(&cert).expect("read");
        let der = rustls_pemfile_der(&pem);
        assert_eq!(node_id_of(&der), Some(7));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            init_ca(dir.path()).is_err(),
            "a second CA must not replace the first"
        );
    }

    /// Rotation adds a version and keeps the old ones, so old tokens stay good.
    #[test]
    fn token_keys_rotate_and_keep_the_old_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(TOKEN_KEYS_FILE);
        assert_eq!(add_token_key(&path).expect("first"), 1);
        assert_eq!(add_token_key(&path).expect("second"), 2);
        let keys = read_token_keys(&path).expect("read");
        assert_eq!(keys.iter().map(|k| k.version).collect::<Vec<_>>(), [1, 2]);
        assert_ne!(keys[0].secret, keys[1].secret);
        std::fs::write(&path, "1 zz\n").expect("write");
        let err = read_token_keys(&path).expect_err("bad line");
        assert!(err.to_string().contains(":1:"), "{err}");
    }

    fn rustls_pemfile_der(pem: &[u8]) -> Vec<u8> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem).expect("pem");
        pem.contents
    }
}
