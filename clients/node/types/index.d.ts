// The types of tessera-sessions. The interfaces named as the schemas of Tessera's OpenAPI
// document (`/openapi.json`, components.schemas) are those schemas, field for field:
// test/openapi.test.js checks them against the document a real `tessera serve` serves.

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

// === the schemas of the OpenAPI document ===

/** Where a session is kept: `auto` (Tessera's choice) or `store`. */
export type StorageChoice = "auto" | "store";

/** The session ends at this time (Unix seconds). */
export interface ExpiryAt {
  at: number;
}

/** This session's own idle timeout (seconds). */
export interface ExpiryIdle {
  idle: number;
}

/** A per-session expiry: an end time, an idle timeout, or a browser-session cookie. */
export type Expiry = ExpiryAt | ExpiryIdle | "browser";

export interface ResolveRequest {
  cookie?: string;
  create?: boolean;
  csrf_purpose?: string | null;
  secrets?: boolean;
  renew?: boolean;
  storage?: StorageChoice;
}

export interface RotateRequest {
  cookie?: string;
}

export interface UpdateRequest {
  cookie?: string;
  set?: JsonObject;
  remove?: string[];
  secrets?: JsonObject;
  remove_secrets?: string[];
  expiry?: Expiry | null;
  storage?: StorageChoice;
}

export interface UserInput {
  id: string;
  name?: string | null;
  provider?: string | null;
}

export interface LoginRequest {
  cookie?: string;
  user: UserInput;
  claims?: JsonObject;
  remember?: boolean;
}

export interface LogoutRequest {
  cookie?: string;
}

export interface CsrfCheckRequest {
  cookie?: string;
  token: string;
  purpose?: string | null;
}

export interface CsrfCheckResponse {
  valid: boolean;
}

export interface UserView {
  id: string;
  name?: string | null;
  provider?: string | null;
}

/** A live session. Times are Unix seconds. */
export interface SessionView {
  /** Its public reference, for the management API (not a credential). */
  ref: string;
  /** What its tokens and the revocation feed name it by. */
  sid: string;
  /** `anonymous` or `authenticated`. */
  kind: string;
  /** `cookie` (a client-side anonymous session) or `store`. */
  storage: string;
  /** The user, or `null` for an anonymous session. */
  user?: UserView | null;
  data: JsonObject;
  claims: JsonObject;
  created_at: number;
  idle_expires_at: number;
  absolute_expires_at: number;
  /** The effective expiry (Unix seconds). */
  expires_at: number;
  expiry?: Expiry | null;
  remember: boolean;
  /** Only when the request asked for them (`secrets: true`). */
  secrets?: JsonObject | null;
}

/** The answer of every `/v1/session/*` operation. */
export interface SessionResponse {
  /** The live session after the operation, or `null`. */
  session?: SessionView | null;
  /** `Set-Cookie` values to send to the browser, in order, untouched. */
  set_cookie: string[];
  /** What happened: `none`, `loaded`, `renewed`, `created`, `updated`, `logged_out`, ... */
  status: string;
  /** A CSRF token of the live session (the purpose asked for, else `default`). */
  csrf_token?: string | null;
  /** The session token's status (`ok`, `issued`, `soft_expired`, `none`, ...). */
  token_status: string;
}

/** One session in a user's list. */
export interface SessionSummary {
  ref: string;
  created_at: number;
  idle_expires_at: number;
  absolute_expires_at: number;
  expires_at: number;
  expiry?: Expiry | null;
  remember: boolean;
}

export interface SessionList {
  sessions: SessionSummary[];
}

/** The answer of "log out everywhere". */
export interface RevokeAllResponse {
  /** How many live sessions the user had. */
  revoked: number;
  /** Every session and token of the user issued up to this time (Unix ms) is dead. */
  revoked_at_ms: number;
}

export interface MintRequest {
  sub: string;
  claims?: JsonObject;
}

export interface MintResponse {
  token: string;
}

/** One entry of the revocation feed. */
export interface FeedEntry {
  seq: number;
  /** `user` (`id` is a token `sub`) or `session` (`id` is a `sid`). */
  kind: string;
  id: string;
  at: number;
}

/** A page of the revocation feed. */
export interface Feed {
  revocations: FeedEntry[];
  /** The cursor for the next request (`after`). */
  next: number;
}

/** A public JWK (RFC 7517): OKP (Ed25519), EC (P-256) or RSA. */
export interface Jwk {
  kty: "OKP" | "EC" | "RSA";
  kid: string;
  alg: string;
  use?: "sig";
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

/** A JWK set (RFC 7517 §5), newest key first. */
export interface JwkSet {
  keys: Jwk[];
}

/** A problem document (RFC 7807). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  set_cookie?: string[] | null;
}

/** A problem of the Kask-compatible API. */
export interface KaskProblem {
  type: string;
  title: string;
  detail: string;
  instance: string;
}

/** `PUT /v1/kv/{namespace}/{key}`. */
export interface PutRequest {
  /** Any JSON value, at most `kv.max_value_bytes` as compact JSON. */
  value: JsonValue;
  /** Seconds the value lives from now (at least 1; cut to `kv.max_ttl`). */
  ttl: number;
}

/** `PATCH /v1/kv/{namespace}/{key}`. */
export interface TouchRequest {
  ttl: number;
}

/** `GET /v1/kv/{namespace}/{key}`. */
export interface ValueResponse {
  value: JsonValue;
  /** When it expires, in Unix seconds. */
  expires_at: number;
  /** Seconds left (rounded up). */
  ttl: number;
}

/** `GET /v1/kv/{namespace}`. */
export interface CountResponse {
  count: number;
}

// === what the client makes of the other answers ===

/** The edge verifier's answer (`GET /v1/verify`), from its status and headers. */
export interface Verdict {
  /** Whether a valid token came (`subject` is then its `sub`). */
  valid: boolean;
  status: number;
  subject: string | null;
  session: string | null;
  token_status: string;
  /** The configured `X-Tessera-Claim-<name>` headers, by lower-case name. */
  claims: Record<string, string>;
}

/** A page of the revocation feed with its `ETag`. */
export interface FeedPage extends Feed {
  etag: string | null;
}

/** One operation of the HTTP API. */
export interface Operation {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  /** The `Client` method that calls it. */
  call: keyof Client;
  /** The request body's schema, or null (none, or not JSON). */
  request: string | null;
  /** The 200 answer's schema, or null (none, or not JSON). */
  response: string | null;
}

/** Every operation of the HTTP API, by its OpenAPI `operationId`. */
export const OPERATIONS: Readonly<Record<string, Operation>>;

export interface ClientOptions {
  /** The service's base URL (default: `TESSERA_URL`). */
  url?: string;
  /** The management API key (default: `TESSERA_API_KEY`). */
  apiKey?: string;
  /** Milliseconds for each attempt of a request (default 5000). */
  timeout?: number;
  /** How many times an answer of 503 is retried, with backoff and full jitter (default 2). */
  retries?: number;
  /** The first retry waits up to this many milliseconds, each next up to twice as long (default 100, at most 2000). */
  backoff?: number;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/**
 * A client of one Tessera service. Every `cookie` argument is the browser's raw `Cookie`
 * header (may be empty). Problem answers throw the error classes below.
 */
export class Client {
  constructor(options?: ClientOptions);
  /** The service's base URL, without a trailing slash. */
  readonly url: string;

  resolve(cookie: string, options?: Omit<ResolveRequest, "cookie">): Promise<SessionResponse>;
  update(cookie: string, edits?: Omit<UpdateRequest, "cookie">): Promise<SessionResponse>;
  login(
    cookie: string,
    userId: string,
    options?: Omit<UserInput, "id"> & Omit<LoginRequest, "cookie" | "user">,
  ): Promise<SessionResponse>;
  logout(cookie: string): Promise<SessionResponse>;
  /** A new handle for the same session, the old one retired at once. */
  rotate(cookie: string): Promise<SessionResponse>;
  checkCsrf(cookie: string, token: string, options?: { purpose?: string | null }): Promise<boolean>;

  listSessions(userId: string): Promise<SessionSummary[]>;
  revokeAll(userId: string): Promise<RevokeAllResponse>;
  revokeSession(userId: string, ref: string): Promise<void>;

  mint(sub: string, claims?: JsonObject): Promise<string>;
  jwks(): Promise<JwkSet>;
  verify(headers?: { cookie?: string; authorization?: string }): Promise<Verdict>;
  revocations(options?: { after?: number; limit?: number; etag?: string | null }): Promise<FeedPage | null>;

  kaskGet(key: string | Uint8Array): Promise<Uint8Array | null>;
  kaskPut(key: string | Uint8Array, value: string | Uint8Array): Promise<void>;
  kaskDelete(key: string | Uint8Array): Promise<void>;

  kvGet(namespace: string, key: string): Promise<ValueResponse | null>;
  kvPut(namespace: string, key: string, value: JsonValue, ttl: number): Promise<void>;
  kvTouch(namespace: string, key: string, ttl: number): Promise<void>;
  kvDelete(namespace: string, key: string): Promise<void>;
  kvCount(namespace: string): Promise<number>;
  kvClear(namespace: string): Promise<void>;

  healthy(): Promise<boolean>;
  ready(): Promise<boolean>;
  metrics(): Promise<string>;
  openapi(): Promise<JsonObject>;
}

export const DEFAULT_TIMEOUT: number;
export const DEFAULT_RETRIES: number;
export const DEFAULT_BACKOFF: number;
export const MAX_BACKOFF: number;
/** Full jitter: a random wait below `base * 2 ** attempt` milliseconds, capped. */
export function backoffDelay(attempt: number, base: number): number;

// === cookies ===

export function parseCookieHeader(header: string | undefined): Map<string, string>;
export function setCookieNameValue(setCookie: string): { name: string; value: string; removal: boolean };
/** The `Cookie` header the browser sends after it applies `setCookies`. */
export function applySetCookies(header: string | undefined, setCookies: Iterable<string>): string;
/** One `Set-Cookie` per name: a later value replaces an earlier one. */
export function mergeSetCookies(earlier: readonly string[], later: Iterable<string>): string[];

// === errors ===

export const PROBLEM_PREFIX: "urn:tessera:problem:";

/** Every error this package throws. */
export class TesseraError extends Error {}

/** The service could not be reached, or did not answer within the timeout. */
export class TransportError extends TesseraError {
  constructor(message: string, options?: { timeout?: boolean; cause?: unknown });
  readonly timeout: boolean;
}

/** The service answered something this client does not understand. */
export class ProtocolError extends TesseraError {
  constructor(message: string, options: { status: number });
  readonly status: number;
}

/** A problem answer of the HTTP API (RFC 7807). */
export class ProblemError extends TesseraError {
  constructor(problem: { status: number; type: string; title: string; detail: string; set_cookie?: unknown });
  /** The code of the class: the last part of its `type`. */
  static readonly code: string;
  readonly status: number;
  /** `urn:tessera:problem:<code>`. */
  readonly type: string;
  /** The stable code, the last part of `type`. */
  readonly code: string;
  readonly title: string;
  /** What was wrong with this request (never a handle, token or key). */
  readonly detail: string;
  /** For problems about the session cookie: the `Set-Cookie` values that clear it; send them. */
  readonly set_cookie: string[];
}

export class InvalidJson extends ProblemError {}
export class InvalidQuery extends ProblemError {}
export class MalformedCookie extends ProblemError {}
export class Unauthorized extends ProblemError {}
export class NotFound extends ProblemError {}
export class KvNotFound extends ProblemError {}
export class SessionNotFound extends ProblemError {}
export class TokensDisabled extends ProblemError {}
export class MethodNotAllowed extends ProblemError {}
export class Contention extends ProblemError {}
export class BackupInProgress extends ProblemError {}
export class BodyTooLarge extends ProblemError {}
export class DataTooLarge extends ProblemError {}
export class ValueTooLarge extends ProblemError {}
export class UnsupportedMediaType extends ProblemError {}
export class InvalidRequest extends ProblemError {}
export class HeadersTooLarge extends ProblemError {}
export class Internal extends ProblemError {}
export class NoRevocationLog extends ProblemError {}
export class BackupUnsupported extends ProblemError {}
export class NoKvStore extends ProblemError {}
export class StoreUnavailable extends ProblemError {}
export class VerifierNotReady extends ProblemError {}

/** The error class of every problem code. */
export const PROBLEM_CLASSES: Readonly<Record<string, typeof ProblemError>>;

/** A problem of the Kask-compatible API (Kask's own types). */
export class KaskError extends TesseraError {
  constructor(problem: { status: number; kind: string; title: string; detail: string });
  readonly status: number;
  /** `bad_request`, `not_authorized`, `not_found` or `server_error`. */
  readonly kind: string;
  readonly title: string;
  readonly detail: string;
}

export function problemFrom(status: number, body: unknown): ProblemError;
export function kaskErrorFrom(status: number, body: unknown): KaskError;
