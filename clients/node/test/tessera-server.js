// Runs the real `tessera` binary for the tests, on a free loopback port, in a temporary
// directory that goes away with it.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const API_KEY = "node-client-test-key-0123456789abcdef";
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** `TESSERA_BIN`, else `$CARGO_TARGET_DIR/debug/tessera` (default `target/`). */
export function binary() {
  const path =
    process.env.TESSERA_BIN ?? join(resolve(REPO, process.env.CARGO_TARGET_DIR ?? "target"), "debug", "tessera");
  if (!existsSync(path)) {
    throw new Error(
      `the tessera binary is missing (${path}): build it with ` +
        "`cargo build -p tessera-server --bin tessera` or run ./scripts/test",
    );
  }
  return path;
}

/**
 * A service on the memory store with `extraConfig` (TOML) appended to its configuration.
 * @returns {Promise<{ url: string, apiKey: string, dir: string, stop: () => Promise<void> }>}
 */
export async function startTessera(extraConfig = "", { store = "memory:" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "tessera-node-"));
  const config = join(dir, "tessera.toml");
  writeFileSync(
    config,
    `listen = "127.0.0.1:0"\ndata_dir = ${JSON.stringify(join(dir, "data"))}\n\n` +
      `[store]\nurl = ${JSON.stringify(store)}\n\n${extraConfig}`,
  );
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TESSERA_")));
  env.TESSERA_API_KEY = API_KEY;
  let stdout = "";
  let stderr = "";
  const child = spawn(binary(), ["serve", "--config", config], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((r) => child.once("exit", r));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Every line the service writes, the address it bound included, is on stderr.
  const marker = "Tessera listening on http://";
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const at = stderr.indexOf(marker);
    if (at >= 0 && stderr.indexOf("\n", at) > 0) {
      const address = stderr.slice(at + marker.length).split(/[\s"]/)[0];
      return { url: `http://${address}`, apiKey: API_KEY, dir, stop };
    }
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`tessera exited (${child.exitCode}):\n${stdout}\n${stderr}`);
    }
    await sleep(20);
  }
  await stop();
  throw new Error(`tessera did not start within 20 s:\n${stdout}\n${stderr}`);
}

/** The repository's root, for the tests that read its docs. */
export const repo = REPO;
export const readRepoFile = (path) => readFileSync(join(REPO, path), "utf8");
