//! 容联云 / Ronglian (cloopen, yuntongxun) REST `2013-12-26` behind
//! [`CloudApi`](waihu_provider_core::CloudApi): [`Ronglian`].
//!
//! # A line
//!
//! `provider_config` (settings, not secret):
//! - `account_sid` (required): the main account id.
//! - `app_id` (required): the application id.
//! - `base_url`: default `https://app.cloopen.com:8883` ([`client::DEFAULT_BASE_URL`]).
//! - `mode`: `notify` (default) or `callback`.
//!   - `notify`, a voice notification (外呼通知): `POST Accounts/{account_sid}/Calls/LandingCalls`,
//!     signed with the main account; what a campaign without agents places. Needs `media_name`
//!     (a voice file uploaded to Ronglian) or `media_txt` (text read out); `play_times`
//!     (default 1).
//!   - `callback`, a two-way callback (双向回拨, seed 003 §3.6): `POST
//!     SubAccounts/{sub_account_sid}/Calls/Callback` from `agent_number` (rung first) to the
//!     callee, signed with the sub-account: needs `agent_number`, `sub_account_sid` and the
//!     credential `sub_account_token`.
//! - `max_call_time` (optional, seconds): sent as `maxCallTime`.
//!
//! The callee sees the line's caller number (`displayNum`, or `customerSerNum`/`fromSerNum`).
//! Numbers are sent as Ronglian writes them: mainland ones national (`13800000000`,
//! `02161234567`), others with `00`.
//!
//! Credentials: `auth_token` (the main account's), `webhook_token` (a secret of our choosing
//! that authenticates notifications), and `sub_account_token` in callback mode.
//!
//! # Requests
//!
//! Every request carries `?sig=UPPER(MD5(sid + token + batch))`, `Authorization:
//! Base64(sid:batch)` ([`sign`]; batch = Beijing time `yyyyMMddHHmmss`), `Accept:
//! application/json` and a JSON body; each has a 10 s timeout. A reply's `statusCode`
//! `000000` is success; others are sorted by `status_codes.tsv` ([`codes`]): account,
//! authentication and signature errors → the line's configuration, system errors (and HTTP 429
//! / 5xx) → try again later, a bad number → the call refused with a Q.850 cause; an unknown
//! code → the line's configuration.
//!
//! - dial: `LandingCalls` or `Callback` as above, `userData` = our call id, and the
//!   notification URL (`respUrl` / `hangupCdrUrl`) = the adapter's callback URL with
//!   `?token=<webhook_token>` appended. The reply's `callSid` is the provider call id.
//! - status: `GET Accounts/{account_sid}/CallResult?callsid=…` (呼叫结果查询, main account):
//!   `CallResult.state` (0 normal / 1 not answered / 2 failed, as the voice notification's) and
//!   `duration`; "no data" (100007) means nothing yet.
//! - hang-up: `SubAccounts/{sub}/Calls/CallCancel` (`type` 0) in callback mode. A voice
//!   notification has no cancel API that we found: hang-up is then logged and the
//!   notification plays out (its result notification still comes).
//! - test: `GET Accounts/{account_sid}/AccountInfo` (the main account's name, status and
//!   balance); in callback mode the sub-account settings must be present too.
//!
//! # Notifications
//!
//! `POST /api/v1/calls/webhook/ronglian/status?token=…` (the adapter's webhook), XML
//! ([`hook`]): the voice notification result (`action` `SellingCall`, `state` through
//! `landing_states.tsv`) and the callback's hangup CDR (`action` `Hangup`, `byetype` through
//! `causes.tsv`, `talkDuration`). Ronglian does not sign notifications: one is authentic when
//! its URL's `token` equals the line's `webhook_token` (compared in constant time), which we
//! put in the URL we give at dial time. The reply is
//! `<?xml version="1.0" encoding="UTF-8"?><Response><statuscode>000000</statuscode></Response>`.
//! A notification names its call by `userData` (our call id) when present, so one that comes
//! before the dial request's reply still finds its call; else by `callSid`.
//!
//! # Unverified (say so plainly)
//!
//! - The hangup CDR's exact field list (`callSid`, `byetype`, `talkDuration`, `recordurl`,
//!   `userData`) is as public integrations quote it, not from an official page we could read.
//! - `CallResult`'s reply: `state` and `callTime` are in the official demo, `duration` is our
//!   reading; we assume a result is there only once the call has ended. Whether it reports
//!   two-way callbacks as it does voice notifications is not documented.
//! - The error codes in `status_codes.tsv` are 云之讯's (docs.ucpaas.com) list for the same
//!   REST scheme; cloopen's own list was not found.
//! - Whether `userData` and the URLs we send have length or character limits.
//! - The reply casing `<statuscode>` is the voice notification page's; the callback CDR's
//!   expected reply is assumed to be the same.
//! - Signing (`sig`, `Authorization`) follows the official `CCPRestSDK.php`; there is no
//!   official test vector (ours is self-computed).

pub mod causes;
pub mod client;
pub mod codes;
pub mod hook;
pub mod sign;

pub use causes::{cause, landing_cause, landing_table, table};
pub use client::Ronglian;
pub use sign::{authorization, batch_at, batch_now, sig, sign_vector, Signed};
