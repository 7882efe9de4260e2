// Every operation of Tessera's HTTP API, as its OpenAPI document (`/openapi.json`) names it:
// the client method that calls it, the request and answer schemas (components of the
// document, the interfaces of types/index.d.ts). test/openapi.test.js checks this table and
// the declarations against the document a real `tessera serve` serves.

/**
 * @typedef {object} Operation
 * @property {string} method  the HTTP method
 * @property {string} path  the path template
 * @property {string} call  the `Client` method
 * @property {string | null} request  the request body's schema, or null (none, or not JSON)
 * @property {string | null} response  the 200 answer's schema, or null (none, or not JSON)
 */

/** @type {Readonly<Record<string, Operation>>} */
export const OPERATIONS = Object.freeze({
  resolve: { method: "POST", path: "/v1/session/resolve", call: "resolve", request: "ResolveRequest", response: "SessionResponse" },
  update: { method: "POST", path: "/v1/session/update", call: "update", request: "UpdateRequest", response: "SessionResponse" },
  login: { method: "POST", path: "/v1/session/login", call: "login", request: "LoginRequest", response: "SessionResponse" },
  logout: { method: "POST", path: "/v1/session/logout", call: "logout", request: "LogoutRequest", response: "SessionResponse" },
  rotate: { method: "POST", path: "/v1/session/rotate", call: "rotate", request: "RotateRequest", response: "SessionResponse" },
  csrf_check: { method: "POST", path: "/v1/session/csrf/check", call: "checkCsrf", request: "CsrfCheckRequest", response: "CsrfCheckResponse" },
  list_sessions: { method: "GET", path: "/v1/users/{id}/sessions", call: "listSessions", request: null, response: "SessionList" },
  revoke_all: { method: "DELETE", path: "/v1/users/{id}/sessions", call: "revokeAll", request: null, response: "RevokeAllResponse" },
  revoke_one: { method: "DELETE", path: "/v1/users/{id}/sessions/{ref}", call: "revokeSession", request: null, response: null },
  mint: { method: "POST", path: "/v1/tokens", call: "mint", request: "MintRequest", response: "MintResponse" },
  jwks: { method: "GET", path: "/.well-known/jwks.json", call: "jwks", request: null, response: "JwkSet" },
  verify: { method: "GET", path: "/v1/verify", call: "verify", request: null, response: null },
  feed: { method: "GET", path: "/v1/revocations", call: "revocations", request: null, response: "Feed" },
  kask_get: { method: "GET", path: "/sessions/v1/{key}", call: "kaskGet", request: null, response: null },
  kask_post: { method: "POST", path: "/sessions/v1/{key}", call: "kaskPut", request: null, response: null },
  kask_delete: { method: "DELETE", path: "/sessions/v1/{key}", call: "kaskDelete", request: null, response: null },
  kv_get: { method: "GET", path: "/v1/kv/{namespace}/{key}", call: "kvGet", request: null, response: "ValueResponse" },
  kv_put: { method: "PUT", path: "/v1/kv/{namespace}/{key}", call: "kvPut", request: "PutRequest", response: null },
  kv_touch: { method: "PATCH", path: "/v1/kv/{namespace}/{key}", call: "kvTouch", request: "TouchRequest", response: null },
  kv_delete: { method: "DELETE", path: "/v1/kv/{namespace}/{key}", call: "kvDelete", request: null, response: null },
  kv_count: { method: "GET", path: "/v1/kv/{namespace}", call: "kvCount", request: null, response: "CountResponse" },
  kv_clear: { method: "DELETE", path: "/v1/kv/{namespace}", call: "kvClear", request: null, response: null },
  healthz: { method: "GET", path: "/healthz", call: "healthy", request: null, response: null },
  readyz: { method: "GET", path: "/readyz", call: "ready", request: null, response: null },
  metrics: { method: "GET", path: "/metrics", call: "metrics", request: null, response: null },
  openapi: { method: "GET", path: "/openapi.json", call: "openapi", request: null, response: null },
});
