//! `ticket web`: the page against the cluster of cluster.toml, wherever its nodes run, until
//! Ctrl-C. (The shell and `ticket up` serve it themselves beside a local cluster.)

use std::net::SocketAddr;

use anyhow::Context;

use crate::config::Config;

pub async fn run(config: &Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let addr = listen.unwrap_or(config.web.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}: is the page already served?"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let tls = crate::https::server_config(config, bound)?;
    // The Ask box answers with the same rules as the shell, plugins' rules included.
    let (_scripting, assistant) = super::plugins_and_assistant(config, None);
    let client = crate::client::Client::from_config(config);
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("the page is at {scheme}://{bound}/ (Ctrl-C stops it)");
    let app = crate::web::router(client, assistant);
    tokio::select! {
        _ = crate::https::serve(listener, tls, app) => {}
        _ = crate::server::signal() => {}
    }
    Ok(())
}
