//! `AnalysisService`: where a call's analysis stands, and analysing it again.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};
use waihu_events::timestamp;
use waihu_proto::v1::{self as pb, analysis_service_server::AnalysisService};
use waihu_runtime::{parse_uuid, tenant, ApiError};

use crate::{
    config::{AnalysisConfig, Choice},
    work::{state, Row},
};

#[derive(Clone)]
pub struct AnalysisApi {
    pub pool: PgPool,
    pub config: Arc<AnalysisConfig>,
    pub wake: Arc<Notify>,
}

fn status_of(state: i16) -> pb::AnalysisStatus {
    match state {
        state::PENDING => pb::AnalysisStatus::Pending,
        state::COMPLETED => pb::AnalysisStatus::Completed,
        state::FAILED => pb::AnalysisStatus::Failed,
        _ => pb::AnalysisStatus::None,
    }
}

/// The API's view of a row.
pub fn analysis_of(row: &Row) -> pb::Analysis {
    let result = row.completed().map(|a| pb::CallAnalysis {
        intent: a.intent,
        grade: a.grade,
        sentiment: a.sentiment,
        keywords: a.keywords,
        summary: a.summary,
        language: a.language,
        transcript: a.transcript,
        analyzer: a.analyzer,
        failure: String::new(),
    });
    pb::Analysis {
        call_id: row.call_id.to_string(),
        task_id: row.task_id.map(|t| t.to_string()).unwrap_or_default(),
        contact_no: row.contact_no.max(0) as u32,
        status: status_of(row.state) as i32,
        result,
        failure: row.failure.clone(),
        attempts: row.attempts.max(0) as u32,
        next_attempt_at: (row.state == state::PENDING)
            .then_some(row.next_at)
            .flatten()
            .map(timestamp),
        transcript_source: row.transcript_source.clone(),
        has_recording: row.recording_key.is_some(),
        analyzer: row.analyzer.clone(),
        updated_at: Some(timestamp(row.updated_at)),
    }
}

impl AnalysisApi {
    async fn row(&self, tenant: &str, call_id: &str) -> Result<Row, ApiError> {
        let call = parse_uuid("call_id", call_id)?;
        sqlx::query_as::<_, Row>(
            "SELECT * FROM analysis_calls WHERE call_id = $1 AND tenant_id = $2",
        )
        .bind(call)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| ApiError::Store(e.into()))?
        .ok_or_else(|| ApiError::NotFound(format!("an analysis of call {call_id}")))
    }
}

#[tonic::async_trait]
impl AnalysisService for AnalysisApi {
    async fn get_analysis(
        &self,
        req: Request<pb::GetAnalysisRequest>,
    ) -> Result<Response<pb::Analysis>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let row = self.row(&tenant, &r.call_id).await?;
        Ok(Response::new(analysis_of(&row)))
    }

    async fn reanalyze(
        &self,
        req: Request<pb::ReanalyzeRequest>,
    ) -> Result<Response<pb::Analysis>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let choice = match r.analyzer.trim() {
            "" => None,
            s => Some(
                Choice::parse(s)
                    .ok_or_else(|| ApiError::invalid("analyzer", "local, llm or empty"))?,
            ),
        };
        let row = self.row(&tenant, &r.call_id).await?;
        if choice.unwrap_or_else(|| self.config.choice_of(&tenant)) == Choice::Llm
            && self.config.llm.is_none()
        {
            return Err(ApiError::FailedPrecondition(
                "no chat endpoint is configured (analysis.llm.base_url)".into(),
            )
            .into());
        }
        let transcribe = r.retranscribe || row.transcript.is_none();
        if transcribe {
            if row.recording_key.is_none() {
                return Err(ApiError::FailedPrecondition(format!(
                    "call {} has {} and no stored recording",
                    r.call_id,
                    if row.transcript.is_none() {
                        "no transcript"
                    } else {
                        "a transcript"
                    }
                ))
                .into());
            }
            if self.config.asr.is_none() {
                return Err(ApiError::FailedPrecondition(
                    "no ASR backend is configured (analysis.asr.base_url)".into(),
                )
                .into());
            }
        }
        let row = sqlx::query_as::<_, Row>(&format!(
            "UPDATE analysis_calls SET state = {}, next_at = now(), generation = generation + 1,
                 attempts = 0, analyzer_override = $3, retranscribe = $4, updated_at = now()
             WHERE call_id = $1 AND tenant_id = $2
             RETURNING *",
            state::PENDING
        ))
        .bind(row.call_id)
        .bind(&tenant)
        .bind(choice.map(Choice::name))
        .bind(r.retranscribe)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| ApiError::Store(e.into()))?;
        self.wake.notify_one();
        Ok(Response::new(analysis_of(&row)))
    }
}
