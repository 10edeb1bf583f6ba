use waihu_provider::{start, ProviderConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-provider-adapter", ProviderConfig::from_env(), start).await
}
