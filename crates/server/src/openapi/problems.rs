//! The problem responses that many operations share, each said once: an operation lists the
//! group it answers with (`responses(.., SessionProblems)`) and states inline only the
//! problems that are its own (a 404 that names what is missing, a 409, a 413 that names its
//! limit).
//!
//! Each group is an [`IntoResponses`] type written by hand rather than derived: a derived enum
//! would need variants nothing constructs, and groups share their members ([`API_KEY`],
//! [`STORE`]) from one place.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

/// 401: every operation behind the management API key.
const API_KEY: (u16, &str) = (401, "missing or wrong API key");
/// 503: every operation that reads or writes the store.
const STORE: (u16, &str) = (503, "the store failed or did not answer; retry");
/// 415: every operation that takes a JSON body.
const NOT_JSON_TYPE: (u16, &str) = (415, "the body is not `application/json`");

/// A `application/problem+json` response with a [`Problem`](crate::problem::Problem) body, as
/// `(status = .., description = .., body = Problem, content_type = "application/problem+json")`
/// says it in a `responses(..)` list.
fn problem(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                    .build(),
            )
            .build(),
    )
}

fn problems(list: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|&(status, description)| (status.to_string(), problem(description)))
        .collect()
}

/// 400, 401, 413, 415, 422 and 503: what every `/v1/session/*` operation may answer.
pub(crate) struct SessionProblems;

impl IntoResponses for SessionProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            (
                400,
                "invalid JSON, or a malformed session cookie (`set_cookie` clears it)",
            ),
            API_KEY,
            (413, "the body or the session data is too large"),
            NOT_JSON_TYPE,
            (422, "valid JSON with an invalid field"),
            STORE,
        ])
    }
}

/// 401, 422 and 503: what every `/v1/users/*` operation may answer.
pub(crate) struct UserProblems;

impl IntoResponses for UserProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            API_KEY,
            (422, "an invalid user id or session reference"),
            STORE,
        ])
    }
}

/// 401, 501 and 503: what every `/v1/kv/*` operation may answer.
pub(crate) struct KvProblems;

impl IntoResponses for KvProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            API_KEY,
            (501, "the store has no key-value namespace"),
            STORE,
        ])
    }
}

/// 400 and 415: what an operation with a JSON body (other than the session's) may answer
/// about it.
pub(crate) struct JsonBodyProblems;

impl IntoResponses for JsonBodyProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[(400, "the body is not JSON"), NOT_JSON_TYPE])
    }
}
