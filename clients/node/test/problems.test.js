// Every problem type of docs/problems.md is an error class, with its status.

import assert from "node:assert/strict";
import { test } from "node:test";

import { errors } from "./helpers.js";
import { readRepoFile } from "./tessera-server.js";

test("every code in docs/problems.md has its class, and no other", () => {
  const rows = [...readRepoFile("docs/problems.md").matchAll(/^\| `([a-z-]+)` \| (\d{3}) \|/gm)];
  assert.ok(rows.length >= 18, `${rows.length} rows`);
  assert.deepEqual(Object.keys(errors.PROBLEM_CLASSES).sort(), rows.map((r) => r[1]).sort());
  for (const [, code, status] of rows) {
    const cls = errors.PROBLEM_CLASSES[code];
    assert.equal(cls.code, code);
    assert.equal(cls.status, Number(status), code);
    const e = errors.problemFrom(Number(status), { type: `urn:tessera:problem:${code}`, title: "t", detail: "d" });
    assert.ok(e instanceof cls && e instanceof errors.ProblemError && e instanceof errors.TesseraError, code);
    assert.equal(e.name, cls.name);
  }
});
