//! Admission by memory: a budget of request-body bytes in flight, taken
//! before a body is read, so overload is answered with 503 instead of growing
//! the heap.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Permits are KiB of body.
const PERMIT_BYTES: usize = 1024;

/// The gateway-wide budget of body bytes in flight.
#[derive(Clone)]
pub struct InFlightBudget(Arc<Semaphore>);

impl InFlightBudget {
    pub fn new(max_bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(
            (max_bytes / PERMIT_BYTES).clamp(1, Semaphore::MAX_PERMITS),
        )))
    }
}

/// The budget and one route's body limit.
#[derive(Clone)]
pub struct Admission {
    pub budget: InFlightBudget,
    pub route_limit: usize,
}

/// Takes the request's share of the budget for as long as it is handled.
pub async fn within_budget(
    State(admission): State<Admission>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let gzip = headers.contains_key(header::CONTENT_ENCODING);
    // Larger than the limit is refused by the route itself; count at most the limit.
    let body = announced.map_or(admission.route_limit, |n| n.min(admission.route_limit));
    let bytes = if gzip {
        body + admission.route_limit
    } else {
        body
    };
    let permits = u32::try_from(bytes.div_ceil(PERMIT_BYTES).max(1)).unwrap_or(u32::MAX);
    let Ok(_permit) = admission.budget.0.clone().try_acquire_many_owned(permits) else {
        return ApiError::Unavailable {
            code: "overloaded",
            acknowledged: Vec::new(),
        }
        .into_response();
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_kibibytes() {
        let budget = InFlightBudget::new(64 * 1024);
        assert_eq!(budget.0.available_permits(), 64);
        let first = budget.0.clone().try_acquire_many_owned(60).unwrap();
        assert!(budget.0.clone().try_acquire_many_owned(5).is_err());
        drop(first);
        assert!(budget.0.try_acquire_many_owned(64).is_ok());
    }
}
