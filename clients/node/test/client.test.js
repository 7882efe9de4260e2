// The client against a real `tessera serve` (and, for retries and timeouts, against fakes).

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import { Client, applySetCookies, errors } from "./helpers.js";
import { startTessera } from "./tessera-server.js";

let tessera;
let client;

before(async () => {
  tessera = await startTessera();
  client = new Client({ url: tessera.url, apiKey: tessera.apiKey });
});
after(() => tessera?.stop());

describe("sessions", () => {
  test("an empty cookie resolves to no session", async () => {
    const r = await client.resolve("");
    assert.equal(r.session, null);
    assert.equal(r.status, "none");
    assert.deepEqual(r.set_cookie, []);
  });

  test("update creates an anonymous session that resolves", async () => {
    const r = await client.update("", { set: { cart: [1, 2] } });
    assert.equal(r.session.kind, "anonymous");
    assert.equal(r.session.user, null);
    const cookie = applySetCookies("", r.set_cookie);
    const again = await client.resolve(cookie);
    assert.deepEqual(again.session.data, { cart: [1, 2] });
    assert.ok(again.csrf_token);
  });

  test("login, CSRF, the user's sessions, revoke one, logout", async () => {
    const anon = applySetCookies("", (await client.update("", { set: { theme: "dark" } })).set_cookie);
    const r = await client.login(anon, "alice", { name: "Alice", claims: { rlc: "gold" } });
    assert.equal(r.session.user.id, "alice");
    assert.equal(r.session.user.name, "Alice");
    assert.deepEqual(r.session.data, { theme: "dark" }, "the anonymous data is carried over");
    assert.equal(r.token_status, "issued");
    assert.ok(r.set_cookie.some((c) => c.startsWith("__Host-tessera-token=")), r.set_cookie.join("\n"));
    const cookie = applySetCookies(anon, r.set_cookie);
    assert.equal(await client.checkCsrf(cookie, r.csrf_token), true);
    assert.equal(await client.checkCsrf(cookie, r.csrf_token, { purpose: "other" }), false);

    const refs = (await client.listSessions("alice")).map((s) => s.ref);
    assert.ok(refs.includes(r.session.ref));
    await client.revokeSession("alice", r.session.ref);
    await assert.rejects(client.revokeSession("alice", r.session.ref), (e) => {
      assert.ok(e instanceof errors.SessionNotFound);
      assert.ok(e instanceof errors.ProblemError);
      assert.equal(e.status, 404);
      assert.equal(e.type, "urn:tessera:problem:session-not-found");
      assert.equal(e.code, "session-not-found");
      return true;
    });
    const out = await client.logout(cookie);
    assert.equal(out.session, null);
    assert.equal(out.status, "logged_out");
  });

  test("secrets are returned only when asked for", async () => {
    const r = await client.update("", { set: { a: 1 }, secrets: { oauth: "refresh-token" } });
    const cookie = applySetCookies("", r.set_cookie);
    assert.equal((await client.resolve(cookie)).session.secrets ?? null, null);
    assert.deepEqual((await client.resolve(cookie, { secrets: true })).session.secrets, { oauth: "refresh-token" });
    await client.update(cookie, { remove_secrets: ["oauth"], remove: ["a"] });
    const s = (await client.resolve(cookie, { secrets: true })).session;
    assert.deepEqual(s.secrets, {});
    assert.deepEqual(s.data, {});
  });

  test("rotate: a new handle for the same session, the old one dead", async () => {
    const r = await client.login("", "rita");
    const cookie = applySetCookies("", r.set_cookie);
    const rotated = await client.rotate(cookie);
    assert.equal(rotated.session.user.id, "rita");
    const next = applySetCookies(cookie, rotated.set_cookie);
    assert.notEqual(next, cookie);
    assert.equal((await client.resolve(next)).session.user.id, "rita");
    assert.equal((await client.resolve(cookie)).session, null, "the old handle is retired");
  });

  test("a CSRF token for a purpose", async () => {
    const cookie = applySetCookies("", (await client.login("", "carol")).set_cookie);
    const r = await client.resolve(cookie, { csrf_purpose: "delete" });
    assert.equal(await client.checkCsrf(cookie, r.csrf_token, { purpose: "delete" }), true);
    assert.equal(await client.checkCsrf(cookie, r.csrf_token), false);
  });

  test("log out everywhere reaches the revocation feed", async () => {
    const cookie = applySetCookies("", (await client.login("", "bob")).set_cookie);
    const before = await client.revocations();
    const done = await client.revokeAll("bob");
    assert.equal(done.revoked, 1);
    assert.ok(done.revoked_at_ms > 0);
    assert.equal((await client.resolve(cookie)).session, null);
    const feed = await client.revocations({ after: before.next });
    assert.ok(feed.revocations.some((e) => e.kind === "user" && e.id === "bob"));
    assert.equal(await client.revocations({ after: before.next, etag: feed.etag }), null, "304: unchanged");
    await assert.rejects(client.revocations({ limit: 0 }), errors.InvalidQuery);
  });
});

describe("problems", () => {
  test("a malformed cookie, with the removal cookie to send", async () => {
    await assert.rejects(client.resolve("__Host-tessera=not-a-handle"), (e) => {
      assert.ok(e instanceof errors.MalformedCookie);
      assert.equal(e.status, 400);
      assert.ok(e.set_cookie.some((c) => c.startsWith("__Host-tessera=;")), e.set_cookie.join("\n"));
      return true;
    });
  });

  test("an update of a session that is gone", async () => {
    const cookie = applySetCookies("", (await client.login("", "dave")).set_cookie);
    await client.logout(cookie);
    await assert.rejects(client.update(cookie, { set: { a: 1 } }), (e) => {
      assert.ok(e instanceof errors.SessionNotFound);
      assert.ok(e.set_cookie.length > 0);
      return true;
    });
  });

  test("a wrong API key", async () => {
    const bad = new Client({ url: tessera.url, apiKey: "wrong-key-0123456789abcdef0123456789" });
    await assert.rejects(bad.resolve(""), errors.Unauthorized);
    await assert.rejects(bad.kaskGet("k"), (e) => e instanceof errors.KaskError && e.kind === "not_authorized" && e.status === 401);
  });

  test("invalid content is a 422", async () => {
    await assert.rejects(client.login("", ""), errors.InvalidRequest);
    await assert.rejects(client.update("", { set: { "": 1 } }), errors.InvalidRequest);
    await assert.rejects(client.mint("x", { exp: 1 }), errors.InvalidRequest);
  });

  test("an unknown problem code is a ProblemError", () => {
    const e = errors.problemFrom(418, { type: "urn:tessera:problem:teapot", title: "t", detail: "d" });
    assert.equal(e.constructor, errors.ProblemError);
    assert.equal(e.code, "teapot");
    assert.equal(errors.problemFrom(500, "not an object").constructor, errors.ProblemError);
  });
});

describe("tokens and the verifier", () => {
  test("a minted token verifies; the JWK set names its key", async () => {
    const token = await client.mint("api-client-1", { rlc: "gold" });
    const v = await client.verify({ authorization: `Bearer ${token}` });
    assert.equal(v.valid, true);
    assert.equal(v.status, 200);
    assert.equal(v.subject, "api-client-1");
    assert.equal(v.token_status, "ok");
    const header = JSON.parse(Buffer.from(token.split(".")[0], "base64url"));
    assert.ok((await client.jwks()).keys.some((k) => k.kid === header.kid));
  });

  test("no token is not valid", async () => {
    const v = await client.verify({});
    assert.equal(v.valid, false);
    assert.equal(v.token_status, "none");
  });

  test("a login's token cookie verifies", async () => {
    const r = await client.login("", "erin");
    const v = await client.verify({ cookie: applySetCookies("", r.set_cookie) });
    assert.equal(v.valid, true);
    assert.equal(v.subject, "erin");
    assert.equal(v.session, r.session.sid);
  });
});

describe("the Kask-compatible API", () => {
  test("put, get, delete", async () => {
    assert.equal(await client.kaskGet("nothing-here"), null);
    await client.kaskPut("a:b c", "value é");
    assert.equal(new TextDecoder().decode(await client.kaskGet("a:b c")), "value é");
    await client.kaskPut(new TextEncoder().encode("bin"), new Uint8Array([0, 255]));
    assert.deepEqual([...(await client.kaskGet("bin"))], [0, 255]);
    await client.kaskDelete("a:b c");
    await client.kaskDelete("a:b c");
    assert.equal(await client.kaskGet("a:b c"), null);
  });

  test("bad keys and values", async () => {
    await assert.rejects(client.kaskGet("a/b"), TypeError);
    await assert.rejects(client.kaskGet(""), TypeError);
    await assert.rejects(client.kaskPut("k", ""), (e) => e instanceof errors.KaskError && e.kind === "bad_request");
    await assert.rejects(client.kaskPut("k".repeat(1025), "v"), (e) => e.status === 400);
  });
});

describe("operations", () => {
  test("healthy, ready, metrics, the OpenAPI document", async () => {
    assert.equal(await client.healthy(), true);
    assert.equal(await client.ready(), true);
    assert.match(await client.metrics(), /tessera_/);
    assert.equal((await client.openapi()).openapi.slice(0, 3), "3.1");
  });
});

describe("transport", () => {
  const answer = (status, body) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/problem+json" } });
  const unavailable = () => answer(503, { type: "urn:tessera:problem:store-unavailable", title: "t", detail: "d", status: 503 });
  const ok = () => answer(200, { session: null, set_cookie: [], status: "none", token_status: "none" });
  const counting = (...answers) => {
    const f = async () => {
      f.calls++;
      return answers[Math.min(f.calls, answers.length) - 1]();
    };
    f.calls = 0;
    return f;
  };

  test("a 503 is retried with backoff, then succeeds", async () => {
    const fetch = counting(unavailable, unavailable, ok);
    const c = new Client({ url: "http://tessera.invalid", fetch, retries: 2, backoff: 1 });
    assert.equal((await c.resolve("")).status, "none");
    assert.equal(fetch.calls, 3);
  });

  test("a 503 after every retry throws StoreUnavailable", async () => {
    const fetch = counting(unavailable);
    const c = new Client({ url: "http://tessera.invalid", fetch, retries: 3, backoff: 1 });
    await assert.rejects(c.update("", { set: { a: 1 } }), errors.StoreUnavailable);
    assert.equal(fetch.calls, 4);
  });

  test("nothing but a 503 is retried", async () => {
    for (const [status, code, cls] of [
      [500, "internal", errors.Internal],
      [409, "contention", errors.Contention],
      [422, "invalid-request", errors.InvalidRequest],
    ]) {
      const fetch = counting(() => answer(status, { type: `urn:tessera:problem:${code}`, title: "t", detail: "d" }));
      const c = new Client({ url: "http://tessera.invalid", fetch, backoff: 1 });
      await assert.rejects(c.resolve(""), cls);
      assert.equal(fetch.calls, 1, code);
    }
  });

  test("the backoff is full jitter, doubling, capped", async () => {
    const { backoffDelay, MAX_BACKOFF } = await import("../src/index.js");
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(3, 100);
      assert.ok(d >= 0 && d < 800, String(d));
      assert.ok(backoffDelay(20, 100) <= MAX_BACKOFF);
    }
  });

  test("a service that does not answer times out", async () => {
    const silent = createServer(() => {});
    await new Promise((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const c = new Client({ url: `http://127.0.0.1:${silent.address().port}`, timeout: 200 });
      const started = Date.now();
      await assert.rejects(c.resolve(""), (e) => e instanceof errors.TransportError && e.timeout === true);
      assert.ok(Date.now() - started < 5000);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  test("a refused connection is a TransportError", async () => {
    const closed = createServer();
    await new Promise((r) => closed.listen(0, "127.0.0.1", r));
    const port = closed.address().port;
    await new Promise((r) => closed.close(r));
    const c = new Client({ url: `http://127.0.0.1:${port}`, retries: 0 });
    await assert.rejects(c.resolve(""), (e) => e instanceof errors.TransportError && e.timeout === false);
  });

  test("a URL is needed", () => {
    const saved = process.env.TESSERA_URL;
    delete process.env.TESSERA_URL;
    try {
      assert.throws(() => new Client(), TypeError);
    } finally {
      if (saved !== undefined) process.env.TESSERA_URL = saved;
    }
  });
});
