// Code written against the declarations, type-checked by `tsc --noEmit` (never run).

import {
  Client,
  OPERATIONS,
  ProblemError,
  SessionNotFound,
  StoreUnavailable,
  applySetCookies,
  type SessionResponse,
  type SessionView,
} from "tessera-sessions";

export async function example(cookie: string): Promise<string | null> {
  const client = new Client({ url: "http://127.0.0.1:7300", apiKey: "k", timeout: 2000, retries: 1 });
  const r: SessionResponse = await client.resolve(cookie, { create: true, csrf_purpose: "edit" });
  const s: SessionView | null | undefined = r.session;
  const login = await client.login(cookie, "alice", { remember: true, name: "Alice", claims: { rlc: "gold" } });
  const next = applySetCookies(cookie, login.set_cookie);
  await client.update(next, { set: { theme: "dark" }, remove: ["old"], secrets: { t: 1 }, remove_secrets: [] });
  const ok: boolean = await client.checkCsrf(next, r.csrf_token ?? "", { purpose: "edit" });
  for (const summary of await client.listSessions("alice")) {
    await client.revokeSession("alice", summary.ref);
  }
  const all = await client.revokeAll("alice");
  const n: number = all.revoked_at_ms;
  const token: string = await client.mint("svc", { rlc: "bronze" });
  const v = await client.verify({ authorization: `Bearer ${token}` });
  const feed = await client.revocations({ after: 0, limit: 10 });
  const value: Uint8Array | null = await client.kaskGet("k");
  await client.kaskPut("k", "v");
  try {
    await client.update(next, { set: { a: 1 } });
  } catch (e) {
    if (e instanceof SessionNotFound) return e.set_cookie.join(",");
    if (e instanceof StoreUnavailable) return String(e.status);
    if (e instanceof ProblemError) return e.code;
  }
  const method: string | undefined = OPERATIONS["resolve"]?.method;
  return [s?.user?.id, ok, n, v.subject, feed?.next, value?.length, method].join(",");
}
