//! CCC auto-callout tasks as provider campaigns (seed 001): `CreateAutoCalloutTask` with every
//! callee of the campaign (each tagged with our call's reference in `CalleeAttributes.UUI`,
//! which CCC echoes in the call's CDR), `DescribeAutoCalloutTasks` to find one by name after a
//! crash, `DescribeAutoCalloutTask` plus `DescribeTelCdr` (by session, 100 at a time) to read
//! the results, and `PauseAutoCalloutTask` / `ResumeAutoCalloutTask` / `StopAutoCalloutTask`.

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Value};
use uuid::Uuid;
use waihu_provider_core::{
    cloud::{ApiError, BoxFuture, LineConfig, OUR_CALL_PREFIX},
    CallResult, CampaignAction, CampaignApi, CampaignCall, CampaignStatus, CampaignView, Signal,
};
use waihu_telephony::hangup;

use super::{
    call_flow, ccc_number, done_or_already, number_setting, sdk_app_id, with_call_flow, Tencent,
    CALLEE_ANSWERED, CALLEE_NOT_ANSWERED, CDR_WINDOW_SECONDS, TASK_COMPLETED, TASK_TERMINATED,
};
use crate::cdr;

/// How long a campaign's task may run before CCC drops what is left (`NotAfter`), by default.
pub const DEFAULT_CAMPAIGN_TTL_SECONDS: i64 = 86_400;
/// Task state of a paused task.
const TASK_PAUSED: i64 = 5;
/// Sessions asked for in one `DescribeTelCdr`.
const CDR_PAGE: usize = 100;
/// Pages of `DescribeAutoCalloutTasks` looked through for a name at most.
const FIND_PAGES: i64 = 200;

/// The `CreateAutoCalloutTask` body of campaign `name` with `calls`, starting at `now`.
pub fn campaign_body(
    line: &LineConfig,
    name: &str,
    calls: &[CampaignCall],
    now: i64,
    until: Option<i64>,
) -> Result<Value, ApiError> {
    let app = sdk_app_id(line)?;
    let (ivr, agent) = call_flow(line)?;
    let caller = calls
        .iter()
        .map(|c| c.caller_number.trim())
        .find(|c| !c.is_empty())
        .unwrap_or(line.caller_number.trim());
    if caller.is_empty() {
        return Err(ApiError::Config(format!(
            "line {} has no caller number",
            line.line_id
        )));
    }
    if calls.is_empty() {
        return Err(ApiError::Config(
            "a campaign needs at least one call".into(),
        ));
    }
    let ttl = number_setting(line, "campaign_ttl_seconds")?
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_CAMPAIGN_TTL_SECONDS);
    let callees: Vec<String> = calls.iter().map(|c| ccc_number(&c.phone)).collect();
    let attributes: Vec<Value> = calls
        .iter()
        .zip(&callees)
        .map(|(c, callee)| json!({"Callee": callee, "UUI": format!("{OUR_CALL_PREFIX}{}", c.call_id)}))
        .collect();
    let mut body = json!({
        "SdkAppId": app,
        "NotBefore": now,
        // Nothing is called after the calling window the campaign was handed over in.
        "NotAfter": until.map_or(now.saturating_add(ttl), |u| u.min(now.saturating_add(ttl))),
        "Callees": callees,
        "Callers": [ccc_number(caller)],
        "Name": name,
        "Description": format!("waihu campaign {name}: {} calls", calls.len()),
        "Tries": 1,
        "CalleeAttributes": attributes,
    });
    with_call_flow(line, &mut body, ivr, agent)?;
    Ok(body)
}

fn task_number(reference: &str) -> Result<u64, ApiError> {
    reference
        .trim()
        .parse()
        .map_err(|_| ApiError::Config(format!("{reference:?} is not a CCC task id")))
}

/// One callee of a described task.
struct Callee {
    number: String,
    state: Option<i64>,
    last_session: Option<String>,
}

fn callees(task: &Value) -> Vec<Callee> {
    task.get("Callees")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| Callee {
                    number: cdr::str_field(c, "Callee").unwrap_or_default().to_string(),
                    state: cdr::int_field(c, "State"),
                    last_session: c
                        .get("Sessions")
                        .and_then(Value::as_array)
                        .and_then(|s| s.iter().rev().find_map(Value::as_str))
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl CampaignApi for Tencent {
    fn kind(&self) -> &'static str {
        "tencent"
    }

    fn create<'a>(
        &'a self,
        line: &'a LineConfig,
        name: &'a str,
        calls: &'a [CampaignCall],
        until: Option<i64>,
    ) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            let body = campaign_body(line, name, calls, chrono::Utc::now().timestamp(), until)?;
            let (resp, _) = self.call(line, "CreateAutoCalloutTask", body).await?;
            cdr::int_field(&resp, "TaskId")
                .map(|t| t.to_string())
                .ok_or_else(|| {
                    ApiError::Unknown("tencent CreateAutoCalloutTask reply has no TaskId".into())
                })
        })
    }

    fn find<'a>(
        &'a self,
        line: &'a LineConfig,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ApiError>> {
        Box::pin(async move {
            let app = sdk_app_id(line)?;
            for page in 0..FIND_PAGES {
                let (resp, _) = self
                    .call(
                        line,
                        "DescribeAutoCalloutTasks",
                        json!({"SdkAppId": app, "PageSize": 100, "PageNumber": page}),
                    )
                    .await?;
                let tasks = resp
                    .get("Tasks")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if let Some(t) = tasks
                    .iter()
                    .find(|t| cdr::str_field(t, "Name") == Some(name))
                {
                    return Ok(cdr::int_field(t, "TaskId").map(|id| id.to_string()));
                }
                let total = cdr::int_field(&resp, "TotalCount").unwrap_or(0);
                if tasks.is_empty() || (page + 1) * 100 >= total {
                    break;
                }
            }
            Ok(None)
        })
    }

    fn describe<'a>(
        &'a self,
        line: &'a LineConfig,
        reference: &'a str,
        calls: &'a [CampaignCall],
    ) -> BoxFuture<'a, Result<CampaignView, ApiError>> {
        Box::pin(async move {
            let app = sdk_app_id(line)?;
            let task = task_number(reference)?;
            let (resp, _) = self
                .call(
                    line,
                    "DescribeAutoCalloutTask",
                    json!({"SdkAppId": app, "TaskId": task}),
                )
                .await?;
            let task_state = cdr::int_field(&resp, "State");
            let over = matches!(task_state, Some(TASK_COMPLETED | TASK_TERMINATED));
            // Callees come back by number: each number's calls in the order handed over.
            let mut by_number: HashMap<String, VecDeque<&CampaignCall>> = HashMap::new();
            for c in calls {
                by_number
                    .entry(ccc_number(&c.phone))
                    .or_default()
                    .push_back(c);
            }
            let mut sessions: Vec<(String, Uuid)> = Vec::new();
            let mut results = Vec::new();
            let mut lagging = false;
            for callee in callees(&resp) {
                let Some(call) = by_number
                    .get_mut(&callee.number)
                    .and_then(VecDeque::pop_front)
                else {
                    continue;
                };
                if call.synced {
                    continue;
                }
                let finished = matches!(callee.state, Some(CALLEE_ANSWERED | CALLEE_NOT_ANSWERED));
                match (&callee.last_session, finished) {
                    (Some(s), true) => sessions.push((s.clone(), call.call_id)),
                    (None, _) if over => results.push(CallResult {
                        call_id: call.call_id,
                        provider_call_id: String::new(),
                        signals: vec![Signal::unanswered(hangup::cause(
                            41,
                            // A task we stopped (its window ended, or its task was cancelled)
                            // never reached this callee; one CCC completed without calling it
                            // counts as a failed attempt.
                            format!(
                                "{}tencent:task-state:{}/callee-state:{}",
                                if task_state == Some(TASK_TERMINATED) {
                                    format!("{}:", hangup::NOT_PLACED)
                                } else {
                                    String::new()
                                },
                                task_state.unwrap_or(-1),
                                callee.state.map_or("none".into(), |s| s.to_string())
                            ),
                        ))],
                        raw: String::new(),
                    }),
                    // Still to be called, or over with its result to come.
                    _ => {}
                }
            }
            let now = chrono::Utc::now().timestamp();
            let since = cdr::int_field(&resp, "NotBefore")
                .unwrap_or(now)
                .min(now)
                .saturating_sub(CDR_WINDOW_SECONDS);
            let session_call: HashMap<&str, Uuid> =
                sessions.iter().map(|(s, c)| (s.as_str(), *c)).collect();
            for chunk in sessions.chunks(CDR_PAGE) {
                let ids: Vec<&str> = chunk.iter().map(|(s, _)| s.as_str()).collect();
                let (page, _) = self
                    .call(
                        line,
                        "DescribeTelCdr",
                        json!({
                            "SdkAppId": app,
                            "StartTimeStamp": since,
                            "EndTimeStamp": now.saturating_add(CDR_WINDOW_SECONDS),
                            "PageSize": CDR_PAGE,
                            "PageNumber": 0,
                            "SessionIds": ids,
                        }),
                    )
                    .await?;
                let list = page
                    .get("TelCdrList")
                    .and_then(Value::as_array)
                    .or_else(|| page.get("TelCdrs").and_then(Value::as_array))
                    .cloned()
                    .unwrap_or_default();
                let mut found = 0;
                for found_cdr in &list {
                    let Some(session) = cdr::str_field(found_cdr, "SessionId") else {
                        continue;
                    };
                    let Some(by_session) = session_call.get(session).copied() else {
                        continue;
                    };
                    // Our reference, when CCC echoes it, names the call for sure.
                    let call_id = cdr::our_reference(found_cdr)
                        .and_then(|r| Uuid::parse_str(&r[OUR_CALL_PREFIX.len()..]).ok())
                        .unwrap_or(by_session);
                    let raw = line.scrub(&found_cdr.to_string());
                    let Some(reports) = cdr::reports(session, found_cdr, &raw) else {
                        continue;
                    };
                    found += 1;
                    let mut signals = vec![Signal::Dialing {
                        provider_call_id: session.to_string(),
                    }];
                    signals.extend(reports.into_iter().map(|r| r.signal));
                    results.push(CallResult {
                        call_id,
                        provider_call_id: session.to_string(),
                        signals,
                        raw,
                    });
                }
                if found < chunk.len() {
                    // A CDR shows a little after its callee's state turns final.
                    lagging = true;
                }
            }
            let status = if over {
                CampaignStatus::Over
            } else if task_state == Some(TASK_PAUSED) {
                CampaignStatus::Paused
            } else {
                CampaignStatus::Running
            };
            Ok(CampaignView {
                status,
                results,
                lagging,
            })
        })
    }

    fn act<'a>(
        &'a self,
        line: &'a LineConfig,
        reference: &'a str,
        action: CampaignAction,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let app = sdk_app_id(line)?;
            let task = task_number(reference)?;
            let name = match action {
                CampaignAction::Pause => "PauseAutoCalloutTask",
                CampaignAction::Resume => "ResumeAutoCalloutTask",
                CampaignAction::Stop => "StopAutoCalloutTask",
            };
            done_or_already(
                self.call(line, name, json!({"SdkAppId": app, "TaskId": task}))
                    .await,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::line;

    fn calls(n: u32) -> Vec<CampaignCall> {
        (0..n)
            .map(|i| CampaignCall {
                call_id: Uuid::from_u128(i as u128 + 1),
                position: i,
                phone: format!("+86138{i:08}"),
                attempt: 1,
                caller_number: String::new(),
                synced: false,
            })
            .collect()
    }

    #[test]
    fn a_campaign_is_one_task_of_every_callee_each_tagged_with_its_call_tried_once() {
        let body = campaign_body(&line(&[]), "c-1", &calls(3), 1_700_000_000, None).expect("body");
        assert_eq!(body["SdkAppId"], 1_400_000_001u64);
        assert_eq!(body["Name"], "c-1");
        assert_eq!(body["Tries"], 1);
        assert_eq!(body["IvrId"], 7);
        assert_eq!(body["Callers"], json!(["00862066668888"]));
        assert_eq!(
            body["Callees"],
            json!(["008613800000000", "008613800000001", "008613800000002"])
        );
        assert_eq!(
            body["CalleeAttributes"][2],
            json!({"Callee": "008613800000002",
                   "UUI": "waihu-call:00000000-0000-0000-0000-000000000003"})
        );
        assert_eq!(
            body["NotAfter"],
            1_700_000_000 + DEFAULT_CAMPAIGN_TTL_SECONDS
        );
        let short = campaign_body(
            &line(&[("campaign_ttl_seconds", "600")]),
            "c",
            &calls(1),
            10,
            None,
        )
        .expect("body");
        assert_eq!(short["NotAfter"], 610);
        let window = campaign_body(&line(&[]), "c", &calls(1), 10, Some(100)).expect("body");
        assert_eq!(window["NotAfter"], 100, "the window's end first");
    }

    #[test]
    fn a_campaign_without_calls_a_caller_or_a_call_flow_is_refused_as_configuration() {
        assert!(matches!(
            campaign_body(&line(&[]), "c", &[], 0, None),
            Err(ApiError::Config(_))
        ));
        let mut no_caller = line(&[]);
        no_caller.caller_number.clear();
        assert!(matches!(
            campaign_body(&no_caller, "c", &calls(1), 0, None),
            Err(ApiError::Config(_))
        ));
        let mut no_flow = line(&[]);
        no_flow.config.remove("ivr_id");
        assert!(matches!(
            campaign_body(&no_flow, "c", &calls(1), 0, None),
            Err(ApiError::Config(_))
        ));
    }
}
