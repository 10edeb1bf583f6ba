//! `waihu`: the operator's and analyst's command line.

mod demo;
mod display;
mod replay;
mod task;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "waihu",
    version,
    about = "waihu outbound call campaigns: run the demo, manage tasks, replay events"
)]
pub struct Cli {
    /// Task service gRPC address.
    #[arg(
        long,
        global = true,
        env = "WAIHU_TASK_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    task_addr: String,
    /// Record service gRPC address.
    #[arg(
        long,
        global = true,
        env = "WAIHU_RECORD_ADDR",
        default_value = "http://127.0.0.1:50054"
    )]
    record_addr: String,
    /// Tenant the requests act for.
    #[arg(long, global = true, env = "WAIHU_TENANT", default_value = "default")]
    tenant: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything: start missing services, import a generated list, dial it on the
    /// simulator, show live progress and the final statistics.
    Demo(demo::DemoArgs),
    /// Create, import, control and watch tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Read the event store: export events, or rebuild and verify the statistics.
    Replay(replay::ReplayArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Demo(a) => demo::run(&cli, a).await,
        Command::Task(c) => task::run(&cli, c).await,
        Command::Replay(a) => replay::run(a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The CLI prints for people; library logs (and spans) only when `RUST_LOG` asks for them.
/// The guard flushes spans when dropped at the end of `main`.
fn telemetry() -> Option<waihu_runtime::telemetry::TelemetryGuard> {
    std::env::var_os("RUST_LOG").map(|_| waihu_runtime::telemetry::init("waihu-cli"))
}

pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Turns a gRPC status into a one-line error.
pub fn status(context: &str, s: tonic::Status) -> CliError {
    format!("{context}: {} ({:?})", s.message(), s.code()).into()
}
