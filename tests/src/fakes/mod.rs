//! Local servers that speak the cloud providers' documented wire formats, for tests and the
//! benchmark: they check what they are sent, answer as the provider does, and send callbacks
//! the way the provider sends them (late, twice, out of order).

pub mod aliyun;
pub mod ronglian;
pub mod tencent;
pub mod twilio;
