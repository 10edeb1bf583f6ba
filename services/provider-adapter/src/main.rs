use waihu_provider::{start, ProviderConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-provider-adapter", ProviderConfig::from_env(), start).await
}
