// The Express middleware against a real `tessera serve`, through supertest.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import express from "express";
import request from "supertest";
import { tessera, isUnavailable } from "tessera-sessions/express";

import { Client, errors } from "./helpers.js";
import { startRedis } from "./redis-server.js";
import { startTessera } from "./tessera-server.js";

const DEV = "[cookie]\ndevelopment = true\n";

/** A client that counts the requests it sends to Tessera. */
function countingClient(t) {
  const calls = [];
  const fetch = (url, init) => {
    calls.push(`${init.method} ${new URL(url).pathname}`);
    return globalThis.fetch(url, init);
  };
  const client = new Client({ url: t.url, apiKey: t.apiKey, fetch });
  return { client, calls };
}

function app(client) {
  const a = express();
  a.set("env", "test"); // no stack traces of the deliberate 500 in the test output
  a.use(express.urlencoded({ extended: false }));
  a.use(express.json());
  a.use(tessera({ client }));
  a.get("/static", (req, res) => res.send("no session needed"));
  a.get("/whoami", async (req, res) => {
    const user = await req.session.user();
    res.json({ user: user?.id ?? null, data: await req.session.data() });
  });
  a.post("/set", async (req, res) => {
    await req.session.set(req.body);
    res.json({ data: await req.session.data() });
  });
  a.post("/remove", async (req, res) => {
    await req.session.remove(req.body.keys);
    res.json({ data: await req.session.data() });
  });
  a.post("/login", async (req, res) => {
    const s = await req.session.login(req.body.user, { remember: req.body.remember === true });
    res.json({ user: s.user.id, ref: s.ref, setCookie: req.session.setCookie });
  });
  a.post("/login-then-fail", async (req) => {
    await req.session.login(req.body.user);
    throw new Error("a bug after the login");
  });
  a.post("/logout", async (req, res) => {
    await req.session.logout();
    res.json({ setCookie: req.session.setCookie });
  });
  a.post("/everywhere", async (req, res) => {
    res.json(await req.session.logoutEverywhere());
  });
  a.get("/csrf", async (req, res) => {
    res.json({ token: await req.session.csrfToken(req.query.purpose) });
  });
  a.post("/edit", async (req, res) => {
    if (!(await req.session.verifyCsrf(req.body.csrf, req.body.purpose))) return res.status(403).send("bad CSRF token");
    await req.session.set("page", req.body.text);
    res.send("saved");
  });
  a.get("/sessions", async (req, res) => res.json(await req.session.sessions()));
  a.post("/revoke", async (req, res) => {
    await req.session.revoke(req.body.ref);
    res.send("revoked");
  });
  a.post("/secret", async (req, res) => {
    await req.session.setSecret("oauth", req.body.value);
    res.json(await req.session.secrets());
  });
  a.get("/secret", async (req, res) => res.json(await req.session.secrets()));
  a.get("/maybe", async (req, res) => {
    try {
      res.json({ user: (await req.session.user())?.id ?? null });
    } catch (e) {
      if (isUnavailable(e)) return res.status(503).send("try again");
      throw e;
    }
  });
  a.use(tessera.unavailable());
  return a;
}

const setCookies = (r) => r.headers["set-cookie"] ?? [];
const names = (r) => setCookies(r).map((c) => c.split("=")[0]);

describe("the middleware, development cookies", () => {
  let t;
  let counted;
  let server;
  before(async () => {
    t = await startTessera(DEV);
    counted = countingClient(t);
    server = app(counted.client);
  });
  after(() => t?.stop());

  test("a request that never touches the session asks nothing of Tessera", async () => {
    counted.calls.length = 0;
    const r = await request(server).get("/static").set("Cookie", "tessera=uAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").expect(200);
    assert.deepEqual(counted.calls, []);
    assert.deepEqual(setCookies(r), []);
  });

  test("set, get and remove keys; an anonymous session lives in its sealed cookie", async () => {
    const agent = request.agent(server);
    counted.calls.length = 0;
    const r = await agent.post("/set").send({ theme: "dark", cart: [1, 2] }).expect(200);
    assert.deepEqual(counted.calls, ["POST /v1/session/update"], "one update, no resolve first");
    assert.deepEqual(r.body.data, { theme: "dark", cart: [1, 2] });
    assert.deepEqual(names(r), ["tessera-anon"]);
    assert.deepEqual((await agent.get("/whoami").expect(200)).body, { user: null, data: { theme: "dark", cart: [1, 2] } });
    assert.deepEqual((await agent.post("/remove").send({ keys: ["cart"] }).expect(200)).body.data, { theme: "dark" });
  });

  test("login forwards Tessera's Set-Cookie values untouched, and carries the data over", async () => {
    const agent = request.agent(server);
    await agent.post("/set").send({ theme: "light" }).expect(200);
    const r = await agent.post("/login").send({ user: "alice", remember: true }).expect(200);
    assert.deepEqual(setCookies(r), r.body.setCookie, "the values Tessera answered, in order");
    assert.ok(names(r).includes("tessera") && names(r).includes("tessera-token"), names(r).join());
    assert.match(setCookies(r).find((c) => c.startsWith("tessera=")), /Max-Age=\d+/, "remember-me: persistent");
    assert.match(r.headers.vary ?? "", /Cookie/);
    const who = (await agent.get("/whoami").expect(200)).body;
    assert.deepEqual(who, { user: "alice", data: { theme: "light" } });
  });

  test("no Set-Cookie on a 5xx answer", async () => {
    const r = await request(server).post("/login-then-fail").send({ user: "mallory" }).expect(500);
    assert.deepEqual(setCookies(r), []);
  });

  test("logout clears every cookie", async () => {
    const agent = request.agent(server);
    await agent.post("/login").send({ user: "bob" }).expect(200);
    const r = await agent.post("/logout").expect(200);
    assert.deepEqual(setCookies(r), r.body.setCookie);
    assert.ok(setCookies(r).every((c) => /Max-Age=0/.test(c)), setCookies(r).join("\n"));
    assert.equal((await agent.get("/whoami").expect(200)).body.user, null);
  });

  test("CSRF tokens: valid, forged, other purpose, other session", async () => {
    const agent = request.agent(server);
    await agent.post("/login").send({ user: "carol" }).expect(200);
    const { token } = (await agent.get("/csrf").expect(200)).body;
    assert.ok(token);
    await agent.post("/edit").type("form").send({ csrf: token, text: "hello" }).expect(200, "saved");
    await agent.post("/edit").type("form").send({ csrf: "A".repeat(54), text: "forged" }).expect(403);
    await agent.post("/edit").type("form").send({ text: "no token" }).expect(403);
    await agent.post("/edit").type("form").send({ csrf: token, text: "x", purpose: "delete" }).expect(403);
    const del = (await agent.get("/csrf?purpose=delete").expect(200)).body.token;
    await agent.post("/edit").type("form").send({ csrf: del, text: "deleted", purpose: "delete" }).expect(200);
    const other = request.agent(server);
    await other.post("/login").send({ user: "carol" }).expect(200);
    await other.post("/edit").type("form").send({ csrf: token, text: "stolen" }).expect(403);
    assert.equal((await agent.get("/whoami")).body.data.page, "deleted");
  });

  test("an anonymous visitor gets a CSRF token that works, then keeps it through a login form", async () => {
    const agent = request.agent(server);
    const r = await agent.get("/csrf").expect(200);
    assert.ok(r.body.token);
    assert.deepEqual(names(r), ["tessera-anon"]);
    await agent.post("/edit").type("form").send({ csrf: r.body.token, text: "anon" }).expect(200);
  });

  test("the user's sessions, revoke one, log out everywhere", async () => {
    const a = request.agent(server);
    const b = request.agent(server);
    const refA = (await a.post("/login").send({ user: "dave" }).expect(200)).body.ref;
    const refB = (await b.post("/login").send({ user: "dave" }).expect(200)).body.ref;
    const list = (await a.get("/sessions").expect(200)).body;
    assert.deepEqual(list.map((s) => s.ref).sort(), [refA, refB].sort());
    assert.deepEqual(list.filter((s) => s.current).map((s) => s.ref), [refA]);
    await a.post("/revoke").send({ ref: refB }).expect(200);
    assert.equal((await b.get("/whoami").expect(200)).body.user, null, "b was revoked");
    await b.post("/login").send({ user: "dave" }).expect(200);
    const done = (await a.post("/everywhere").expect(200)).body;
    assert.equal(done.revoked, 2);
    assert.equal((await a.get("/whoami").expect(200)).body.user, null);
    assert.equal((await b.get("/whoami").expect(200)).body.user, null);
  });

  test("a stale cookie: an edit starts a new session; a malformed cookie is cleared", async () => {
    const gone = "tessera=u" + "A".repeat(43);
    const r = await request(server).post("/set").set("Cookie", gone).send({ k: 1 }).expect(200);
    assert.deepEqual(r.body.data, { k: 1 });
    const bad = await request(server).get("/whoami").set("Cookie", "tessera=garbage").expect(200);
    assert.equal(bad.body.user, null);
    assert.ok(setCookies(bad).some((c) => c.startsWith("tessera=;")), setCookies(bad).join("\n"));
  });

  test("secrets", async () => {
    const agent = request.agent(server);
    await agent.post("/login").send({ user: "frank" }).expect(200);
    assert.deepEqual((await agent.post("/secret").send({ value: "refresh-1" }).expect(200)).body, { oauth: "refresh-1" });
    assert.deepEqual((await agent.get("/secret").expect(200)).body, { oauth: "refresh-1" });
    assert.equal((await agent.get("/whoami")).body.data.oauth, undefined, "a secret is not data");
  });
});

describe("the middleware, __Host- cookies", () => {
  let t;
  let server;
  before(async () => {
    t = await startTessera();
    server = app(new Client({ url: t.url, apiKey: t.apiKey }));
  });
  after(() => t?.stop());

  test("Tessera's cookies are forwarded byte for byte", async () => {
    const r = await request(server).post("/login").send({ user: "grace" }).expect(200);
    assert.deepEqual(setCookies(r), r.body.setCookie);
    for (const c of setCookies(r)) assert.match(c, /^__Host-tessera(-token)?=.+; Path=\/; Secure; HttpOnly; SameSite=Lax$/);
    const cookie = setCookies(r).map((c) => c.split(";")[0]).join("; ");
    assert.equal((await request(server).get("/whoami").set("Cookie", cookie).expect(200)).body.user, "grace");
  });
});

describe("the middleware when the store is down", () => {
  let redis;
  let t;
  let server;
  before(async () => {
    redis = await startRedis();
    t = await startTessera(DEV, { store: redis.url });
    server = app(new Client({ url: t.url, apiKey: t.apiKey, retries: 1, backoff: 1 }));
  });
  after(async () => {
    await t?.stop();
    await redis?.stop();
  });

  test("a route answers 503 rather than treating the user as logged out", async () => {
    const agent = request.agent(server);
    await agent.post("/login").send({ user: "heidi" }).expect(200);
    assert.equal((await agent.get("/whoami").expect(200)).body.user, "heidi");
    await redis.stop();
    const caught = await agent.get("/maybe").expect(503, "try again");
    assert.deepEqual(setCookies(caught), [], "no cookie removed");
    const handled = await agent.get("/whoami").expect(503);
    assert.equal(handled.headers["retry-after"], "5");
    assert.deepEqual(setCookies(handled), []);
    await agent.post("/set").send({ a: 1 }).expect(503);
  });
});

describe("the middleware when Tessera does not answer", () => {
  test("a TransportError is a 503 too", async () => {
    const client = new Client({ url: "http://127.0.0.1:9", retries: 0, timeout: 500 });
    const r = await request(app(client)).get("/whoami").set("Cookie", "tessera=x").expect(503);
    assert.deepEqual(setCookies(r), []);
    assert.ok(isUnavailable(new errors.TransportError("x")));
  });
});
