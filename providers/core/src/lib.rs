//! What every provider is behind: the [`Provider`] trait, the [`Signal`]s a provider reports
//! about a call, and the [`CallLedger`] that turns those signals, in any order and any number of
//! times, into the call's events exactly once each, in lifecycle order.

pub mod campaign;
pub mod cloud;
mod ledger;
pub mod vectors;

use std::future::Future;

pub use campaign::{
    CallResult, CampaignAction, CampaignApi, CampaignCall, CampaignStatus, CampaignView,
};
pub use cloud::{
    ApiError, CloudApi, Credentials, Hook, HookError, HookReply, LineConfig, Placed, Report,
};
pub use ledger::{attach_to_call, CallLedger, Stage};
use waihu_bus::HandlerError;
use waihu_events::pb;

/// What signing one entry shaped like those of `shared/vectors/signatures.json` gives
/// (`waihu provider sign`): the value to compare with the entry's expectation (a signature or a
/// whole `Authorization` header, per scheme), the text that was signed, and intermediate values
/// by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub signature: String,
    pub string_to_sign: String,
    pub extra: Vec<(String, String)>,
}

/// The `file://` URI of a recording kept on this host (absolute when it can be made so), as
/// `RecordingAvailable.uri` names it.
pub fn file_uri(path: &std::path::Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file://{}", abs.display())
}

/// What a provider learnt about a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The provider accepted the call and is setting it up.
    Dialing {
        provider_call_id: String,
    },
    Ringing,
    Answered,
    /// The call ended, with the normalised cause (Q.850 plus the provider's raw code).
    Released {
        cause: pb::HangupCause,
        answered: bool,
        ring_ms: u64,
        talk_ms: u64,
    },
}

impl Signal {
    /// A release before anyone answered (refused, failed, given up): no ring or talk time.
    pub fn unanswered(cause: pb::HangupCause) -> Signal {
        Signal::Released {
            cause,
            answered: false,
            ring_ms: 0,
            talk_ms: 0,
        }
    }

    pub fn stage(&self) -> Stage {
        match self {
            Signal::Dialing { .. } => Stage::Dialing,
            Signal::Ringing => Stage::Ringing,
            Signal::Answered => Stage::Answered,
            Signal::Released { .. } => Stage::Released,
        }
    }
}

/// A way to reach phones: places a call and reports what happens to it through the ledger.
pub trait Provider: Send + Sync + 'static {
    /// The provider type lines name (`sim`, `sip`, `aliyun`, ...).
    fn kind(&self) -> &'static str;

    /// Places (or, after a redelivery, goes on with) the call `req`, reporting through `ledger`
    /// until the call is released. `ledger.reached()` says how far an earlier attempt got.
    fn place(
        &self,
        line: &LineConfig,
        req: &pb::CallRequested,
        ledger: &mut CallLedger,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}
