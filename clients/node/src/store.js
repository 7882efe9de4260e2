// An express-session Store on Tessera's keyed store (`/v1/kv/{namespace}/{key}`):
// `app.use(session({ store: new TesseraStore({ url, apiKey }), ... }))`.
//
// express-session makes its own session ids and keeps them in its own signed cookie; the
// store keeps each session object as JSON under its id (Tessera stores the id's SHA-256, never
// the id), with the session cookie's expiry as the TTL. `touch` pushes the expiry without
// rewriting the value, `length` counts without a scan, `clear` empties the namespace in one
// write. There is no `all`: Tessera keeps no listing of a namespace.

import session from "express-session";

import { Client } from "./client.js";
import { KvNotFound } from "./errors.js";

const { Store } = session;

/** The TTL (seconds) of a session whose cookie has no expiry (a browser-session cookie). */
export const DEFAULT_TTL = 86_400;

/** The largest `ttl` the API takes (Tessera cuts it to its `kv.max_ttl`, 30 days by default). */
const MAX_TTL = 4_294_967_295;

/** Calls `cb` (if any) with the outcome of `promise`, on a later tick, never twice. */
function settle(promise, cb) {
  promise.then(
    (v) => cb && process.nextTick(cb, null, v),
    (e) => cb && process.nextTick(cb, e),
  );
}

export class TesseraStore extends Store {
  #client;

  /**
   * @param {object} [options]
   * @param {string} [options.url] Tessera's URL (default `TESSERA_URL`)
   * @param {string} [options.apiKey] its API key (default `TESSERA_API_KEY`)
   * @param {Client} [options.client] a client to use instead
   * @param {string} [options.namespace] the keyed store's namespace (default `express-sessions`)
   * @param {number | ((sess: object) => number)} [options.ttl] seconds for a session whose
   *   cookie has no expiry (default one day)
   * @param {boolean} [options.disableTouch] make `touch` do nothing
   */
  constructor({ client, namespace = "express-sessions", ttl = DEFAULT_TTL, disableTouch = false, ...options } = {}) {
    super();
    this.#client = client ?? new Client(options);
    this.namespace = namespace;
    this.ttl = ttl;
    this.disableTouch = disableTouch;
  }

  /** Seconds `sess` lives from now: its cookie's expiry, else the `ttl` option; 0 if past. */
  ttlOf(sess) {
    const expires = sess?.cookie?.expires;
    const seconds = expires
      ? (new Date(expires).getTime() - Date.now()) / 1000
      : typeof this.ttl === "function"
        ? this.ttl(sess)
        : this.ttl;
    // Whole seconds, as the API takes them; past the API's range is its `kv.max_ttl` anyway.
    return seconds > 0 ? Math.min(Math.ceil(seconds), MAX_TTL) : 0;
  }

  get(sid, cb) {
    settle(
      this.#client.kvGet(this.namespace, sid).then((r) => r?.value ?? null),
      cb,
    );
  }

  set(sid, sess, cb) {
    const ttl = this.ttlOf(sess);
    const done = ttl > 0 ? this.#client.kvPut(this.namespace, sid, sess, ttl) : this.#client.kvDelete(this.namespace, sid);
    settle(done.then(() => undefined), cb);
  }

  touch(sid, sess, cb) {
    if (this.disableTouch) return settle(Promise.resolve(), cb);
    const ttl = this.ttlOf(sess);
    const done =
      ttl > 0
        ? this.#client.kvTouch(this.namespace, sid, ttl).catch((e) => {
            // Gone meanwhile (destroyed, expired): there is nothing to keep alive.
            if (!(e instanceof KvNotFound)) throw e;
          })
        : this.#client.kvDelete(this.namespace, sid);
    settle(done.then(() => undefined), cb);
  }

  destroy(sid, cb) {
    settle(this.#client.kvDelete(this.namespace, sid), cb);
  }

  length(cb) {
    settle(this.#client.kvCount(this.namespace), cb);
  }

  clear(cb) {
    settle(this.#client.kvClear(this.namespace), cb);
  }
}

export default TesseraStore;
