//! The OpenAPI 3.1 document served at `/openapi.json`: generated from the handlers' annotations
//! and types, plus the parts no annotation can say (the schemas of key maps, the Kask routes,
//! which one handler serves for every method).
//!
//! The document is meant to be exact: every constraint the service enforces on a request is
//! stated, and nothing the service does not enforce. Limits the engine counts in UTF-8 bytes
//! are stated as `maxLength` (JSON Schema counts characters), so they are exact for ASCII and
//! the descriptions name the byte limit. schemathesis checks the document against the running
//! service in the test command (`crates/server/tests/it/contract.rs`).

use axum::Json;
use axum::response::IntoResponse;
use tessera::{MAX_EDITS, MAX_JSON_DEPTH, MAX_KEY_LEN, RESERVED_CLAIMS};
use tessera_core::MAX_KV_KEY_LEN;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, RefOr, Required, Response, ResponseBuilder, link::LinkBuilder,
};
use utoipa::{Modify, OpenApi};

use crate::api;
use crate::problem::Problem;

pub(crate) mod problems;

/// The pattern of a string without control characters (Rust's `char::is_control`: the
/// Unicode category Cc, U+0000 to U+001F and U+007F to U+009F).
pub(crate) const NO_CONTROL: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

/// The OpenAPI 3.1 document of the service, generated from the handlers and their types.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Tessera", description = "Sessions for web applications: the HTTP API."),
    paths(
        api::resolve, api::update, api::login, api::logout, api::rotate, api::csrf_check,
        api::list_sessions, api::revoke_all, api::revoke_one,
        crate::kv::get_value, crate::kv::put_value, crate::kv::touch_value,
        crate::kv::delete_value, crate::kv::count, crate::kv::clear,
        api::healthz, api::readyz, api::metrics, crate::revocations::feed,
        crate::tokens::jwks, crate::tokens::mint, crate::tokens::verify
    ),
    components(schemas(Problem)),
    modifiers(&ApiKeyScheme, &Extras)
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

/// What the annotations cannot say: the JWK set and Kask problem schemas, the Kask routes and
/// this document's own route.
struct Extras;

impl Modify for Extras {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = doc.components.as_mut() {
            c.schemas.insert("JwkSet".to_owned(), RefOr::T(jwk_set()));
            c.schemas
                .insert("KaskProblem".to_owned(), RefOr::T(kask_problem()));
        }
        doc.paths.paths.insert(
            "/openapi.json".to_owned(),
            PathItem::new(
                HttpMethod::Get,
                OperationBuilder::new()
                    .summary(Some("This document"))
                    .operation_id(Some("openapi"))
                    .tag("operations")
                    .response(
                        "200",
                        ResponseBuilder::new()
                            .description("the OpenAPI 3.1 document")
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                                    .build(),
                            ),
                    ),
            ),
        );
        doc.paths
            .paths
            .insert("/sessions/v1/{key}".to_owned(), kask_path());
    }
}

// === request schemas ===

fn key_string() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_LEN))
        .pattern(Some(NO_CONTROL))
}

fn map_of_keys(description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "{description} Keys are 1 to {MAX_KEY_LEN} bytes without control characters; values \
             nest at most {MAX_JSON_DEPTH} levels; at most {MAX_EDITS} keys and secrets are set or removed \
             in one request, and a key is not both set and removed."
        )))
        .property_names(Some(key_string()))
        .max_properties(Some(MAX_EDITS))
        .build()
        .into()
}

fn list_of_keys(description: &str) -> Schema {
    ArrayBuilder::new()
        .description(Some(format!(
            "{description} 1 to {MAX_KEY_LEN} bytes each, without control characters."
        )))
        .items(key_string())
        .max_items(Some(MAX_EDITS))
        .build()
        .into()
}

/// `UpdateRequest.set`.
pub(crate) fn key_map() -> Schema {
    map_of_keys("Keys to set, with their JSON values.")
}

/// `UpdateRequest.remove`.
pub(crate) fn key_list() -> Schema {
    list_of_keys("Keys to remove.")
}

/// `UpdateRequest.secrets`.
pub(crate) fn secret_map() -> Schema {
    map_of_keys(
        "Secrets to set, with their JSON values: sealed with a server key and kept in the store \
         only, never in a cookie. Setting one moves a client-side anonymous session to the store.",
    )
}

/// `UpdateRequest.remove_secrets`.
pub(crate) fn secret_list() -> Schema {
    list_of_keys("Secrets to remove.")
}

fn expiry_forms(at_max: Option<i64>, idle_max: Option<u64>) -> Vec<Schema> {
    let at = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "The session ends at this time (Unix seconds; never after its absolute expiry; \
             in the past: the session ends now, as at a logout). Activity does not push it; \
             the cookie is persistent until then.",
        ))
        .property(
            "at",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(at_max.map(|_| 0))
                .maximum(at_max),
        )
        .required("at")
        .max_properties(Some(1))
        .min_properties(Some(1));
    let idle = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "This session's idle timeout, in seconds (still bounded by its absolute expiry); \
             the cookie is persistent, its age following the idle expiry.",
        ))
        .property(
            "idle",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(idle_max.map(|_| 1))
                .maximum(idle_max),
        )
        .required("idle")
        .max_properties(Some(1))
        .min_properties(Some(1));
    let browser = string()
        .description(Some(
            "A browser-session cookie (even for remember-me), the server's timeouts.",
        ))
        .enum_values(Some(["browser"]));
    vec![at.into(), idle.into(), browser.into()]
}

/// `UpdateRequest.expiry`.
pub(crate) fn expiry_input() -> Schema {
    let mut forms = expiry_forms(Some(api::MAX_EXPIRY_AT), Some(api::MAX_EXPIRY_IDLE));
    forms.push(ObjectBuilder::new().schema_type(Type::Null).build().into());
    let mut one = utoipa::openapi::schema::OneOfBuilder::new().description(Some(
        "The session's own expiry; absent: unchanged; `null`: the server's defaults (a \
         persistent cookie for remember-me sessions only). Setting one other than `null` moves \
         a client-side anonymous session to the store.",
    ));
    for f in forms {
        one = one.item(f);
    }
    one.build().into()
}

/// `SessionView.expiry`.
pub(crate) fn expiry_output() -> Schema {
    let mut forms = expiry_forms(None, None);
    forms.push(ObjectBuilder::new().schema_type(Type::Null).build().into());
    let mut one = utoipa::openapi::schema::OneOfBuilder::new().description(Some(
        "The session's own expiry, or `null` for the server's defaults.",
    ));
    for f in forms {
        one = one.item(f);
    }
    one.build().into()
}

/// The claim names a request may not use: those of the token itself.
fn claim_name_pattern() -> String {
    format!(
        r"^(?!(?:{})$)[^\u0000-\u001F\u007F-\u009F]*$",
        RESERVED_CLAIMS.join("|")
    )
}

/// `claims` of `login` and `POST /v1/tokens`.
pub(crate) fn claims_map() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "Custom claims for session tokens (e.g. a rate-limit class `rlc`): at most 1 KiB of \
             JSON, values nesting at most {MAX_JSON_DEPTH} levels; names are 1 to {MAX_KEY_LEN} bytes without \
             control characters and not those of the token itself ({}).",
            RESERVED_CLAIMS.join(", ")
        )))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_KEY_LEN))
                .pattern(Some(claim_name_pattern())),
        ))
        .build()
        .into()
}

// === response schemas ===

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn jwk_set() -> Schema {
    let jwk = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A public JWK (RFC 7517): OKP (Ed25519), EC (P-256) or RSA.",
        ))
        .property("kty", string().enum_values(Some(["OKP", "EC", "RSA"])))
        .required("kty")
        .property("kid", string())
        .required("kid")
        .property("alg", string())
        .required("alg")
        .property("use", string().enum_values(Some(["sig"])))
        .property("crv", string())
        .property("x", string())
        .property("y", string())
        .property("n", string())
        .property("e", string());
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("A JWK set (RFC 7517 §5), newest key first."))
        .property("keys", ArrayBuilder::new().items(jwk))
        .required("keys")
        .build()
        .into()
}

fn kask_problem() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A problem of the Kask-compatible API (RFC 7807 as Kask sends it, \
             `application/json`).",
        ))
        .property(
            "type",
            string()
                .description(Some("`https://www.mediawiki.org/wiki/Kask/errors/<kind>`"))
                .pattern(Some(
                    "^https://www\\.mediawiki\\.org/wiki/Kask/errors/\
                     (bad_request|not_authorized|not_found|server_error)$",
                )),
        )
        .required("type")
        .property("title", string())
        .required("title")
        .property("detail", string())
        .required("detail")
        .property("instance", string().description(Some("the request path")))
        .required("instance")
        .build()
        .into()
}

// === the Kask-compatible routes ===

fn kask_problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "KaskProblem",
                ))))
                .build(),
        )
        .build()
}

fn kask_op(
    method: &str,
    summary: &str,
    status: &str,
    ok: Response,
    extra: impl FnOnce(OperationBuilder) -> OperationBuilder,
) -> Operation {
    let key = ParameterBuilder::new()
        .name("key")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(format!(
            "The key, percent-encoded (decoded once: `a%3Ab` and `a:b` are the same key); 1 to \
             {MAX_KV_KEY_LEN} bytes decoded; no `/` (also not as `%2F`: that path answers 404)."
        )))
        .schema(Some(
            string()
                .min_length(Some(1))
                .max_length(Some(MAX_KV_KEY_LEN))
                .pattern(Some("^[^/]*$")),
        ));
    let b = OperationBuilder::new()
        .summary(Some(summary))
        .operation_id(Some(format!("kask_{method}")))
        .tag("kask")
        .parameter(key)
        .security(SecurityRequirement::new::<_, _, &str>("api_key", []))
        .response(status, ok)
        .response(
            "400",
            kask_problem_response(
                "a malformed `%` escape, a key over 1024 bytes, an empty value, or a query string",
            ),
        )
        .response(
            "401",
            kask_problem_response("missing or wrong API key (when `kask.require_api_key`)"),
        )
        .response(
            "503",
            kask_problem_response("the store failed or did not answer"),
        );
    extra(b).build()
}

fn kask_path() -> PathItem {
    let link = |op: &str, description: &str| {
        LinkBuilder::new()
            .operation_id(op)
            .parameter("key", "$request.path.key")
            .description(description)
            .build()
    };
    let mut item = PathItem::default();
    item.get = Some(kask_op(
        "get",
        "Read a value (Kask-compatible)",
        "200",
        ResponseBuilder::new()
            .description("the value")
            .content(
                "application/octet-stream",
                ContentBuilder::new()
                    .schema(Some(string().format(Some(
                        utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Binary,
                        ),
                    ))))
                    .build(),
            )
            .link("kask_delete", link("kask_delete", "delete the value read"))
            .build(),
        |b| b.response("404", kask_problem_response("no such key, or it expired")),
    ));
    item.post = Some(kask_op(
        "post",
        "Store a value with the server's TTL (Kask-compatible)",
        "201",
        ResponseBuilder::new()
            .description("stored")
            .link("kask_get", link("kask_get", "read the value stored"))
            .link(
                "kask_delete",
                link("kask_delete", "delete the value stored"),
            )
            .build(),
        |b| {
            b.request_body(Some(
                RequestBodyBuilder::new()
                    .description(Some(
                        "The value: 1 byte to `kask.max_value_bytes` (default 256 KiB), opaque.",
                    ))
                    .required(Some(Required::True))
                    .content(
                        "application/octet-stream",
                        ContentBuilder::new()
                            .schema(Some(
                                string()
                                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                                        utoipa::openapi::KnownFormat::Binary,
                                    )))
                                    .min_length(Some(1)),
                            ))
                            .build(),
                    )
                    .build(),
            ))
            .response(
                "413",
                kask_problem_response("the value is over `kask.max_value_bytes`"),
            )
        },
    ));
    item.delete = Some(kask_op(
        "delete",
        "Delete a value, idempotent (Kask-compatible)",
        "204",
        ResponseBuilder::new()
            .description("deleted, or there was nothing to delete")
            .link("kask_get", link("kask_get", "the deleted value is gone"))
            .build(),
        |b| b,
    ));
    item
}

pub(crate) async fn serve() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_name_pattern_names_every_reserved_claim() {
        let p = claim_name_pattern();
        for c in RESERVED_CLAIMS {
            let named = p.contains(&format!("|{c}|"))
                || p.contains(&format!("(?:{c}|"))
                || p.contains(&format!("|{c})"));
            assert!(named, "{c} missing from {p}");
        }
    }
}
