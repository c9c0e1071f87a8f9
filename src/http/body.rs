//! Reading a request body under the size limit (413 before more than the limit is buffered)
//! and the time limit (408).

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{Request, Response, StatusCode};

use super::app::App;
use super::routes::{Body, closing, text};

/// Why a body was not read: the response to answer with (and the connection is closed, since
/// the rest of the body is not read).
pub enum Refused {
    /// Larger than the limit.
    TooLarge(usize),
    /// The answer to give for a body that could not be read or arrived too slowly.
    Other(Response<Body>),
}

/// The whole body of `req`, or why not.
pub async fn read(app: &App, req: Request<Incoming>) -> Result<Bytes, Refused> {
    let limit = app.settings.http.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Refused::TooLarge(limit));
    }
    // A small body has nearly always arrived with the headers: one look without a timer
    // takes it; only a body still on its way is waited for under the time limit.
    let mut body = std::pin::pin!(Limited::new(req.into_body(), limit).collect());
    let collected = match (&mut body).now_or_never() {
        Some(collected) => Ok(collected),
        None => tokio::time::timeout(app.settings.http.body_timeout, body).await,
    };
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Refused::TooLarge(limit))
        }
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "request body could not be read");
            Err(Refused::Other(closing(text(
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            ))))
        }
        Err(_) => Err(Refused::Other(closing(text(
            StatusCode::REQUEST_TIMEOUT,
            "the request body was not received in time\n",
        )))),
    }
}
