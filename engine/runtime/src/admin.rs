//! The admin HTTP API: health, channel status, pause/resume, Prometheus metrics, reload, and the
//! message browser (list, show, reprocess) while the engine runs. Off unless
//! `junction run --admin` is given; every request carries a bearer token, and the audit log records
//! the name of the token used.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::browse::{self, Accessor, AuditLog, BrowseError, ListParams, ReprocessRequest, Via};
use crate::metrics::{self, ChannelStatus};
use crate::reload::ReloadError;
use crate::Runtime;

/// One admin API token and the name the audit log records for requests that carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// Who holds the token, e.g. `ops` or `alice`; never the token itself.
    pub name: String,
    /// The bearer secret.
    pub secret: String,
}

/// The name of a token given as a bare line (no name) in a token file.
pub const DEFAULT_TOKEN_NAME: &str = "admin";

/// The name of the token taken from the `JUNCTION_ADMIN_TOKEN` environment variable.
pub const ENV_TOKEN_NAME: &str = "env";

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenFileError {
    /// A line has more than `NAME TOKEN`.
    #[error("line {line}: expected `TOKEN` or `NAME TOKEN`, found {words} words")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// How many whitespace-separated words it has.
        words: usize,
    },
    /// Two lines give the same name, so the audit log could not tell them apart.
    #[error("line {line}: token name `{name}` is already used on line {first}")]
    DuplicateName {
        /// 1-based line number of the repeat.
        line: usize,
        /// The name.
        name: String,
        /// 1-based line number of the first use.
        first: usize,
    },
    /// Two lines give the same secret, so the audit log could not tell who used it.
    #[error("line {line}: the same token is already given on line {first}")]
    DuplicateSecret {
        /// 1-based line number of the repeat.
        line: usize,
        /// 1-based line number of the first use.
        first: usize,
    },
}

/// Parse a token file: one token per line, `NAME TOKEN` or a bare `TOKEN` (named
/// [`DEFAULT_TOKEN_NAME`]); blank lines and lines starting with `#` are skipped.
pub fn parse_token_file(text: &str) -> Result<Vec<AdminToken>, TokenFileError> {
    let mut tokens: Vec<(usize, AdminToken)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let (name, secret) = match words.as_slice() {
            [secret] => (DEFAULT_TOKEN_NAME, *secret),
            [name, secret] => (*name, *secret),
            _ => {
                return Err(TokenFileError::Malformed {
                    line,
                    words: words.len(),
                })
            }
        };
        if let Some((first, _)) = tokens.iter().find(|(_, t)| t.name == name) {
            return Err(TokenFileError::DuplicateName {
                line,
                name: name.to_owned(),
                first: *first,
            });
        }
        if let Some((first, _)) = tokens.iter().find(|(_, t)| t.secret == secret) {
            return Err(TokenFileError::DuplicateSecret {
                line,
                first: *first,
            });
        }
        tokens.push((
            line,
            AdminToken {
                name: name.to_owned(),
                secret: secret.to_owned(),
            },
        ));
    }
    Ok(tokens.into_iter().map(|(_, t)| t).collect())
}

/// How the admin API is set up.
pub struct AdminConfig {
    /// The tokens a request may carry (at least one), each named for the audit log.
    pub tokens: Vec<AdminToken>,
    /// The folder `POST /reload` re-reads.
    pub channels_dir: PathBuf,
    /// The data folder, whose `audit.jsonl` records every message access through the API.
    pub data_dir: PathBuf,
}

/// What the admin API serves.
#[derive(Clone)]
struct Admin {
    runtime: Arc<Runtime>,
    tokens: Arc<[AdminToken]>,
    channels_dir: Arc<std::path::Path>,
    audit: Arc<AuditLog>,
}

/// Equal tokens, in time that depends only on the expected token's length, so response timing
/// does not reveal how much of a guess was right.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(e ^ given.get(i).copied().unwrap_or(0));
    }
    std::hint::black_box(diff) == 0
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The name of the token that matches `given`. Every token is compared, so the time taken does not
/// say which one (if any) matched.
fn token_name<'a>(tokens: &'a [AdminToken], given: &str) -> Option<&'a str> {
    tokens.iter().fold(None, |found, t| {
        let matches = same_token(given.as_bytes(), t.secret.as_bytes());
        found.or(matches.then_some(t.name.as_str()))
    })
}

/// The name of the token a request was let in with, for the audit log.
#[derive(Clone)]
struct TokenName(Arc<str>);

async fn require_token(State(admin): State<Admin>, mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let name = given.and_then(|token| token_name(&admin.tokens, token.trim()));
    match (given, name) {
        (_, Some(name)) => {
            let name = TokenName(Arc::from(name));
            request.extensions_mut().insert(name);
            next.run(request).await
        }
        (given, None) => {
            if given.is_some() {
                warn!(path = %request.uri().path(), "admin request refused: wrong token");
            }
            let mut response = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "a valid 'Authorization: Bearer <token>' header is required" }),
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

async fn health(State(admin): State<Admin>) -> Response {
    let rt = &admin.runtime;
    let body = json!({
        "status": if rt.is_ready() { "ready" } else { "not ready" },
        "state": rt.state().as_str(),
        "down": rt.down(),
    });
    let status = if rt.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

fn channel_json(s: &ChannelStatus) -> Value {
    json!({
        "name": s.name,
        "state": if s.paused { "paused" } else { "running" },
        "received": s.received,
        "filtered": s.filtered,
        "queued": s.queued,
        "sent": s.sent,
        "errored": s.errored,
        "inbox": { "depth": s.inbox_depth, "oldest_age_seconds": s.inbox_oldest_age_seconds },
        "destinations": s.destinations.iter().map(|d| json!({
            "name": d.name,
            "queue_depth": d.queue_depth,
            "oldest_age_seconds": d.oldest_age_seconds,
            "circuit_open": d.circuit_open,
            "sent": d.sent,
            "errored": d.errored,
            "retried": d.retried,
        })).collect::<Vec<_>>(),
    })
}

async fn channels(State(admin): State<Admin>) -> Response {
    let rt = &admin.runtime;
    let list: Vec<Value> = rt
        .channels()
        .iter()
        .map(|c| channel_json(&ChannelStatus::read(c, rt.store().as_ref())))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({ "state": rt.state().as_str(), "down": rt.down(), "channels": list }),
    )
}

async fn set_paused(admin: &Admin, name: &str, paused: bool) -> Response {
    let Some(channel) = admin.runtime.channel(name) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": format!("no running channel named {name}") }),
        );
    };
    let store = Arc::clone(admin.runtime.store());
    let channel_name = name.to_owned();
    let remembered =
        tokio::task::spawn_blocking(move || store.set_paused(&channel_name, paused)).await;
    if let Err(e) = remembered
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        error!(channel = %name, error = %e, "cannot record the channel's paused state");
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": format!("cannot record the channel's state: {e}") }),
        );
    }
    channel.shared.paused.store(paused, Ordering::Relaxed);
    let state = if paused { "paused" } else { "running" };
    info!(channel = %name, state, "channel state changed through the admin API");
    json_response(StatusCode::OK, &json!({ "name": name, "state": state }))
}

async fn pause(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    set_paused(&admin, &name, true).await
}

async fn resume(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    set_paused(&admin, &name, false).await
}

async fn prometheus(State(admin): State<Admin>) -> Response {
    let rt = &admin.runtime;
    let text = metrics::prometheus(&rt.channels(), rt.store().as_ref(), rt.is_ready());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn reload(State(admin): State<Admin>) -> Response {
    info!("reload requested through the admin API");
    match admin.runtime.reload(&admin.channels_dir).await {
        Ok(report) => {
            let status = if report.failed.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            json_response(
                status,
                &json!({
                    "added": report.added,
                    "removed": report.removed,
                    "restarted": report.restarted,
                    "unchanged": report.unchanged,
                    "failed": report.failed,
                }),
            )
        }
        Err(ReloadError::Invalid(errors)) => {
            warn!(
                errors = errors.len(),
                "reload refused: configuration invalid; old channels keep running"
            );
            json_response(StatusCode::BAD_REQUEST, &json!({ "errors": errors }))
        }
        Err(e @ ReloadError::Stopping) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "error": e.to_string() }),
        ),
    }
}

/// Run a browser call off the async threads (it blocks on the store and the audit log) and answer
/// with its result as JSON.
async fn browse_call<T: serde::Serialize + Send + 'static>(
    admin: &Admin,
    token: TokenName,
    call: impl FnOnce(&dyn junction_store::Store, &AuditLog, &Accessor) -> Result<T, BrowseError>
        + Send
        + 'static,
) -> Response {
    let store = Arc::clone(admin.runtime.store());
    let audit = Arc::clone(&admin.audit);
    let by = Accessor {
        who: token.0.to_string(),
        via: Via::Api,
    };
    let result = tokio::task::spawn_blocking(move || call(store.as_ref(), &audit, &by)).await;
    match result {
        Ok(Ok(value)) => match serde_json::to_value(value) {
            Ok(body) => json_response(StatusCode::OK, &body),
            Err(e) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": e.to_string() }),
            ),
        },
        Ok(Err(e)) => json_response(
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &json!({ "error": e.to_string() }),
        ),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": format!("browser task failed: {e}") }),
        ),
    }
}

async fn list_messages(
    State(admin): State<Admin>,
    Extension(token): Extension<TokenName>,
    Path(channel): Path<String>,
    Query(params): Query<ListParams>,
) -> Response {
    // One answer is built in the engine's memory, beside the traffic: page through more.
    if let Some(limit) = params.limit.filter(|&l| l > MAX_LIST) {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": format!("limit {limit} is over {MAX_LIST}; use --since or a smaller limit") }),
        );
    }
    browse_call(&admin, token, move |store, audit, by| {
        browse::list_messages(store, audit, by, &channel, &params)
    })
    .await
}

/// Most messages one `GET /channels/{name}/messages` answers with.
const MAX_LIST: usize = 10_000;

/// `?view=raw|transformed|all&destination=NAME` of `GET /channels/{name}/messages/{seq}`.
#[derive(serde::Deserialize)]
struct ViewQuery {
    view: Option<String>,
    destination: Option<String>,
}

async fn show_message(
    State(admin): State<Admin>,
    Extension(token): Extension<TokenName>,
    Path((channel, seq)): Path<(String, u64)>,
    Query(q): Query<ViewQuery>,
) -> Response {
    browse_call(&admin, token, move |store, audit, by| {
        let view = browse::View::from_query(q.view.as_deref(), q.destination.as_deref())?;
        browse::show_message(store, audit, by, &channel, seq, &view)
    })
    .await
}

async fn reprocess(
    State(admin): State<Admin>,
    Extension(token): Extension<TokenName>,
    Path(channel): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let request: ReprocessRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({ "error": format!("body must be a JSON reprocess request: {e}") }),
            )
        }
    };
    let wake = admin.runtime.channel(&channel);
    let destinations: Option<Vec<String>> = wake.as_ref().map(|running| {
        running
            .config
            .destinations
            .iter()
            .map(|d| d.name.clone())
            .collect()
    });
    let response = browse_call(&admin, token, move |store, audit, by| {
        browse::reprocess(
            store,
            audit,
            by,
            &channel,
            &request,
            destinations.as_deref(),
        )
    })
    .await;
    // The copies are in the inbox now; do not wait for the worker's idle poll.
    if let Some(running) = wake {
        running.shared.inbox.notify_one();
    }
    response
}

fn router(admin: Admin) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/channels", get(channels))
        .route("/channels/{name}/pause", post(pause))
        .route("/channels/{name}/resume", post(resume))
        .route("/metrics", get(prometheus))
        .route("/reload", post(reload))
        .route("/channels/{name}/messages", get(list_messages))
        .route("/channels/{name}/messages/{seq}", get(show_message))
        .route("/channels/{name}/reprocess", post(reprocess))
        .layer(middleware::from_fn_with_state(admin.clone(), require_token))
        .with_state(admin)
}

/// Bind the admin address now, so a port in use is reported at start-up.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve the admin API on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    config: AdminConfig,
    runtime: Arc<Runtime>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let admin = Admin {
        runtime,
        tokens: Arc::from(config.tokens),
        channels_dir: Arc::from(config.channels_dir),
        audit: Arc::new(AuditLog::in_data_dir(&config.data_dir)),
    };
    let addr = listener.local_addr().ok();
    info!(addr = ?addr, "admin API listening");
    crate::http_serve::serve(
        listener,
        router(admin),
        "admin API",
        stop,
        std::time::Duration::from_secs(5),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"s3cret-token", b"s3cret-token"));
        assert!(!same_token(b"s3cret-toke", b"s3cret-token"));
        assert!(!same_token(b"s3cret-token!", b"s3cret-token"));
        assert!(!same_token(b"S3cret-token", b"s3cret-token"));
        assert!(!same_token(b"", b"s3cret-token"));
    }

    fn token(name: &str, secret: &str) -> AdminToken {
        AdminToken {
            name: name.into(),
            secret: secret.into(),
        }
    }

    #[test]
    fn token_files_name_each_token() {
        let tokens = parse_token_file("# ops team\nops  t0ken-a\n\nalice t0ken-b\n").unwrap();
        assert_eq!(tokens, [token("ops", "t0ken-a"), token("alice", "t0ken-b")]);
        assert_eq!(token_name(&tokens, "t0ken-b"), Some("alice"));
        assert_eq!(token_name(&tokens, "t0ken-a"), Some("ops"));
        assert_eq!(token_name(&tokens, "t0ken"), None);
        // A file holding just the token keeps working, under the default name.
        assert_eq!(
            parse_token_file("bare-secret\n").unwrap(),
            [token(DEFAULT_TOKEN_NAME, "bare-secret")]
        );
    }

    #[test]
    fn ambiguous_token_files_are_refused() {
        assert_eq!(
            parse_token_file("a x\nb c d\n"),
            Err(TokenFileError::Malformed { line: 2, words: 3 })
        );
        assert_eq!(
            parse_token_file("a x\na y\n"),
            Err(TokenFileError::DuplicateName {
                line: 2,
                name: "a".into(),
                first: 1
            })
        );
        assert_eq!(
            parse_token_file("a x\n\nb x\n"),
            Err(TokenFileError::DuplicateSecret { line: 3, first: 1 })
        );
    }
}
