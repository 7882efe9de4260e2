// The Express middleware: `app.use(tessera({ url, apiKey }))` gives every request
// `req.session`, a handle on the Tessera session the browser's cookies name.
//
// - Lazy: nothing is asked of Tessera until a route calls a method of `req.session`.
// - Every method is awaited and does its work at once: `set` and `remove` are one `update`
//   (per key: two requests changing different keys both keep their change), `login` is a
//   Tessera login (a new handle, the user index, session tokens).
// - Tessera's `Set-Cookie` values are forwarded untouched when the response's headers are
//   written, one per name, and never on a 5xx answer.
// - When Tessera's store is down the methods throw (`StoreUnavailable`, or `TransportError`
//   when Tessera does not answer) rather than answer "no session": a route can answer 503
//   (`tessera.unavailable()` is an error handler that does) instead of logging the user out.

import { Client } from "./client.js";
import { applySetCookies, mergeSetCookies } from "./cookies.js";
import { MalformedCookie, SessionNotFound, StoreUnavailable, TransportError } from "./errors.js";

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/** `req.session`: the Tessera session of one request. */
export class TesseraSession {
  #client;
  #cookie;
  #result = null;
  #loading = null;
  #secrets = null;
  #setCookie = [];
  #csrf = new Map();
  #wasLive = false;

  /**
   * @param {Client} client
   * @param {string} cookie the request's `Cookie` header
   */
  constructor(client, cookie) {
    this.#client = client;
    this.#cookie = cookie ?? "";
  }

  /** The `Set-Cookie` values to send, so far (one per name, in order). */
  get setCookie() {
    return [...this.#setCookie];
  }

  /** The `Cookie` header as the browser will send it once it has the cookies so far. */
  get cookie() {
    return this.#cookie;
  }

  /** Tessera's last answer about this session, or `null` before the first call. */
  get result() {
    return this.#result;
  }

  #follow(r, purpose) {
    this.#cookie = applySetCookies(this.#cookie, r.set_cookie);
    this.#setCookie = mergeSetCookies(this.#setCookie, r.set_cookie);
    this.#result = r;
    if (r.session) this.#wasLive = true;
    if (r.csrf_token) this.#csrf.set(purpose ?? "", r.csrf_token);
    return r;
  }

  /** A new session (login, logout): its keys, CSRF tokens and secrets are new. */
  #reset() {
    this.#csrf.clear();
    this.#secrets = null;
  }

  async #resolve(options = {}) {
    try {
      return this.#follow(await this.#client.resolve(this.#cookie, options), options.csrf_purpose);
    } catch (e) {
      // A cookie Tessera never issued: clear it, and the request has no session.
      if (e instanceof MalformedCookie) {
        this.#follow({ session: null, set_cookie: e.set_cookie, status: "none", token_status: "none" });
        return this.#follow(await this.#client.resolve(this.#cookie, options), options.csrf_purpose);
      }
      throw e;
    }
  }

  /**
   * The live session (`SessionView`), or `null`: resolved at the first call, then kept.
   * Throws `StoreUnavailable` or `TransportError` when Tessera cannot say.
   */
  async load() {
    if (this.#result) return this.#result.session ?? null;
    this.#loading ??= this.#resolve().finally(() => (this.#loading = null));
    await this.#loading;
    return this.#result.session ?? null;
  }

  /** The logged-in user (`UserView`), or `null`. */
  async user() {
    return (await this.load())?.user ?? null;
  }

  /** The value of a key, or `undefined`. */
  async get(key) {
    const data = (await this.load())?.data ?? {};
    return Object.hasOwn(data, key) ? data[key] : undefined;
  }

  /** Every key and value. */
  async data() {
    return { ...((await this.load())?.data ?? {}) };
  }

  async #update(edits) {
    try {
      return this.#follow(await this.#client.update(this.#cookie, edits));
    } catch (e) {
      if (!(e instanceof SessionNotFound || e instanceof MalformedCookie)) throw e;
      // The cookie names no live session: clear it. If this request never saw it live, the
      // visitor simply has a stale cookie: the edit goes into a new anonymous session. If it
      // did (it was logged out meanwhile), the edit is refused rather than moved elsewhere.
      this.#follow({ session: null, set_cookie: e.set_cookie, status: "none", token_status: "none" });
      if (this.#wasLive) throw e;
      return this.#follow(await this.#client.update(this.#cookie, edits));
    }
  }

  /** Sets one key (`set(key, value)`) or several (`set({ key: value, ... })`), in one update. */
  async set(keyOrValues, value) {
    const values = isObject(keyOrValues) ? keyOrValues : { [keyOrValues]: value };
    if (Object.keys(values).length === 0) return;
    await this.#update({ set: values });
  }

  /** Removes keys, in one update. */
  async remove(...keys) {
    const list = keys.flat();
    if (list.length === 0) return;
    await this.#update({ remove: list });
  }

  /** The session's secrets (values kept from every client; only in the store). */
  async secrets() {
    if (this.#secrets === null) {
      const r = await this.#resolve({ secrets: true });
      this.#secrets = { ...(r.session?.secrets ?? {}) };
    }
    return { ...this.#secrets };
  }

  /** Sets one secret or several. */
  async setSecret(keyOrValues, value) {
    const values = isObject(keyOrValues) ? keyOrValues : { [keyOrValues]: value };
    await this.#update({ secrets: values });
    if (this.#secrets) Object.assign(this.#secrets, values);
  }

  /** Removes secrets. */
  async removeSecret(...keys) {
    const list = keys.flat();
    await this.#update({ remove_secrets: list });
    if (this.#secrets) for (const k of list) delete this.#secrets[k];
  }

  /**
   * Logs `userId` in: a new session under a new handle (the fixation defence), carrying this
   * one's data, in the user's index, with a session token cookie when tokens are on.
   * @param {string} userId
   * @param {{ remember?: boolean, name?: string, provider?: string, claims?: object }} [options]
   */
  async login(userId, options = {}) {
    const r = await this.#client.login(this.#cookie, userId, options);
    this.#reset();
    return this.#follow(r).session;
  }

  /** Ends the session; every cookie it set is cleared. */
  async logout() {
    const r = await this.#client.logout(this.#cookie);
    this.#reset();
    this.#follow(r);
  }

  /**
   * Logs the user out everywhere (every session and token issued up to now dies), this
   * session included. Returns `RevokeAllResponse`, or `null` when nobody was logged in.
   */
  async logoutEverywhere() {
    const user = await this.user();
    const done = user ? await this.#client.revokeAll(user.id) : null;
    await this.logout();
    return done;
  }

  /**
   * A CSRF token of this session for `purpose` (Tessera's default purpose when omitted). A
   * visitor without a session gets one (client-side by default: no store write).
   */
  async csrfToken(purpose) {
    const known = this.#csrf.get(purpose ?? "");
    if (known) return known;
    const r = await this.#resolve(purpose === undefined ? { create: true } : { create: true, csrf_purpose: purpose });
    return r.csrf_token ?? null;
  }

  /** Whether `token` is a valid CSRF token of this session for `purpose`. */
  async verifyCsrf(token, purpose) {
    if (typeof token !== "string" || token === "") return false;
    return this.#client.checkCsrf(this.#cookie, token, purpose === undefined ? {} : { purpose });
  }

  /** The logged-in user's live sessions (`SessionSummary` and `current`), or `[]`. */
  async sessions() {
    const s = await this.load();
    if (!s?.user) return [];
    const list = await this.#client.listSessions(s.user.id);
    return list.map((x) => ({ ...x, current: x.ref === s.ref }));
  }

  /** Ends one of the logged-in user's sessions by its reference (this one: a logout). */
  async revoke(ref) {
    const s = await this.load();
    if (!s?.user) throw new SessionNotFound({ status: 404, type: "urn:tessera:problem:session-not-found", title: "Session not found", detail: "nobody is logged in" });
    await this.#client.revokeSession(s.user.id, ref);
    if (ref === s.ref) await this.logout();
  }
}

/** Runs `fn(statusCode)` once, just before the response's headers are written. */
function beforeHeaders(res, fn) {
  const writeHead = res.writeHead;
  let done = false;
  res.writeHead = function (statusCode, ...rest) {
    if (!done) {
      done = true;
      fn(typeof statusCode === "number" ? statusCode : this.statusCode);
    }
    return writeHead.call(this, statusCode, ...rest);
  };
}

/**
 * The middleware.
 * @param {object} [options]
 * @param {string} [options.url] Tessera's URL (default `TESSERA_URL`)
 * @param {string} [options.apiKey] its API key (default `TESSERA_API_KEY`)
 * @param {Client} [options.client] a client to use instead (then the other options are unused)
 * @param {string} [options.property] the request property (default `session`)
 */
export function tessera({ client, property = "session", ...options } = {}) {
  const c = client ?? new Client(options);
  return function tesseraSession(req, res, next) {
    const session = new TesseraSession(c, req.headers.cookie);
    req[property] = session;
    beforeHeaders(res, (status) => {
      const cookies = session.setCookie;
      if (status >= 500 || cookies.length === 0) return;
      res.appendHeader("Set-Cookie", cookies);
      res.appendHeader("Vary", "Cookie");
    });
    next();
  };
}

/** Whether `err` means Tessera could not answer (its store down, or Tessera itself). */
export function isUnavailable(err) {
  return err instanceof StoreUnavailable || err instanceof TransportError;
}

/**
 * An Express error handler answering 503 (with `Retry-After`) when Tessera could not answer,
 * rather than treating the user as logged out; every other error goes on to the next handler.
 */
tessera.unavailable = function unavailable({ retryAfter = 5, body = "The session service is unavailable; try again shortly.\n" } = {}) {
  return function tesseraUnavailable(err, req, res, next) {
    if (!isUnavailable(err) || res.headersSent) return next(err);
    res.status(503).set("Retry-After", String(retryAfter)).type("text/plain").send(body);
  };
};

export default tessera;
