// The errors of the client: every problem type of the HTTP API is an error class.
//
// A problem answer (RFC 7807, `application/problem+json`) throws the class of its `type`
// (`urn:tessera:problem:<code>`, listed in Tessera's docs/problems.md); an unknown code throws
// `ProblemError` itself, so a newer server never breaks an older client. The Kask-compatible
// API answers with Kask's own problem types: `KaskError`.

export const PROBLEM_PREFIX = "urn:tessera:problem:";

/** Every error this package throws. */
export class TesseraError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The service could not be reached, or did not answer within the timeout. */
export class TransportError extends TesseraError {
  constructor(message, { timeout = false, cause } = {}) {
    super(message, { cause });
    /** Whether the request timed out. */
    this.timeout = timeout;
  }
}

/** The service answered something this client does not understand. */
export class ProtocolError extends TesseraError {
  constructor(message, { status }) {
    super(message);
    this.status = status;
  }
}

/** A problem answer of the HTTP API. */
export class ProblemError extends TesseraError {
  /** The stable code of the class (the last part of `type`); "" for an unknown one. */
  static code = "";

  constructor({ status, type, title, detail, set_cookie }) {
    super(`${status} ${title}: ${detail}`);
    this.status = status;
    this.type = type;
    this.code = type.startsWith(PROBLEM_PREFIX) ? type.slice(PROBLEM_PREFIX.length) : type;
    this.title = title;
    this.detail = detail;
    /** For problems about the session cookie: the `Set-Cookie` values that clear it. */
    this.set_cookie = Array.isArray(set_cookie) ? set_cookie.map(String) : [];
  }
}

const problem = (code, status, doc) => {
  const cls = class extends ProblemError {
    static code = code;
    static status = status;
  };
  Object.defineProperty(cls, "name", { value: doc });
  return cls;
};

/** 400: the body was not JSON. */
export const InvalidJson = problem("invalid-json", 400, "InvalidJson");
/** 400: a query string the endpoint does not accept. */
export const InvalidQuery = problem("invalid-query", 400, "InvalidQuery");
/** 400: the session cookie is not a value Tessera issued; `set_cookie` clears it. */
export const MalformedCookie = problem("malformed-cookie", 400, "MalformedCookie");
/** 401: missing or wrong API key. */
export const Unauthorized = problem("unauthorized", 401, "Unauthorized");
/** 404: no such endpoint. */
export const NotFound = problem("not-found", 404, "NotFound");
/** 404: no live value under the key of the keyed store (`/v1/kv`). */
export const KvNotFound = problem("kv-not-found", 404, "KvNotFound");
/** 404: the cookie names no live session (`set_cookie` clears it), or no such reference. */
export const SessionNotFound = problem("session-not-found", 404, "SessionNotFound");
/** 404: the service issues no session tokens. */
export const TokensDisabled = problem("tokens-disabled", 404, "TokensDisabled");
/** 405: known path, other method. */
export const MethodNotAllowed = problem("method-not-allowed", 405, "MethodNotAllowed");
/** 409: an edit lost too many compare-and-set races; retry. */
export const Contention = problem("contention", 409, "Contention");
/** 409: another backup (`GET /v1/admin/backup`) is being made or sent. */
export const BackupInProgress = problem("backup-in-progress", 409, "BackupInProgress");
/** 413: the request body is over the service's limit. */
export const BodyTooLarge = problem("body-too-large", 413, "BodyTooLarge");
/** 413: the session's data would exceed its limit. */
export const DataTooLarge = problem("data-too-large", 413, "DataTooLarge");
/** 413: a value of the keyed store is over `kv.max_value_bytes`. */
export const ValueTooLarge = problem("value-too-large", 413, "ValueTooLarge");
/** 415: the body was not sent as JSON. */
export const UnsupportedMediaType = problem("unsupported-media-type", 415, "UnsupportedMediaType");
/** 422: valid JSON, invalid content (a bad user id, key, purpose or claim...). */
export const InvalidRequest = problem("invalid-request", 422, "InvalidRequest");
/** 431: the request headers are over the service's limit. */
export const HeadersTooLarge = problem("headers-too-large", 431, "HeadersTooLarge");
/** 500: a bug in the service; the cause is in its log. */
export const Internal = problem("internal", 500, "Internal");
/** 501: the configured store keeps no revocation log. */
export const NoRevocationLog = problem("no-revocation-log", 501, "NoRevocationLog");
/** 501: a backup of a store that is not an embedded (redb) one. */
export const BackupUnsupported = problem("backup-unsupported", 501, "BackupUnsupported");
/** 501: the configured store has no key-value namespace (`/v1/kv`). */
export const NoKvStore = problem("no-kv-store", 501, "NoKvStore");
/** 503: the session store failed or did not answer (nothing was partly written). */
export const StoreUnavailable = problem("store-unavailable", 503, "StoreUnavailable");
/** 503: the verifier has not loaded its keys or revocations yet. */
export const VerifierNotReady = problem("verifier-not-ready", 503, "VerifierNotReady");

/** The error class of every problem code. */
export const PROBLEM_CLASSES = Object.freeze(
  Object.fromEntries(
    [
      InvalidJson,
      InvalidQuery,
      MalformedCookie,
      Unauthorized,
      NotFound,
      KvNotFound,
      SessionNotFound,
      TokensDisabled,
      MethodNotAllowed,
      Contention,
      BackupInProgress,
      BodyTooLarge,
      DataTooLarge,
      ValueTooLarge,
      UnsupportedMediaType,
      InvalidRequest,
      HeadersTooLarge,
      Internal,
      NoRevocationLog,
      BackupUnsupported,
      NoKvStore,
      StoreUnavailable,
      VerifierNotReady,
    ].map((cls) => [cls.code, cls]),
  ),
);

/** A problem of the Kask-compatible API (Kask's own types). */
export class KaskError extends TesseraError {
  constructor({ status, kind, title, detail }) {
    super(`${status} ${title}: ${detail}`);
    this.status = status;
    /** `bad_request`, `not_authorized`, `not_found` or `server_error`. */
    this.kind = kind;
    this.title = title;
    this.detail = detail;
  }
}

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/** The error for a problem document (`body` already parsed from JSON, or anything else). */
export function problemFrom(status, body) {
  const o = isObject(body) ? body : {};
  const type = typeof o.type === "string" ? o.type : `${PROBLEM_PREFIX}unknown`;
  const code = type.startsWith(PROBLEM_PREFIX) ? type.slice(PROBLEM_PREFIX.length) : "";
  const Cls = Object.hasOwn(PROBLEM_CLASSES, code) ? PROBLEM_CLASSES[code] : ProblemError;
  return new Cls({
    status,
    type,
    title: String(o.title ?? ""),
    detail: String(o.detail ?? ""),
    set_cookie: o.set_cookie,
  });
}

/** The error for a Kask problem document. */
export function kaskErrorFrom(status, body) {
  const o = isObject(body) ? body : {};
  const kind = String(o.type ?? "").split("/").pop() || "server_error";
  return new KaskError({
    status,
    kind,
    title: String(o.title ?? ""),
    detail: String(o.detail ?? ""),
  });
}
