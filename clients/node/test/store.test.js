// The express-session Store against a real `tessera serve`: its contract called directly,
// then through express-session itself with supertest.

import assert from "node:assert/strict";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";

import express from "express";
import session from "express-session";
import request from "supertest";
import { TesseraStore, DEFAULT_TTL } from "tessera-sessions/store";

import { Client, errors } from "./helpers.js";
import { startRedis } from "./redis-server.js";
import { startTessera } from "./tessera-server.js";

let tessera;
let client;

before(async () => {
  tessera = await startTessera();
  client = new Client({ url: tessera.url, apiKey: tessera.apiKey });
});
after(() => tessera?.stop());

/** The store's methods, promisified. */
function api(store) {
  return {
    get: promisify(store.get.bind(store)),
    set: promisify(store.set.bind(store)),
    touch: promisify(store.touch.bind(store)),
    destroy: promisify(store.destroy.bind(store)),
    length: promisify(store.length.bind(store)),
    clear: promisify(store.clear.bind(store)),
  };
}

const inSeconds = (s) => new Date(Date.now() + s * 1000);
const sess = (expires, extra = {}) => ({ cookie: { originalMaxAge: null, expires, httpOnly: true, path: "/" }, ...extra });

describe("the Store contract", () => {
  test("set, get, destroy; get of nothing is null", async () => {
    const store = new TesseraStore({ client, namespace: "contract-1" });
    const s = api(store);
    assert.equal(await s.get("nope"), null);
    const value = sess(inSeconds(600).toISOString(), { views: 3, user: { id: "alice", roles: ["a"] } });
    await s.set("sid-1", value);
    assert.deepEqual(await s.get("sid-1"), value);
    await s.destroy("sid-1");
    await s.destroy("sid-1");
    assert.equal(await s.get("sid-1"), null);
  });

  test("the cookie's expiry is the TTL; without one, the ttl option", async () => {
    const store = new TesseraStore({ client, namespace: "contract-2", ttl: 1234 });
    const s = api(store);
    await s.set("a", sess(inSeconds(600)));
    const a = await client.kvGet("contract-2", "a");
    assert.ok(a.ttl > 590 && a.ttl <= 600, String(a.ttl));
    await s.set("b", sess(null));
    const b = await client.kvGet("contract-2", "b");
    assert.ok(b.ttl > 1224 && b.ttl <= 1234, String(b.ttl));
    assert.equal(new TesseraStore({ client }).ttlOf(sess(null)), DEFAULT_TTL);
    assert.equal(new TesseraStore({ client, ttl: () => 7 }).ttlOf(sess(null)), 7);
  });

  test("a cookie already expired deletes the session", async () => {
    const s = api(new TesseraStore({ client, namespace: "contract-3" }));
    await s.set("x", sess(inSeconds(600)));
    await s.set("x", sess(inSeconds(-1)));
    assert.equal(await s.get("x"), null);
  });

  test("touch pushes the expiry without rewriting the value; touching nothing is fine", async () => {
    const store = new TesseraStore({ client, namespace: "contract-4" });
    const s = api(store);
    await s.set("t", sess(inSeconds(60), { n: 1 }));
    await s.touch("t", sess(inSeconds(3600), { n: 2 }));
    const v = await client.kvGet("contract-4", "t");
    assert.ok(v.ttl > 3500, String(v.ttl));
    assert.equal(v.value.n, 1, "the value is not rewritten");
    await s.touch("gone", sess(inSeconds(60)));
    assert.equal(await s.get("gone"), null, "touch creates nothing");
    const off = api(new TesseraStore({ client, namespace: "contract-4", disableTouch: true }));
    await off.touch("t", sess(inSeconds(10)));
    assert.ok((await client.kvGet("contract-4", "t")).ttl > 3500);
  });

  test("length counts and clear empties the namespace, others untouched", async () => {
    const s = api(new TesseraStore({ client, namespace: "contract-5" }));
    const other = api(new TesseraStore({ client, namespace: "contract-5b" }));
    for (const id of ["a", "b", "c"]) await s.set(id, sess(inSeconds(60)));
    await other.set("a", sess(inSeconds(60)));
    assert.equal(await s.length(), 3);
    await s.destroy("b");
    assert.equal(await s.length(), 2);
    await s.clear();
    assert.equal(await s.length(), 0);
    assert.equal(await s.get("a"), null);
    assert.equal(await other.length(), 1);
    assert.notEqual(await other.get("a"), null);
  });

  test("ids with any characters are keys", async () => {
    const s = api(new TesseraStore({ client, namespace: "contract-6" }));
    for (const id of ["a/b", "sp ace", "%2F", "é", "x".repeat(1024)]) {
      await s.set(id, sess(inSeconds(60), { id }));
      assert.equal((await s.get(id)).id, id, id);
    }
  });

  test("no all(): Tessera keeps no listing of a namespace", () => {
    assert.equal(typeof new TesseraStore({ client }).all, "undefined");
  });

  test("callbacks are optional where express-session allows", async () => {
    const store = new TesseraStore({ client, namespace: "contract-7" });
    store.set("k", sess(inSeconds(60)));
    store.touch("k", sess(inSeconds(60)));
    store.destroy("k");
    store.clear();
    await new Promise((r) => setTimeout(r, 200));
  });
});

describe("the Store when the store is down", () => {
  let redis;
  let t;
  before(async () => {
    redis = await startRedis();
    t = await startTessera("", { store: redis.url });
  });
  after(async () => {
    await t?.stop();
    await redis?.stop();
  });

  test("every method calls back with StoreUnavailable, never 'no session'", async () => {
    const s = api(new TesseraStore({ client: new Client({ url: t.url, apiKey: t.apiKey, retries: 1, backoff: 1 }), namespace: "down" }));
    await redis.stop();
    for (const call of [() => s.get("k"), () => s.set("k", sess(inSeconds(60))), () => s.touch("k", sess(inSeconds(60))), () => s.destroy("k"), () => s.length(), () => s.clear()]) {
      await assert.rejects(call(), errors.StoreUnavailable);
    }
  });
});

describe("through express-session", () => {
  let store;
  let app;
  before(() => {
    store = new TesseraStore({ client, namespace: "express" });
    app = express();
    app.set("env", "test");
    app.use(
      session({
        store,
        secret: "a secret of the test, long enough 0123456789",
        resave: false,
        saveUninitialized: false,
        rolling: false,
        cookie: { maxAge: 3_600_000, httpOnly: true, sameSite: "lax" },
      }),
    );
    app.get("/views", (req, res) => {
      req.session.views = (req.session.views ?? 0) + 1;
      res.json({ views: req.session.views, id: req.sessionID });
    });
    app.get("/peek", (req, res) => res.json({ views: req.session.views ?? null }));
    app.post("/login", (req, res, next) =>
      req.session.regenerate((err) => {
        if (err) return next(err);
        req.session.user = "alice";
        res.json({ id: req.sessionID });
      }),
    );
    app.post("/logout", (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.send("bye"))));
    app.get("/count", (req, res, next) => store.length((err, n) => (err ? next(err) : res.json({ n }))));
  });

  test("a session persists across requests in Tessera, its cookie's expiry as the TTL", async () => {
    const agent = request.agent(app);
    const first = (await agent.get("/views").expect(200)).body;
    assert.equal(first.views, 1);
    assert.equal((await agent.get("/views").expect(200)).body.views, 2);
    const stored = await client.kvGet("express", first.id);
    assert.equal(stored.value.views, 2);
    assert.ok(stored.ttl > 3500 && stored.ttl <= 3600, String(stored.ttl));
    assert.ok(stored.value.cookie.expires, "the cookie, with its expiry, is stored");
  });

  test("an untouched session is not saved (saveUninitialized: false)", async () => {
    const before = (await request(app).get("/count").expect(200)).body.n;
    const r = await request(app).get("/peek").expect(200);
    assert.equal(r.headers["set-cookie"], undefined);
    assert.equal((await request(app).get("/count").expect(200)).body.n, before);
  });

  test("regenerate (login) replaces the id; destroy (logout) removes it", async () => {
    const agent = request.agent(app);
    const { id: old } = (await agent.get("/views").expect(200)).body;
    const { id: fresh } = (await agent.post("/login").expect(200)).body;
    assert.notEqual(fresh, old);
    assert.equal(await client.kvGet("express", old), null, "the old id is gone");
    assert.equal((await client.kvGet("express", fresh)).value.user, "alice");
    await agent.post("/logout").expect(200, "bye");
    assert.equal(await client.kvGet("express", fresh), null);
    assert.equal((await agent.get("/peek").expect(200)).body.views, null);
  });

  test("resave: false touches instead of rewriting, pushing the expiry", async () => {
    const agent = request.agent(app);
    const { id } = (await agent.get("/views").expect(200)).body;
    await client.kvTouch("express", id, 60);
    assert.ok((await client.kvGet("express", id)).ttl <= 60);
    await agent.get("/peek").expect(200);
    await new Promise((r) => setTimeout(r, 100));
    const after = await client.kvGet("express", id);
    assert.ok(after.ttl > 3500, `touched: ${after.ttl}`);
    assert.equal(after.value.views, 1);
  });

  test("a forged or unknown session cookie is a new session", async () => {
    const r = await request(app).get("/views").set("Cookie", "connect.sid=s%3Aforged.sig").expect(200);
    assert.equal(r.body.views, 1);
  });
});
