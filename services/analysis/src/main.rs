use waihu_analysis::{start, AnalysisConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-analysis", AnalysisConfig::from_env(), start).await
}
