//! The recordings HTTP endpoint: `GET|HEAD /recordings/<call id>.<ext>?tenant=&expires=&signature=`
//! serves a stored recording to whoever holds a URL from GetRecordingUrl, until it expires,
//! with its content type, `Accept-Ranges: bytes` and single-range requests (206, 416). A URL
//! expired or altered in any part gets 403; a recording not (or no longer) stored, 404.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use object_store::{path::Path as Key, GetOptions, GetRange, ObjectStore};
use sqlx::PgPool;
use uuid::Uuid;

use super::{projection::state, Signer, UrlRefusal};

#[derive(Clone)]
pub struct Endpoint {
    pub pool: PgPool,
    pub store: Arc<dyn ObjectStore>,
    pub signer: Signer,
}

pub fn router(e: Endpoint) -> Router {
    Router::new()
        .route("/recordings/{file}", get(serve).head(serve))
        .with_state(Arc::new(e))
}

/// What the endpoint reads of a recording's row.
#[derive(sqlx::FromRow)]
struct Stored {
    state: i16,
    key: Option<String>,
    content_type: Option<String>,
    sha256: Option<String>,
    bytes: Option<i64>,
}

#[derive(serde::Deserialize)]
struct Signed {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    signature: String,
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A `Range` header's one range, as (first, last) inclusive within `len`; None to serve the
/// whole file (no header, several ranges, or a unit other than bytes); Err when unsatisfiable.
fn range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    // A range that does not parse is ignored (RFC 9110): the whole file.
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (first, last) = if a.is_empty() {
        // The last b bytes.
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let Ok(first) = a.parse::<u64>() else {
            return Ok(None);
        };
        let last = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(b) => b.min(len.saturating_sub(1)),
                Err(_) => return Ok(None),
            }
        };
        (first, last)
    };
    if first >= len || first > last {
        return Err(());
    }
    Ok(Some((first, last)))
}

async fn serve(
    State(e): State<Arc<Endpoint>>,
    method: Method,
    Path(file): Path<String>,
    Query(q): Query<Signed>,
    headers: HeaderMap,
) -> Response {
    let Some((call, ext)) = file.split_once('.') else {
        return plain(StatusCode::NOT_FOUND, "no such recording\n");
    };
    let Ok(call) = Uuid::parse_str(call) else {
        return plain(StatusCode::NOT_FOUND, "no such recording\n");
    };
    let Ok(expires) = q.expires.parse::<i64>() else {
        return plain(StatusCode::FORBIDDEN, "the URL is not signed\n");
    };
    match e.signer.check(
        &q.tenant,
        call,
        ext,
        expires,
        &q.signature,
        chrono::Utc::now(),
    ) {
        Ok(()) => {}
        Err(UrlRefusal::Expired) => return plain(StatusCode::FORBIDDEN, "the URL has expired\n"),
        Err(UrlRefusal::BadSignature) => {
            return plain(
                StatusCode::FORBIDDEN,
                "the URL's signature does not match\n",
            )
        }
    }
    let row: Result<Option<Stored>, _> = sqlx::query_as(
        "SELECT state, key, content_type, sha256, bytes FROM recordings
             WHERE call_id = $1 AND tenant_id = $2",
    )
    .bind(call)
    .bind(&q.tenant)
    .fetch_optional(&e.pool)
    .await;
    let (key, content_type, sha, len) = match row {
        Ok(Some(Stored {
            state: s,
            key: Some(key),
            content_type,
            sha256,
            bytes,
        })) if s == state::STORED && key.ends_with(&format!(".{ext}")) => (
            key,
            content_type.unwrap_or_else(|| "application/octet-stream".into()),
            sha256,
            bytes.unwrap_or(0).max(0) as u64,
        ),
        Ok(Some(r)) if r.state == state::DELETED => {
            return plain(StatusCode::GONE, "the recording was deleted (retention)\n")
        }
        Ok(_) => return plain(StatusCode::NOT_FOUND, "no such recording\n"),
        Err(err) => {
            tracing::warn!(error = %err, "recording lookup failed");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again\n");
        }
    };
    // The size is the one stored with the recording (its event): a GET reads the object once;
    // a HEAD, which reads none, checks it is there.
    let key = Key::from(key);
    if method == Method::HEAD {
        match e.store.head(&key).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                return plain(StatusCode::NOT_FOUND, "no such recording\n")
            }
            Err(err) => {
                tracing::warn!(error = %err, "recording storage failed");
                return plain(StatusCode::SERVICE_UNAVAILABLE, "try again\n");
            }
        }
    }
    let wanted = match range(&headers, len) {
        Ok(r) => r,
        Err(()) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response()
        }
    };
    let mut b = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, max-age=0");
    if let Some(sha) = sha.filter(|s| !s.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\"")) {
            b = b.header(header::ETAG, v);
        }
    }
    let (status, first, last) = match wanted {
        Some((first, last)) => {
            b = b.header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
            (StatusCode::PARTIAL_CONTENT, first, last)
        }
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let count = if len == 0 { 0 } else { last - first + 1 };
    b = b.status(status).header(header::CONTENT_LENGTH, count);
    if method == Method::HEAD || count == 0 {
        return b
            .body(Body::empty())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "\n"));
    }
    let opts = GetOptions {
        range: Some(GetRange::Bounded(first..last + 1)),
        ..Default::default()
    };
    match e.store.get_opts(&key, opts).await {
        Ok(got) => b
            .body(Body::from_stream(got.into_stream()))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "\n")),
        Err(object_store::Error::NotFound { .. }) => {
            plain(StatusCode::NOT_FOUND, "no such recording\n")
        }
        Err(err) => {
            tracing::warn!(error = %err, "recording storage failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, "try again\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::RANGE, HeaderValue::from_str(v).expect("header"));
        m
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(range(&h("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(range(&h("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&h("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&h("bytes=-1000"), 100), Ok(Some((0, 99))));
        assert_eq!(range(&h("bytes=50-5000"), 100), Ok(Some((50, 99))));
        assert_eq!(range(&h("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(range(&h("items=0-1"), 100), Ok(None));
        assert_eq!(range(&h("bytes=100-"), 100), Err(()));
        assert_eq!(range(&h("bytes=9-2"), 100), Err(()));
        assert_eq!(range(&h("bytes=x-2"), 100), Ok(None));
        assert_eq!(range(&h("bytes=-0"), 100), Err(()));
    }
}
