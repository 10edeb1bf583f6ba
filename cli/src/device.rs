//! `waihu device qr|list|status|unbind`: the tenant's work phones (seed 003, 方案一), served by
//! the provider adapter's `ProviderService`. A phone binds itself by scanning the QR code `qr`
//! prints; its calls then go on its own line, `mobile-<id>`.

use std::process::ExitCode;

use chrono::SecondsFormat;
use clap::Subcommand;
use qrcodegen::{QrCode, QrCodeEcc};
use waihu_proto::v1::{self as pb, provider_service_client::ProviderServiceClient};

use crate::{status, task::with_tenant, Cli, CliError};

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// A one-time binding (5 minutes) for a user's phone app: its QR code, drawn in the
    /// terminal, and the payload it carries.
    Qr {
        /// Whose phone (default: the token's user).
        #[arg(long)]
        user: Option<String>,
        /// Draw dark modules as text, for a dark-on-light terminal (the default draws the
        /// light ones, for light text on a dark background).
        #[arg(long)]
        invert: bool,
    },
    /// The tenant's bound phones, or one user's.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// One phone: online or not, and its last heartbeat.
    Status { id: u64 },
    /// Unbind a phone: its app is disconnected and its line stops taking calls.
    Unbind { id: u64 },
}

pub async fn run(cli: &Cli, cmd: &DeviceCommand) -> Result<ExitCode, CliError> {
    let mut c = ProviderServiceClient::new(crate::provider_channel(cli).await?);
    let tenant = cli.tenant.as_str();
    match cmd {
        DeviceCommand::Qr { user, invert } => {
            let b = c
                .create_device_binding(with_tenant(
                    tenant,
                    pb::CreateDeviceBindingRequest {
                        user_id: user.clone().unwrap_or_default(),
                    },
                )?)
                .await
                .map_err(|s| status("CreateDeviceBinding", s))?
                .into_inner();
            let qr = QrCode::encode_text(&b.qr_payload, QrCodeEcc::Medium)
                .map_err(|_| "the binding's payload is too long for a QR code")?;
            print!("{}", half_blocks(&qr, *invert));
            println!("{}", b.qr_payload);
            println!("expires {}", time(&b.expires_at));
            if !b.bind_url.is_empty() {
                println!("the app binds at {}", b.bind_url);
            }
        }
        DeviceCommand::List { user } => {
            let devices = c
                .list_devices(with_tenant(
                    tenant,
                    pb::ListDevicesRequest {
                        user_id: user.clone().unwrap_or_default(),
                    },
                )?)
                .await
                .map_err(|s| status("ListDevices", s))?
                .into_inner()
                .devices;
            if devices.is_empty() {
                println!(
                    "no devices (bind one: waihu device qr [--user U], then scan it with the app)"
                );
            }
            for d in &devices {
                println!("{}", text(d));
            }
        }
        DeviceCommand::Status { id } => {
            let d = c
                .get_device(with_tenant(tenant, pb::DeviceRequest { id: *id })?)
                .await
                .map_err(|s| status("GetDevice", s))?
                .into_inner();
            println!(
                "{}  {}  last heartbeat {}",
                d.id,
                online(&d),
                time(&d.last_heartbeat)
            );
        }
        DeviceCommand::Unbind { id } => {
            let d = c
                .unbind_device(with_tenant(tenant, pb::DeviceRequest { id: *id })?)
                .await
                .map_err(|s| status("UnbindDevice", s))?
                .into_inner();
            println!("unbound: {}", text(&d));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn online(d: &pb::Device) -> &'static str {
    match (d.unbound_at.is_some(), d.online) {
        (true, _) => "UNBOUND",
        (false, true) => "online",
        (false, false) => "offline",
    }
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(waihu_events::from_timestamp)
        .map_or("never".into(), |t| {
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        })
}

/// One device as a line of text.
pub fn text(d: &pb::Device) -> String {
    format!(
        "{}  {}  {}  user {}  {} {} ({} {})  line {}  bound {}  last heartbeat {}",
        d.id,
        online(d),
        d.phone_number,
        d.user_id,
        d.device_name,
        d.device_model,
        d.os_type,
        d.os_version,
        d.line_id,
        time(&d.bound_at),
        time(&d.last_heartbeat),
    )
}

/// Light modules around the code, as the QR standard asks.
const QUIET_ZONE: i32 = 4;

/// `qr` with its quiet zone as text, two module rows a line: `▀` the upper one drawn, `▄` the
/// lower, `█` both, a space neither. Drawn are the light modules (a terminal's text is light on
/// dark), or with `invert` the dark ones.
pub fn half_blocks(qr: &QrCode, invert: bool) -> String {
    let side = qr.size() + 2 * QUIET_ZONE;
    // Below the last row (an odd count) nothing is drawn.
    let drawn =
        |x: i32, y: i32| y < side && (qr.get_module(x - QUIET_ZONE, y - QUIET_ZONE) == invert);
    let mut out = String::new();
    for y in (0..side).step_by(2) {
        for x in 0..side {
            out.push(match (drawn(x, y), drawn(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text read back into modules: (x, y) drawn or not.
    fn read_back(text: &str, side: i32) -> Vec<Vec<bool>> {
        let mut rows = vec![vec![false; side as usize]; side as usize + 1];
        for (line, l) in text.lines().enumerate() {
            for (x, c) in l.chars().enumerate() {
                let (upper, lower) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                rows[2 * line][x] = upper;
                rows[2 * line + 1][x] = lower;
            }
        }
        rows
    }

    #[test]
    fn a_qr_code_is_drawn_two_rows_a_line_with_its_quiet_zone() {
        let qr = QrCode::encode_text("waihu", QrCodeEcc::Medium).expect("encodes");
        assert_eq!(qr.size(), 21, "version 1");
        for invert in [false, true] {
            let text = half_blocks(&qr, invert);
            let lines: Vec<&str> = text.lines().collect();
            // 21 modules + 8 of quiet zone = 29 rows: 15 lines of 29 characters.
            assert_eq!(lines.len(), 15);
            assert!(lines.iter().all(|l| l.chars().count() == 29));
            assert!(text
                .chars()
                .all(|c| matches!(c, '▀' | '▄' | '█' | ' ' | '\n')));
            let rows = read_back(&text, 29);
            for y in 0..29 {
                for x in 0..29 {
                    let dark = qr.get_module(x - QUIET_ZONE, y - QUIET_ZONE);
                    assert_eq!(rows[y as usize][x as usize], dark == invert, "{x},{y}");
                }
            }
            assert!(!rows[29].iter().any(|&d| d), "nothing below the last row");
        }
        // Light text on dark: the quiet zone is solid.
        let text = half_blocks(&qr, false);
        assert!(text
            .lines()
            .next()
            .is_some_and(|l| l.chars().all(|c| c == '█')));
        assert!(text
            .lines()
            .last()
            .is_some_and(|l| l.chars().all(|c| c == '▀')));
    }
}
