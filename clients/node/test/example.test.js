// The example app (example/app.js) against a real `tessera serve`: over HTTP, then in
// headless Chromium (Debian's, through chromedriver).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { PASSWORD, createApp } from "../example/app.js";
import { applySetCookies } from "./helpers.js";
import { startTessera } from "./tessera-server.js";
import { Browser, startDriver } from "./webdriver.js";

let tessera;
let base;
let server;

before(async () => {
  // Development cookies (`tessera`, not Secure): browsers keep no Secure cookie from plain
  // http://127.0.0.1.
  tessera = await startTessera("[cookie]\ndevelopment = true\n");
  server = createApp({ url: tessera.url, apiKey: tessera.apiKey }).listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r()));
  await tessera?.stop();
});

/** A browser without a browser: a cookie jar over fetch. */
class Visitor {
  cookie = "";
  async send(method, path, form) {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: { cookie: this.cookie, ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}) },
      body: form ? new URLSearchParams(form).toString() : undefined,
      redirect: "manual",
    });
    this.cookie = applySetCookies(this.cookie, r.headers.getSetCookie());
    return { status: r.status, location: r.headers.get("location"), html: await r.text(), setCookie: r.headers.getSetCookie() };
  }
  get(path = "/") {
    return this.send("GET", path);
  }
  post(path, form) {
    return this.send("POST", path, form);
  }
  /** The CSRF token of the form posting to `action` on `html`. */
  static token(html, action) {
    const form = html.split("<form").find((f) => f.includes(`action="${action}"`));
    assert.ok(form, `no form to ${action}`);
    return /name="csrf" value="([^"]+)"/.exec(form)[1];
  }
  async login(user) {
    const page = await this.get();
    const r = await this.post("/login", { csrf: Visitor.token(page.html, "/login"), user, password: PASSWORD });
    assert.equal(r.status, 303);
    return (await this.get()).html;
  }
}

describe("the example over HTTP", () => {
  test("login: CSRF token needed, password checked", async () => {
    const v = new Visitor();
    const page = await v.get();
    assert.match(page.html, /Not logged in\./);
    assert.deepEqual(page.setCookie.map((c) => c.split("=")[0]), ["tessera-anon"], "the login form's session: a sealed cookie");
    assert.equal((await v.post("/login", { user: "alice", password: PASSWORD })).status, 403);
    const wrong = await v.post("/login", { csrf: Visitor.token(page.html, "/login"), user: "alice", password: "guess" });
    assert.equal(wrong.status, 303);
    assert.match(wrong.location, /error=/);
    const html = await v.login("alice");
    assert.match(html, /Logged in as <b>alice<\/b>/);
    assert.match(v.cookie, /(^|; )tessera=u/);
    assert.match(v.cookie, /tessera-token=/);
  });

  test("an edit needs the edit form's token", async () => {
    const v = new Visitor();
    const html = await v.login("alice");
    const edit = Visitor.token(html, "/edit");
    assert.equal((await v.post("/edit", { csrf: edit, text: "Hello <world>" })).status, 303);
    let page = (await v.get()).html;
    assert.match(page, /<div id="note">Hello &lt;world&gt;<\/div>/);
    assert.equal((await v.post("/edit", { csrf: "A".repeat(54), text: "forged" })).status, 403);
    assert.equal((await v.post("/edit", { csrf: Visitor.token(page, "/logout"), text: "other purpose" })).status, 403);
    const other = new Visitor();
    await other.login("alice");
    assert.equal((await other.post("/edit", { csrf: edit, text: "another session's token" })).status, 403);
    page = (await v.get()).html;
    assert.match(page, /<div id="note">Hello &lt;world&gt;<\/div>/);
  });

  test("the user's sessions: listed, one revoked, log out everywhere", async () => {
    const a = new Visitor();
    const b = new Visitor();
    await a.login("bob");
    await b.login("bob");
    const page = (await a.get()).html;
    const refs = [...page.matchAll(/class="session" data-ref="([^"]+)">(<b>this session<\/b>|another session)/g)];
    assert.equal(refs.length, 2, page);
    const otherRef = refs.find((m) => m[2] === "another session")[1];
    const r = await a.post("/sessions/revoke", { csrf: Visitor.token(page, "/sessions/revoke"), ref: otherRef });
    assert.equal(r.status, 303);
    assert.match((await b.get()).html, /Not logged in\./);
    assert.match((await a.get()).html, /Logged in as <b>bob<\/b>/);
    await b.login("bob");
    const again = (await a.get()).html;
    await a.post("/logout-everywhere", { csrf: Visitor.token(again, "/logout-everywhere") });
    assert.match((await a.get()).html, /Not logged in\./);
    assert.match((await b.get()).html, /Not logged in\./);
  });

  test("logout ends the session: the old cookie is refused", async () => {
    const v = new Visitor();
    const html = await v.login("alice");
    const old = v.cookie;
    const r = await v.post("/logout", { csrf: Visitor.token(html, "/logout") });
    assert.equal(r.status, 303);
    assert.ok(r.setCookie.every((c) => /Max-Age=0/.test(c)), r.setCookie.join("\n"));
    assert.match((await v.get()).html, /Not logged in\./);
    const replay = new Visitor();
    replay.cookie = old;
    assert.match((await replay.get()).html, /Not logged in\./);
  });
});

describe("the example in Chromium", () => {
  let driver;
  let b;
  before(async () => {
    driver = await startDriver();
    b = await Browser.open(driver);
  });
  after(async () => {
    await b?.close();
    await driver?.stop();
  });

  // carol is only ever logged in here, so her sessions are this test's.
  test("log in, edit, a forged token refused, revoke another session, log out", async () => {
    await b.goto(`${base}/`);
    await b.waitFor("the login form", (p) => p.includes("Not logged in."));
    await b.typeInto("#user", "carol");
    await b.typeInto("#password", PASSWORD);
    await b.click("#login");
    await b.waitFor("the logged-in page", (p) => p.includes("Logged in as <b>carol</b>"));
    const cookie = await b.cookie("tessera");
    assert.ok(cookie, "the session cookie");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Lax");
    assert.ok(cookie.value.startsWith("u"), "an authenticated handle");
    assert.ok(await b.cookie("tessera-token"), "the session token cookie");
    assert.equal(await b.cookie("tessera-anon"), undefined, "the login form's anonymous cookie is gone");

    await b.typeInto("#text", "Hello from Chromium");
    await b.click("#save");
    await b.waitFor("the edited page", (p) => p.includes('<div id="note">Hello from Chromium</div>'));

    await b.runScript("document.querySelector('form[action=\"/edit\"] input[name=csrf]').value = 'A'.repeat(54);");
    await b.typeInto("#text", "Forged edit");
    await b.click("#save");
    const refused = await b.waitFor("the answer to the forged edit", (p) => p.includes("CSRF token is not valid") || p.includes("Forged edit</div>"));
    assert.match(refused, /CSRF token is not valid/);

    // Another session of carol's (another device), then revoked from the browser.
    const other = new Visitor();
    await other.login("carol");
    await b.goto(`${base}/`);
    let page = await b.waitFor("two sessions", (p) => (p.match(/class="session"/g) ?? []).length === 2);
    assert.match(page, /<div id="note">Hello from Chromium<\/div>/);
    const buttons = await b.findAll("li.session button.revoke");
    const labels = await b.runScript("return [...document.querySelectorAll('li.session')].map((li) => li.textContent.includes('this session'));");
    const otherIndex = labels.indexOf(false);
    await b.cmd("POST", `/element/${buttons[otherIndex]}/click`, {});
    page = await b.waitFor("one session", (p) => (p.match(/class="session"/g) ?? []).length === 1);
    assert.match(page, /this session/);
    assert.match((await other.get()).html, /Not logged in\./);

    const before = (await b.cookie("tessera")).value;
    await b.click("#logout");
    await b.waitFor("the logged-out page", (p) => p.includes("Not logged in."));
    assert.equal(await b.cookie("tessera"), undefined);
    assert.equal(await b.cookie("tessera-token"), undefined);

    // The old cookie, put back, is refused.
    await b.setCookie({ name: "tessera", value: before, path: "/", httpOnly: true });
    await b.goto(`${base}/`);
    await b.waitFor("the logged-out page", (p) => p.includes("Not logged in."));
  });
});
