use waihu_record::{start, RecordConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-record", RecordConfig::from_env(), start).await
}
