use waihu_task::{start, TaskConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-task", TaskConfig::from_env(), start).await
}
