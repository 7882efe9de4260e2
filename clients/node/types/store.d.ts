// The types of tessera-sessions/store: an express-session Store on Tessera's keyed store.

import { Store, type SessionData } from "express-session";

import type { Client, ClientOptions } from "tessera-sessions";

export interface TesseraStoreOptions extends ClientOptions {
  /** A client to use instead of one made from the other options. */
  client?: Client;
  /** The keyed store's namespace (default `express-sessions`). */
  namespace?: string;
  /** Seconds for a session whose cookie has no expiry (default 86400), or a function of it. */
  ttl?: number | ((sess: SessionData) => number);
  /** Make `touch` do nothing. */
  disableTouch?: boolean;
}

/** The TTL (seconds) of a session whose cookie has no expiry. */
export const DEFAULT_TTL: number;

/** `session({ store: new TesseraStore({ url, apiKey }) })`. */
export class TesseraStore extends Store {
  constructor(options?: TesseraStoreOptions);
  readonly namespace: string;
  /** Seconds `sess` lives from now: its cookie's expiry, else the `ttl` option; 0 if past. */
  ttlOf(sess: SessionData): number;
  get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void;
  set(sid: string, session: SessionData, callback?: (err?: unknown) => void): void;
  touch(sid: string, session: SessionData, callback?: (err?: unknown) => void): void;
  destroy(sid: string, callback?: (err?: unknown) => void): void;
  length(callback: (err: unknown, length?: number) => void): void;
  clear(callback?: (err?: unknown) => void): void;
}

export default TesseraStore;
