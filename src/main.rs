//! The `ticket` binary: parses the command line, sets up logging, and hands over to
//! `ticket::cli` or `ticket::server`. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use ticket::cli;
use ticket::client::Client;
use ticket::config::Config;

#[derive(Parser)]
#[command(name = "ticket", version, about = "A replicated seat-booking system")]
struct Cli {
    /// The cluster's description.
    #[arg(
        long,
        global = true,
        env = "TICKET_CONFIG",
        default_value = "cluster.toml"
    )]
    config: PathBuf,
    /// Talk plain text to nodes that are not on loopback (passwords and tokens in clear).
    #[arg(long, global = true)]
    insecure: bool,
    /// How log lines are written: text, or one JSON object a line (a node's carry its id,
    /// term and role). `ticket up` passes it on to its nodes.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "TICKET_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: cli::logging::LogFormat,
    #[command(flatten)]
    shell: ShellArgs,
    /// Without a subcommand, `ticket` opens the booking shell.
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// The shell's flags: `ticket` and `ticket shell` take the same.
#[derive(clap::Args, Clone, Default)]
struct ShellArgs {
    /// Run this command and exit (repeatable; stops at the first failure).
    #[arg(short = 'c', value_name = "CMD")]
    commands: Vec<String>,
    /// Run the commands of this file, one a line, and exit.
    #[arg(short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print every reply as one JSON object a line.
    #[arg(long)]
    json: bool,
    /// Answer yes to confirmations (without a terminal they are refused otherwise).
    #[arg(long)]
    yes: bool,
    /// Read the login password from the first line of stdin.
    #[arg(long)]
    password_stdin: bool,
}

impl ShellArgs {
    fn options(self) -> ticket::shell::ShellOptions {
        ticket::shell::ShellOptions {
            commands: self.commands,
            file: self.file,
            json: self.json,
            yes: self.yes,
            password_stdin: self.password_stdin,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Open the booking shell (the default).
    Shell(ShellArgs),
    /// Print a completion script for a shell: `source <(ticket completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `ticket man > ticket.1; man ./ticket.1`.
    Man,
    /// Run one node of the cluster (the daemon).
    Node {
        /// Its id in cluster.toml.
        #[arg(long)]
        id: u64,
        /// Join an existing cluster: never initialize a new one, wait empty until a leader
        /// adds this node (`ticket cluster add ID`). Implied by `bootstrap = false`.
        #[arg(long)]
        join: bool,
    },
    /// Start every node of cluster.toml on this machine; Ctrl-C stops them.
    Up,
    /// Run a rhai scenario (scripts/*.rhai). If no node answers, it starts the local cluster
    /// for the script, which may then kill, restart, pause and resume nodes.
    Run {
        file: PathBuf,
        /// Passed to the script as the array ARGS.
        args: Vec<String>,
        /// Print the outcome (the script's value and its prints) as one JSON object.
        #[arg(long)]
        json: bool,
        /// Stop the script after this many seconds (default 600, or TICKET_SCRIPT_TIMEOUT).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout: Option<u64>,
    },
    /// Serve the page (seat map, booking, the Ask box, cluster health) against the cluster of
    /// cluster.toml, on its `[web] listen` address.
    Web {
        /// Listen here instead (e.g. 127.0.0.1:0 for any free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Show the cluster as its nodes report it.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Make the first admin of a new cluster with the one-time setup code from the first
    /// leader's log (a local cluster started by `ticket up` or the shell needs none).
    Init {
        #[arg(long)]
        setup_code: Option<String>,
        #[arg(long, default_value = "admin")]
        name: String,
        /// Read the password from stdin (else TICKET_ADMIN_PASSWORD, else the terminal).
        #[arg(long)]
        password_stdin: bool,
    },
    /// The cluster's certificates: a CA, node certificates for the peer protocol, a server
    /// certificate for the client API.
    Cert {
        #[command(subcommand)]
        command: CertCmd,
    },
    /// The token-signing keys (the file every node reads).
    Key {
        #[command(subcommand)]
        command: KeyCmd,
    },
    /// Measure booking throughput and latency against the running cluster.
    Bench(BenchFlags),
    /// Save the whole state, as of a linearizable read, to FILE (admins; checksummed, 0600).
    Backup {
        file: PathBuf,
        /// The admin to act as (its password from TICKET_ADMIN_PASSWORD or the terminal).
        #[arg(long = "as", default_value = "admin")]
        admin: String,
    },
    /// Change who is in the cluster, at run time (admins): add a node, remove one, replace a
    /// dead one. cluster.toml stays the first membership; `ticket status` shows both.
    Cluster {
        #[command(subcommand)]
        command: ClusterCmd,
        /// The admin to act as (its password from TICKET_ADMIN_PASSWORD or the terminal).
        #[arg(long = "as", default_value = "admin", global = true)]
        admin: String,
    },
    /// Seed new, empty nodes from a backup: every node of cluster.toml, or only --id N (run
    /// it on each machine). Start them after; they form a new cluster with the backup's state.
    Restore {
        file: PathBuf,
        #[arg(long)]
        id: Option<u64>,
        /// Put the nodes' data here (under node<ID>) instead of cluster.toml's data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

// The flags of `ticket bench` (its help is the `Cmd::Bench` doc comment).
#[derive(clap::Args)]
struct BenchFlags {
    /// unary: one Reserve a booking; batch (or stream): ReserveBatch calls of --batch
    /// bookings; checkout: a hold, then its confirm; ping: the no-op RPC.
    #[arg(long, value_enum, default_value_t = cli::bench::Mode::Unary)]
    mode: cli::bench::Mode,
    /// Bookings in one ReserveBatch call (--mode batch).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=128))]
    batch: u32,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long)]
    json: bool,
    /// An admin (bench creates its own events); the password comes from TICKET_PASSWORD,
    /// --password-stdin or the terminal.
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long)]
    password_stdin: bool,
}

// Where a node being added is: its client address, and its peer address when that is not
// the client port + 1000. Both default from cluster.toml when it lists the node.
#[derive(clap::Args)]
struct NewNodeAddr {
    /// Its client address (IP:PORT).
    #[arg(long)]
    addr: Option<std::net::SocketAddr>,
    /// Where its peers dial it (default: --addr with the port plus 1000).
    #[arg(long)]
    peer_addr: Option<std::net::SocketAddr>,
    /// How long to wait for it to catch up before it votes.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    wait: u64,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Add node ID (started with `ticket node --id ID --join`): a learner first, a voter once
    /// it has caught up.
    Add {
        id: u64,
        #[command(flatten)]
        at: NewNodeAddr,
    },
    /// Remove node ID. Refused if it would leave too few voters, or too few that answer, for
    /// a quorum, unless --force. Stop the node afterwards.
    Remove {
        id: u64,
        #[arg(long)]
        force: bool,
    },
    /// Put NEW in OLD's place (a dead disk): NEW catches up as a learner, then one joint
    /// change swaps the two.
    Replace {
        old: u64,
        new: u64,
        #[command(flatten)]
        at: NewNodeAddr,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Add a new token key: new tokens are signed with it, older ones stay good until they
    /// expire. Copy the file to every node (each reads it again within a second).
    Rotate,
}

#[derive(Subcommand)]
enum CertCmd {
    /// Make the cluster's CA (ca.pem, ca.key) in DIR (default <data_dir>/pki).
    Init {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Issue a key and certificate signed by the CA in DIR: `--node N` for node N's peer
    /// identity (nodeN.pem, nodeN.key), or `--server NAME...` for the client API (server.pem,
    /// server.key) valid for those host names and IP addresses.
    Issue {
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, conflicts_with = "server", required_unless_present = "server")]
        node: Option<u64>,
        #[arg(long, num_args = 1.., value_name = "NAME")]
        server: Option<Vec<String>>,
        /// Write the key and certificate here (default: DIR).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user. The password is read without echo, from --password-stdin, or from
    /// TICKET_PASSWORD.
    Add {
        name: String,
        /// Make the user an admin (needs --as ADMIN; the first admin comes from `ticket init`
        /// or a local cluster's setup).
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
        /// Act as this admin (its password from TICKET_ADMIN_PASSWORD or the terminal).
        #[arg(long = "as")]
        acting_admin: Option<String>,
    },
    /// Disable a user: it cannot log in, and its tokens stop working at once.
    Disable {
        name: String,
        /// The admin to act as (its password from TICKET_ADMIN_PASSWORD or the terminal).
        #[arg(long = "as", default_value = "admin")]
        acting_admin: String,
    },
    /// Enable a disabled user again.
    Enable {
        name: String,
        #[arg(long = "as", default_value = "admin")]
        acting_admin: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(done) = without_config(cli.command.as_ref()) {
        return done;
    }
    let node_id = match &cli.command {
        Some(Cmd::Node { id, .. }) => Some(*id),
        _ => None,
    };
    if cli.log_format == cli::logging::LogFormat::Json {
        // The nodes `ticket up` (or a shell's local cluster) starts inherit it. Set before any
        // thread starts, while nothing else reads the environment.
        std::env::set_var("TICKET_LOG_FORMAT", "json");
    }
    cli::logging::init(node_id, cli.log_format);
    let config = match Config::load(&cli.config) {
        Ok(mut config) => {
            config.insecure = cli.insecure;
            config
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime_for(cli.command.as_ref()) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Cmd::Shell(cli.shell));
    let finished = match command {
        Cmd::Shell(shell) => runtime.block_on(cli::shell::run(&config, shell.options())),
        Cmd::Run {
            file,
            args,
            json,
            timeout,
        } => {
            let timeout = timeout.map(std::time::Duration::from_secs);
            runtime.block_on(cli::shell::run_script(&config, file, args, json, timeout))
        }
        other => runtime.block_on(dispatch(other, config)).map(|()| true),
    };
    exit_code(finished)
}

/// Runs what needs no cluster.toml (completions, the manual page); None for anything else.
fn without_config(command: Option<&Cmd>) -> Option<ExitCode> {
    match command {
        Some(Cmd::Completions { shell }) => {
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "ticket", &mut std::io::stdout());
            Some(ExitCode::SUCCESS)
        }
        Some(Cmd::Man) => {
            let page = clap_mangen::Man::new(Cli::command());
            Some(match page.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            })
        }
        _ => None,
    }
}

/// The async runtime a subcommand needs.
///
/// A node serves many connections; the shell and scripts block script threads on the
/// runtime, which needs workers of its own; the other commands are light.
fn runtime_for(command: Option<&Cmd>) -> std::io::Result<tokio::runtime::Runtime> {
    match command {
        Some(Cmd::Status { .. } | Cmd::User { .. } | Cmd::Up | Cmd::Init { .. }) => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

/// The process's exit code for how a command finished: `Ok(false)` is a failure the command
/// has already explained; an error is printed here.
fn exit_code(finished: anyhow::Result<bool>) -> ExitCode {
    match finished {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn cert(command: CertCmd, config: &Config) -> anyhow::Result<()> {
    use ticket::pki;
    let default_dir = config.data_dir.join("pki");
    match command {
        CertCmd::Init { dir } => {
            let dir = dir.unwrap_or(default_dir);
            pki::init_ca(&dir)?;
            println!(
                "made a CA in {}: ca.pem (give it to every node and client), ca.key (keep it \
                 private: whoever has it can join the cluster)",
                dir.display()
            );
        }
        CertCmd::Issue {
            dir,
            node,
            server,
            out,
        } => {
            let dir = dir.unwrap_or(default_dir);
            let subject = match (node, server) {
                (Some(id), _) => pki::Subject::Node(id),
                (None, Some(names)) => pki::Subject::Server(names),
                (None, None) => anyhow::bail!("name --node N or --server NAME"),
            };
            let out = out.unwrap_or_else(|| dir.clone());
            let (cert, key) = pki::issue(&dir, &subject, &out)?;
            println!("wrote {} and {} (0600)", cert.display(), key.display());
        }
    }
    Ok(())
}

/// A client of the cluster, once some node accepts a connection: a cluster that is down is
/// said so within `PROBE_WAIT`, not after a call's retries.
async fn reach(config: &Config) -> anyhow::Result<Client> {
    let client = Client::from_config(config);
    client.probe(ticket::client::PROBE_WAIT).await?;
    Ok(client)
}

/// Runs a subcommand that `main` does not run itself.
async fn dispatch(command: Cmd, config: Config) -> anyhow::Result<()> {
    match command {
        Cmd::Shell(_) | Cmd::Run { .. } | Cmd::Completions { .. } | Cmd::Man => Ok(()),
        Cmd::Cert { command } => cert(command, &config),
        Cmd::Init {
            setup_code,
            name,
            password_stdin,
        } => {
            let args = cli::user::Init {
                setup_code,
                name,
                password_stdin,
            };
            cli::user::init(reach(&config).await?, args).await
        }
        Cmd::User { command } => user(command, &config).await,
        Cmd::Key {
            command: KeyCmd::Rotate,
        } => rotate_key(&config),
        Cmd::Node { id, join } => {
            ticket::server::run(config, id, join, ticket::server::signal()).await
        }
        Cmd::Up => cli::up::run(&config).await,
        Cmd::Web { listen } => cli::web::run(&config, listen).await,
        Cmd::Status { json } => cli::status::run(&reach(&config).await?, json).await,
        Cmd::Bench(flags) => bench(flags, &config).await,
        Cmd::Backup { file, admin } => {
            cli::backup::save(reach(&config).await?, &admin, &file).await
        }
        Cmd::Cluster { command, admin } => cluster(command, &admin, &config).await,
        Cmd::Restore { file, id, data_dir } => cli::backup::restore(&config, &file, id, data_dir),
    }
}

/// `ticket cluster add|remove|replace`.
async fn cluster(command: ClusterCmd, admin: &str, config: &Config) -> anyhow::Result<()> {
    use cli::cluster::{peer_addr, Change};
    let (change, wait) = match command {
        ClusterCmd::Add { id, at } => {
            let peer_addr = peer_addr(config, id, at.addr, at.peer_addr)?;
            (Change::Add { id, peer_addr }, at.wait)
        }
        ClusterCmd::Remove { id, force } => (Change::Remove { id, force }, 0),
        ClusterCmd::Replace {
            old,
            new,
            at,
            force,
        } => {
            let peer_addr = peer_addr(config, new, at.addr, at.peer_addr)?;
            let change = Change::Replace {
                old,
                new,
                peer_addr,
                force,
            };
            (change, at.wait)
        }
    };
    let wait = std::time::Duration::from_secs(wait);
    cli::cluster::run(reach(config).await?, admin, change, wait).await
}

/// `ticket user add|disable|enable`.
async fn user(command: UserCmd, config: &Config) -> anyhow::Result<()> {
    let client = reach(config).await?;
    match command {
        UserCmd::Add {
            name,
            admin,
            password_stdin,
            acting_admin,
        } => {
            let args = cli::user::AddUser {
                name,
                admin,
                password_stdin,
                acting_admin,
            };
            cli::user::add(client, args).await
        }
        UserCmd::Disable { name, acting_admin } => {
            cli::user::set_disabled(client, &name, true, &acting_admin).await
        }
        UserCmd::Enable { name, acting_admin } => {
            cli::user::set_disabled(client, &name, false, &acting_admin).await
        }
    }
}

/// `ticket key rotate`: a new token-signing key in the file every node reads.
fn rotate_key(config: &Config) -> anyhow::Result<()> {
    let path = config.token_keys_path();
    let version = ticket::pki::add_token_key(&path)?;
    println!(
        "token key version {version} added to {}; copy the file to every node",
        path.display()
    );
    Ok(())
}

/// `ticket bench`: once a node answers, the admin's password, then the run and its report.
async fn bench(flags: BenchFlags, config: &Config) -> anyhow::Result<()> {
    reach(config).await?;
    let user = flags.user;
    let password = cli::read_password(
        &format!("Password of {user}: "),
        flags.password_stdin,
        "TICKET_PASSWORD",
        false,
    )?;
    let args = cli::bench::BenchArgs {
        mode: flags.mode,
        batch: flags.batch as usize,
        clients: flags.clients,
        seconds: flags.seconds,
        json: flags.json,
        user,
        password,
    };
    let report = cli::bench::run(config, args).await?;
    cli::bench::print(&report, flags.json);
    Ok(())
}
