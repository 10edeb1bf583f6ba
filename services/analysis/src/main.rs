use waihu_analysis::{start, AnalysisConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-analysis", AnalysisConfig::from_env(), start).await
}
