//! End-to-end harness shared by the integration tests and the benchmark: all four services
//! in-process against the real NATS and PostgreSQL, isolated per run (own database, own prefix),
//! and local servers speaking the cloud providers' wire formats ([`fakes`]), with what the
//! cloud providers' tests share ([`providers`]).

pub mod campaigns;
pub mod cpu;
pub mod fakes;
pub mod infra;
pub mod phone;
pub mod procs;
pub mod providers;
pub mod sipp;
pub use phone::Phone;

pub use providers::{
    assert_lifecycles, expected_from_calls, post_callback, CallEnd, Capture, LIFECYCLES,
};

use std::{collections::BTreeMap, time::Duration};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use waihu_events::pb::{self, ContactOutcome};
use waihu_provider::sim::{Outcome, Simulator};
use waihu_runtime::ServiceHandle;
use waihu_testkit::TestEnv;

pub use waihu_proto::v1::{
    admin_service_client::AdminServiceClient, dialer_service_client::DialerServiceClient,
    provider_service_client::ProviderServiceClient, record_service_client::RecordServiceClient,
    screening_service_client::ScreeningServiceClient, stats_service_client::StatsServiceClient,
    task_service_client::TaskServiceClient, tenant_service_client::TenantServiceClient,
    webhook_service_client::WebhookServiceClient,
};

struct Running {
    handle: ServiceHandle,
    stop: CancellationToken,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.handle.wait().await;
    }
}

type OperatorFn = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;
/// A channel whose requests act as the operator tenant (development mode, no token).
pub type OperatorChannel = tonic::service::interceptor::InterceptedService<Channel, OperatorFn>;

fn as_operator(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let tenant = waihu_auth::keys::DEFAULT_OPERATOR_TENANT
        .parse()
        .expect("ascii tenant");
    r.metadata_mut().insert("x-tenant-id", tenant);
    Ok(r)
}

/// A channel to `addr` whose requests act as the operator tenant.
async fn operator_channel(addr: &str) -> OperatorChannel {
    let channel = Channel::from_shared(addr.to_string())
        .expect("address")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{addr} reachable: {e}"));
    tonic::service::interceptor::InterceptedService::new(channel, as_operator as OperatorFn)
}

/// A simulator line a test cluster creates for each tenant it dials for ([`Cluster::add_lines`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub id: String,
    pub max_concurrent: u32,
}

impl Line {
    /// The line as `ProviderService.CreateLine` takes it: the simulator, no pace or cap.
    pub fn to_pb(&self) -> pb::Line {
        pb::Line {
            line_id: self.id.clone(),
            name: format!("test line {}", self.id),
            provider: "sim".into(),
            caller_number: "+862161234567".into(),
            max_concurrent: self.max_concurrent,
            ..Default::default()
        }
    }
}

/// Adds `x-tenant-id: tenant` to a request (development mode: acts as that tenant).
pub fn as_tenant<T>(tenant: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("x-tenant-id", tenant.parse().expect("ascii tenant"));
    r
}

/// The four services of one isolated deployment.
pub struct Cluster {
    pub env: TestEnv,
    pub sim: Simulator,
    pub lines: Vec<Line>,
    /// The dialer's watchdog timeout for calls out too long.
    pub call_timeout: Duration,
    /// The record service's webhook settings: quick polls and retries, so tests wait little.
    pub webhooks: waihu_record::webhook::WebhookConfig,
    /// The dialer's default calling window (tests run at any hour: always open, unless a test
    /// sets another and restarts the dialer).
    pub default_window: waihu_telephony::window::Window,
    task: Option<Running>,
    dialer: Option<Running>,
    provider: Option<Running>,
    record: Option<Running>,
    analysis: Option<Running>,
    task_addr: String,
    record_addr: String,
    analysis_addr: String,
    dialer_addr: String,
    provider_addr: String,
    /// Events the cluster's setup put on the bus (its lines and their audit records), all
    /// stored before `start` returns: tests counting events count from here.
    pub setup_events: u64,
    /// Where the provider adapter receives providers' callbacks (a free loopback port, kept
    /// across restarts), and the key sealing lines' credentials.
    pub provider_http: std::net::SocketAddr,
    pub credentials_key: String,
    /// Earlier credential keys the adapter still opens (rotation).
    pub credentials_old_keys: Vec<String>,
    /// How the adapter polls quiet cloud calls (quick, so tests wait little).
    pub polling: waihu_provider::cloud::Polling,
    /// Where the adapter keeps SIP calls' recordings (a directory of the cluster's own).
    pub recordings: std::path::PathBuf,
    /// The record service's recordings settings: storage in a directory of the cluster's own
    /// beside `recordings` (sources are copied, not moved, unless a test says so), its own
    /// HTTP port, quick polls.
    pub recording: waihu_record::recording::RecordingConfig,
    /// Whether simulated answered calls leave recordings: (scale, max ms).
    pub sim_recordings: Option<(u32, u64)>,
    /// Whether simulated answered calls leave transcripts.
    pub sim_transcripts: bool,
    /// How the adapter keeps track of work phones (quick, so tests wait little).
    pub devices: waihu_provider::devices::DeviceTimings,
    /// The adapter's screening jobs (files in a directory of the cluster's own, quick polls),
    /// and how long the simulator's batch API takes to have results.
    pub screening: waihu_provider::screening::ScreeningConfig,
    pub sim_screening_delay: Duration,
    /// Provider campaigns: sync, collect wait and tick; the simulator's campaign pace.
    pub campaigns: waihu_provider::campaign::CampaignConfig,
    pub sim_campaign_rate: f64,
}

/// A loopback port free now (for a service that must be told its address before it starts).
pub fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

async fn run<F, Fut>(f: F) -> Running
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<ServiceHandle, waihu_runtime::StartError>>,
{
    let stop = CancellationToken::new();
    let handle = f(stop.clone()).await.expect("service starts");
    Running { handle, stop }
}

impl Cluster {
    pub async fn start(sim: Simulator, lines: Vec<Line>) -> Cluster {
        Cluster::start_with(sim, lines, true, Duration::from_secs(7200)).await
    }

    /// `provider: false` leaves calls unanswered by any provider (lost calls).
    pub async fn start_with(
        sim: Simulator,
        lines: Vec<Line>,
        provider: bool,
        call_timeout: Duration,
    ) -> Cluster {
        Cluster::start_on(TestEnv::new().await, sim, lines, provider, call_timeout).await
    }

    /// [`Cluster::start_with`] in `env` (e.g. one on a NATS cluster: [`TestEnv::on_nats`]).
    pub async fn start_on(
        env: TestEnv,
        sim: Simulator,
        lines: Vec<Line>,
        provider: bool,
        call_timeout: Duration,
    ) -> Cluster {
        Cluster::start_tuned(env, sim, lines, provider, call_timeout, |_| {}).await
    }

    /// [`Cluster::start_on`], with the cluster's settings changed by `tune` before any
    /// service starts.
    pub async fn start_tuned(
        env: TestEnv,
        sim: Simulator,
        lines: Vec<Line>,
        provider: bool,
        call_timeout: Duration,
        tune: impl FnOnce(&mut Cluster),
    ) -> Cluster {
        let recordings = std::env::temp_dir().join(format!("waihu-rec-{}", uuid::Uuid::new_v4()));
        let http = free_port();
        let screening_dir = recordings.with_extension("screening");
        let recording = waihu_record::recording::RecordingConfig {
            storage: waihu_record::recording::Storage::Local(recordings.with_extension("store")),
            source_dirs: vec![recordings.clone()],
            move_local: false,
            url_key: waihu_runtime::config::Secret::new(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )),
            http_addr: Some(http),
            public_url: format!("http://{http}"),
            sweep_every: Duration::from_secs(1),
            poll: Duration::from_millis(100),
            ..Default::default()
        };
        let mut c = Cluster {
            env,
            sim,
            lines,
            call_timeout,
            webhooks: waihu_record::webhook::WebhookConfig {
                max_attempts: 4,
                retry_base: Duration::from_millis(100),
                retry_cap: Duration::from_millis(400),
                timeout: Duration::from_secs(5),
                concurrency: 16,
                poll: Duration::from_millis(50),
            },
            default_window: waihu_telephony::window::Window::always(),
            task: None,
            dialer: None,
            provider: None,
            record: None,
            analysis: None,
            task_addr: String::new(),
            record_addr: String::new(),
            analysis_addr: String::new(),
            dialer_addr: String::new(),
            provider_addr: String::new(),
            setup_events: 0,
            provider_http: free_port(),
            credentials_old_keys: vec![],
            recordings,
            recording,
            sim_recordings: None,
            sim_transcripts: false,
            devices: waihu_provider::devices::DeviceTimings {
                offline_after: Duration::from_secs(2),
                disconnect_after: Duration::from_secs(3),
                dial_wait: Duration::from_secs(4),
                bind_ttl: Duration::from_secs(300),
            },
            screening: waihu_provider::screening::ScreeningConfig {
                dir: screening_dir,
                poll: Duration::from_millis(100),
                lease: Duration::from_secs(5),
                ..Default::default()
            },
            sim_screening_delay: Duration::from_millis(200),
            campaigns: waihu_provider::campaign::CampaignConfig {
                sync: Duration::from_millis(300),
                collect_wait: Duration::from_secs(10),
                tick: Duration::from_millis(100),
                lease: Duration::from_secs(5),
                result_wait: Duration::from_secs(30),
            },
            sim_campaign_rate: 250.0,
            credentials_key: {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
            },
            polling: waihu_provider::cloud::Polling {
                initial: Duration::from_millis(300),
                max: Duration::from_secs(2),
                give_up: Duration::from_secs(600),
            },
        };
        tune(&mut c);
        c.start_record().await;
        c.start_task().await;
        c.start_dialer().await;
        c.start_provider().await;
        c.add_lines("default").await;
        // Each line: its LineCreated and the audit record.
        let made = 2 * c.lines.len() as u64;
        c.setup_events = c
            .wait_store_status("the cluster's lines stored", Duration::from_secs(30), |s| {
                s.position >= made
            })
            .await
            .position;
        if !provider {
            // The lines are made; no provider is left to place calls.
            if let Some(p) = c.provider.take() {
                p.stop().await;
            }
        }
        c
    }

    /// Creates the cluster's lines for `tenant` through `ProviderService` (the provider adapter
    /// must be running).
    pub async fn add_lines(&self, tenant: &str) {
        let mut p = self.providers().await;
        for l in &self.lines {
            p.create_line(as_tenant(
                tenant,
                pb::CreateLineRequest {
                    line: Some(l.to_pb()),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("line {} for {tenant}: {e}", l.id));
        }
    }

    /// A `ProviderService` client (development mode: the `default` tenant, or `x-tenant-id`).
    pub async fn providers(&self) -> ProviderServiceClient<Channel> {
        ProviderServiceClient::connect(self.provider_addr.clone())
            .await
            .expect("provider adapter reachable")
    }

    /// Why the dialer says contact `no` of `task` is not being called (`ExplainContact`).
    pub async fn explain(
        &self,
        task: &str,
        no: u32,
    ) -> Result<pb::ContactExplanation, tonic::Status> {
        self.dialer()
            .await
            .explain_contact(pb::ExplainContactRequest {
                task_id: task.into(),
                contact_no: no,
            })
            .await
            .map(|r| r.into_inner())
    }

    /// A `DialerService` client (development mode: the `default` tenant, or `x-tenant-id`).
    pub async fn dialer(&self) -> DialerServiceClient<Channel> {
        DialerServiceClient::connect(self.dialer_addr.clone())
            .await
            .expect("dialer reachable")
    }

    pub async fn start_task(&mut self) {
        let cfg = waihu_task::TaskConfig {
            common: self.env.config(),
        };
        let r = run(|s| waihu_task::start(cfg, s)).await;
        self.task_addr = format!("http://{}", r.handle.addr);
        self.task = Some(r);
    }

    pub async fn start_record(&mut self) {
        let cfg = waihu_record::RecordConfig {
            webhooks: self.webhooks.clone(),
            recordings: self.recording.clone(),
            ..waihu_record::RecordConfig::new(self.env.config())
        };
        let r = run(|s| waihu_record::start(cfg, s)).await;
        self.record_addr = format!("http://{}", r.handle.addr);
        self.record = Some(r);
    }

    /// [`Cluster::start`] with the simulator's dialogues on and the analysis service running:
    /// every answered call gets a transcript and an analysis.
    pub async fn start_analysed(sim: Simulator, lines: Vec<Line>) -> Cluster {
        let mut c = Cluster::start_tuned(
            TestEnv::new().await,
            sim,
            lines,
            true,
            Duration::from_secs(7200),
            |c| c.sim_transcripts = true,
        )
        .await;
        c.start_analysis().await;
        c
    }

    /// Starts the analysis service (tests that want analyses start it): the local analyzer, no
    /// network backend, the cluster's recordings storage.
    pub async fn start_analysis(&mut self) {
        self.start_analysis_with(|_| {}).await;
    }

    /// [`Cluster::start_analysis`] with its settings changed by `tune` (backends, retries).
    pub async fn start_analysis_with(
        &mut self,
        tune: impl FnOnce(&mut waihu_analysis::AnalysisConfig),
    ) {
        let mut cfg = waihu_analysis::AnalysisConfig::new(self.env.config());
        cfg.recordings = self.recording.clone();
        cfg.poll = Duration::from_millis(100);
        cfg.retry_base = Duration::from_millis(200);
        cfg.retry_cap = Duration::from_secs(1);
        cfg.asr_grace = Duration::from_millis(500);
        tune(&mut cfg);
        let r = run(|s| waihu_analysis::start(cfg, s)).await;
        self.analysis_addr = format!("http://{}", r.handle.addr);
        self.analysis = Some(r);
    }

    /// Stops the analysis service (as a crash would not: cleanly).
    pub async fn stop_analysis(&mut self) {
        if let Some(r) = self.analysis.take() {
            r.stop().await;
        }
    }

    pub async fn start_dialer(&mut self) {
        let mut cfg = waihu_dialer::DialerConfig::new(self.env.config());
        cfg.call_timeout = self.call_timeout;
        cfg.default_window = self.default_window.clone();
        let r = run(|s| waihu_dialer::start(cfg, s)).await;
        self.dialer_addr = format!("http://{}", r.handle.addr);
        self.dialer = Some(r);
    }

    pub async fn start_provider(&mut self) {
        // The HTTP port is chosen before the adapter binds it (callbacks are asked for at it),
        // so another socket may take it meanwhile: a first start tries another port; a
        // restart keeps its port (callbacks already point there).
        let first = self.provider_addr.is_empty();
        for _ in 0..5 {
            let stop = CancellationToken::new();
            match waihu_provider::start(self.provider_config(), stop.clone()).await {
                Ok(handle) => {
                    self.provider_addr = format!("http://{}", handle.addr);
                    self.provider = Some(Running { handle, stop });
                    return;
                }
                Err(e) if first && e.to_string().contains("Address already in use") => {
                    self.provider_http = free_port();
                }
                Err(e) => panic!("service starts: {e:?}"),
            }
        }
        panic!("no free port for the provider adapter's HTTP server after 5 tries");
    }

    fn provider_config(&self) -> waihu_provider::ProviderConfig {
        let mut cfg = waihu_provider::ProviderConfig::new(self.env.config(), self.sim.clone());
        cfg.dialer_url = self.dialer_addr.clone();
        cfg.http_addr = self.provider_http;
        cfg.public_url = format!("http://{}", self.provider_http);
        cfg.credentials_key = Some(waihu_runtime::config::Secret::new(
            self.credentials_key.clone(),
        ));
        cfg.credentials_old_keys = self
            .credentials_old_keys
            .iter()
            .map(|k| waihu_runtime::config::Secret::new(k.clone()))
            .collect();
        cfg.polling = self.polling;
        cfg.recordings = self.recordings.clone();
        cfg.sim_recordings = self.sim_recordings;
        cfg.sim_transcripts = self.sim_transcripts;
        cfg.devices = self.devices;
        cfg.screening = self.screening.clone();
        cfg.sim_screening_delay = self.sim_screening_delay;
        cfg.campaigns = self.campaigns.clone();
        cfg.sim_campaign_rate = self.sim_campaign_rate;
        cfg.websocket_url = waihu_provider::websocket_url_for(&cfg.public_url);
        cfg
    }

    /// Stops the provider adapter cleanly and starts it again (with the cluster's current
    /// settings, e.g. `polling`).
    pub async fn restart_provider(&mut self) {
        if let Some(p) = self.provider.take() {
            p.stop().await;
        }
        self.start_provider().await;
    }

    /// Kills the provider adapter as a crash would: no drain, calls and jobs cut off.
    pub fn kill_provider(&mut self) {
        if let Some(p) = self.provider.take() {
            p.handle.abort();
        }
    }

    /// A client of the adapter's `ScreeningService`.
    pub async fn screening(&self) -> ScreeningServiceClient<Channel> {
        ScreeningServiceClient::connect(self.provider_addr.clone())
            .await
            .expect("screening client")
    }

    /// Kills the record service as a crash would: no drain, transactions cut off.
    pub fn kill_record(&mut self) {
        if let Some(r) = self.record.take() {
            r.handle.abort();
        }
    }

    /// Stops the in-process dialer cleanly (a test may then run the dialer as a process).
    pub async fn stop_dialer(&mut self) {
        if let Some(r) = self.dialer.take() {
            r.stop().await;
        }
    }

    pub fn kill_dialer(&mut self) {
        if let Some(r) = self.dialer.take() {
            r.handle.abort();
        }
    }

    pub async fn tasks(&self) -> TaskServiceClient<Channel> {
        TaskServiceClient::connect(self.task_addr.clone())
            .await
            .expect("task service reachable")
    }

    pub async fn stats(&self) -> StatsServiceClient<Channel> {
        StatsServiceClient::connect(self.record_addr.clone())
            .await
            .expect("record service reachable")
    }

    /// A `WebhookService` client (development mode: the `default` tenant, or `x-tenant-id`).
    pub async fn webhooks(&self) -> WebhookServiceClient<Channel> {
        WebhookServiceClient::connect(self.record_addr.clone())
            .await
            .expect("record service reachable")
    }

    /// An `AdminService` client acting as the operator tenant (development mode, no token).
    pub async fn admin(&self) -> AdminServiceClient<OperatorChannel> {
        AdminServiceClient::new(operator_channel(&self.record_addr).await)
    }

    /// A `TenantService` client acting as the operator tenant (development mode, no token).
    pub async fn tenant_admin(&self) -> TenantServiceClient<OperatorChannel> {
        TenantServiceClient::new(operator_channel(&self.task_addr).await)
    }

    /// Waits until the record service's store status satisfies `done` (`what` names the wait).
    pub async fn wait_store_status(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&pb::StoreStatus) -> bool,
    ) -> pb::StoreStatus {
        let admin = self.admin().await;
        waihu_testkit::eventually(timeout, what, || {
            let mut a = admin.clone();
            let done = &done;
            async move {
                let s = a
                    .get_store_status(pb::GetStoreStatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                done(&s).then_some(s)
            }
        })
        .await
    }

    pub fn provider_addr(&self) -> String {
        self.provider_addr.clone()
    }

    pub fn task_addr(&self) -> &str {
        &self.task_addr
    }

    pub fn record_addr(&self) -> &str {
        &self.record_addr
    }

    /// Each running service's parts that are down, with why (empty maps when all serve).
    pub fn problems(&self) -> Vec<(&'static str, BTreeMap<String, String>)> {
        [
            ("task", &self.task),
            ("dialer", &self.dialer),
            ("provider", &self.provider),
            ("record", &self.record),
        ]
        .into_iter()
        .filter_map(|(name, r)| r.as_ref().map(|r| (name, r.handle.health().problems())))
        .collect()
    }

    /// Where each running service serves `/metrics`, by name.
    pub fn metrics_addrs(&self) -> Vec<(&'static str, std::net::SocketAddr)> {
        [
            ("task", &self.task),
            ("dialer", &self.dialer),
            ("provider", &self.provider),
            ("record", &self.record),
            ("analysis", &self.analysis),
        ]
        .into_iter()
        .filter_map(|(name, r)| Some((name, r.as_ref()?.handle.metrics_addr?)))
        .collect()
    }

    /// The analysis service (started by [`Cluster::start_analysis`]).
    pub async fn analyses(
        &self,
    ) -> waihu_proto::v1::analysis_service_client::AnalysisServiceClient<Channel> {
        waihu_proto::v1::analysis_service_client::AnalysisServiceClient::connect(
            self.analysis_addr.clone(),
        )
        .await
        .expect("analysis service reachable")
    }

    pub async fn records(&self) -> RecordServiceClient<Channel> {
        RecordServiceClient::connect(self.record_addr.clone())
            .await
            .expect("record service reachable")
    }

    /// Stops every service cleanly and removes the database and streams.
    pub async fn shutdown(mut self) {
        for r in [
            self.analysis.take(),
            self.provider.take(),
            self.dialer.take(),
            self.task.take(),
            self.record.take(),
        ]
        .into_iter()
        .flatten()
        {
            r.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.recordings);
        let _ = std::fs::remove_dir_all(&self.screening.dir);
        if let waihu_record::recording::Storage::Local(root) = &self.recording.storage {
            let _ = std::fs::remove_dir_all(root);
        }
        self.env.cleanup().await;
    }
}

/// Each contact's outcome, by phone.
pub async fn contact_outcomes(cluster: &Cluster, task_id: &str) -> BTreeMap<String, i32> {
    let mut tasks = cluster.tasks().await;
    let mut out = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = tasks
            .list_contacts(pb::ListContactsRequest {
                task_id: task_id.into(),
                page_size: 1000,
                after_contact_no: after,
            })
            .await
            .expect("contacts")
            .into_inner()
            .contacts;
        let Some(last) = page.last() else { break };
        after = last.contact_no;
        out.extend(page.into_iter().map(|c| (c.phone, c.outcome)));
    }
    out
}

/// Waits until the record service's projections cover every event the stream holds now: the call
/// records and statistics then show what the other services have already done (a test that
/// waited for the dialer's state would otherwise read the call records a moment behind it).
pub async fn projected(cluster: &Cluster) {
    let last = cluster
        .env
        .bus
        .last_sequence()
        .await
        .expect("the events stream");
    let pool = &cluster.env.pool;
    waihu_testkit::eventually(
        Duration::from_secs(30),
        "the projections to cover the events stream",
        || async move {
            let at = waihu_store::checkpoint(pool, waihu_record::projection::CHECKPOINT)
                .await
                .ok()?;
            (at >= last).then_some(())
        },
    )
    .await;
}

/// How many calls each number of a task got, from its call records.
pub async fn calls_per_number(cluster: &Cluster, task_id: &str) -> BTreeMap<String, u32> {
    projected(cluster).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT phone, count(*) FROM record.call_records WHERE task_id = $1::uuid GROUP BY phone",
    )
    .bind(task_id)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("call records");
    rows.into_iter().map(|(p, n)| (p, n as u32)).collect()
}

/// A task spec with the given recall rule.
pub fn spec(name: &str, recall_count: u32, recall_interval_seconds: u32) -> pb::TaskSpec {
    pb::TaskSpec {
        name: name.into(),
        recall_count,
        recall_interval_seconds,
        ..Default::default()
    }
}

/// `n` distinct mainland mobile numbers, as users type them.
pub fn phones(n: usize, salt: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("1{}{:09}", 3 + (salt % 7), i))
        .collect()
}

/// Creates a task and imports `phones` in chunks; returns the task id.
pub async fn create_with_contacts(
    client: &mut TaskServiceClient<Channel>,
    spec: pb::TaskSpec,
    phones: &[String],
) -> String {
    let task = client
        .create_task(pb::CreateTaskRequest { spec: Some(spec) })
        .await
        .expect("create")
        .into_inner();
    let reply = import(client, &task.task_id, phones).await;
    assert_eq!(
        reply.accepted as usize,
        phones.len(),
        "every generated contact is accepted"
    );
    task.task_id
}

pub async fn import(
    client: &mut TaskServiceClient<Channel>,
    task_id: &str,
    phones: &[String],
) -> pb::AddContactsResponse {
    try_import(client, task_id, phones).await.expect("import")
}

/// Imports `phones` in chunks of 2,000 rows through AddContacts.
pub async fn try_import(
    client: &mut TaskServiceClient<Channel>,
    task_id: &str,
    phones: &[String],
) -> Result<pb::AddContactsResponse, tonic::Status> {
    let rows: Vec<pb::ContactRow> = phones.iter().map(pb::ContactRow::with_phone).collect();
    let msgs = pb::AddContactsRequest::chunked(task_id, &rows);
    client
        .add_contacts(tokio_stream::iter(msgs))
        .await
        .map(tonic::Response::into_inner)
}

/// Starts the task.
pub async fn start(client: &mut TaskServiceClient<Channel>, task_id: &str) {
    client
        .start_task(pb::TaskRef {
            task_id: task_id.to_string(),
        })
        .await
        .expect("start");
}

/// Starts the task and waits until it has completed.
pub async fn run_to_completion(
    client: &mut TaskServiceClient<Channel>,
    task_id: &str,
    timeout: Duration,
) -> pb::Task {
    start(client, task_id).await;
    wait_status(client, task_id, pb::TaskStatus::Completed, timeout).await
}

/// Waits until the task reaches `status`.
pub async fn wait_status(
    client: &mut TaskServiceClient<Channel>,
    task_id: &str,
    status: pb::TaskStatus,
    timeout: Duration,
) -> pb::Task {
    waihu_testkit::eventually(timeout, &format!("task {task_id} to be {status:?}"), || {
        let mut c = client.clone();
        let id = task_id.to_string();
        async move {
            let t = c
                .get_task(pb::TaskRef { task_id: id })
                .await
                .ok()?
                .into_inner();
            (t.status == status as i32).then_some(t)
        }
    })
    .await
}

/// Replays the whole store into fresh projections and asserts they equal the live ones;
/// returns the report.
pub async fn assert_replay_identical(cluster: &Cluster) -> waihu_record::replay::VerifyReport {
    let report = waihu_record::replay::verify(&cluster.env.pool, |_, _| {})
        .await
        .expect("replay");
    assert!(
        report.identical(),
        "replay differs: {:?}",
        report.differences
    );
    report
}

/// Waits until the task's statistics satisfy `done`, returning them.
pub async fn wait_stats(
    cluster: &Cluster,
    task_id: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&pb::TaskStats) -> bool,
) -> pb::TaskStats {
    let client = cluster.stats().await;
    let done = &done;
    waihu_testkit::eventually(timeout, what, || {
        let mut c = client.clone();
        let id = task_id.to_string();
        async move {
            let s = c
                .get_task_stats(pb::GetTaskStatsRequest { task_id: id })
                .await
                .ok()?
                .into_inner();
            done(&s).then_some(s)
        }
    })
    .await
}

/// Waits until the statistics show every contact finished and every placed call released.
pub async fn wait_stats_settled(
    cluster: &Cluster,
    task_id: &str,
    contacts: u64,
    timeout: Duration,
) -> pb::TaskStats {
    wait_stats(cluster, task_id, "statistics to settle", timeout, |s| {
        s.contacts_finished == contacts && s.calls_released == s.calls_placed
    })
    .await
}

/// What a campaign must end with, computed from the simulator's outcomes and the recall rules
/// alone, without the services.
#[derive(Debug, Default, PartialEq)]
pub struct Expected {
    pub contacts: u64,
    pub calls_placed: u64,
    pub calls_answered: u64,
    pub talk_ms: u64,
    pub causes: BTreeMap<u32, u64>,
    pub outcomes: BTreeMap<i32, u64>,
    /// Most calls any one contact got.
    pub max_attempts: u32,
    /// Calls each number (E.164) gets.
    pub attempts: BTreeMap<String, u32>,
}

pub fn expected(sim: &Simulator, phones_e164: &[String], recall_count: u32) -> Expected {
    expected_with(sim, phones_e164, |o| {
        (!matches!(o, Outcome::Rejected { .. })).then_some(recall_count)
    })
}

/// Like [`expected`], with the calls after the first that each simulator outcome allows (None:
/// final); `Rejected` and `Unallocated` are final unless `tries` gives them some.
pub fn expected_with(
    sim: &Simulator,
    phones_e164: &[String],
    tries: impl Fn(&Outcome) -> Option<u32>,
) -> Expected {
    let mut x = Expected {
        contacts: phones_e164.len() as u64,
        ..Default::default()
    };
    for phone in phones_e164 {
        let mut attempt = 1;
        // The recall rules restated from the issue, on the simulator's own outcome kinds (not the
        // services' cause classifier): busy, no answer and temporary failure are called again
        // until their tries are spent; answered and unallocated are final, and rejected too
        // unless it is given tries.
        let outcome = loop {
            let o = sim.outcome(phone, attempt);
            x.calls_placed += 1;
            *x.causes.entry(o.cause().0.q850).or_default() += 1;
            let (last, allowed) = match o {
                Outcome::Answered { talk_ms, .. } => {
                    x.calls_answered += 1;
                    x.talk_ms += talk_ms;
                    break ContactOutcome::Answered;
                }
                Outcome::Rejected { .. } => match tries(&o) {
                    Some(n) if n > 0 => (ContactOutcome::Rejected, n),
                    _ => break ContactOutcome::Rejected,
                },
                Outcome::Unallocated => break ContactOutcome::InvalidNumber,
                Outcome::Busy | Outcome::NoAnswer { .. } | Outcome::TemporaryFailure => {
                    (ContactOutcome::Unreached, tries(&o).unwrap_or(0))
                }
            };
            if attempt > allowed {
                break last;
            }
            attempt += 1;
        };
        x.max_attempts = x.max_attempts.max(attempt);
        x.attempts.insert(phone.clone(), attempt);
        *x.outcomes.entry(outcome as i32).or_default() += 1;
    }
    x
}

/// Asserts the projected statistics equal the independently computed ones.
pub fn assert_stats_match(stats: &pb::TaskStats, x: &Expected) {
    assert_eq!(stats.contacts_total, x.contacts, "contacts_total");
    assert_eq!(stats.contacts_dialed, x.contacts, "contacts_dialed");
    assert_eq!(stats.contacts_finished, x.contacts, "contacts_finished");
    assert_eq!(stats.calls_placed, x.calls_placed, "calls_placed");
    assert_eq!(stats.calls_released, x.calls_placed, "calls_released");
    assert_eq!(stats.calls_answered, x.calls_answered, "calls_answered");
    assert_eq!(
        stats.total_talk_seconds,
        x.talk_ms / 1000,
        "total_talk_seconds"
    );
    let causes: BTreeMap<u32, u64> = stats
        .hangup_causes
        .iter()
        .map(|c| (c.q850, c.count))
        .collect();
    assert_eq!(causes, x.causes, "hangup causes");
    let outcomes: BTreeMap<i32, u64> = stats
        .outcomes
        .iter()
        .map(|o| (o.outcome, o.count))
        .collect();
    assert_eq!(outcomes, x.outcomes, "contact outcomes");
}

/// Daily calling hours covering `minutes` either side of `at` on `zone`'s clock (two ranges when
/// they cross midnight), for windows open now whatever the hour a test runs at.
pub fn hours_around(
    at: chrono::DateTime<chrono::Utc>,
    zone: waihu_telephony::zone::Tz,
    minutes: i64,
) -> Vec<String> {
    use chrono::Timelike;
    let local = at.with_timezone(&zone);
    let m = (local.hour() * 60 + local.minute()) as i64;
    let (from, to) = (m - minutes, m + minutes);
    let hm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
    if from < 0 {
        vec![
            format!("00:00-{}", hm(to)),
            format!("{}-24:00", hm(from + 1440)),
        ]
    } else if to > 1440 {
        vec![
            format!("00:00-{}", hm(to - 1440)),
            format!("{}-24:00", hm(from)),
        ]
    } else {
        vec![format!("{}-{}", hm(from), hm(to))]
    }
}

/// Hours open three hours either side of now in Shanghai.
pub fn open_now() -> Vec<String> {
    let sh = waihu_telephony::zone::parse("Asia/Shanghai").expect("zone");
    hours_around(chrono::Utc::now(), sh, 180)
}

/// E.164 form of the generated mainland mobiles.
pub fn e164(phones: &[String]) -> Vec<String> {
    phones.iter().map(|p| format!("+86{p}")).collect()
}

/// A fast simulator: real ring/talk distributions, time compressed so calls take milliseconds.
/// One simulator line, `sim-1`, carrying `max_concurrent` calls.
pub fn one_line(max_concurrent: u32) -> Vec<Line> {
    vec![Line {
        id: "sim-1".into(),
        max_concurrent,
    }]
}

pub fn fast_sim(seed: u64) -> Simulator {
    Simulator {
        seed,
        time_scale: 20_000.0,
        ..Simulator::default()
    }
}

/// A real HTTP client for the gateway: every answer must be in the seeds' envelope
/// `{code, message, data}` with `code` the HTTP status.
pub struct HttpApi {
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    base: String,
}

impl HttpApi {
    pub fn new(base: String) -> HttpApi {
        HttpApi {
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http(),
            base,
        }
    }

    /// `method` `path` (below the base) with a JSON `body` and a bearer `token`: the status and
    /// the JSON answer, which must be in seed 002's envelope `{code, message, data}`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let (status, v) = self.call_raw(method, path, body, token).await;
        assert_eq!(
            fields(&v),
            ["code", "data", "message"],
            "{method} {path}: {v}"
        );
        assert_eq!(v["code"], serde_json::json!(status), "{method} {path}: {v}");
        (status, v)
    }

    /// Like [`HttpApi::call`], for seed 000's routes: the answer must be in its envelope
    /// `{err_no, err_msg, err_inner, results}`, `err_no` 0 on success and the status otherwise.
    pub async fn call_caller(
        &self,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let (status, v) = self.call_raw("POST", path, body, token).await;
        assert_eq!(
            fields(&v),
            ["err_inner", "err_msg", "err_no", "results"],
            "POST {path}: {v}"
        );
        let want = if (200..300).contains(&status) {
            0
        } else {
            status
        };
        assert_eq!(v["err_no"], serde_json::json!(want), "POST {path}: {v}");
        (status, v)
    }

    /// The status and the JSON answer, whatever its shape.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        use http_body_util::BodyExt;
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = b
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or("").to_string(),
            )))
            .expect("request");
        let resp = self.http.request(req).await.expect("gateway reachable");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {bytes:?}"));
        (status, v)
    }
}

/// The field names of a JSON object, sorted.
fn fields(v: &serde_json::Value) -> Vec<String> {
    let mut f: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    f.sort();
    f
}

/// A token for `tenant`/`user` with `permissions`, signed with the key the test services
/// verify with ([`waihu_runtime::CommonConfig::TEST_KEY`]), valid for an hour.
pub fn token(tenant: &str, user: &str, permissions: &[&str]) -> String {
    let keys = waihu_auth::Keys::load(&waihu_auth::AuthConfig::with_hs256(
        waihu_runtime::CommonConfig::TEST_KEY,
    ))
    .expect("test keys");
    keys.mint(&waihu_auth::Claims::new(tenant, user, permissions, 3600))
        .expect("mint")
}

/// The gateway in front of `cluster`'s services, on a free port, taking tokens only (no
/// development mode); stop it with `stop`.
pub async fn start_gateway(
    cluster: &Cluster,
    stop: CancellationToken,
) -> waihu_gateway::GatewayHandle {
    let mut auth = cluster.env.config().auth;
    auth.dev_mode = false;
    waihu_gateway::start(
        waihu_gateway::GatewayConfig {
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            metrics_addr: Some("127.0.0.1:0".parse().expect("addr")),
            task_addr: cluster.task_addr().to_string(),
            record_addr: cluster.record_addr().to_string(),
            dialer_addr: cluster.dialer_addr.clone(),
            provider_addr: cluster.provider_addr.clone(),
            provider_public_url: format!("http://{}", cluster.provider_http),
            auth,
        },
        stop,
    )
    .await
    .expect("gateway")
}

/// A recalled campaign broken into mid-way by a resilience test: its task, what the simulator
/// says it must come to, and the statistics when it was a third through.
pub struct MidCampaign {
    pub task: String,
    pub contacts: usize,
    pub expected: Expected,
    pub seen: pb::TaskStats,
}

/// Starts a campaign of `contacts` numbers (one recall) on `cluster` and waits until a third of
/// its calls are placed; `what` names what is about to break, for the messages.
pub async fn campaign_a_third_through(
    cluster: &Cluster,
    sim: &Simulator,
    name: &str,
    contacts: usize,
    salt: u32,
    what: &str,
) -> MidCampaign {
    let mut tasks = cluster.tasks().await;
    let list = phones(contacts, salt);
    let expected = expected(sim, &e164(&list), 1);
    let task = create_with_contacts(&mut tasks, spec(name, 1, 0), &list).await;
    start(&mut tasks, &task).await;
    let seen = wait_stats(
        cluster,
        &task,
        "a third of the calls placed",
        Duration::from_secs(120),
        |s| s.calls_placed >= expected.calls_placed / 3,
    )
    .await;
    assert!(
        seen.contacts_finished < contacts as u64,
        "still mid-campaign when {what}: {seen:?}"
    );
    MidCampaign {
        task,
        contacts,
        expected,
        seen,
    }
}

impl MidCampaign {
    /// The finished campaign is exactly what the simulator's outcomes say: its statistics, the
    /// calls per number, and a replay of the store.
    pub async fn assert_exact(&self, cluster: &Cluster) {
        let stats = wait_stats_settled(
            cluster,
            &self.task,
            self.contacts as u64,
            Duration::from_secs(120),
        )
        .await;
        assert_stats_match(&stats, &self.expected);
        assert_eq!(
            calls_per_number(cluster, &self.task).await,
            self.expected.attempts,
            "calls per number"
        );
        assert_replay_identical(cluster).await;
    }
}

/// A workspace binary cargo built beside the running test (`target/<profile>/<name>`), for
/// tests that run a service as its own process.
pub fn service_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: `cargo build --workspace` builds it (make test does)",
        bin.display()
    );
    bin
}
