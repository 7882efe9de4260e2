"""schemathesis hooks for the contract test (crates/server/tests/it/contract.rs).

The OpenAPI document states every constraint JSON Schema can express. A few it cannot, and
the document states them in prose instead: limits counted in UTF-8 bytes (JSON Schema's
`maxLength` counts characters), a key both set and removed in one update, the number of edits
of one update across its four fields, and the JSON size of `claims`. This hook keeps the
*positive* cases schemathesis generates within those prose constraints, so that a refusal
of one of them is not reported as a schema-valid request rejected. Negative cases are left as
generated. Every number here is the service's (crates/engine, crates/core), named in the
document's descriptions.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.generation import GenerationMode

MAX_USER_ID_BYTES = 255
MAX_KEY_BYTES = 256
MAX_EDITS = 256
MAX_PURPOSE_BYTES = 128
MAX_COOKIE_BYTES = 8192
MAX_CLAIMS_BYTES = 1024
MAX_KV_KEY_BYTES = 1024
MAX_KV_VALUE_BYTES = 256 * 1024


def _bytes(value: Any) -> int:
    return len(value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else 0


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list):
        return [k for k in value if isinstance(k, str)]
    return []


def _claims_ok(claims: Any) -> bool:
    if not isinstance(claims, dict):
        return True
    if any(_bytes(k) > MAX_KEY_BYTES for k in claims):
        return False
    size = len(json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    return size <= MAX_CLAIMS_BYTES


def _body_ok(label: str, body: Any) -> bool:
    if not isinstance(body, dict):
        return True
    if _bytes(body.get("cookie")) > MAX_COOKIE_BYTES:
        return False
    for field in ("csrf_purpose", "purpose"):
        if _bytes(body.get(field)) > MAX_PURPOSE_BYTES:
            return False
    if label == "POST /v1/session/update":
        fields = [_keys(body.get(f)) for f in ("set", "remove", "secrets", "remove_secrets")]
        if sum(len(f) for f in fields) > MAX_EDITS:
            return False
        if any(_bytes(k) > MAX_KEY_BYTES for f in fields for k in f):
            return False
        set_, remove, secrets, remove_secrets = (set(f) for f in fields)
        if set_ & remove or secrets & remove_secrets:
            return False
    if label == "POST /v1/session/login":
        user = body.get("user")
        if isinstance(user, dict) and _bytes(user.get("id")) > MAX_USER_ID_BYTES:
            return False
        return _claims_ok(body.get("claims"))
    if label == "PUT /v1/kv/{namespace}/{key}" and "value" in body:
        # `kv.max_value_bytes`, counted on the value as compact JSON.
        value = json.dumps(body["value"], ensure_ascii=False, separators=(",", ":"))
        if len(value.encode("utf-8", "surrogatepass")) > MAX_KV_VALUE_BYTES:
            return False
    if label == "POST /v1/tokens":
        if _bytes(body.get("sub")) > MAX_KEY_BYTES:
            return False
        return _claims_ok(body.get("claims"))
    return True


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return True
    label = case.operation.label
    params = case.path_parameters or {}
    if _bytes(params.get("id")) > MAX_USER_ID_BYTES:
        return False
    if _bytes(params.get("key")) > MAX_KV_KEY_BYTES:
        return False
    return _body_ok(label, case.body)
