//! Permissions (seed 002's `lead:call:*` plus deployment-wide `admin:*` ones) and the table of
//! what each RPC needs. An RPC missing from the table is refused (fail closed), and a test
//! enumerates every service method by reflection against this table.

pub const CALL_CREATE: &str = "lead:call:create";
pub const CALL_VIEW: &str = "lead:call:view";
pub const CALL_LIST: &str = "lead:call:list";
pub const CALL_EDIT: &str = "lead:call:edit";
pub const CALL_CONTROL: &str = "lead:call:control";
pub const CALL_CANCEL: &str = "lead:call:cancel";
/// Click-to-dial: place and hang up single calls outside any task.
pub const CALL_DIAL: &str = "lead:call:dial";
/// Click-to-dial outside the calling window (the other rules still hold).
pub const CALL_DIAL_ANYTIME: &str = "lead:call:dial:anytime";
pub const RECORD_LIST: &str = "lead:call:record:list";
pub const RECORD_VIEW: &str = "lead:call:record:view";
pub const RECORD_DOWNLOAD: &str = "lead:call:record:download";
/// Write follow-ups after calls (seed 003's post-call form) and read the to-do list.
pub const FOLLOW_UP: &str = "lead:call:followup";
/// Batch number screening (seed 004): create and roll back jobs, override numbers' validity.
pub const CALL_SCREEN: &str = "lead:call:screen";
/// Export the tenant's event stream and verify replay.
pub const ADMIN_REPLAY: &str = "admin:replay";
/// Read dead letters (deployment-wide: they hold any tenant's payloads).
pub const ADMIN_DLQ_VIEW: &str = "admin:dlq:view";
pub const ADMIN_DLQ_REPLAY: &str = "admin:dlq:replay";
pub const ADMIN_STORE_VIEW: &str = "admin:store:view";
pub const ADMIN_STORE_REBASE: &str = "admin:store:rebase";
pub const ADMIN_LINES: &str = "admin:lines";
pub const ADMIN_DEVICES: &str = "admin:devices";
pub const ADMIN_DNC: &str = "admin:dnc";
pub const ADMIN_TENANTS: &str = "admin:tenants";
/// Manage the tenant's own webhook subscriptions and deliveries.
pub const ADMIN_WEBHOOKS: &str = "admin:webhooks";

/// Every permission there is (what `waihu auth token --all` grants).
pub const ALL_PERMISSIONS: &[&str] = &[
    CALL_CREATE,
    CALL_VIEW,
    CALL_LIST,
    CALL_EDIT,
    CALL_CONTROL,
    CALL_CANCEL,
    CALL_DIAL,
    CALL_DIAL_ANYTIME,
    RECORD_LIST,
    RECORD_VIEW,
    RECORD_DOWNLOAD,
    FOLLOW_UP,
    CALL_SCREEN,
    ADMIN_REPLAY,
    ADMIN_DLQ_VIEW,
    ADMIN_DLQ_REPLAY,
    ADMIN_STORE_VIEW,
    ADMIN_STORE_REBASE,
    ADMIN_LINES,
    ADMIN_DEVICES,
    ADMIN_DNC,
    ADMIN_TENANTS,
    ADMIN_WEBHOOKS,
];

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Health and reflection: no token.
    Public,
    /// A valid token holding at least one of these permissions; the request acts within the
    /// token's tenant.
    AnyOf(&'static [&'static str]),
    /// Deployment-wide (it reads or changes every tenant's data): a valid token of the operator
    /// tenant (`auth.operator_tenant`) holding at least one of these permissions.
    Operator(&'static [&'static str]),
}

impl Requirement {
    /// The permissions a token needs (one of them); None for a public method.
    pub fn permissions(&self) -> Option<&'static [&'static str]> {
        match self {
            Requirement::Public => None,
            Requirement::AnyOf(p) | Requirement::Operator(p) => Some(p),
        }
    }
}

/// The one table: gRPC method path → requirement.
pub const TABLE: &[(&str, Requirement)] = &[
    (
        "/waihu.v1.TaskService/CreateTask",
        Requirement::AnyOf(&[CALL_CREATE]),
    ),
    (
        "/waihu.v1.TaskService/AddContacts",
        Requirement::AnyOf(&[CALL_CREATE, CALL_EDIT]),
    ),
    (
        "/waihu.v1.TaskService/StartTask",
        Requirement::AnyOf(&[CALL_CONTROL]),
    ),
    (
        "/waihu.v1.TaskService/PauseTask",
        Requirement::AnyOf(&[CALL_CONTROL]),
    ),
    (
        "/waihu.v1.TaskService/ResumeTask",
        Requirement::AnyOf(&[CALL_CONTROL]),
    ),
    (
        "/waihu.v1.TaskService/CancelTask",
        Requirement::AnyOf(&[CALL_CANCEL]),
    ),
    (
        "/waihu.v1.TaskService/GetTask",
        Requirement::AnyOf(&[CALL_VIEW]),
    ),
    (
        "/waihu.v1.TaskService/ListTasks",
        Requirement::AnyOf(&[CALL_VIEW, CALL_LIST]),
    ),
    (
        "/waihu.v1.TaskService/ListContacts",
        Requirement::AnyOf(&[CALL_VIEW]),
    ),
    (
        "/waihu.v1.StatsService/GetTaskStats",
        Requirement::AnyOf(&[CALL_VIEW]),
    ),
    (
        "/waihu.v1.StatsService/WatchTaskStats",
        Requirement::AnyOf(&[CALL_VIEW]),
    ),
    (
        "/waihu.v1.StatsService/GetTaskReport",
        Requirement::AnyOf(&[CALL_VIEW]),
    ),
    (
        "/waihu.v1.StatsService/GetDashboard",
        Requirement::AnyOf(&[CALL_VIEW]),
    ),
    (
        "/waihu.v1.RecordService/AddFollowUp",
        Requirement::AnyOf(&[FOLLOW_UP]),
    ),
    (
        "/waihu.v1.RecordService/ListDueFollowUps",
        Requirement::AnyOf(&[FOLLOW_UP, RECORD_VIEW]),
    ),
    (
        "/waihu.v1.RecordService/ListCallRecords",
        Requirement::AnyOf(&[CALL_VIEW, RECORD_LIST]),
    ),
    (
        "/waihu.v1.RecordService/GetCallRecord",
        Requirement::AnyOf(&[RECORD_VIEW]),
    ),
    (
        "/waihu.v1.RecordService/ListContactCalls",
        Requirement::AnyOf(&[CALL_VIEW]),
    ),
    (
        "/waihu.v1.RecordService/GetRecordingUrl",
        Requirement::AnyOf(&[RECORD_DOWNLOAD]),
    ),
    (
        "/waihu.v1.RecordService/ExportCallRecords",
        Requirement::AnyOf(&[RECORD_LIST]),
    ),
    (
        "/waihu.v1.RecordService/ExportEvents",
        Requirement::AnyOf(&[ADMIN_REPLAY]),
    ),
    (
        "/waihu.v1.RecordService/VerifyReplay",
        Requirement::Operator(&[ADMIN_REPLAY]),
    ),
    (
        "/waihu.v1.TenantService/GetEntitlements",
        Requirement::Operator(&[ADMIN_TENANTS]),
    ),
    (
        "/waihu.v1.TenantService/SetEntitlements",
        Requirement::Operator(&[ADMIN_TENANTS]),
    ),
    (
        "/waihu.v1.AdminService/ListDeadLetters",
        Requirement::Operator(&[ADMIN_DLQ_VIEW]),
    ),
    (
        "/waihu.v1.AdminService/GetDeadLetter",
        Requirement::Operator(&[ADMIN_DLQ_VIEW]),
    ),
    (
        "/waihu.v1.AdminService/ReplayDeadLetter",
        Requirement::Operator(&[ADMIN_DLQ_REPLAY]),
    ),
    (
        "/waihu.v1.AdminService/GetStoreStatus",
        Requirement::Operator(&[ADMIN_STORE_VIEW]),
    ),
    (
        "/waihu.v1.AdminService/RebaseStore",
        Requirement::Operator(&[ADMIN_STORE_REBASE]),
    ),
    (
        "/waihu.v1.WebhookService/CreateWebhook",
        Requirement::AnyOf(&[ADMIN_WEBHOOKS]),
    ),
    (
        "/waihu.v1.WebhookService/ListWebhooks",
        Requirement::AnyOf(&[ADMIN_WEBHOOKS]),
    ),
    (
        "/waihu.v1.WebhookService/DeleteWebhook",
        Requirement::AnyOf(&[ADMIN_WEBHOOKS]),
    ),
    (
        "/waihu.v1.WebhookService/TestWebhook",
        Requirement::AnyOf(&[ADMIN_WEBHOOKS]),
    ),
    (
        "/waihu.v1.WebhookService/ListWebhookDeliveries",
        Requirement::AnyOf(&[ADMIN_WEBHOOKS]),
    ),
    (
        "/waihu.v1.WebhookService/RedeliverWebhooks",
        Requirement::AnyOf(&[ADMIN_WEBHOOKS]),
    ),
    (
        "/waihu.v1.ProviderService/CreateLine",
        Requirement::AnyOf(&[ADMIN_LINES]),
    ),
    (
        "/waihu.v1.ProviderService/UpdateLine",
        Requirement::AnyOf(&[ADMIN_LINES]),
    ),
    (
        "/waihu.v1.ProviderService/DisableLine",
        Requirement::AnyOf(&[ADMIN_LINES]),
    ),
    (
        "/waihu.v1.ProviderService/EnableLine",
        Requirement::AnyOf(&[ADMIN_LINES]),
    ),
    (
        "/waihu.v1.ProviderService/ListLines",
        Requirement::AnyOf(&[ADMIN_LINES, CALL_VIEW]),
    ),
    (
        "/waihu.v1.ProviderService/GetLine",
        Requirement::AnyOf(&[ADMIN_LINES, CALL_VIEW]),
    ),
    (
        "/waihu.v1.ProviderService/GetLineStatus",
        Requirement::AnyOf(&[ADMIN_LINES, CALL_VIEW]),
    ),
    (
        "/waihu.v1.ProviderService/TestLine",
        Requirement::AnyOf(&[ADMIN_LINES]),
    ),
    (
        "/waihu.v1.ProviderService/CreateDeviceBinding",
        Requirement::AnyOf(&[ADMIN_DEVICES]),
    ),
    (
        "/waihu.v1.ProviderService/ListDevices",
        Requirement::AnyOf(&[ADMIN_DEVICES]),
    ),
    (
        "/waihu.v1.ProviderService/GetDevice",
        Requirement::AnyOf(&[ADMIN_DEVICES]),
    ),
    (
        "/waihu.v1.ProviderService/UnbindDevice",
        Requirement::AnyOf(&[ADMIN_DEVICES]),
    ),
    (
        "/waihu.v1.DialerService/GetLineUsage",
        Requirement::AnyOf(&[ADMIN_LINES, CALL_VIEW]),
    ),
    (
        "/waihu.v1.DialerService/AddDoNotCall",
        Requirement::AnyOf(&[ADMIN_DNC]),
    ),
    (
        "/waihu.v1.DialerService/RemoveDoNotCall",
        Requirement::AnyOf(&[ADMIN_DNC]),
    ),
    (
        "/waihu.v1.DialerService/CheckDoNotCall",
        Requirement::AnyOf(&[ADMIN_DNC, CALL_VIEW]),
    ),
    (
        "/waihu.v1.DialerService/ExplainContact",
        Requirement::AnyOf(&[CALL_VIEW]),
    ),
    (
        "/waihu.v1.DialerService/Dial",
        Requirement::AnyOf(&[CALL_DIAL]),
    ),
    (
        "/waihu.v1.DialerService/Hangup",
        Requirement::AnyOf(&[CALL_DIAL, CALL_CONTROL]),
    ),
    (
        "/waihu.v1.DialerService/GetCallStatus",
        Requirement::AnyOf(&[CALL_VIEW, CALL_DIAL, RECORD_VIEW]),
    ),
    (
        "/waihu.v1.AnalysisService/GetAnalysis",
        Requirement::AnyOf(&[RECORD_VIEW, CALL_VIEW]),
    ),
    (
        "/waihu.v1.AnalysisService/Reanalyze",
        Requirement::AnyOf(&[CALL_EDIT]),
    ),
    (
        "/waihu.v1.ScreeningService/CreateScreening",
        Requirement::AnyOf(&[CALL_SCREEN]),
    ),
    (
        "/waihu.v1.ScreeningService/GetScreening",
        Requirement::AnyOf(&[CALL_SCREEN, CALL_VIEW]),
    ),
    (
        "/waihu.v1.ScreeningService/ListScreenings",
        Requirement::AnyOf(&[CALL_SCREEN, CALL_VIEW]),
    ),
    (
        "/waihu.v1.ScreeningService/DownloadScreeningResults",
        Requirement::AnyOf(&[CALL_SCREEN, CALL_VIEW]),
    ),
    (
        "/waihu.v1.ScreeningService/RollbackScreening",
        Requirement::AnyOf(&[CALL_SCREEN]),
    ),
    (
        "/waihu.v1.ScreeningService/GetNumberValidity",
        Requirement::AnyOf(&[CALL_SCREEN, CALL_VIEW]),
    ),
    (
        "/waihu.v1.ScreeningService/SetNumberValidity",
        Requirement::AnyOf(&[CALL_SCREEN]),
    ),
    (
        "/waihu.v1.DialerService/AddGlobalDoNotCall",
        Requirement::Operator(&[ADMIN_DNC]),
    ),
    (
        "/waihu.v1.DialerService/RemoveGlobalDoNotCall",
        Requirement::Operator(&[ADMIN_DNC]),
    ),
];

/// Services that need no token at all, by gRPC service name.
pub const PUBLIC_SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// What the method at `path` (`/package.Service/Method`) needs; None when nothing says (the
/// request is refused).
pub fn requirement(path: &str) -> Option<Requirement> {
    if let Some((service, _)) = path.trim_start_matches('/').split_once('/') {
        if PUBLIC_SERVICES.contains(&service) {
            return Some(Requirement::Public);
        }
    }
    TABLE.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_in_the_table_is_known_and_paths_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (path, r) in TABLE {
            assert!(seen.insert(path), "{path} listed twice");
            if let Some(ps) = r.permissions() {
                assert!(!ps.is_empty(), "{path}");
                for p in ps {
                    assert!(ALL_PERMISSIONS.contains(p), "{path}: unknown {p}");
                }
            }
        }
        assert_eq!(
            requirement("/grpc.health.v1.Health/Check"),
            Some(Requirement::Public)
        );
        assert_eq!(requirement("/waihu.v1.TaskService/Nope"), None);
    }
}
