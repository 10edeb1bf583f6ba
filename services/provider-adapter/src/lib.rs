//! The provider adapter: owns tenants' lines (`ProviderService`, announced as line events the
//! dialer follows; their credentials sealed at rest, [`vault`]) and hands dial commands to the
//! provider of their line (`providers/`: the simulator, Twilio, Aliyun, Tencent, Ronglian),
//! whose signals the call ledger turns into normalised call events. Cloud providers' callbacks
//! arrive on its HTTP server ([`webhook`]); quiet calls are polled ([`cloud`]). `sip` lines
//! dial SIP trunks through the adapter's own SIP user agent (`providers/sip`). Work phones come
//! in a later issue.

pub mod adapter;
pub mod campaign;
pub mod cloud;
pub mod devices;
pub mod lines;
pub mod mobile;
pub mod screening;
pub mod screening_api;
pub mod vault;
pub mod webhook;

pub use waihu_provider_sim as sim;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use waihu_bus::{Bus, ConsumerSpec, Runner};
use waihu_proto::v1::{
    provider_service_server::ProviderServiceServer,
    screening_service_server::ScreeningServiceServer,
};
use waihu_runtime::{
    config::{Layers, Secret},
    CommonConfig, ConfigError, ServiceHandle, StartError, Workers,
};

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub common: CommonConfig,
    pub simulator: sim::Simulator,
    /// Whether simulated answered calls leave a recording (`[simulator] recordings`, off by
    /// default), its length's divisor (`recording_scale`, 60: a minute's talk makes a second)
    /// and cap (`recording_max_ms`, 5000). Written under `recordings_dir`.
    pub sim_recordings: Option<(u32, u64)>,
    /// Whether simulated answered calls leave a transcript (`[simulator] transcripts`, off by
    /// default): a generated dialogue whose customer's intent the simulator decides.
    pub sim_transcripts: bool,
    /// Calls played at once at most.
    pub max_in_flight: usize,
    /// Where the dialer serves `DialerService` (line status asks it).
    pub dialer_url: String,
    /// Where providers' callbacks are received (`WAIHU_HTTP_ADDR`, default `0.0.0.0:8053`).
    pub http_addr: SocketAddr,
    /// This adapter's URL as providers reach it (`[provider] public_url`); callbacks are asked
    /// for at `<public_url>/api/v1/calls/webhook/<provider>/status`.
    pub public_url: String,
    /// The key sealing lines' credentials (`[provider] credentials_key`, 32 bytes in base64),
    /// and earlier keys still opening them (`credentials_old_keys`, comma-separated).
    pub credentials_key: Option<Secret>,
    pub credentials_old_keys: Vec<Secret>,
    /// How quiet cloud calls are polled (`[provider] poll_initial_ms`, `poll_max_ms`,
    /// `give_up_s`).
    pub polling: cloud::Polling,
    /// The SIP user agent of `sip` lines (`[provider] sip_bind`, `sip_public_ip`, `rtp_ports`,
    /// `recordings_dir`); None when `sip_bind` is empty (no SIP here).
    pub sip: Option<waihu_provider_sip::StackConfig>,
    /// Work phones: how they are kept track of (`[provider] device_offline_s`,
    /// `device_disconnect_s`, `device_dial_wait_s`, `device_bind_ttl_s`), and where they connect
    /// (`[provider] websocket_url`, default `<public_url as ws://>/ws`).
    pub devices: devices::DeviceTimings,
    pub websocket_url: String,
    /// Where recordings of calls are kept (`[provider] recordings_dir`): SIP calls' and the
    /// ones phones upload.
    pub recordings: std::path::PathBuf,
    /// Batch number screening (`[provider] screening_dir`, `screening_batch_size`,
    /// `screening_poll_ms`, `screening_max_attempts`).
    pub screening: screening::ScreeningConfig,
    /// How long the simulator's batch screening API takes to have a batch's results
    /// (`[simulator] screening_delay_ms`, 5000).
    pub sim_screening_delay: Duration,
    /// Provider campaigns (`[provider] campaign_sync_ms`, `campaign_collect_wait_ms`).
    pub campaigns: campaign::CampaignConfig,
    /// Calls the simulator's campaign API starts a second (`[simulator] campaign_rate`, 50).
    pub sim_campaign_rate: f64,
}

/// The `[simulator]` settings as written.
#[derive(serde::Deserialize)]
#[serde(default)]
struct SimulatorSection {
    seed: u64,
    #[serde(deserialize_with = "waihu_runtime::config::from_str")]
    mix: sim::Mix,
    #[serde(deserialize_with = "waihu_runtime::config::from_str")]
    ring_ms: sim::MsRange,
    #[serde(deserialize_with = "waihu_runtime::config::from_str")]
    talk_ms: sim::MsRange,
    no_answer_timeout_ms: u64,
    #[serde(deserialize_with = "waihu_runtime::config::from_str")]
    setup_ms: sim::MsRange,
    time_scale: f64,
    recordings: bool,
    recording_scale: u32,
    recording_max_ms: u64,
    transcripts: bool,
    screening_delay_ms: u64,
    campaign_rate: f64,
}

impl Default for SimulatorSection {
    fn default() -> Self {
        let d = sim::Simulator::default();
        SimulatorSection {
            seed: d.seed,
            mix: d.mix,
            ring_ms: d.ring_ms,
            talk_ms: d.talk_ms,
            no_answer_timeout_ms: d.no_answer_timeout_ms,
            setup_ms: d.setup_ms,
            time_scale: d.time_scale,
            recordings: false,
            recording_scale: 60,
            recording_max_ms: 5000,
            transcripts: false,
            screening_delay_ms: 5000,
            campaign_rate: 50.0,
        }
    }
}

/// The `[provider]` settings as written.
#[derive(serde::Deserialize)]
#[serde(default)]
struct ProviderSection {
    max_in_flight: usize,
    dialer_url: String,
    public_url: String,
    credentials_key: Secret,
    credentials_old_keys: Secret,
    poll_initial_ms: u64,
    poll_max_ms: u64,
    give_up_s: u64,
    sip_bind: String,
    sip_public_ip: String,
    rtp_ports: String,
    recordings_dir: String,
    websocket_url: String,
    device_offline_s: u64,
    device_disconnect_s: u64,
    device_dial_wait_s: u64,
    device_bind_ttl_s: u64,
    screening_dir: String,
    screening_batch_size: u32,
    screening_poll_ms: u64,
    screening_max_attempts: u32,
    campaign_sync_ms: u64,
    campaign_collect_wait_ms: u64,
    campaign_result_wait_s: u64,
}

/// Where providers' callbacks are received by default.
pub const DEFAULT_HTTP_PORT: u16 = 8053;

/// Where a dialer on this machine serves by default.
pub const DEFAULT_DIALER_URL: &str = "http://127.0.0.1:50052";

impl Default for ProviderSection {
    fn default() -> Self {
        let polling = cloud::Polling::default();
        ProviderSection {
            max_in_flight: 5000,
            dialer_url: DEFAULT_DIALER_URL.into(),
            public_url: format!("http://127.0.0.1:{DEFAULT_HTTP_PORT}"),
            credentials_key: Secret::default(),
            credentials_old_keys: Secret::default(),
            poll_initial_ms: polling.initial.as_millis() as u64,
            poll_max_ms: polling.max.as_millis() as u64,
            give_up_s: polling.give_up.as_secs(),
            sip_bind: "0.0.0.0:5060".into(),
            sip_public_ip: String::new(),
            rtp_ports: String::new(),
            recordings_dir: "recordings".into(),
            websocket_url: String::new(),
            device_offline_s: 60,
            device_disconnect_s: 90,
            device_dial_wait_s: 60,
            device_bind_ttl_s: 300,
            screening_dir: "./data/screening".into(),
            screening_batch_size: 1000,
            screening_poll_ms: 300_000,
            screening_max_attempts: 10,
            campaign_sync_ms: 1_800_000,
            campaign_collect_wait_ms: 60_000,
            campaign_result_wait_s: 3600,
        }
    }
}

impl ProviderConfig {
    pub const DEFAULT_PORT: u16 = 50053;

    /// `[simulator] seed, mix, ring_ms, talk_ms, no_answer_timeout_ms, setup_ms, time_scale`
    /// (`WAIHU_SIMULATOR__SEED`, ...), `[provider] max_in_flight`, `dialer_url`
    /// (`WAIHU_PROVIDER__DIALER_URL`, default `http://127.0.0.1:50052`), and the common settings.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_layers(&Layers::from_process()?)
    }

    pub fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let s: SimulatorSection = layers.section("simulator")?;
        if !(s.time_scale.is_finite() && s.time_scale >= 0.0) {
            return Err(ConfigError::invalid(
                "simulator.time_scale",
                "must be 0 (no waiting) or a positive speed-up",
            ));
        }
        if s.recording_scale == 0 || !(200..=3_600_000).contains(&s.recording_max_ms) {
            return Err(ConfigError::invalid(
                "simulator.recording_scale",
                "recording_scale must be at least 1 and recording_max_ms 200 to 3600000",
            ));
        }
        let p: ProviderSection = layers.section("provider")?;
        if p.max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "provider.max_in_flight",
                "must be at least 1",
            ));
        }
        if !(p.dialer_url.starts_with("http://") || p.dialer_url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                "provider.dialer_url",
                "must be an http:// or https:// URL",
            ));
        }
        if !(p.public_url.starts_with("http://") || p.public_url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                "provider.public_url",
                "must be an http:// or https:// URL",
            ));
        }
        if p.poll_initial_ms == 0 || p.poll_max_ms < p.poll_initial_ms || p.give_up_s == 0 {
            return Err(ConfigError::invalid(
                "provider.poll_initial_ms",
                "poll_initial_ms >= 1, poll_max_ms >= poll_initial_ms, give_up_s >= 1",
            ));
        }
        let sip = sip_config(&p)?;
        if p.device_offline_s == 0
            || p.device_disconnect_s < p.device_offline_s
            || p.device_dial_wait_s == 0
            || p.device_bind_ttl_s == 0
        {
            return Err(ConfigError::invalid(
                "provider.device_offline_s",
                "device_offline_s >= 1, device_disconnect_s >= device_offline_s, \
                 device_dial_wait_s >= 1, device_bind_ttl_s >= 1",
            ));
        }
        let devices = devices::DeviceTimings {
            offline_after: Duration::from_secs(p.device_offline_s),
            disconnect_after: Duration::from_secs(p.device_disconnect_s),
            dial_wait: Duration::from_secs(p.device_dial_wait_s),
            bind_ttl: Duration::from_secs(p.device_bind_ttl_s),
        };
        let websocket_url = match p.websocket_url.trim() {
            "" => websocket_url_for(&p.public_url),
            u if u.starts_with("ws://") || u.starts_with("wss://") => u.to_string(),
            _ => {
                return Err(ConfigError::invalid(
                    "provider.websocket_url",
                    "must be a ws:// or wss:// URL",
                ))
            }
        };
        let recordings = p.recordings_dir.trim();
        if recordings.is_empty() {
            return Err(ConfigError::invalid(
                "provider.recordings_dir",
                "must name a directory",
            ));
        }
        let recordings = recordings.into();
        if p.screening_dir.trim().is_empty() {
            return Err(ConfigError::invalid(
                "provider.screening_dir",
                "must name a directory",
            ));
        }
        if !(1..=screening::MAX_BATCH_SIZE).contains(&p.screening_batch_size) {
            return Err(ConfigError::invalid(
                "provider.screening_batch_size",
                format!("1-{}", screening::MAX_BATCH_SIZE),
            ));
        }
        if p.screening_poll_ms == 0 || p.screening_max_attempts == 0 {
            return Err(ConfigError::invalid(
                "provider.screening_poll_ms",
                "screening_poll_ms >= 1 and screening_max_attempts >= 1",
            ));
        }
        let screening = screening::ScreeningConfig {
            dir: p.screening_dir.trim().into(),
            batch_size: p.screening_batch_size,
            poll: Duration::from_millis(p.screening_poll_ms),
            max_attempts: p.screening_max_attempts,
            ..Default::default()
        };
        if p.campaign_sync_ms == 0
            || p.campaign_collect_wait_ms == 0
            || p.campaign_result_wait_s == 0
        {
            return Err(ConfigError::invalid(
                "provider.campaign_sync_ms",
                "campaign_sync_ms, campaign_collect_wait_ms and campaign_result_wait_s >= 1",
            ));
        }
        if !(s.campaign_rate.is_finite() && s.campaign_rate > 0.0 && s.campaign_rate <= 100_000.0) {
            return Err(ConfigError::invalid(
                "simulator.campaign_rate",
                "calls a second, more than 0 and at most 100000",
            ));
        }
        let campaigns = campaign::CampaignConfig {
            sync: Duration::from_millis(p.campaign_sync_ms),
            collect_wait: Duration::from_millis(p.campaign_collect_wait_ms),
            tick: Duration::from_millis(p.campaign_sync_ms.min(1000)),
            result_wait: Duration::from_secs(p.campaign_result_wait_s),
            ..Default::default()
        };
        let credentials_key = Some(p.credentials_key).filter(|k| !k.expose().trim().is_empty());
        let credentials_old_keys: Vec<Secret> = p
            .credentials_old_keys
            .expose()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| Secret::new(k.trim()))
            .collect();
        vault::Vault::new(credentials_key.as_ref(), &credentials_old_keys)
            .map_err(|e| ConfigError::invalid("provider.credentials_key", e))?;
        Ok(ProviderConfig {
            sip,
            devices,
            websocket_url,
            recordings,
            http_addr: layers.http_addr(DEFAULT_HTTP_PORT)?,
            public_url: p.public_url,
            credentials_key,
            credentials_old_keys,
            polling: cloud::Polling {
                initial: Duration::from_millis(p.poll_initial_ms),
                max: Duration::from_millis(p.poll_max_ms),
                give_up: Duration::from_secs(p.give_up_s),
            },
            common: CommonConfig::from_layers(layers, Self::DEFAULT_PORT)?,
            simulator: sim::Simulator {
                seed: s.seed,
                mix: s.mix,
                ring_ms: s.ring_ms,
                talk_ms: s.talk_ms,
                no_answer_timeout_ms: s.no_answer_timeout_ms,
                setup_ms: s.setup_ms,
                time_scale: s.time_scale,
            },
            sim_recordings: s
                .recordings
                .then_some((s.recording_scale, s.recording_max_ms)),
            sim_transcripts: s.transcripts,
            screening,
            sim_screening_delay: Duration::from_millis(s.screening_delay_ms),
            campaigns,
            sim_campaign_rate: s.campaign_rate,
            max_in_flight: p.max_in_flight,
            dialer_url: p.dialer_url,
        })
    }

    pub fn new(common: CommonConfig, simulator: sim::Simulator) -> Self {
        ProviderConfig {
            common,
            simulator,
            sim_recordings: None,
            sim_transcripts: false,
            max_in_flight: 5000,
            dialer_url: DEFAULT_DIALER_URL.into(),
            http_addr: SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)),
            public_url: format!("http://127.0.0.1:{DEFAULT_HTTP_PORT}"),
            credentials_key: None,
            credentials_old_keys: vec![],
            polling: cloud::Polling::default(),
            devices: devices::DeviceTimings::default(),
            websocket_url: websocket_url_for(&format!("http://127.0.0.1:{DEFAULT_HTTP_PORT}")),
            recordings: "recordings".into(),
            screening: screening::ScreeningConfig::default(),
            sim_screening_delay: Duration::from_secs(5),
            campaigns: campaign::CampaignConfig::default(),
            sim_campaign_rate: 50.0,
            // Embedded adapters (tests, several to a machine) take any free SIP port.
            sip: Some(waihu_provider_sip::StackConfig {
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..Default::default()
            }),
        }
    }
}

/// Where phones connect, from the adapter's public URL: `http(s)://host` -> `ws(s)://host/ws`.
pub fn websocket_url_for(public_url: &str) -> String {
    let base = public_url.trim_end_matches('/');
    let ws = match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", base.trim_start_matches("http://")),
    };
    format!("{ws}/ws")
}

/// The SIP user agent's settings, checked: each bad one named.
fn sip_config(p: &ProviderSection) -> Result<Option<waihu_provider_sip::StackConfig>, ConfigError> {
    let bind = p.sip_bind.trim();
    if bind.is_empty() {
        return Ok(None);
    }
    let bind: SocketAddr = bind.parse().map_err(|_| {
        ConfigError::invalid(
            "provider.sip_bind",
            "must be IP:port (e.g. 0.0.0.0:5060), or empty for no SIP",
        )
    })?;
    let public_ip = match p.sip_public_ip.trim() {
        "" => None,
        ip => Some(ip.parse().map_err(|_| {
            ConfigError::invalid("provider.sip_public_ip", "must be an IP address")
        })?),
    };
    let rtp_ports = match p.rtp_ports.trim() {
        "" => None,
        r => {
            let range = r
                .split_once('-')
                .and_then(|(lo, hi)| {
                    Some((
                        lo.trim().parse::<u16>().ok()?,
                        hi.trim().parse::<u16>().ok()?,
                    ))
                })
                .filter(|(lo, hi)| *lo >= 1024 && lo < hi);
            Some(range.ok_or_else(|| {
                ConfigError::invalid(
                    "provider.rtp_ports",
                    "must be LOW-HIGH with 1024 <= LOW < HIGH <= 65535 (e.g. 20000-29999)",
                )
            })?)
        }
    };
    Ok(Some(waihu_provider_sip::StackConfig {
        bind,
        public_ip,
        rtp_ports,
    }))
}

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "provider";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates, serves `ProviderService` and plays dial commands until `shutdown`; calls
/// in flight get the grace period to finish, the rest are redelivered to another instance and
/// resumed there.
pub async fn start(
    config: ProviderConfig,
    shutdown: CancellationToken,
) -> Result<ServiceHandle, StartError> {
    let c = &config.common;
    let pool = c.open_database(SCHEMA, &MIGRATOR).await?;
    let bus = Bus::connect(&c.bus()).await?;
    let vault = vault::Vault::new(
        config.credentials_key.as_ref(),
        &config.credentials_old_keys,
    )?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let registry = cloud::Providers::new(http.clone());
    let lines = lines::Lines::new(pool.clone(), Arc::new(vault), registry.clone());
    let resealed = lines.reseal_stale().await?;
    if resealed > 0 {
        tracing::info!(
            lines = resealed,
            "credentials re-sealed under the current key"
        );
    }
    let cache = lines::LineCache::new(lines.clone());
    let sip = match &config.sip {
        Some(s) => Some(
            waihu_provider_sip::SipProvider::start(
                s.clone(),
                config.recordings.clone(),
                shutdown.child_token(),
            )
            .await
            .map_err(|e| format!("{e} (WAIHU_PROVIDER__SIP_BIND; empty for no SIP)"))?,
        ),
        None => None,
    };
    let calls = cloud::Calls { pool: pool.clone() };
    let max = config.max_in_flight;
    let playing = adapter::Playing::default();
    let phones = mobile::Mobile {
        devices: devices::Devices {
            pool: pool.clone(),
            lines: lines.clone(),
            timings: config.devices,
        },
        calls: calls.clone(),
        lines: cache.clone(),
        bus: bus.clone(),
        playing: playing.clone(),
        hub: mobile::Hub::default(),
        websocket_url: config.websocket_url.clone(),
        bind_url: format!(
            "{}/api/v1/calls/device/bind",
            config.public_url.trim_end_matches('/')
        ),
        recordings: config.recordings.clone(),
        uploads: mobile::upload_slots(),
    };
    registry.set_mobile(Arc::new(phones.clone()));
    let campaigns = campaign::Campaigns {
        pool: pool.clone(),
        bus: bus.clone(),
        outbox: lines.outbox.clone(),
        lines: cache.clone(),
        sim: campaign::SimCampaigns {
            pool: pool.clone(),
            sim: config.simulator.clone(),
            rate: config.sim_campaign_rate,
        },
        tencent: Arc::new(waihu_provider_tencent::Tencent::new(http.clone())),
        config: config.campaigns.clone(),
        wake: Arc::new(tokio::sync::Notify::new()),
    };
    let handler = Arc::new(adapter::Dispatcher {
        bus: bus.clone(),
        sim: waihu_provider_sim::SimProvider {
            sim: config.simulator.clone(),
            recordings: config.sim_recordings.map(|(scale, max_ms)| {
                waihu_provider_sim::SimRecordings {
                    dir: config.recordings.clone(),
                    scale,
                    max_ms,
                }
            }),
            transcripts: config.sim_transcripts,
        },
        playing: playing.clone(),
        lines: cache.clone(),
        sip: sip.clone(),
        cloud: adapter::Cloud {
            registry: registry.clone(),
            calls: calls.clone(),
            public_url: config.public_url.clone(),
            polling: config.polling,
        },
        campaigns: campaigns.clone(),
    });
    let hooks = Arc::new(webhook::Webhooks {
        registry,
        calls: calls.clone(),
        lines: cache,
        bus: bus.clone(),
        playing: playing.clone(),
        public_url: config.public_url.clone(),
        campaign_wake: campaigns.wake.clone(),
    });
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} (WAIHU_HTTP_ADDR): {e}",
                config.http_addr
            )
        })?;
    let mut workers = Workers::new();
    workers.keep_statistics(pool.clone(), SCHEMA);
    let stop = workers.stop_token();
    let http_phones = phones.clone();
    let pruned_phones = phones.clone();
    workers.spawn(async move {
        let app = webhook::router(hooks)
            .merge(mobile::router(http_phones))
            .layer(axum::middleware::from_fn(waihu_runtime::metrics::http));
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        {
            tracing::error!(error = %e, "webhook server stopped");
        }
    });
    let stop = workers.stop_token();
    let pruned_campaigns = campaigns.clone();
    workers.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            }
            match pruned_campaigns
                .prune(Duration::from_secs(7 * 86_400))
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::debug!(campaigns = n, "finished provider campaigns pruned")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "provider campaigns not pruned"),
            }
            if let Err(e) = pruned_phones.prune().await {
                tracing::warn!(error = %e, "phone commands not pruned");
            }
            match calls.prune(Duration::from_secs(86_400)).await {
                Ok(n) if n > 0 => tracing::debug!(calls = n, "settled provider calls pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "provider calls not pruned"),
            }
        }
    });
    let (hp, phones_stop) = (phones.clone(), workers.stop_token());
    workers.supervise("provider-phones", move || {
        hp.clone().hear(phones_stop.clone())
    });
    let (hb, stop) = (bus.clone(), workers.stop_token());
    workers.supervise("provider-hangups", move || {
        adapter::hear_hangups(hb.clone(), playing.clone(), stop.clone())
    });
    workers.spawn(
        lines
            .outbox
            .relay(pool, bus.clone())
            .run(workers.stop_token()),
    );
    let (stop, grace) = (workers.stop_token(), c.shutdown_grace);
    workers.supervise("provider-simulator", move || {
        let (bus, handler, stop) = (bus.clone(), handler.clone(), stop.clone());
        async move {
            let spec = ConsumerSpec::new("provider-simulator", "call")
                .types(&["CallRequested"])
                .patient();
            let runner = Runner::new(&bus, spec, (max * 2) as i64)
                .await
                .map_err(|e| e.to_string())?;
            runner
                .run_concurrent(handler, max, stop, grace)
                .await
                .map_err(|e| e.to_string())
        }
    });
    let (cw, stop) = (campaigns.clone(), workers.stop_token());
    workers.supervise("provider-campaigns", move || cw.clone().run(stop.clone()));
    let (follower, stop) = (
        Arc::new(campaign::TaskFollower {
            pool: campaigns.pool.clone(),
            wake: campaigns.wake.clone(),
        }),
        workers.stop_token(),
    );
    let (fb, grace) = (campaigns.bus.clone(), c.shutdown_grace);
    workers.supervise("provider-campaign-tasks", move || {
        let (bus, handler, stop) = (fb.clone(), follower.clone(), stop.clone());
        async move {
            let spec = ConsumerSpec::new("provider-campaign-tasks", "task")
                .types(&[
                    "TaskStarted",
                    "TaskPaused",
                    "TaskResumed",
                    "TaskCancelled",
                    "TaskCompleted",
                ])
                .patient();
            let runner = Runner::new(&bus, spec, 64)
                .await
                .map_err(|e| e.to_string())?;
            runner
                .run_concurrent(handler, 4, stop, grace)
                .await
                .map_err(|e| e.to_string())
        }
    });
    let screener = screening::Screener {
        pool: lines.pool.clone(),
        outbox: lines.outbox.clone(),
        lines: lines.clone(),
        sim: waihu_provider_sim::batch::SimBatchApi {
            sim: config.simulator.clone(),
            delay: config.sim_screening_delay,
        },
        config: config.screening.clone(),
        wake: Arc::new(tokio::sync::Notify::new()),
    };
    let (sj, stop) = (screener.clone(), workers.stop_token());
    workers.supervise("provider-screening", move || sj.clone().run(stop.clone()));
    let screening_api = screening_api::ScreeningApi { screener };
    let mut api = lines::ProviderApi::new(lines, &config.dialer_url, sip)?;
    api.mobile = Some(phones);
    waihu_runtime::serve(c, workers, shutdown, |r| {
        r.add_service(ProviderServiceServer::new(api))
            .add_service(ScreeningServiceServer::new(screening_api))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(pairs: &[(&str, &str)]) -> Layers {
        Layers::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("layers")
    }

    #[test]
    fn simulator_settings_come_from_the_loader_and_bad_ones_name_their_variable() {
        let c = ProviderConfig::from_layers(&layers(&[
            ("WAIHU_SIMULATOR__SEED", "7"),
            ("WAIHU_SIMULATOR__MIX", "answered=1"),
            ("WAIHU_SIMULATOR__RING_MS", "10-20"),
            ("WAIHU_SIMULATOR__TIME_SCALE", "0"),
        ]))
        .expect("config");
        assert_eq!(c.simulator.seed, 7);
        assert_eq!(c.simulator.ring_ms, sim::MsRange(10, 20));
        assert_eq!(c.simulator.time_scale, 0.0);
        assert_eq!(c.max_in_flight, 5000);
        assert_eq!(c.common.grpc_addr.port(), ProviderConfig::DEFAULT_PORT);
        let e = ProviderConfig::from_layers(&layers(&[("WAIHU_SIMULATOR__MIX", "answered")]))
            .expect_err("bad mix");
        assert!(e.setting.contains("WAIHU_SIMULATOR__MIX"), "{e}");
        let e = ProviderConfig::from_layers(&layers(&[("WAIHU_SIMULATOR__TIME_SCALE", "-1")]))
            .expect_err("negative scale");
        assert!(e.setting.contains("WAIHU_SIMULATOR__TIME_SCALE"), "{e}");
    }
}
