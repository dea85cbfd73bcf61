//! `ticket user add NAME [--admin]`: the one way users come to exist.

use crate::client::Client;

pub struct AddUser {
    pub name: String,
    pub admin: bool,
    pub password_stdin: bool,
    /// An admin to act as (needed to create an admin once the cluster has one).
    pub acting_admin: Option<String>,
}

/// Logs `client` in as `admin`, its password from TICKET_ADMIN_PASSWORD or the terminal.
pub(super) async fn login_as_admin(client: &mut Client, admin: &str) -> anyhow::Result<()> {
    let password = super::read_password(
        &format!("Password of {admin}: "),
        false,
        "TICKET_ADMIN_PASSWORD",
        false,
    )?;
    client
        .login(admin, &password)
        .await
        .map_err(|e| anyhow::anyhow!("logging in as {admin}: {e}"))?;
    Ok(())
}

pub async fn add(mut client: Client, args: AddUser) -> anyhow::Result<()> {
    if let Some(admin) = &args.acting_admin {
        login_as_admin(&mut client, admin).await?;
    }
    let password = super::read_password(
        &format!("Password for {}: ", args.name),
        args.password_stdin,
        "TICKET_PASSWORD",
        true,
    )?;
    client.add_user(&args.name, &password, args.admin).await?;
    let role = if args.admin { "admin" } else { "customer" };
    println!("added {role} {}", args.name);
    Ok(())
}

/// `ticket init`: makes the first admin of a cluster that has none, with the one-time setup
/// code its first leader printed to its log.
pub struct Init {
    pub setup_code: Option<String>,
    pub name: String,
    pub password_stdin: bool,
}

pub async fn init(client: Client, args: Init) -> anyhow::Result<()> {
    let code = match args.setup_code {
        Some(code) => code,
        None => {
            if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                anyhow::bail!("pass --setup-code CODE (it is in the first leader's log)");
            }
            rpassword::prompt_password("Setup code (from the first leader's log): ")?
        }
    };
    let password = super::read_password(
        &format!("Password for {}: ", args.name),
        args.password_stdin,
        "TICKET_ADMIN_PASSWORD",
        true,
    )?;
    client
        .setup_admin(code.trim(), &args.name, &password)
        .await?;
    println!("added the first admin, {}", args.name);
    Ok(())
}

/// `ticket user disable|enable NAME --as ADMIN` and `ticket user passwd`: changes that
/// revoke the user's tokens.
pub async fn set_disabled(
    mut client: Client,
    name: &str,
    disabled: bool,
    admin: &str,
) -> anyhow::Result<()> {
    login_as_admin(&mut client, admin).await?;
    client.set_user_disabled(name, disabled).await?;
    let done = if disabled { "disabled" } else { "enabled" };
    println!("{done} {name}; its tokens no longer work");
    Ok(())
}
