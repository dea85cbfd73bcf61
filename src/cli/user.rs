//! `ticket user add NAME [--admin]`: the one way users come to exist.

use crate::client::Client;

pub struct AddUser {
    pub name: String,
    pub admin: bool,
    pub password_stdin: bool,
    /// An admin to act as (needed to create an admin once the cluster has one).
    pub acting_admin: Option<String>,
}

pub async fn add(mut client: Client, args: AddUser) -> anyhow::Result<()> {
    if let Some(admin) = &args.acting_admin {
        let password = super::read_password(
            &format!("Password of {admin}: "),
            false,
            "TICKET_ADMIN_PASSWORD",
            false,
        )?;
        client
            .login(admin, &password)
            .await
            .map_err(|s| anyhow::anyhow!("logging in as {admin}: {}", super::explain(&s)))?;
    }
    let password = super::read_password(
        &format!("Password for {}: ", args.name),
        args.password_stdin,
        "TICKET_PASSWORD",
        true,
    )?;
    client
        .add_user(&args.name, &password, args.admin)
        .await
        .map_err(|s| anyhow::anyhow!("{}", super::explain(&s)))?;
    let role = if args.admin { "admin" } else { "customer" };
    println!("added {role} {}", args.name);
    Ok(())
}
