use waihu_dialer::{start, DialerConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-dialer", DialerConfig::from_env(), start).await
}
