//! What a provider with a campaign API implements ([`CampaignApi`], seed 001): a batch of calls
//! handed over at once, which the provider dials on its own, paused, resumed or stopped on
//! request, and read back call by call. The provider adapter (`services/provider-adapter`,
//! `campaign.rs`) records its intent before creating a campaign, finds it by name after a
//! crash, and turns every result into the call's events through the call ledger, once.

use uuid::Uuid;

use crate::{cloud::BoxFuture, ApiError, LineConfig, Signal};

/// One call handed over in a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignCall {
    pub call_id: Uuid,
    /// Its place in the campaign as created (0-based): the order the provider dials in.
    pub position: u32,
    /// E.164.
    pub phone: String,
    /// 1 for the first call to the contact, 2 for the first recall, ...
    pub attempt: u32,
    /// The number the callee sees (the line's caller number when handed over).
    pub caller_number: String,
    /// Its result is already synced here: the provider need not be asked for it again.
    pub synced: bool,
}

/// What a campaign is doing at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    Running,
    Paused,
    /// Completed or stopped: nothing more is called. Results may still lag (`lagging`); a
    /// call the provider never placed has a result saying so.
    Over,
}

/// What to do with a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignAction {
    Pause,
    Resume,
    Stop,
}

/// The end of one call of a campaign, as the provider tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    pub call_id: Uuid,
    /// The provider's id of the call (a session id).
    pub provider_call_id: String,
    /// What happened, in order, ending with the release.
    pub signals: Vec<Signal>,
    /// What the provider said (at most a few KiB, never a credential).
    pub raw: String,
}

/// A campaign as the provider describes it now.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignView {
    pub status: CampaignStatus,
    /// Every call whose end the provider knows (more may come while it runs).
    pub results: Vec<CallResult>,
    /// Some calls are over at the provider but their results cannot be read yet (a CDR shows
    /// a little after its call ends): worth asking again soon rather than at the next sync.
    pub lagging: bool,
}

/// A provider's campaign API.
pub trait CampaignApi: Send + Sync {
    /// The provider type its lines name.
    fn kind(&self) -> &'static str;

    /// Creates and starts campaign `name` with `calls`, to place none after `until` (Unix
    /// seconds; None = no end): the provider's reference of it.
    fn create<'a>(
        &'a self,
        line: &'a LineConfig,
        name: &'a str,
        calls: &'a [CampaignCall],
        until: Option<i64>,
    ) -> BoxFuture<'a, Result<String, ApiError>>;

    /// The reference of the campaign created as `name`, if there is one (after a crash between
    /// the request and its record).
    fn find<'a>(
        &'a self,
        line: &'a LineConfig,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ApiError>>;

    /// Where campaign `reference` stands, with the result of every call of `calls` (its calls
    /// not yet synced here, each with its `position`) that the provider can show.
    fn describe<'a>(
        &'a self,
        line: &'a LineConfig,
        reference: &'a str,
        calls: &'a [CampaignCall],
    ) -> BoxFuture<'a, Result<CampaignView, ApiError>>;

    /// Pauses, resumes or stops campaign `reference`; doing what is already done is no error.
    fn act<'a>(
        &'a self,
        line: &'a LineConfig,
        reference: &'a str,
        action: CampaignAction,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
}
