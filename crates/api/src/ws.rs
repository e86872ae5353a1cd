//! `GET /ws`: live security events and feed-state changes as JSON text frames.
//!
//! Protocol (server → client):
//! - `{"type":"hello","last_event_id":N,"feeds":[…]}` once, first;
//! - `{"type":"event","event":{…EventResponse…}}` for each stored event, in `seq` order —
//!   after a reconnect with `?last_event_id=N`, every event after `N` is replayed from the
//!   database first, then the live stream follows with no gap and no duplicate;
//! - `{"type":"feed","feed":{…FeedResponse…}}` when a feed changes state.
//!
//! A client that falls more than the hub's capacity behind, or does not accept a frame for
//! [`SEND_TIMEOUT`], is closed with code 1008 (policy) and the reason
//! `slow consumer; reconnect with last_event_id=<seq>`; the engine never waits for it.
#![allow(
    unreachable_pub,
    reason = "actix route macros wrap each handler in a public unit struct; the inner fn is what lints"
)]

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use kamiyo_core_models::{EventQuery, Order};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::ApiState;
use crate::dto::{EventResponse, FeedResponse};
use crate::error::ApiError;
use crate::hub::LiveMessage;

/// Longest a frame may wait for a slow client.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of server pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How often a keyed session's key is checked again against the store (not the key cache): a
/// revoked key's sessions close within this time.
pub const KEY_RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Query of `/ws`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WsParams {
    /// Resume after this event (`seq`); omit for live only.
    pub last_event_id: Option<String>,
    /// API key (browsers cannot set headers on WebSockets).
    pub api_key: Option<String>,
    /// Only this protocol's events (e.g. hyperliquid); feed statuses are always sent.
    pub protocol: Option<String>,
}

/// A frame sent to clients.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsFrame {
    /// First frame.
    Hello {
        /// The highest event id when the stream started.
        last_event_id: i64,
        /// Current feeds.
        feeds: Vec<FeedResponse>,
    },
    /// A security event.
    Event {
        /// The event.
        event: Box<EventResponse>,
    },
    /// A feed state change.
    Feed {
        /// The feed.
        feed: FeedResponse,
    },
}

/// Upgrade to the live stream.
#[utoipa::path(get, path = "/ws", tag = "live", params(WsParams),
    responses(
        (status = 101, description = "Switching protocols: JSON text frames (hello, event, feed)"),
        (status = 426, body = crate::error::Problem, content_type = "application/problem+json", description = "Not a WebSocket upgrade request"),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
#[actix_web::get("/ws")]
pub async fn ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ApiState>,
    q: web::Query<WsParams>,
) -> Result<HttpResponse, actix_web::Error> {
    let resume = match q.last_event_id.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::invalid("last_event_id", "a non-negative integer (an event's seq)")
        })?),
    };
    let scoped = state.scoped(&req)?;
    // One protocol when asked; without one, every protocol the caller may read (a tenant's
    // live view spans its subscriptions).
    let protocols: Option<std::sync::Arc<[kamiyo_core_models::ProtocolId]>> = match q.protocol {
        Some(_) => scoped
            .protocol(q.protocol.as_deref())?
            .map(|p| std::sync::Arc::from(vec![p])),
        None => scoped.scope.protocols.clone(),
    };
    let floor = scoped.history_floor();
    let incidents = scoped.incidents.clone();
    drop(scoped);
    let (res, session, msgs) = match actix_ws::handle(&req, body) {
        Ok(x) => x,
        Err(e) => {
            // A plain request to a WebSocket endpoint: 426, naming the protocol to upgrade to.
            let p = ApiError::UpgradeRequired(format!("a WebSocket upgrade is expected here: {e}"));
            let mut r = actix_web::ResponseError::error_response(&p);
            r.headers_mut().insert(
                actix_web::http::header::UPGRADE,
                actix_web::http::header::HeaderValue::from_static("websocket"),
            );
            return Ok(r);
        }
    };
    let key = crate::auth::credential(&state, &req);
    // The backlog is read from the caller's stores, never before its history.
    let state = state.into_inner();
    let filter = Filter {
        resume,
        key,
        protocols,
        floor,
    };
    actix_web::rt::spawn(run(state, incidents, session, msgs, filter));
    Ok(res)
}

/// What one session asked for.
struct Filter {
    /// Resume after this seq.
    resume: Option<i64>,
    /// The key it presented (re-checked while the session lives).
    key: Option<String>,
    /// Only these protocols' events (`None`: every protocol).
    protocols: Option<std::sync::Arc<[kamiyo_core_models::ProtocolId]>>,
    /// No backlog before this time (the caller's history).
    floor: Option<kamiyo_core_models::Timestamp>,
}

fn frame(f: &WsFrame) -> String {
    serde_json::to_string(f).unwrap_or_default()
}

async fn send(session: &mut actix_ws::Session, text: String) -> Result<(), &'static str> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("closed"),
        Err(_) => Err("slow"),
    }
}

async fn close_slow(session: actix_ws::Session, last: i64) {
    crate::metrics::record_ws_dropped();
    tracing::info!(last_event_id = last, "dropping a slow WebSocket client");
    let reason = CloseReason {
        code: CloseCode::Policy,
        description: Some(format!(
            "slow consumer; reconnect with last_event_id={last}"
        )),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), session.close(Some(reason))).await;
}

async fn run(
    state: std::sync::Arc<ApiState>,
    incidents: std::sync::Arc<dyn kamiyo_core_models::IncidentStore>,
    mut session: actix_ws::Session,
    mut msgs: actix_ws::MessageStream,
    filter: Filter,
) {
    let Filter {
        resume,
        key,
        protocols,
        floor,
    } = filter;
    let wanted = |e: &kamiyo_core_models::StoredEvent| {
        protocols
            .as_ref()
            .is_none_or(|ps| ps.contains(&e.event.protocol))
    };
    // The backlog is read for the one protocol, or for all and filtered.
    let protocol = protocols
        .as_ref()
        .filter(|ps| ps.len() == 1)
        .map(|ps| ps[0].clone());
    // Subscribe before reading the backlog, so nothing published in between is missed.
    let mut rx = state.hub.subscribe();
    let hello = WsFrame::Hello {
        last_event_id: state.hub.last_seq(),
        feeds: state.hub.feeds().iter().map(Into::into).collect(),
    };
    if send(&mut session, frame(&hello)).await.is_err() {
        return;
    }
    // A cursor from the future (the database was reset or replaced): nothing would ever come
    // after it, so say so instead of leaving the client deaf.
    if let Some(r) = resume
        && r > state.hub.last_seq()
    {
        let newest = state.hub.last_seq();
        let reason = CloseReason {
            code: CloseCode::Policy,
            description: Some(format!(
                "last_event_id={r} is beyond the newest event ({newest}); reconnect with last_event_id={newest} or without it"
            )),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), session.close(Some(reason))).await;
        return;
    }
    let mut sent = resume.unwrap_or_else(|| state.hub.last_seq());
    if resume.is_some() {
        loop {
            let page = match incidents
                .events(&EventQuery {
                    protocol: protocol.clone(),
                    since: floor,
                    after_seq: Some(sent),
                    order: Order::Asc,
                    limit: 500,
                    ..EventQuery::default()
                })
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "WebSocket backlog read failed");
                    let _ = session
                        .close(Some(CloseReason {
                            code: CloseCode::Again,
                            description: Some(format!(
                                "database unavailable; reconnect with last_event_id={sent}"
                            )),
                        }))
                        .await;
                    return;
                }
            };
            if page.is_empty() {
                break;
            }
            for e in &page {
                if !wanted(e) {
                    sent = e.seq;
                    continue;
                }
                let f = WsFrame::Event {
                    event: Box::new(e.into()),
                };
                match send(&mut session, frame(&f)).await {
                    Ok(()) => sent = e.seq,
                    Err("slow") => return close_slow(session, sent).await,
                    Err(_) => return,
                }
            }
        }
    }
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    let mut recheck = tokio::time::interval(KEY_RECHECK_INTERVAL);
    recheck.tick().await;
    loop {
        tokio::select! {
            _ = recheck.tick(), if key.is_some() => {
                let presented = key.as_deref().unwrap_or_default();
                // A store error keeps the session (the database may be restarting); only a
                // key the store no longer accepts closes it.
                let revoked = match &state.authenticator {
                    Some(host) => matches!(host.still_valid(presented).await, Ok(false)),
                    None => matches!(crate::auth::verify(state.keys.as_ref(), presented).await, Ok(None)),
                };
                if revoked {
                    tracing::info!("closing a WebSocket session whose API key was revoked");
                    let reason = CloseReason {
                        code: CloseCode::Policy,
                        description: Some("the API key of this session was revoked".into()),
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(2), session.close(Some(reason))).await;
                    return;
                }
            }
            m = rx.recv() => {
                let text = match m {
                    Ok(m) => match m.as_ref() {
                        LiveMessage::Event(e) if e.seq > sent => {
                            sent = e.seq;
                            if !wanted(e) {
                                continue;
                            }
                            frame(&WsFrame::Event { event: Box::new(e.into()) })
                        }
                        LiveMessage::Event(_) => continue,
                        LiveMessage::Feed(f) => frame(&WsFrame::Feed { feed: f.into() }),
                    },
                    Err(RecvError::Lagged(_)) => return close_slow(session, sent).await,
                    Err(RecvError::Closed) => {
                        let _ = session.close(Some(CloseCode::Away.into())).await;
                        return;
                    }
                };
                match send(&mut session, text).await {
                    Ok(()) => {}
                    Err("slow") => return close_slow(session, sent).await,
                    Err(_) => return,
                }
            }
            m = msgs.next() => match m {
                Some(Ok(Message::Ping(p))) => {
                    if session.pong(&p).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = session.close(None).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if session.ping(b"kamiyo").await.is_err() {
                    return;
                }
            }
        }
    }
}
