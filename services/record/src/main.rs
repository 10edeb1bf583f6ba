use waihu_record::{start, RecordConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waihu_runtime::run_service("waihu-record", RecordConfig::from_env(), start).await
}
