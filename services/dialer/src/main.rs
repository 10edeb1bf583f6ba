use waihu_dialer::{start, DialerConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-dialer", DialerConfig::from_env(), start).await
}
