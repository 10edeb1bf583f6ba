//! Providers' callbacks over HTTP (`WAIHU_HTTP_ADDR`, default `0.0.0.0:8053`), at seed 003's
//! paths: `POST /api/v1/calls/webhook/<provider>[/...]`. A callback is read, matched to our call
//! through the provider's call id, authenticated with its line's credentials as the provider
//! signs (a bad one gets 401 and a log line without secrets), kept in the reports inbox (a
//! duplicate collapses there) and announced to whoever plays the call; the reply is the one the
//! provider expects. Bodies over [`MAX_BODY`] get 413.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use waihu_bus::Bus;
use waihu_provider_core::cloud::{CloudApi, Hook, HookError};

use crate::{
    adapter::{announce_report, Playing},
    cloud::{Calls, Providers},
    lines::LineCache,
};

/// The largest callback body accepted.
pub const MAX_BODY: usize = 64 * 1024;

pub struct Webhooks {
    pub registry: Providers,
    pub calls: Calls,
    pub lines: LineCache,
    pub bus: Bus,
    pub playing: Playing,
    /// The adapter's URL as providers call it (`[provider] public_url`): URL-signing providers
    /// sign that, not what a proxy forwards.
    pub public_url: String,
    /// Wakes the provider campaigns' worker (a push about a campaign's call).
    pub campaign_wake: Arc<tokio::sync::Notify>,
}

pub fn router(hooks: Arc<Webhooks>) -> Router {
    Router::new()
        .route("/api/v1/calls/webhook/{provider}", post(receive))
        .route("/api/v1/calls/webhook/{provider}/{*rest}", post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(close_after_refused_body))
        .with_state(hooks)
}

/// A body refused for its size was not read to its end, so the connection cannot carry another
/// request: say so (`Connection: close`), or a client reusing it fails its next request.
async fn close_after_refused_body(mut r: Response) -> Response {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        r.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    r
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "error": why }).to_string(),
    )
        .into_response()
}

async fn receive(
    State(hooks): State<Arc<Webhooks>>,
    Path(params): Path<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provider = params
        .iter()
        .find(|(k, _)| k == "provider")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let rest = params
        .iter()
        .find(|(k, _)| k == "rest")
        .map(|(_, v)| format!("/{v}"))
        .unwrap_or_default();
    let Some(api) = hooks.registry.get(provider) else {
        return refuse(StatusCode::NOT_FOUND, "no such provider");
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let query = uri.query().unwrap_or_default();
    let url = match uri.query() {
        Some(q) => format!(
            "{}{}?{q}",
            hooks.public_url.trim_end_matches('/'),
            uri.path()
        ),
        None => format!("{}{}", hooks.public_url.trim_end_matches('/'), uri.path()),
    };
    let hook = Hook {
        path: &rest,
        query,
        headers: &headers,
        body: &body,
        url: &url,
    };
    let (reports, ignored) = match api.parse_hook(&hook) {
        Ok(r) => (r, None),
        Err(HookError::Ignored {
            provider_call_id,
            why,
        }) => (vec![], Some((provider_call_id, why))),
        Err(HookError::Malformed(why)) => {
            tracing::warn!(provider, path = %uri.path(), %why, "malformed callback refused");
            return refuse(StatusCode::BAD_REQUEST, "malformed callback");
        }
    };
    // The call (and so the line whose credentials authenticate the callback).
    let first = reports
        .first()
        .map(|r| r.provider_call_id.clone())
        .or(ignored.as_ref().map(|(id, _)| id.clone()))
        .unwrap_or_default();
    let owner = match hooks.calls.owner(api.kind(), &first).await {
        Ok(Some(o)) => o,
        Ok(None) if reports.is_empty() => {
            // Nothing to record: authenticate it by the lines it may come from, then
            // acknowledge it.
            return acknowledge_unmatched(&hooks, api.as_ref(), &hook, provider, &first).await;
        }
        Ok(None) => {
            match crate::campaign::campaign_of(&hooks.calls.pool, &first).await {
                // A call of a provider campaign: its result comes through the campaign's sync,
                // which this push, once it authenticates for the campaign's own line, brings
                // forward.
                Ok(Some((campaign, tenant, line_id))) => {
                    let line = match hooks.lines.get(&tenant, &line_id).await {
                        Ok(Some(l)) => l,
                        Ok(None) => return refuse(StatusCode::NOT_FOUND, "unknown line"),
                        Err(e) => {
                            tracing::warn!(provider, error = %e, "callback not taken: line");
                            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
                        }
                    };
                    if line.provider != api.kind() || !api.verify_hook(&line, &hook) {
                        tracing::warn!(provider, %campaign, "campaign callback refused: authentication failed");
                        return refuse(StatusCode::UNAUTHORIZED, "authentication failed");
                    }
                    if let Err(e) = crate::campaign::sync_soon(
                        &hooks.calls.pool,
                        &hooks.campaign_wake,
                        campaign,
                    )
                    .await
                    {
                        tracing::warn!(provider, error = %e, "campaign sync not brought forward");
                    }
                    return success(api.as_ref());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(provider, error = %e, "callback not taken: database");
                    return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
                }
            }
            tracing::warn!(provider, provider_call_id = %first, "callback for a call we do not know");
            return refuse(StatusCode::NOT_FOUND, "unknown call");
        }
        Err(e) => {
            tracing::warn!(provider, error = %e, "callback not taken: database");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    let line = match hooks.lines.get(&owner.tenant_id, &owner.line_id).await {
        Ok(Some(l)) => l,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "unknown line"),
        Err(e) => {
            tracing::warn!(provider, error = %e, "callback not taken: line");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    if !api.verify_hook(&line, &hook) {
        tracing::warn!(
            provider,
            path = %uri.path(),
            line = %owner.line_id,
            tenant = %owner.tenant_id,
            "callback refused: authentication failed"
        );
        return refuse(StatusCode::UNAUTHORIZED, "authentication failed");
    }
    if let Some((_, why)) = ignored {
        tracing::debug!(provider, %why, "callback acknowledged, nothing to record");
    }
    // Every report must be of a call on this line.
    let mut mine = Vec::with_capacity(reports.len());
    for r in reports {
        let owner_of = if r.provider_call_id == first {
            Some(owner.clone())
        } else {
            hooks
                .calls
                .owner(api.kind(), &r.provider_call_id)
                .await
                .ok()
                .flatten()
        };
        match owner_of {
            Some(o) if o.tenant_id == owner.tenant_id && o.line_id == owner.line_id => {
                mine.push((o.call_id, r))
            }
            _ => {
                tracing::warn!(provider, provider_call_id = %r.provider_call_id, "report for another line's call dropped")
            }
        }
    }
    for (call, report) in &mine {
        if let Err(e) = hooks
            .calls
            .save(*call, &line, std::slice::from_ref(report))
            .await
        {
            tracing::warn!(provider, error = %e, "callback not kept: database");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    }
    for (call, _) in &mine {
        announce_report(&hooks.bus, &hooks.playing, *call).await;
    }
    success(api.as_ref())
}

/// The reply the provider expects.
fn success(api: &dyn CloudApi) -> Response {
    let reply = api.hook_reply();
    (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
        [("content-type", reply.content_type)],
        reply.body,
    )
        .into_response()
}

/// A callback that records nothing and names no call we know: acknowledged when it
/// authenticates for one of the lines its provider says it may come from
/// ([`CloudApi::hook_line_match`]), 401 when it authenticates for none, 404 when no line fits.
async fn acknowledge_unmatched(
    hooks: &Webhooks,
    api: &dyn CloudApi,
    hook: &Hook<'_>,
    provider: &str,
    first: &str,
) -> Response {
    let Some((setting, value)) = api.hook_line_match(hook) else {
        tracing::warn!(provider, provider_call_id = %first, "callback for a call we do not know");
        return refuse(StatusCode::NOT_FOUND, "unknown call");
    };
    let candidates = match hooks.lines.matching(api.kind(), setting, &value).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(provider, error = %e, "callback not taken: database");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    if candidates.is_empty() {
        return refuse(StatusCode::NOT_FOUND, "unknown line");
    }
    for (tenant, line) in &candidates {
        if let Ok(Some(l)) = hooks.lines.get(tenant, line).await {
            if api.verify_hook(&l, hook) {
                return success(api);
            }
        }
    }
    tracing::warn!(
        provider,
        setting,
        "callback refused: authentication failed for every line it may come from"
    );
    refuse(StatusCode::UNAUTHORIZED, "authentication failed")
}
