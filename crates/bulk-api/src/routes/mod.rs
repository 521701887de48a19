//! Route table: one file per resource.

mod admin;
mod files;
mod health;
mod kickoff;
mod metadata;
mod metrics;
mod status;

use actix_web::web;

use crate::ApiError;

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/fhir/r4")
            .route("/metadata", web::get().to(metadata::capability_statement))
            .route("/$export", web::get().to(kickoff::system))
            .route("/$export", web::post().to(kickoff::system))
            .route("/Patient/$export", web::get().to(kickoff::patient))
            .route("/Patient/$export", web::post().to(kickoff::patient))
            .route("/Group/{id}/$export", web::get().to(kickoff::group))
            .route("/Group/{id}/$export", web::post().to(kickoff::group))
            .route("/$export-status/{id}", web::get().to(status::poll))
            .route("/$export-status/{id}", web::delete().to(status::cancel))
            .route("/$export-file/{id}/{cid}", web::get().to(files::download)),
    )
    .service(
        web::scope("/admin")
            .route("/jobs", web::get().to(admin::list))
            .route("/jobs/{id}", web::get().to(admin::show))
            .route("/jobs/{id}", web::delete().to(admin::cancel))
            .route("/jobs/{id}/requeue", web::post().to(admin::requeue))
            .route("/dead-letter", web::get().to(admin::dead_letter)),
    )
    .route("/auth/token", web::post().to(crate::smart::issue_token))
    .route("/ipfs/{cid}", web::get().to(files::gateway))
    .route("/metrics", web::get().to(metrics::render))
    .route("/.well-known/smart-configuration", web::get().to(metadata::smart_configuration))
    .route("/healthz", web::get().to(health::live))
    .route("/readyz", web::get().to(health::ready))
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}
