//! `waihu provider sign <scheme> <file.json>`: works out a provider signature offline, for
//! operators debugging a "signature does not match". The file is one entry shaped like those in
//! `shared/vectors/signatures.json` (a parameter that repeats is a JSON array of its values);
//! the signature is printed, and with `--verbose` the text that was signed and every
//! intermediate value. Nothing is sent anywhere.

use std::{path::PathBuf, process::ExitCode};

use clap::{Subcommand, ValueEnum};
use waihu_provider_core::Signed;

use crate::CliError;

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Sign one vector-shaped entry (read from FILE, `-` for standard input).
    Sign {
        scheme: Scheme,
        file: PathBuf,
        /// Also print the text that was signed and the intermediate values.
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Scheme {
    /// Alibaba Cloud RPC signature V1 (HMAC-SHA1): the `Signature` parameter.
    AliyunRpc,
    /// Alibaba Cloud ACS3-HMAC-SHA256: the `Authorization` header.
    AliyunAcs3,
    /// Tencent Cloud TC3-HMAC-SHA256: the `Authorization` header.
    TencentTc3,
    /// Ronglian (容联云) REST: the `sig` parameter (and the `Authorization` header).
    Ronglian,
    /// Twilio `X-Twilio-Signature` (form parameters, or a JSON `body` through bodySHA256).
    Twilio,
}

/// Signs `entry` with `scheme`.
pub fn sign(scheme: Scheme, entry: &serde_json::Value) -> Result<Signed, String> {
    match scheme {
        Scheme::AliyunRpc => waihu_provider_aliyun::sign_rpc_vector(entry),
        Scheme::AliyunAcs3 => waihu_provider_aliyun::sign_acs3_vector(entry),
        Scheme::TencentTc3 => waihu_provider_tencent::sign_vector(entry),
        Scheme::Ronglian => waihu_provider_ronglian::sign_vector(entry),
        Scheme::Twilio => waihu_provider_twilio::sign::sign_vector(entry),
    }
}

pub fn run(cmd: &ProviderCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ProviderCommand::Sign {
            scheme,
            file,
            verbose,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            };
            let entry: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
            if !entry.is_object() {
                return Err(format!("{}: want one JSON object (an entry)", file.display()).into());
            }
            let signed = sign(*scheme, &entry).map_err(|e| format!("{}: {e}", file.display()))?;
            println!("{}", signed.signature);
            if *verbose {
                println!("string_to_sign:\n{}", signed.string_to_sign);
                for (k, v) in &signed.extra {
                    println!("{k}: {v}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
