//! The end-to-end and integration tests, one module per subject, in one test binary (one link
//! instead of one per file: less disk and less build time). Run one module with
//! `scripts/test.sh -E 'test(/^analysis::/)'`.

mod aliyun;
mod analysis;
mod audit;
mod auth;
mod bus;
mod campaign;
mod click_to_dial;
mod config;
mod daily_limit;
mod deploy;
mod dnc;
mod entitlements;
mod explain;
mod export;
mod gateway;
mod isolation;
mod lines;
mod logs;
mod metrics;
mod nats_cluster;
mod pg_restart;
mod poison;
mod priority;
mod provider_campaigns;
mod recordings;
mod records;
mod resilience;
mod retry;
mod rolling;
mod ronglian;
mod schemathesis;
mod screening;
mod sigkill;
mod sip;
mod spine;
mod store_reads;
mod tencent;
mod trace;
mod twilio;
mod webhooks;
mod windows;
mod work_phones;
