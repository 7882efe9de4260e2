use axum::Json;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;
use crate::problem::Problem;

/// The OpenAPI 3.1 document of the service, generated from the handlers and their types.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Tessera", description = "Sessions for web applications: the HTTP API."),
    paths(
        api::resolve, api::update, api::login, api::logout, api::csrf_check,
        api::list_sessions, api::revoke_all, api::revoke_one,
        api::healthz, api::readyz, api::metrics, crate::revocations::feed,
        crate::tokens::jwks, crate::tokens::mint, crate::tokens::verify
    ),
    components(schemas(Problem)),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = doc.components.as_mut() {
            c.add_security_scheme(
                "api_key",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

pub(crate) async fn serve() -> impl IntoResponse {
    let mut doc = ApiDoc::openapi();
    doc.paths.paths.insert(
        "/openapi.json".to_owned(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .response("200", utoipa::openapi::Response::new("OpenAPI 3.1 JSON")),
        ),
    );
    let kask_op = |summary: &str, status: &str, what: &str| {
        utoipa::openapi::path::OperationBuilder::new()
            .summary(Some(summary))
            .tag("kask")
            .parameter(
                utoipa::openapi::path::ParameterBuilder::new()
                    .name("key")
                    .parameter_in(utoipa::openapi::path::ParameterIn::Path)
                    .required(utoipa::openapi::Required::True)
                    .description(Some("the key, percent-encoded; no `/`")),
            )
            .response(status, utoipa::openapi::Response::new(what))
            .response(
                "400",
                utoipa::openapi::Response::new("bad request (Kask problem JSON)"),
            )
            .response(
                "401",
                utoipa::openapi::Response::new("missing or wrong API key"),
            )
            .response(
                "404",
                utoipa::openapi::Response::new("no such key, or an empty key"),
            )
            .response(
                "503",
                utoipa::openapi::Response::new("the store is unavailable"),
            )
            .build()
    };
    let mut kask = utoipa::openapi::path::PathItem::default();
    kask.get = Some(kask_op(
        "Read a value (Kask-compatible)",
        "200",
        "the value, application/octet-stream",
    ));
    kask.post = Some(kask_op(
        "Store a value with the server's TTL (Kask-compatible)",
        "201",
        "stored",
    ));
    kask.delete = Some(kask_op(
        "Delete a value, idempotent (Kask-compatible)",
        "204",
        "deleted",
    ));
    doc.paths
        .paths
        .insert("/sessions/v1/{key}".to_owned(), kask);
    Json(doc)
}
