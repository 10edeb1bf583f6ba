//! Alibaba Cloud Contact Center (CCC, 云联络中心), API version 2020-07-01, behind
//! [`CloudApi`](waihu_provider_core::CloudApi): the [`Aliyun`] client.
//!
//! # A line
//! `provider_config` (not secret):
//! - `instance_id` (required): the CCC instance (`InstanceId` of every request).
//! - `access_key_id` (required): the AccessKey ID. It is an identifier, not a secret: Alibaba
//!   sends it in clear in every request (`AccessKeyId=` / `Credential=`) and shows it in the
//!   console, and operators need to see which key a line uses when they rotate keys; so it is
//!   a setting, and only its secret is a credential.
//! - `base_url`: default `https://ccc.cn-shanghai.aliyuncs.com` (the official endpoint).
//! - `signature`: `v1` (default, RPC signature V1, HMAC-SHA1) or `acs3` (V3,
//!   ACS3-HMAC-SHA256); see [`sign`].
//! - `timeout_seconds`: how long a call may ring (MakeCall `TimeoutSeconds`), 1 to 300, default
//!   60. CCC's docs say at most 300; this crate does not assume a minimum.
//! - `device_id`: MakeCall/ReleaseCall `DeviceId`, default `waihu` (the API page marks it
//!   required and says any value will do; the SDK model leaves it optional).
//! - `user_id`: MakeCall/ReleaseCall `UserId` (the agent the call is placed for), sent only when
//!   set.
//! - `number_format`: `national` (default: a +86 mobile as its 11 digits, a +86 landline with
//!   its trunk 0, as CCC spells numbers; other countries as given) or `e164` (as stored).
//!
//! Credentials: `access_key_secret` (required) and `webhook_token` (optional: a line without it
//! takes no callbacks, and polling alone learns how its calls end).
//!
//! # Requests ([`api`], [`client`])
//! Every action is `POST /` with its parameters in the query string, as the official SDKs send
//! CCC's RPC-style actions, signed with V1 (common parameters and `Signature` in the query) or
//! ACS3 (`x-acs-*` and `Authorization` headers). Requests time out after 10 seconds.
//! - dial: `MakeCall` (`InstanceId`, `Callee`, `Caller` = the call's caller number, `DeviceId`,
//!   `UserId` when set, `TimeoutSeconds`, `Tags` = `waihu-call:<our call id>` so callbacks can
//!   name the call). The provider call id is the reply's `Data.CallContext.JobId` (CCC has no
//!   CallId field). CCC takes no callback URL per call: the URL the adapter offers is not sent.
//! - status: `GetCallDetailRecord` (`InstanceId`, `ContactId` = JobId). While the record does not
//!   exist (`NotExists.*`) or has no `ReleaseTime`, nothing is reported; then the release:
//!   answered when `EstablishedTime` is set, talk = `CallDuration` seconds (an int here, a string
//!   in ListCallDetailRecords: both are read), ring = `StartTime` to the answer or the release,
//!   cause = `ReleaseReason` through [`causes`] (its SIP code through the shared SIP table).
//!   `RecordingReady` is not read: recordings are another issue.
//! - hang-up: `ReleaseCall` (`InstanceId`, `JobId`, `DeviceId`, `UserId` when set); a call CCC no
//!   longer knows counts as hung up.
//! - test: `ListCallDetailRecords` (`InstanceId`, `PageNumber` 1, `PageSize` 1), a signed read.
//!
//! Replies carry `Code` ("OK"), `HttpStatusCode`, `Message`, `RequestId`, `Data`; a failure may
//! come with HTTP 200 and a failing body. Failures ([`api::Failure::to_api_error`]):
//! `Throttling*`, `ServiceUnavailable`, `SignatureNonceUsed`, HTTP 429/503 → transient;
//! `Forbidden*`, `InvalidAccessKeyId*`, `SignatureDoesNotMatch`, `IncompleteSignature`,
//! `InvalidTimeStamp*`, permission and instance errors, HTTP 401/403 → the line's
//! configuration; a parameter error naming `Callee` on MakeCall → the call is refused with
//! INVALID_NUMBER_FORMAT (28, raw `aliyun:error:<Code>`); `InternalError`, other 5xx → outcome
//! unknown; anything else → configuration. Reply bodies are scrubbed of the line's secrets.
//!
//! # Callbacks ([`callback`])
//! **Unverified in Aliyun's documentation.** The shapes and paths are seed 003 §3.4.2's; CCC's
//! own event push (CCC 2.0 message push) documents agent events but shows its customer-side
//! events only as an image, and its delivery mechanism (MNS queue or HTTP) is unclear. What is
//! implemented:
//! - `POST /api/v1/calls/webhook/aliyun/status`, JSON `{instanceId, callId, jobId, event:
//!   Dialing|Ringing|Answered|Released, eventTime, caller, callee, agentId, releaseReason,
//!   duration, tags}`. The call is named by `jobId`, else by our id in `tags`, else by `callId`.
//!   Ringing and Answered move the call; Released ends it (answered when `duration` > 0, as the
//!   seed decides; cause from `releaseReason`); Dialing and unknown events are acknowledged
//!   only.
//! - `POST /api/v1/calls/webhook/aliyun/recording`: authenticated and acknowledged, nothing kept.
//! - Authentication: a shared secret. The operator configures the instance's callback URL as
//!   `<public_url>/api/v1/calls/webhook/aliyun/status?token=<webhook_token>` (and `/recording`
//!   likewise); the `token` query parameter must equal the line's `webhook_token` (compared in
//!   constant time). Anything else is refused (401). The token travels in the URL: use an
//!   HTTPS public URL, and keep it out of proxies' access logs (the adapter logs paths only).
//!   A shared secret in the URL is this crate's choice; seed 003 leaves its `verifySignature`
//!   undefined and no CCC callback signature is documented.
//! - Reply: `{"success":true}` (seed 003), HTTP 200, `application/json`.
//!
//! Also here: [`sign`] (both signatures and the vector entry points behind `waihu provider
//! sign`) and [`causes`] (`ReleaseReason` to Q.850).

pub mod api;
pub mod callback;
pub mod causes;
pub mod client;
pub mod sign;

pub use causes::release_reason_cause;
pub use client::Aliyun;
pub use sign::{
    acs3_sign, percent_encode, rpc_signature, rpc_string_to_sign, sign_acs3_vector,
    sign_rpc_vector, Acs3Request, Acs3Signed, Signed,
};
