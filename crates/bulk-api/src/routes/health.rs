//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};

use crate::{ApiError, AppState};

/// The process answers.
pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// Redis answers: kick-off and polling need nothing else.
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.queue.health_check().await?;
    Ok(HttpResponse::Ok().body("ready"))
}
