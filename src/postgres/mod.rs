//! PostgreSQL over its wire protocol (tokio-postgres): setting a role's password as a
//! SCRAM-SHA-256 verifier, so the password itself never reaches the server (nor its
//! log), invalidating it, and logging in as a role.

use std::str::FromStr;
use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use crate::secret::Secret;

/// A step's or probe's role and password, by default the alternating role and the new
/// value.
pub fn role_and_password(
    role: Option<&crate::config::Template>,
    password: Option<&crate::config::Template>,
) -> (crate::config::Template, crate::config::Template) {
    use crate::config::Template;
    (
        role.cloned().unwrap_or_else(|| Template::new("{{ new.role }}")),
        password.cloned().unwrap_or_else(|| Template::new("{{ new.value }}")),
    )
}

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{shown}: {message}")]
    Failed { shown: String, message: String },
}

/// Parses a connection URL or key=value string. TLS is not offered yet, so a
/// connection that asks for it is refused rather than silently sent in the clear.
pub fn config(url: &Secret, shown: &str) -> Result<Config, PgError> {
    let config = Config::from_str(url.expose()).map_err(|_| PgError::Failed {
        shown: shown.to_string(),
        message: "not a PostgreSQL connection URL (postgres://user:password@host:port/db)".into(),
    })?;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(PgError::Failed {
            shown: shown.to_string(),
            message: "sslmode=require is not supported yet; connect through a local socket, a loopback port or an authenticated proxy (cloud-sql-proxy) with sslmode=disable".into(),
        });
    }
    Ok(config)
}

/// Connects with `config`; the connection's task ends when the client is dropped.
pub async fn connect(mut config: Config, shown: &str) -> Result<Client, PgError> {
    config.ssl_mode(SslMode::Disable);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| PgError::Failed { shown: shown.to_string(), message: describe(&e) })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres connection closed: {}", describe(&e));
        }
    });
    Ok(client)
}

/// The server's own words where there are some (a role that does not exist, a
/// permission denied), else the client's.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// `ALTER ROLE ... PASSWORD` with a SCRAM-SHA-256 verifier. The statement takes no
/// parameters, so the verifier is quoted with the protocol crate's escaping.
pub async fn set_password(
    client: &Client,
    role: &str,
    password: &Secret,
    shown: &str,
) -> Result<(), PgError> {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    let sql = Secret::new(format!(
        "ALTER ROLE {} PASSWORD {}",
        escape_identifier(role),
        escape_literal(&verifier)
    ));
    client.batch_execute(sql.expose()).await.map_err(|e| PgError::Failed {
        shown: shown.to_string(),
        message: format!("setting the password of role {role}: {}", describe(&e)),
    })
}

/// Removes the role's password: nobody can log in with the old one again.
pub async fn clear_password(client: &Client, role: &str, shown: &str) -> Result<(), PgError> {
    client
        .batch_execute(&format!("ALTER ROLE {} PASSWORD NULL", escape_identifier(role)))
        .await
        .map_err(|e| PgError::Failed {
            shown: shown.to_string(),
            message: format!("clearing the password of role {role}: {}", describe(&e)),
        })
}
