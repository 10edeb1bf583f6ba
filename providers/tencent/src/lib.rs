//! Tencent Cloud Contact Center (CCC, API version 2020-02-10) behind [`CloudApi`]: a call is an
//! auto-callout task of one callee, followed by polling the task and its CDR and by the CDR
//! push; hangup causes come from the CDR's `EndStatus` through [`causes`] (data: `causes.tsv`).
//!
//! - [`sign`]: TC3-HMAC-SHA256, the API signature v3 every Tencent Cloud API takes, plus the
//!   vector-shaped entry point [`sign_vector`] behind `waihu provider sign`.
//! - [`causes`]: the CDR's `EndStatus` codes (and `EndStatusString`s) mapped to Q.850.
//! - [`cdr`]: a CDR (`TelCdrInfo`, pushed or read back) as ringing / answered / released reports.
//! - [`client`]: the [`Tencent`] client.
//!
//! # A line's settings
//!
//! `provider_config`:
//! - `sdk_app_id` (required): the CCC application (`SdkAppId`).
//! - `secret_id` (required): the API key's SecretId. It is an identifier, not a secret (it
//!   travels in clear in every `Authorization` header), so it is a setting; its key is the
//!   credential `secret_key`.
//! - `ivr_id` and/or `ai_agent_id` (one is required to dial and to pass the line test): what an
//!   answered call runs (`IvrId`, `AIAgentId`); CCC auto-callout tasks always run one.
//! - `webhook_user`: the basic-auth user name set for the data push in the CCC console.
//! - `base_url` (default `https://ccc.tencentcloudapi.com`; the international site is
//!   `https://ccc.intl.tencentcloudapi.com`): the API host alone, no path (requests go to `/`).
//! - `region` (optional): sent as `X-TC-Region` when given; the CCC docs say its actions take
//!   none.
//! - `task_ttl_seconds` (default 3600): the task's `NotAfter`, after `NotBefore` = now.
//! - `max_ring_seconds` (optional): `MaxRingTimeoutSecond` (CCC honours it for customers' own
//!   numbers only).
//!
//! Credentials: `secret_key` (required), `webhook_password` (the data push's basic-auth
//! password; without it and `webhook_user` every push is refused and calls end by polling).
//!
//! # What is called
//!
//! Every request is a JSON POST to `<base_url>/` with `X-TC-Action`, `X-TC-Version: 2020-02-10`,
//! `X-TC-Timestamp` (and `X-TC-Region` when set), signed TC3-HMAC-SHA256 over `content-type`
//! and `host` for service `ccc`. Replies are `{"Response":{...}}`; an error is
//! `Response.Error{Code,Message}` (sent with HTTP 200) and is sorted by code: `AuthFailure.*`,
//! `UnauthorizedOperation.*`, `InvalidParameter*.InstanceNotExist` and unknown codes are the
//! line's configuration; `RequestLimitExceeded`, `InternalError.*`, `ResourceUnavailable.*`,
//! `LimitExceeded.*` (but expired or missing packages) mean later; a bad callee number
//! (`InvalidParameter.InvalidPhoneNumber`, or `InvalidParameter*` whose message names the
//! callee) refuses the call with 28 INVALID_NUMBER_FORMAT, and CCC's per-callee outbound rules
//! (`FailedOperation.CalleeIsBlackUser`/`CalleeIsLimited` 21, `CalloutRuleBlindArea` 63,
//! `CalloutRuleNotWorkTime` 41, `CalloutRuleMaxCallCount*` 34, `CallOutFailed` 41) refuse it with
//! the cause of the `EndStatus` of the same meaning. A timeout after sending is "outcome unknown".
//!
//! - dial: `CreateAutoCalloutTask` with one callee: `Callees` = the phone, `Callers` = the
//!   call's caller number (numbers as CCC writes them, `+86…` → `0086…`), `IvrId`/`AIAgentId`,
//!   `NotBefore` = now, `Tries` = 1, and our reference `waihu-call:<call id>` as the task's and
//!   the callee's `UUI`. The `TaskId` is the provider call id. (A batch of callees per task is
//!   what CCC offers; the platform places calls one by one, so each task has one.)
//! - status: `DescribeAutoCalloutTask` (the callee's `State` and `Sessions`); once the callee
//!   is answered (1) or not answered (2), `DescribeTelCdr` for its last session gives the CDR,
//!   read as a push is. Before the CDR is there an answered callee reports answered; a task
//!   that ended (2 completed, 4 terminated) with its callee never called is released with 41.
//! - hang up: `StopAutoCalloutTask` (a task already over is fine).
//! - test: `DescribeAutoCalloutTasks` with `PageSize` 1 (a signed read that changes nothing),
//!   after checking the line names an IVR or agent.
//!
//! # The CDR push
//!
//! CCC pushes to the one URL set for the application in its console (there is no per-call
//! callback URL): set it to `<public_url>/api/v1/calls/webhook/tencent`, with basic auth
//! (`webhook_user` / `webhook_password`). CCC adds `?action=cdr&version=1` for a call's CDR
//! (JSON, one per session, when it is over) and `?action=record&version=1` for each recording;
//! it expects `{"ErrCode":0}` back and pushes again (up to 3 times) otherwise. A CDR is matched
//! to our call by its `UUI` (`waihu-call:<call id>`); it gives ringing (`RingTimestamp`),
//! answered (`AcceptTimestamp`, or `EndStatus` 1) and the release (cause from `EndStatus`, or
//! from `EndStatusString` when only that is given; talk time `Duration`). Inbound CDRs and
//! recording pushes are acknowledged (once authenticated) and recorded nowhere.
//!
//! # Unverified
//!
//! - That the pushed CDR carries `UUI`: `TelCdrInfo` (what `DescribeTelCdr` returns) has it, and
//!   the push is documented as the same CDR, but the push page's field list as we could read it
//!   does not show it. If a push lacks it, it names only its `SessionId`, which no call of ours
//!   is known by (`CreateAutoCalloutTask` returns a task id, not a session), so the push gets
//!   404 and the call ends by polling, which reads the same CDR.
//! - Recording pushes (`action=record`) carry only `SdkAppId` and `SessionId`, so they name no
//!   call we know: they are authenticated against the lines whose `sdk_app_id` is theirs
//!   (`CloudApi::hook_line_match`) and acknowledged; recordings themselves are another issue.
//! - Whether the push sends `EndStatus` (the number) as well as `EndStatusString`; both are read.
//! - `EndStatus` codes newer than the shared table (213-222, 501-503 in the current SDK) fall back
//!   to 31 NORMAL_UNSPECIFIED.
//! - Which parameter an `InvalidParameter`/`InvalidParameterValue` error is about is only in its
//!   free-text message; a message naming the callee refuses the call, anything else is taken as
//!   the line's configuration.
//!
//! [`CloudApi`]: waihu_provider_core::CloudApi

pub mod causes;
pub mod cdr;
pub mod client;
pub mod sign;

pub use causes::{cause, table};
pub use client::Tencent;
pub use sign::{sign_vector, tc3_sign, utc_date, Signed, Tc3Signed};
