//! Every RPC of every service refuses a missing token, a forged one, an expired one and one
//! without the permission the RPC needs; the permission table lists exactly the methods that
//! exist (enumerated from the compiled descriptors), so a new RPC cannot ship without a rule.

use std::collections::BTreeSet;

use tokio_util::sync::CancellationToken;
use tonic::{transport::Channel, Code};
use waihu_auth::{
    perms::TABLE, requirement, AuthConfig, Claims, Keys, Requirement, ALL_PERMISSIONS,
};
use waihu_runtime::CommonConfig;
use waihu_testkit::TestEnv;

/// Every method of every waihu service, as `/package.Service/Method`.
fn methods() -> Vec<String> {
    let mut out = Vec::new();
    for s in waihu_proto::descriptor_pool().services() {
        for m in s.methods() {
            out.push(format!("/{}/{}", s.full_name(), m.name()));
        }
    }
    out
}

#[test]
fn the_permission_table_lists_exactly_the_methods_that_exist() {
    let existing: BTreeSet<String> = methods().into_iter().collect();
    let listed: BTreeSet<String> = TABLE.iter().map(|(p, _)| p.to_string()).collect();
    let missing: Vec<_> = existing.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&existing).collect();
    assert!(
        missing.is_empty(),
        "RPCs without a permission rule: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rules for RPCs that do not exist: {stale:?}"
    );
}

/// Calls `path` with an empty message and `token`, returning the status code (Ok for success).
/// A token signed with another key, and one of ours that expired an hour ago, both holding
/// every permission.
fn forged_and_expired(keys: &Keys) -> (String, String) {
    let forger = Keys::load(&AuthConfig::with_hs256(
        "someone-else-0123456789abcdef0123456789",
    ))
    .expect("keys");
    let forged = forger
        .mint(&Claims::new("acme", "ann", ALL_PERMISSIONS, 600))
        .expect("mint");
    let mut expired = Claims::new("acme", "ann", ALL_PERMISSIONS, 0);
    expired.exp -= 3600;
    (forged, keys.mint(&expired).expect("mint"))
}

async fn call(channel: &Channel, path: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    if grpc.ready().await.is_err() {
        return Code::Unavailable;
    }
    let mut req = tonic::Request::new(());
    req.metadata_mut()
        .insert("x-tenant-id", "acme".parse().expect("ascii"));
    if let Some(t) = token {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("ascii"),
        );
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = path.parse().expect("path");
    match grpc.unary(req, path, codec).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn every_rpc_refuses_bad_tokens_and_missing_permissions() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.auth.dev_mode = false;
    let stop = CancellationToken::new();
    let task = waihu_task::start(
        waihu_task::TaskConfig {
            common: config.clone(),
        },
        stop.clone(),
    )
    .await
    .expect("task service");
    let record = waihu_record::start(
        waihu_record::RecordConfig::new(config.clone()),
        stop.clone(),
    )
    .await
    .expect("record service");
    let dialer = waihu_dialer::start(
        waihu_dialer::DialerConfig::new(config.clone()),
        stop.clone(),
    )
    .await
    .expect("dialer");
    let analysis = waihu_analysis::start(
        waihu_analysis::AnalysisConfig::new(config.clone()),
        stop.clone(),
    )
    .await
    .expect("analysis service");
    let mut pc = waihu_provider::ProviderConfig::new(config.clone(), Default::default());
    pc.dialer_url = format!("http://{}", dialer.addr);
    let provider = waihu_provider::start(pc, stop.clone())
        .await
        .expect("provider adapter");
    let connect = |addr: std::net::SocketAddr| async move {
        Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    };
    let (task_ch, record_ch) = (connect(task.addr).await, connect(record.addr).await);
    let (dialer_ch, provider_ch) = (connect(dialer.addr).await, connect(provider.addr).await);
    let analysis_ch = connect(analysis.addr).await;

    let keys = Keys::load(&AuthConfig::with_hs256(CommonConfig::TEST_KEY)).expect("keys");
    let (forged, expired) = forged_and_expired(&keys);

    let mut checked = 0;
    for path in methods() {
        // The task service serves TaskService and TenantService, the dialer DialerService, the
        // provider adapter ProviderService and ScreeningService, the analysis service AnalysisService; the record
        // service the rest.
        let channel = if path.contains("TaskService") || path.contains("TenantService") {
            &task_ch
        } else if path.contains("AnalysisService") {
            &analysis_ch
        } else if path.contains("DialerService") {
            &dialer_ch
        } else if path.contains("ProviderService") || path.contains("ScreeningService") {
            &provider_ch
        } else {
            &record_ch
        };
        let rule = requirement(&path).unwrap_or_else(|| panic!("{path} has no rule"));
        let needed = rule.permissions().expect("not public");
        // Deployment-wide methods take only the operator tenant's tokens.
        let tenant = match rule {
            Requirement::Operator(_) => waihu_auth::keys::DEFAULT_OPERATOR_TENANT,
            _ => "acme",
        };
        let without: Vec<&str> = ALL_PERMISSIONS
            .iter()
            .copied()
            .filter(|p| !needed.contains(p))
            .collect();
        let lacking = keys
            .mint(&Claims::new(tenant, "ann", &without, 600))
            .expect("mint");
        let allowed = keys
            .mint(&Claims::new(tenant, "ann", &needed[..1], 600))
            .expect("mint");
        assert_eq!(
            call(channel, &path, None).await,
            Code::Unauthenticated,
            "{path}: no token"
        );
        assert_eq!(
            call(channel, &path, Some(&forged)).await,
            Code::Unauthenticated,
            "{path}: forged"
        );
        assert_eq!(
            call(channel, &path, Some(&expired)).await,
            Code::Unauthenticated,
            "{path}: expired"
        );
        assert_eq!(
            call(channel, &path, Some("not-a-jwt")).await,
            Code::Unauthenticated,
            "{path}: garbage"
        );
        assert_eq!(
            call(channel, &path, Some(&lacking)).await,
            Code::PermissionDenied,
            "{path}: every permission but {needed:?}"
        );
        let got = call(channel, &path, Some(&allowed)).await;
        assert!(
            !matches!(
                got,
                Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented
            ),
            "{path}: with {needed:?} the request reaches the service, got {got:?}"
        );
        checked += 1;
    }
    assert!(checked >= TABLE.len(), "checked {checked} methods");
    // Health and reflection stay open for probes and tools.
    assert!(waihu_runtime::is_serving(&format!("http://{}", task.addr)).await);
    stop.cancel();
    task.wait().await;
    record.wait().await;
    dialer.wait().await;
    provider.wait().await;
    analysis.wait().await;
    env.cleanup().await;
}

/// Every HTTP route of the gateway (all three seeds') refuses a missing token, a forged one, an
/// expired one and garbage with 401, and a token without the route's permission with 403,
/// before it reads the request or reaches a service (none runs here).
#[tokio::test]
async fn every_route_refuses_bad_tokens_and_missing_permissions() {
    let stop = CancellationToken::new();
    let mut auth = AuthConfig::with_hs256(CommonConfig::TEST_KEY);
    auth.dev_mode = false;
    let gateway = waihu_gateway::start(
        waihu_gateway::GatewayConfig {
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            metrics_addr: Some("127.0.0.1:0".parse().expect("addr")),
            task_addr: "http://127.0.0.1:1".into(),
            record_addr: "http://127.0.0.1:1".into(),
            dialer_addr: "http://127.0.0.1:1".into(),
            provider_addr: "http://127.0.0.1:1".into(),
            provider_public_url: "http://127.0.0.1:1".into(),
            auth,
        },
        stop.clone(),
    )
    .await
    .expect("gateway");
    let api = waihu_e2e::HttpApi::new(format!("http://{}", gateway.addr));
    let keys = Keys::load(&AuthConfig::with_hs256(CommonConfig::TEST_KEY)).expect("keys");
    let (forged, expired) = forged_and_expired(&keys);
    let routes = waihu_gateway::route_permissions();
    assert!(routes.len() >= 25, "{} routes", routes.len());
    for (method, path, needed) in routes {
        // The phone app's bind carries no user token (it is sent on to the adapter, whose
        // one-time token is the proof): tests/tests/e2e/work_phones.rs.
        if needed.is_empty() {
            continue;
        }
        // Path parameters filled in with a number.
        let path = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let without: Vec<&str> = ALL_PERMISSIONS
            .iter()
            .copied()
            .filter(|p| !needed.contains(p))
            .collect();
        let lacking = keys
            .mint(&Claims::new("acme", "ann", &without, 600))
            .expect("mint");
        for (token, want, what) in [
            (None, 401, "no token"),
            (Some(forged.as_str()), 401, "forged"),
            (Some(expired.as_str()), 401, "expired"),
            (Some("not-a-jwt"), 401, "garbage"),
            (
                Some(lacking.as_str()),
                403,
                "every permission but the route's",
            ),
        ] {
            let (code, v) = api.call_raw(method, &path, Some("{}"), token).await;
            assert_eq!(code, want, "{method} {path}: {what}: {v}");
        }
    }
    stop.cancel();
    gateway.wait().await.expect("gateway stops");
}
