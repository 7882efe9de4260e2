// The types of tessera-sessions/express: the middleware and `req.session`.

import type { IncomingMessage, ServerResponse } from "node:http";

import type {
  Client,
  ClientOptions,
  JsonObject,
  JsonValue,
  RevokeAllResponse,
  SessionResponse,
  SessionSummary,
  SessionView,
  UserView,
} from "tessera-sessions";

/** One of the user's sessions, as `req.session.sessions()` lists them. */
export interface ListedSession extends SessionSummary {
  /** Whether it is the session of this request. */
  current: boolean;
}

export interface LoginOptions {
  /** A remember-me session: longer lifetimes, a persistent cookie. */
  remember?: boolean;
  name?: string | null;
  provider?: string | null;
  /** Custom claims of the session tokens (at most 1 KiB of JSON). */
  claims?: JsonObject;
}

/** `req.session`: the Tessera session of one request. Every method calls Tessera at once. */
export class TesseraSession {
  constructor(client: Client, cookie: string | undefined);
  /** The `Set-Cookie` values to send, so far (forwarded by the middleware). */
  readonly setCookie: string[];
  /** The `Cookie` header as the browser will send it once it has the cookies so far. */
  readonly cookie: string;
  /** Tessera's last answer about this session, or `null` before the first call. */
  readonly result: SessionResponse | null;

  /** The live session, or `null`: resolved at the first call, then kept. Throws when Tessera cannot say. */
  load(): Promise<SessionView | null>;
  user(): Promise<UserView | null>;
  get(key: string): Promise<JsonValue | undefined>;
  data(): Promise<JsonObject>;
  set(key: string, value: JsonValue): Promise<void>;
  set(values: JsonObject): Promise<void>;
  remove(...keys: (string | string[])[]): Promise<void>;

  secrets(): Promise<JsonObject>;
  setSecret(key: string, value: JsonValue): Promise<void>;
  setSecret(values: JsonObject): Promise<void>;
  removeSecret(...keys: (string | string[])[]): Promise<void>;

  /** A new session under a new handle for `userId`, carrying this one's data. */
  login(userId: string, options?: LoginOptions): Promise<SessionView>;
  logout(): Promise<void>;
  /** Every session and token of the user issued up to now dies, this one included. */
  logoutEverywhere(): Promise<RevokeAllResponse | null>;

  csrfToken(purpose?: string): Promise<string | null>;
  verifyCsrf(token: unknown, purpose?: string): Promise<boolean>;

  sessions(): Promise<ListedSession[]>;
  revoke(ref: string): Promise<void>;
}

export interface TesseraOptions extends ClientOptions {
  /** A client to use instead of one made from the other options. */
  client?: Client;
  /** The request property (default `session`). */
  property?: string;
}

type Next = (err?: unknown) => void;
type Middleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;
type ErrorMiddleware = (err: unknown, req: IncomingMessage, res: ServerResponse, next: Next) => void;

export interface TesseraMiddleware {
  (options?: TesseraOptions): Middleware;
  /** An error handler answering 503 with `Retry-After` when Tessera could not answer. */
  unavailable(options?: { retryAfter?: number; body?: string }): ErrorMiddleware;
}

/** `app.use(tessera({ url, apiKey }))`: `req.session` on every request. */
export const tessera: TesseraMiddleware;
export default tessera;

/** Whether `err` means Tessera could not answer (`StoreUnavailable` or `TransportError`). */
export function isUnavailable(err: unknown): boolean;

declare global {
  namespace Express {
    interface Request {
      /** The Tessera session (tessera-sessions/express). */
      session: TesseraSession;
    }
  }
}
