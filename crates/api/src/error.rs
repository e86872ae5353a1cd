//! `ApiError`: every failure as `application/problem+json` (RFC 9457) with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use kamiyo_core_models::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`https://kamiyo.ai/problems/<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong with this request, safe to show (internal causes are never included).
    pub detail: String,
    /// Stable machine-readable code: a contract, never renamed.
    pub code: String,
}

/// Errors returned by handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// A query or path parameter is malformed or out of range.
    InvalidParameter {
        /// Parameter name.
        name: String,
        /// What is expected.
        expected: String,
    },
    /// The request as a whole is malformed.
    BadRequest(String),
    /// No API key, or not a valid one.
    Unauthorized(String),
    /// Nothing at this path or id.
    NotFound(String),
    /// A plain request to the WebSocket endpoint.
    UpgradeRequired(String),
    /// A documented path asked with a method it does not answer.
    MethodNotAllowed(String),
    /// A cross-origin request from an origin that is not allowed.
    Forbidden(String),
    /// The `Host` header names a host this server does not serve (DNS rebinding).
    MisdirectedHost(String),
    /// The request body is larger than allowed.
    PayloadTooLarge(usize),
    /// The client exceeded its request budget.
    RateLimited {
        /// Seconds until a request will be accepted.
        retry_after_secs: u64,
    },
    /// The data needed is not there (yet): e.g. too little history to forecast.
    InsufficientData(String),
    /// The request contradicts the resource's state (resolving a resolved incident).
    Conflict(String),
    /// A dependency (the database) is unavailable; retrying later may help.
    Unavailable(String),
    /// A bug; details are logged, never returned.
    Internal,
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::UpgradeRequired(_) => "upgrade_required",
            Self::MisdirectedHost(_) => "misdirected_host",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::InsufficientData(_) => "insufficient_data",
            Self::Conflict(_) => "conflict",
            Self::Unavailable(_) => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// Shorthand for [`ApiError::InvalidParameter`].
    pub fn invalid(name: &str, expected: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name: name.to_owned(),
            expected: expected.into(),
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::InvalidParameter { .. } => "Invalid parameter",
            Self::BadRequest(_) => "Bad request",
            Self::Unauthorized(_) => "Unauthorized",
            Self::NotFound(_) => "Not found",
            Self::Forbidden(_) => "Forbidden",
            Self::MethodNotAllowed(_) => "Method not allowed",
            Self::UpgradeRequired(_) => "Upgrade required",
            Self::MisdirectedHost(_) => "Misdirected request",
            Self::PayloadTooLarge(_) => "Payload too large",
            Self::RateLimited { .. } => "Too many requests",
            Self::InsufficientData(_) => "Insufficient data",
            Self::Conflict(_) => "Conflict",
            Self::Unavailable(_) => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::InvalidParameter { name, expected } => format!("{name}: expected {expected}"),
            Self::BadRequest(d)
            | Self::Unauthorized(d)
            | Self::NotFound(d)
            | Self::Forbidden(d)
            | Self::MethodNotAllowed(d)
            | Self::UpgradeRequired(d)
            | Self::MisdirectedHost(d)
            | Self::InsufficientData(d)
            | Self::Conflict(d) => d.clone(),
            Self::PayloadTooLarge(n) => format!("the request body exceeds {n} bytes"),
            Self::RateLimited { retry_after_secs } => {
                format!("request budget exhausted; retry after {retry_after_secs} s")
            }
            Self::Unavailable(what) => format!("{what} is unavailable; retry later"),
            Self::Internal => "an internal error occurred; it has been logged".to_owned(),
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let code = self.code();
        Problem {
            kind: format!("https://kamiyo.ai/problems/{code}"),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail: self.detail(),
            code: code.to_owned(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.detail())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidParameter { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Self::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::InsufficientData(_) | Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        r.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            Self::RateLimited { retry_after_secs } => {
                r.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::Unauthorized(_) => {
                r.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"kamiyo\""),
                ));
            }
            _ => {}
        }
        r.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // The cause may name tables, hosts or credentials: log it, never return it.
        tracing::error!(error = %e, "store error while serving a request");
        Self::Unavailable("the database".to_owned())
    }
}

/// Maps actix's own extractor errors (bad query strings, bad paths, oversized bodies) to
/// problems, so no request ever sees actix's plain-text errors.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("query string: {err}")).into()
}

/// See [`query_error`].
pub fn path_error(
    err: actix_web::error::PathError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("path: {err}")).into()
}

/// See [`query_error`].
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    match err {
        actix_web::error::JsonPayloadError::Overflow { limit }
        | actix_web::error::JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(limit).into()
        }
        other => ApiError::BadRequest(format!("body: {other}")).into(),
    }
}
