// The README's quick starts, run as written: each block is copied into a temporary
// directory (with node_modules linking this package and its Express), started with node on
// a free port, and driven over HTTP against a real `tessera serve`.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";

import { Client, applySetCookies } from "./helpers.js";
import { startTessera } from "./tessera-server.js";

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The first ```js block after the heading `## <heading>`. */
export function readmeBlock(heading) {
  const readme = readFileSync(join(PACKAGE, "README.md"), "utf8");
  const at = readme.indexOf(`\n## ${heading}\n`);
  assert.ok(at >= 0, `README.md has no section "${heading}"`);
  const m = /```js\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, `no js block under "${heading}"`);
  return m[1];
}

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Runs `code` as an ES module beside links to this package and its dependencies. */
export async function runBlock(code, env) {
  const dir = mkdtempSync(join(tmpdir(), "tessera-node-readme-"));
  const modules = join(dir, "node_modules");
  mkdirSync(modules);
  symlinkSync(PACKAGE, join(modules, "tessera-sessions"));
  for (const dep of ["express", "express-session"]) symlinkSync(join(PACKAGE, "node_modules", dep), join(modules, dep));
  writeFileSync(join(dir, "app.mjs"), code);
  const port = await freePort();
  let output = "";
  const child = spawn(process.execPath, ["app.mjs"], { cwd: dir, env: { ...process.env, ...env, PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((r) => child.once("exit", r));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill();
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(`${url}/.readme-test-probe`, { method: "HEAD" }); // a 404: no session made
      return { url, stop };
    } catch {
      if (child.exitCode !== null) break;
      await sleep(25);
    }
  }
  await stop();
  throw new Error(`the README block did not start:\n${output}`);
}

let tessera;
before(async () => {
  tessera = await startTessera();
});
after(() => tessera?.stop());

test("the middleware's quick start, as written: login, who am I, logout", async () => {
  const app = await runBlock(readmeBlock("Express middleware: quick start"), {
    TESSERA_URL: tessera.url,
    TESSERA_API_KEY: tessera.apiKey,
  });
  try {
    let cookie = "";
    const send = async (method, path, body) => {
      const r = await fetch(`${app.url}${path}`, {
        method,
        headers: { cookie, ...(body ? { "content-type": "application/x-www-form-urlencoded" } : {}) },
        body,
        redirect: "manual",
      });
      cookie = applySetCookies(cookie, r.headers.getSetCookie());
      return r;
    };
    assert.equal(await (await send("GET", "/")).text(), "Hello stranger");
    const login = await send("POST", "/login", "user=alice");
    assert.equal(login.status, 302);
    assert.ok(login.headers.getSetCookie().some((c) => c.startsWith("__Host-tessera=u")));
    assert.equal(await (await send("GET", "/")).text(), "Hello alice");
    await send("POST", "/logout", "");
    assert.equal(cookie, "");
    assert.equal(await (await send("GET", "/")).text(), "Hello stranger");
  } finally {
    await app.stop();
  }
});

test("the store's quick start, as written: express-session keeps its sessions in Tessera", async () => {
  const app = await runBlock(readmeBlock("express-session store: quick start"), {
    TESSERA_URL: tessera.url,
    TESSERA_API_KEY: tessera.apiKey,
    SESSION_SECRET: "the README test's secret 0123456789",
  });
  try {
    let cookie = "";
    const get = async () => {
      const r = await fetch(`${app.url}/`, { headers: { cookie } });
      cookie = applySetCookies(cookie, r.headers.getSetCookie());
      return r.text();
    };
    assert.equal(await get(), "Views: 1");
    assert.match(cookie, /^connect\.sid=s%3A/);
    assert.equal(await get(), "Views: 2");
    assert.equal(await get(), "Views: 3");
    const client = new Client({ url: tessera.url, apiKey: tessera.apiKey });
    assert.equal(await client.kvCount("express-sessions"), 1);
    const sid = decodeURIComponent(cookie.split("=")[1]).slice(2).split(".")[0];
    const stored = await client.kvGet("express-sessions", sid);
    assert.equal(stored.value.views, 3);
    assert.ok(stored.ttl > 86_000 && stored.ttl <= 86_400, String(stored.ttl));
  } finally {
    await app.stop();
  }
});
