//! Tokens: `waihu auth token` mints one, and every request carries one: `--token` /
//! `WAIHU_TOKEN` when given, else one minted for `--tenant` with the local keys (the shared
//! development key, or `WAIHU_AUTH__HS256_KEY(_FILE)`), so a newcomer's first commands work
//! against services on the same machine.

use std::{process::ExitCode, sync::OnceLock};

use clap::Args;
use waihu_auth::{AuthConfig, Claims, Keys, ALL_PERMISSIONS};
use waihu_runtime::config::Layers;

use crate::{Cli, CliError};

#[derive(clap::Subcommand)]
pub enum AuthCommand {
    /// Mint a token (printed alone on stdout) signed with the local HS256 key.
    Token(TokenArgs),
}

#[derive(Args)]
pub struct TokenArgs {
    /// The user (`sub`).
    #[arg(long, default_value = "cli")]
    user: String,
    /// A permission to grant (repeat for more), e.g. lead:call:view.
    #[arg(long = "permission", value_name = "PERMISSION")]
    permissions: Vec<String>,
    /// Grant every permission.
    #[arg(long)]
    all: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

static TOKEN: OnceLock<Option<String>> = OnceLock::new();
static OPERATOR_TOKEN: OnceLock<Option<(String, String)>> = OnceLock::new();

fn local_config() -> Result<AuthConfig, CliError> {
    Ok(Layers::from_process()
        .and_then(|l| l.section("auth"))
        .map_err(|e| e.to_string())?)
}

fn local_keys() -> Result<Keys, CliError> {
    Ok(Keys::load(&local_config()?).map_err(|e| e.to_string())?)
}

/// The token and tenant deployment-wide requests (dead letters, the store, replay
/// verification) carry: `--token` / `WAIHU_TOKEN` when given (it must be an operator's), else
/// one minted with the local keys for the operator tenant (`auth.operator_tenant`).
pub fn operator(cli: &Cli) -> Option<(&'static str, &'static str)> {
    OPERATOR_TOKEN
        .get_or_init(|| {
            let config = local_config().ok()?;
            let tenant = config.operator_tenant.clone();
            if let Some(t) = cli.token.clone().filter(|t| !t.trim().is_empty()) {
                return Some((t.trim().to_string(), tenant));
            }
            let keys = Keys::load(&config).ok()?;
            let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            let t = keys
                .mint(&Claims::new(&tenant, &user, ALL_PERMISSIONS, 3600))
                .ok()?;
            Some((t, tenant))
        })
        .as_ref()
        .map(|(t, tenant)| (t.as_str(), tenant.as_str()))
}

/// The token decided for this run, if [`token`] was called.
pub fn current() -> Option<&'static str> {
    TOKEN.get().and_then(|t| t.as_deref())
}

/// The token requests carry (decided once per run).
pub fn token(cli: &Cli) -> Option<&'static str> {
    TOKEN
        .get_or_init(|| {
            if let Some(t) = cli.token.clone().filter(|t| !t.trim().is_empty()) {
                return Some(t.trim().to_string());
            }
            let keys = local_keys().ok()?;
            let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            keys.mint(&Claims::new(&cli.tenant, &user, ALL_PERMISSIONS, 3600))
                .ok()
        })
        .as_deref()
}

pub fn run(cli: &Cli, c: &AuthCommand) -> Result<ExitCode, CliError> {
    match c {
        AuthCommand::Token(a) => {
            let known = |p: &str| ALL_PERMISSIONS.contains(&p);
            if let Some(bad) = a.permissions.iter().find(|p| !known(p)) {
                return Err(format!(
                    "unknown permission {bad:?}; known: {}",
                    ALL_PERMISSIONS.join(", ")
                )
                .into());
            }
            if !waihu_auth::keys::valid_tenant(&cli.tenant) {
                return Err("--tenant: 1-64 characters of A-Z a-z 0-9 - _".into());
            }
            if a.ttl == 0 {
                return Err("--ttl must be at least 1 second".into());
            }
            let perms: Vec<&str> = if a.all {
                ALL_PERMISSIONS.to_vec()
            } else {
                a.permissions.iter().map(String::as_str).collect()
            };
            let t = local_keys()?
                .mint(&Claims::new(&cli.tenant, &a.user, &perms, a.ttl))
                .map_err(|e| e.to_string())?;
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
