// tessera-sessions: a client of Tessera's HTTP API. The Express middleware is
// `tessera-sessions/express`, the express-session store `tessera-sessions/store`.

export { Client, DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, MAX_BACKOFF, backoffDelay } from "./client.js";
export { OPERATIONS } from "./operations.js";
export { applySetCookies, mergeSetCookies, parseCookieHeader, setCookieNameValue } from "./cookies.js";
export * from "./errors.js";
