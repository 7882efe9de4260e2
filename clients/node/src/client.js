// The client of Tessera's HTTP API: one method per operation of its OpenAPI document
// (src/operations.js), answers as the document's schemas (types/index.d.ts), problems thrown
// as the error classes of src/errors.js.

import { setTimeout as sleep } from "node:timers/promises";

import { KvNotFound, ProtocolError, TransportError, kaskErrorFrom, problemFrom } from "./errors.js";
import { OPERATIONS } from "./operations.js";

/** Milliseconds for one attempt of a request: connecting, sending and reading the answer. */
export const DEFAULT_TIMEOUT = 5000;
/** How many times an answer of 503 is retried (the store failed or timed out; repeating is safe, see the README). */
export const DEFAULT_RETRIES = 2;
/** The first retry waits up to this many milliseconds; each next one up to twice as long. */
export const DEFAULT_BACKOFF = 100;
/** No retry waits longer than this (milliseconds). */
export const MAX_BACKOFF = 2000;

/** Full jitter: a random wait below `base * 2 ** attempt` milliseconds, capped. */
export function backoffDelay(attempt, base) {
  return Math.random() * Math.min(MAX_BACKOFF, base * 2 ** attempt);
}

/** A path segment, every reserved character percent-encoded. */
const segment = (v) => encodeURIComponent(v);

const path = (op, params = {}) =>
  OPERATIONS[op].path.replace(/\{(\w+)\}/g, (_, name) => segment(params[name]));

const without = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/** A client of one Tessera service. */
export class Client {
  #apiKey;
  #timeout;
  #retries;
  #backoff;
  #fetch;

  /**
   * @param {object} [options]
   * @param {string} [options.url] the service's base URL (default: `TESSERA_URL`)
   * @param {string} [options.apiKey] the management API key (default: `TESSERA_API_KEY`)
   * @param {number} [options.timeout] milliseconds for each attempt of a request
   * @param {number} [options.retries] how many times a 503 answer is retried
   * @param {number} [options.backoff] the first retry's maximum wait, in milliseconds
   * @param {typeof fetch} [options.fetch] the fetch to use (default: the global one)
   */
  constructor({
    url = process.env.TESSERA_URL,
    apiKey = process.env.TESSERA_API_KEY,
    timeout = DEFAULT_TIMEOUT,
    retries = DEFAULT_RETRIES,
    backoff = DEFAULT_BACKOFF,
    fetch = globalThis.fetch,
  } = {}) {
    if (!url) throw new TypeError("no Tessera URL: pass { url } or set TESSERA_URL");
    /** The service's base URL, without a trailing slash. */
    this.url = String(url).replace(/\/+$/, "");
    this.#apiKey = apiKey;
    this.#timeout = timeout;
    this.#retries = retries;
    this.#backoff = backoff;
    this.#fetch = fetch;
  }

  /**
   * Sends one request, retrying an answer of 503 with backoff; nothing else is retried.
   * @returns {Promise<{ status: number, headers: Headers, body: Uint8Array }>}
   */
  async #send(method, pathAndQuery, { json, bytes, headers = {}, auth = true, retry = true } = {}) {
    const h = { ...headers };
    if (auth && this.#apiKey) h.authorization = `Bearer ${this.#apiKey}`;
    let body;
    if (json !== undefined) {
      h["content-type"] = "application/json";
      body = JSON.stringify(json);
    } else if (bytes !== undefined) {
      h["content-type"] = "application/octet-stream";
      body = bytes;
    }
    const target = `${this.url}${pathAndQuery}`;
    for (let attempt = 0; ; attempt++) {
      const signal = AbortSignal.timeout(this.#timeout);
      let answer;
      try {
        const r = await this.#fetch(target, { method, headers: h, body, signal, redirect: "manual" });
        answer = { status: r.status, headers: r.headers, body: new Uint8Array(await r.arrayBuffer()) };
      } catch (e) {
        const timeout = e?.name === "TimeoutError" || signal.aborted;
        const why = timeout ? `timed out after ${this.#timeout} ms` : (e?.cause?.message ?? e?.message ?? String(e));
        throw new TransportError(`${method} ${pathAndQuery.split("?")[0]}: ${why}`, { timeout, cause: e });
      }
      if (answer.status !== 503 || !retry || attempt >= this.#retries) return answer;
      await sleep(backoffDelay(attempt, this.#backoff));
    }
  }

  static #text(answer) {
    return new TextDecoder().decode(answer.body);
  }

  static #json(answer) {
    const text = Client.#text(answer);
    try {
      return JSON.parse(text);
    } catch {
      throw new ProtocolError(`not JSON: ${JSON.stringify(text.slice(0, 200))}`, { status: answer.status });
    }
  }

  /** Throws the problem of a 4xx/5xx answer. */
  static #check(answer) {
    if (answer.status >= 400) {
      let body;
      try {
        body = JSON.parse(Client.#text(answer));
      } catch {
        body = { type: "urn:tessera:problem:unknown", title: `HTTP ${answer.status}`, detail: Client.#text(answer).slice(0, 200) };
      }
      throw problemFrom(answer.status, body);
    }
    return answer;
  }

  static #checkKask(answer) {
    if (answer.status >= 400) {
      let body;
      try {
        body = JSON.parse(Client.#text(answer));
      } catch {
        body = {};
      }
      throw kaskErrorFrom(answer.status, body);
    }
    return answer;
  }

  async #call(op, { params, json, auth = true } = {}) {
    const o = OPERATIONS[op];
    return Client.#json(Client.#check(await this.#send(o.method, path(op, params), { json, auth })));
  }

  static #sessionResponse(v) {
    if (!isObject(v) || !Array.isArray(v.set_cookie)) {
      throw new ProtocolError("not a SessionResponse", { status: 200 });
    }
    return v;
  }

  // === sessions ===

  /** Reads (and renews) the session `cookie` names; `create` starts an anonymous one. */
  async resolve(cookie, { create, csrf_purpose, secrets, renew, storage } = {}) {
    const json = without({ cookie: cookie ?? "", create, csrf_purpose, secrets, renew, storage });
    return Client.#sessionResponse(await this.#call("resolve", { json }));
  }

  /** Sets and removes keys (per key: concurrent edits of other keys survive). */
  async update(cookie, { set, remove, secrets, remove_secrets, expiry, storage } = {}) {
    const json = without({ cookie: cookie ?? "", set, remove, secrets, remove_secrets, expiry, storage });
    return Client.#sessionResponse(await this.#call("update", { json }));
  }

  /** Binds a user to a new session (a new handle; the old session's data carried over). */
  async login(cookie, userId, { name, provider, claims, remember } = {}) {
    const user = without({ id: userId, name, provider });
    const json = without({ cookie: cookie ?? "", user, claims, remember });
    return Client.#sessionResponse(await this.#call("login", { json }));
  }

  /** Ends the session; `set_cookie` clears every cookie it set. */
  async logout(cookie) {
    return Client.#sessionResponse(await this.#call("logout", { json: { cookie: cookie ?? "" } }));
  }

  /** A new handle for the same session (kind, user, data, secrets, expiry), the old one retired at once. */
  async rotate(cookie) {
    return Client.#sessionResponse(await this.#call("rotate", { json: { cookie: cookie ?? "" } }));
  }

  /** Whether `token` is a valid CSRF token of the live session and purpose. */
  async checkCsrf(cookie, token, { purpose } = {}) {
    const json = without({ cookie: cookie ?? "", token, purpose });
    return (await this.#call("csrf_check", { json })).valid === true;
  }

  // === users ===

  /** The user's live sessions. */
  async listSessions(userId) {
    return (await this.#call("list_sessions", { params: { id: userId } })).sessions;
  }

  /** Logs the user out everywhere: every session and token issued up to now dies. */
  async revokeAll(userId) {
    return this.#call("revoke_all", { params: { id: userId } });
  }

  /** Ends one session of the user; throws `SessionNotFound` for a reference it does not have. */
  async revokeSession(userId, ref) {
    const o = OPERATIONS.revoke_one;
    Client.#check(await this.#send(o.method, path("revoke_one", { id: userId, ref })));
  }

  // === tokens ===

  /** A session token for a session that is not stored (an API client). */
  async mint(sub, claims = {}) {
    return (await this.#call("mint", { json: { sub, claims } })).token;
  }

  /** The JWK set that verifies session tokens. */
  async jwks() {
    return this.#call("jwks", { auth: false });
  }

  /** Asks the edge verifier about a `Cookie` and/or `Authorization` header. */
  async verify({ cookie, authorization } = {}) {
    const headers = without({ cookie, authorization });
    const r = await this.#send("GET", OPERATIONS.verify.path, { headers, auth: false });
    if (r.status !== 200 && r.status !== 401) {
      Client.#check(r);
      throw new ProtocolError(`unexpected status ${r.status}`, { status: r.status });
    }
    const subject = r.headers.get("x-tessera-subject");
    const claims = {};
    for (const [k, v] of r.headers) {
      if (k.startsWith("x-tessera-claim-")) claims[k.slice("x-tessera-claim-".length)] = v;
    }
    return {
      valid: r.status === 200 && subject !== null && subject !== "anon",
      status: r.status,
      subject,
      session: r.headers.get("x-tessera-session"),
      token_status: r.headers.get("x-tessera-token-status") ?? "",
      claims,
    };
  }

  /** The revocation feed after `after`; `null` when unchanged since `etag`. */
  async revocations({ after = 0, limit, etag } = {}) {
    const q = new URLSearchParams(without({ after: String(after), limit: limit === undefined ? undefined : String(limit) }));
    const headers = etag ? { "if-none-match": etag } : {};
    const r = await this.#send("GET", `${OPERATIONS.feed.path}?${q}`, { headers, auth: false });
    if (r.status === 304) return null;
    const feed = Client.#json(Client.#check(r));
    return { ...feed, etag: r.headers.get("etag") };
  }

  // === the Kask-compatible key-value API ===

  static #kaskPath(key) {
    const k = typeof key === "string" ? key : new TextDecoder().decode(key);
    if (k === "") throw new TypeError("a Kask key cannot be empty");
    if (k.includes("/")) throw new TypeError("a Kask key cannot contain '/'");
    return path("kask_get", { key: k });
  }

  /** The value under `key`, or `null`. */
  async kaskGet(key) {
    const r = await this.#send("GET", Client.#kaskPath(key));
    if (r.status === 404) return null;
    return Client.#checkKask(r).body;
  }

  /** Stores `value` (1 byte or more) under `key` with the server's TTL. */
  async kaskPut(key, value) {
    const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
    Client.#checkKask(await this.#send("POST", Client.#kaskPath(key), { bytes }));
  }

  /** Deletes the value under `key` (nothing there is fine). */
  async kaskDelete(key) {
    Client.#checkKask(await this.#send("DELETE", Client.#kaskPath(key)));
  }

  // === the keyed store (`/v1/kv`, express-session's Store) ===

  /** The value under `key` with its expiry (`ValueResponse`), or `null`. */
  async kvGet(namespace, key) {
    try {
      return await this.#call("kv_get", { params: { namespace, key } });
    } catch (e) {
      if (e instanceof KvNotFound) return null;
      throw e;
    }
  }

  /** Stores `value` (any JSON) under `key` for `ttl` seconds (cut to the server's `kv.max_ttl`). */
  async kvPut(namespace, key, value, ttl) {
    const o = OPERATIONS.kv_put;
    Client.#check(await this.#send(o.method, path("kv_put", { namespace, key }), { json: { value, ttl } }));
  }

  /** Gives the value under `key` a new TTL without rewriting it; throws `KvNotFound` if none is live. */
  async kvTouch(namespace, key, ttl) {
    const o = OPERATIONS.kv_touch;
    Client.#check(await this.#send(o.method, path("kv_touch", { namespace, key }), { json: { ttl } }));
  }

  /** Deletes the value under `key` (nothing there is fine). */
  async kvDelete(namespace, key) {
    const o = OPERATIONS.kv_delete;
    Client.#check(await this.#send(o.method, path("kv_delete", { namespace, key })));
  }

  /** How many values the namespace holds (a counter: no scan). */
  async kvCount(namespace) {
    return (await this.#call("kv_count", { params: { namespace } })).count;
  }

  /** Deletes every value of the namespace, in one write. */
  async kvClear(namespace) {
    const o = OPERATIONS.kv_clear;
    Client.#check(await this.#send(o.method, path("kv_clear", { namespace })));
  }

  // === operations ===

  /** Whether the process is up (`/healthz`). */
  async healthy() {
    const r = await this.#send("GET", OPERATIONS.healthz.path, { auth: false, retry: false });
    return r.status === 200;
  }

  /** Whether every store answers (`/readyz`); a 503 is an answer here, not retried. */
  async ready() {
    const r = await this.#send("GET", OPERATIONS.readyz.path, { auth: false, retry: false });
    if (r.status === 503) return false;
    Client.#check(r);
    return true;
  }

  /** The Prometheus metrics, as text. */
  async metrics() {
    return Client.#text(Client.#check(await this.#send("GET", OPERATIONS.metrics.path, { auth: false })));
  }

  /** The service's OpenAPI document. */
  async openapi() {
    return this.#call("openapi", { auth: false });
  }
}
