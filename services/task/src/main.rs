use waihu_task::{start, TaskConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-task", TaskConfig::from_env(), start).await
}
