// A minimal W3C WebDriver client over fetch, driving Debian's Chromium (/usr/bin/chromium)
// through Debian's chromedriver, as the Rust example wiki's browser test does: nothing is
// downloaded, and no npm package is needed.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
export const CHROMIUM = process.env.TESSERA_CHROMIUM ?? "/usr/bin/chromium";

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A chromedriver on a free loopback port. */
export async function startDriver() {
  const port = await freePort();
  const child = spawn("chromedriver", [`--port=${port}`], { stdio: "ignore" });
  let failed = null;
  child.on("error", (e) => (failed = e));
  const exited = new Promise((r) => child.once("exit", r));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill();
      await exited;
    }
  };
  for (let i = 0; i < 100 && !failed; i++) {
    try {
      const v = await (await fetch(`${url}/status`)).json();
      if (v.value?.ready === true) return { url, stop };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  await stop();
  throw new Error(`chromedriver did not start (Debian package chromium-driver; scripts/test installs it): ${failed ?? "not ready"}`);
}

/** A headless Chromium session. */
export class Browser {
  constructor(base, profile) {
    this.base = base;
    this.profile = profile;
  }

  static async open(driver) {
    const profile = mkdtempSync(join(tmpdir(), "tessera-node-chromium-"));
    const caps = {
      capabilities: {
        alwaysMatch: {
          browserName: "chrome",
          "goog:chromeOptions": {
            binary: CHROMIUM,
            args: [
              "--headless",
              "--no-sandbox",
              "--disable-gpu",
              "--disable-quic",
              "--no-first-run",
              "--disable-background-networking",
              "--disable-component-update",
              "--disable-sync",
              `--user-data-dir=${profile}`,
            ],
          },
        },
      },
    };
    const v = await (await fetch(`${driver.url}/session`, { method: "POST", body: JSON.stringify(caps) })).json();
    const sid = v.value?.sessionId;
    if (!sid) throw new Error(`no WebDriver session: ${JSON.stringify(v)}`);
    return new Browser(`${driver.url}/session/${sid}`, profile);
  }

  async cmd(method, path, body) {
    const r = await fetch(`${this.base}${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    const v = await r.json();
    if (v.value && typeof v.value === "object" && "error" in v.value) throw new Error(`WebDriver ${path}: ${JSON.stringify(v.value)}`);
    return v.value;
  }

  goto(url) {
    return this.cmd("POST", "/url", { url });
  }

  source() {
    return this.cmd("GET", "/source");
  }

  /** Waits (up to 10 s) until the page source satisfies `ready`, and returns it. */
  async waitFor(what, ready) {
    let last = "";
    for (let i = 0; i < 200; i++) {
      last = await this.source();
      if (ready(last)) return last;
      await sleep(50);
    }
    throw new Error(`timed out waiting for ${what}; the page is:\n${last}`);
  }

  async find(css) {
    return (await this.cmd("POST", "/element", { using: "css selector", value: css }))[ELEMENT];
  }

  async findAll(css) {
    return (await this.cmd("POST", "/elements", { using: "css selector", value: css })).map((e) => e[ELEMENT]);
  }

  async typeInto(css, text) {
    const e = await this.find(css);
    await this.cmd("POST", `/element/${e}/clear`, {});
    await this.cmd("POST", `/element/${e}/value`, { text });
  }

  async click(css) {
    const e = await this.find(css);
    await this.cmd("POST", `/element/${e}/click`, {});
  }

  runScript(script, args = []) {
    return this.cmd("POST", "/execute/sync", { script, args });
  }

  /** A cookie by name (HttpOnly ones included: WebDriver sees them), or undefined. */
  async cookie(name) {
    return (await this.cmd("GET", "/cookie")).find((c) => c.name === name);
  }

  setCookie(cookie) {
    return this.cmd("POST", "/cookie", { cookie });
  }

  async close() {
    try {
      await fetch(this.base, { method: "DELETE" });
    } finally {
      rmSync(this.profile, { recursive: true, force: true });
    }
  }
}
