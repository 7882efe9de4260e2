// node's `jose` as a peer in Tessera's tests: one JSON object in on stdin, one out on stdout.
//
// Run by crates/server/tests/it/peers/mod.rs with `jose` from the directory that
// scripts/install-peers fills (package-lock.json pins it), named by TESSERA_PEERS_NODE_MODULES
// (the node_modules directory: this script lives in the clone, the package outside it).
//
// Input {"ops": [op, ...]}, output {"results": [result, ...]} in the same order:
// - {"op": "versions"} -> {"jose", "node"}
// - {"op": "verify", token, issuer, algorithms, jwks: {...}} verifies with
//   createLocalJWKSet over the given JWK set, or with "jwks_url" instead of "jwks", with
//   createRemoteJWKSet fetching it; then jwtVerify with issuer and algorithms pinned.
//   -> {"ok": true, "header", "claims"} or {"ok": false, "error": "<jose error code>", "message"}
//
// Nothing here decides whether a test passes: the Rust side checks the results.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.TESSERA_PEERS_NODE_MODULES;
if (!modules) {
  throw new Error('TESSERA_PEERS_NODE_MODULES is not set');
}
// Resolve `jose` from that directory, as a script placed there would.
const require = createRequire(join(modules, 'tessera-peers.cjs'));
const jose = await import(pathToFileURL(require.resolve('jose')).href);
const joseVersion = JSON.parse(readFileSync(join(modules, 'jose', 'package.json'), 'utf8')).version;

async function verify(op) {
  try {
    const keys = op.jwks_url
      ? jose.createRemoteJWKSet(new URL(op.jwks_url), { cacheMaxAge: 0, cooldownDuration: 0 })
      : jose.createLocalJWKSet(op.jwks);
    const { payload, protectedHeader } = await jose.jwtVerify(op.token, keys, {
      issuer: op.issuer,
      algorithms: op.algorithms,
      requiredClaims: ['exp', 'iat', 'sub'],
    });
    return { ok: true, header: protectedHeader, claims: payload };
  } catch (e) {
    if (!(e instanceof jose.errors.JOSEError)) {
      throw e;
    }
    return { ok: false, error: e.code, message: e.message };
  }
}

async function run(op) {
  switch (op.op) {
    case 'versions':
      return { jose: joseVersion, node: process.versions.node };
    case 'verify':
      return verify(op);
    default:
      throw new Error(`unknown op ${op.op}`);
  }
}

const input = JSON.parse(readFileSync(0, 'utf8'));
const results = [];
for (const op of input.ops) {
  results.push(await run(op));
}
process.stdout.write(JSON.stringify({ results }));
