//! `waihu line create|update|disable|enable|list|get|status`: the tenant's lines (trunks), served
//! by the provider adapter's `ProviderService`.

use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use waihu_proto::v1::{self as pb, provider_service_client::ProviderServiceClient};

use crate::{status, task::with_tenant, Cli, CliError};

#[derive(Subcommand)]
pub enum LineCommand {
    /// Create a line (enabled at once).
    Create(CreateArgs),
    /// Change a line's settings; what is not given keeps its current value.
    Update(UpdateArgs),
    /// Switch a line off: no new calls on it (calls out finish).
    Disable {
        line_id: String,
        /// Why (kept in the LineDisabled event).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Switch a line on again.
    Enable { line_id: String },
    /// The tenant's lines.
    List,
    /// One line's settings.
    Get { line_id: String },
    /// What a line carries now: calls out, today's calls against its cap, recent pace.
    Status { line_id: String },
    /// Make a real signed request to the line's provider and say whether it worked and how
    /// long it took.
    Test { line_id: String },
}

/// A line's provider settings and credentials as given on the command line. Credentials never
/// come from the command line itself (it shows in `ps` and shell history): from a file or from
/// environment variables.
#[derive(Args)]
pub struct ProviderArgs {
    /// A provider setting that is not secret, NAME=VALUE (repeatable), e.g.
    /// `--config account_sid=AC123 --config base_url=https://api.twilio.com`.
    #[arg(long = "config", value_name = "NAME=VALUE")]
    config: Vec<String>,
    /// Credentials from a file: a JSON object `{"auth_token": "..."}`, or NAME=VALUE lines
    /// (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    credentials_file: Option<PathBuf>,
    /// A credential from an environment variable, NAME=VARIABLE (repeatable), e.g.
    /// `--credential-env auth_token=TWILIO_AUTH_TOKEN`.
    #[arg(long = "credential-env", value_name = "NAME=VARIABLE")]
    credential_env: Vec<String>,
    /// sip lines: the trunk, HOST:PORT (same as `--config trunk=HOST:PORT`).
    #[arg(long, value_name = "HOST:PORT")]
    trunk: Option<String>,
    /// sip lines: udp (the default) or tcp (same as `--config transport=...`).
    #[arg(long, value_name = "udp|tcp")]
    transport: Option<String>,
    /// sip lines: the digest user when the trunk challenges (same as `--config username=...`).
    #[arg(long, value_name = "USER")]
    username: Option<String>,
    /// sip lines: the digest password, read from a file (its first line; `-` for standard
    /// input); the credential `password`.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

/// Reads a file named on the command line (`-` for standard input).
fn read_arg_file(path: &std::path::Path) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        return Ok(std::io::read_to_string(std::io::stdin())?);
    }
    Ok(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    )
}

fn pair(arg: &str, what: &str) -> Result<(String, String), CliError> {
    arg.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{what} {arg:?}: want NAME=VALUE").into())
}

impl ProviderArgs {
    fn config(&self) -> Result<HashMap<String, String>, CliError> {
        let mut config: HashMap<String, String> = self
            .config
            .iter()
            .map(|a| pair(a, "--config"))
            .collect::<Result<_, _>>()?;
        for (name, v) in [
            ("trunk", &self.trunk),
            ("transport", &self.transport),
            ("username", &self.username),
        ] {
            if let Some(v) = v {
                config.insert(name.to_string(), v.clone());
            }
        }
        Ok(config)
    }

    /// The credentials the options name (empty when none).
    fn credentials(&self) -> Result<HashMap<String, String>, CliError> {
        let mut out = HashMap::new();
        if let Some(path) = &self.credentials_file {
            let text = read_arg_file(path)?;
            out.extend(parse_credentials(&text).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        if let Some(path) = &self.password_file {
            let text = read_arg_file(path)?;
            let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if password.is_empty() {
                return Err(format!(
                    "--password-file {}: the first line is empty",
                    path.display()
                )
                .into());
            }
            out.insert("password".into(), password.to_string());
        }
        for a in &self.credential_env {
            let (name, var) = pair(a, "--credential-env")?;
            let value = std::env::var(&var).map_err(|_| {
                format!("--credential-env {name}: environment variable {var} is not set")
            })?;
            out.insert(name, value);
        }
        Ok(out)
    }
}

/// Credentials as a file holds them: a JSON object of strings, or NAME=VALUE lines (blank lines
/// and `#` comments skipped).
pub fn parse_credentials(text: &str) -> Result<HashMap<String, String>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|e| format!("not a JSON object: {e}"))?;
        return v
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                _ => Err(format!("{k}: values must be strings")),
            })
            .collect();
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(n, l)| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("line {}: want NAME=VALUE", n + 1))
        })
        .collect()
}

#[derive(Args)]
pub struct CreateArgs {
    /// The line's id: 1-64 characters of A-Z a-z 0-9 - _ .
    #[arg(long)]
    id: String,
    /// Shown to people (default: the id).
    #[arg(long)]
    name: Option<String>,
    /// Who places its calls: sim (the simulator), sip (a SIP trunk: --trunk, --transport,
    /// --username, --password-file), twilio, aliyun, tencent or ronglian (see
    /// docs/providers.md for each one's --config settings and credentials).
    #[arg(long, default_value = "sim")]
    provider: String,
    /// The number callees see (外显号码).
    #[arg(long)]
    caller_number: String,
    /// Calls out at once at most.
    #[arg(long)]
    max_concurrent: u32,
    /// Calls started per second at most (fractions allowed); 0 = no limit.
    #[arg(long, default_value_t = 0.0)]
    cps: f64,
    /// Calls a day at most (from midnight in the time zone); 0 = no limit.
    #[arg(long, default_value_t = 0)]
    daily_cap: u32,
    /// IANA time zone of the line's day.
    #[arg(long, default_value = "Asia/Shanghai")]
    timezone: String,
    #[command(flatten)]
    provider_args: ProviderArgs,
}

#[derive(Args)]
pub struct UpdateArgs {
    line_id: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    provider: Option<String>,
    #[arg(long)]
    caller_number: Option<String>,
    #[arg(long)]
    max_concurrent: Option<u32>,
    #[arg(long)]
    cps: Option<f64>,
    #[arg(long)]
    daily_cap: Option<u32>,
    #[arg(long)]
    timezone: Option<String>,
    /// Settings given replace the line's settings of the same name; credentials given replace
    /// all stored ones.
    #[command(flatten)]
    provider_args: ProviderArgs,
}

/// One line as a line of text.
pub fn text(l: &pb::Line) -> String {
    let or_none = |v: String, zero: bool| if zero { "none".to_string() } else { v };
    format!(
        "{}  {}  provider {}  caller {}  max {}  cps {}  daily cap {}  tz {}  v{}{}{}",
        l.line_id,
        if l.enabled { "enabled" } else { "DISABLED" },
        l.provider,
        l.caller_number,
        l.max_concurrent,
        or_none(format!("{}", l.cps), l.cps == 0.0),
        or_none(l.daily_cap.to_string(), l.daily_cap == 0),
        l.time_zone,
        l.version,
        if l.name.is_empty() || l.name == l.line_id {
            String::new()
        } else {
            format!("  {:?}", l.name)
        },
        provider_text(l)
    )
}

/// A line's provider settings (values) and credentials (names only).
fn provider_text(l: &pb::Line) -> String {
    let mut out = String::new();
    let mut config: Vec<_> = l.provider_config.iter().collect();
    config.sort();
    for (k, v) in config {
        out.push_str(&format!("  {k}={v}"));
    }
    if !l.credential_names.is_empty() {
        out.push_str(&format!("  credentials: {}", l.credential_names.join(",")));
    }
    out
}

pub async fn run(cli: &Cli, cmd: &LineCommand) -> Result<ExitCode, CliError> {
    let mut c = ProviderServiceClient::new(crate::provider_channel(cli).await?);
    let tenant = cli.tenant.as_str();
    let get = |id: &str| pb::LineRequest {
        line_id: id.to_string(),
    };
    match cmd {
        LineCommand::Create(a) => {
            let line = pb::Line {
                line_id: a.id.clone(),
                name: a.name.clone().unwrap_or_else(|| a.id.clone()),
                provider: a.provider.clone(),
                caller_number: a.caller_number.clone(),
                max_concurrent: a.max_concurrent,
                cps: a.cps,
                daily_cap: a.daily_cap,
                time_zone: a.timezone.clone(),
                provider_config: a.provider_args.config()?,
                ..Default::default()
            };
            let l = c
                .create_line(with_tenant(
                    tenant,
                    pb::CreateLineRequest {
                        line: Some(line),
                        credentials: a.provider_args.credentials()?,
                    },
                )?)
                .await
                .map_err(|s| status("CreateLine", s))?
                .into_inner();
            println!("{}", text(&l));
        }
        LineCommand::Update(a) => {
            let mut l = c
                .get_line(with_tenant(tenant, get(&a.line_id))?)
                .await
                .map_err(|s| status("GetLine", s))?
                .into_inner();
            let version = l.version;
            if let Some(v) = &a.name {
                l.name = v.clone();
            }
            if let Some(v) = &a.provider {
                l.provider = v.clone();
            }
            if let Some(v) = &a.caller_number {
                l.caller_number = v.clone();
            }
            if let Some(v) = a.max_concurrent {
                l.max_concurrent = v;
            }
            if let Some(v) = a.cps {
                l.cps = v;
            }
            if let Some(v) = a.daily_cap {
                l.daily_cap = v;
            }
            if let Some(v) = &a.timezone {
                l.time_zone = v.clone();
            }
            l.provider_config.extend(a.provider_args.config()?);
            let l = c
                .update_line(with_tenant(
                    tenant,
                    pb::UpdateLineRequest {
                        line: Some(l),
                        expected_version: version,
                        credentials: a.provider_args.credentials()?,
                    },
                )?)
                .await
                .map_err(|s| status("UpdateLine", s))?
                .into_inner();
            println!("{}", text(&l));
        }
        LineCommand::Disable { line_id, reason } => {
            let l = c
                .disable_line(with_tenant(
                    tenant,
                    pb::DisableLineRequest {
                        line_id: line_id.clone(),
                        reason: reason.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("DisableLine", s))?
                .into_inner();
            println!("{}", text(&l));
        }
        LineCommand::Enable { line_id } => {
            let l = c
                .enable_line(with_tenant(tenant, get(line_id))?)
                .await
                .map_err(|s| status("EnableLine", s))?
                .into_inner();
            println!("{}", text(&l));
        }
        LineCommand::List => {
            let lines = c
                .list_lines(with_tenant(tenant, pb::ListLinesRequest {})?)
                .await
                .map_err(|s| status("ListLines", s))?
                .into_inner()
                .lines;
            if lines.is_empty() {
                println!("no lines (create one: waihu line create --id ID --caller-number N --max-concurrent C)");
            }
            for l in &lines {
                println!("{}", text(l));
            }
        }
        LineCommand::Get { line_id } => {
            let l = c
                .get_line(with_tenant(tenant, get(line_id))?)
                .await
                .map_err(|s| status("GetLine", s))?
                .into_inner();
            println!("{}", text(&l));
        }
        LineCommand::Status { line_id } => {
            let s = c
                .get_line_status(with_tenant(tenant, get(line_id))?)
                .await
                .map_err(|s| status("GetLineStatus", s))?
                .into_inner();
            println!("{}", status_text(&s));
        }
        LineCommand::Test { line_id } => {
            let t = c
                .test_line(with_tenant(tenant, get(line_id))?)
                .await
                .map_err(|s| status("TestLine", s))?
                .into_inner();
            println!(
                "{line_id}  {}  {} ms  {}",
                if t.success { "ok" } else { "FAILED" },
                t.latency_ms,
                t.message
            );
            if !t.success {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A line's status on one line of text.
pub fn status_text(s: &pb::LineStatus) -> String {
    let l = s.line.clone().unwrap_or_default();
    format!(
        "{}  {}  in flight {}/{}  today {}{}  cps(10s) {:.1}{}",
        l.line_id,
        if l.enabled { "enabled" } else { "DISABLED" },
        s.in_flight,
        l.max_concurrent,
        s.today_calls,
        if l.daily_cap > 0 {
            format!("/{}", l.daily_cap)
        } else {
            String::new()
        },
        s.cps_10s,
        if l.cps > 0.0 {
            format!(" (limit {})", l.cps)
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files_are_json_or_name_value_lines() {
        let j =
            parse_credentials(r#" {"auth_token": "t0k", "webhook_token": "w"} "#).expect("json");
        assert_eq!(j.get("auth_token").map(String::as_str), Some("t0k"));
        let l =
            parse_credentials("# twilio\nauth_token = t0k\n\nwebhook_token=a=b\n").expect("lines");
        assert_eq!(l.get("auth_token").map(String::as_str), Some("t0k"));
        assert_eq!(l.get("webhook_token").map(String::as_str), Some("a=b"));
        assert!(parse_credentials("auth_token")
            .expect_err("no =")
            .contains("line 1"));
        assert!(parse_credentials(r#"{"n": 1}"#)
            .expect_err("number")
            .contains("n:"));
    }
}
