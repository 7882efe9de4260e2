// The declarations (types/*.d.ts) name exactly what each entry point exports, and the
// declared classes have the methods the runtime ones have.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import ts from "typescript";

const ENTRY_POINTS = [
  ["tessera-sessions", "index.d.ts"],
  ["tessera-sessions/express", "express.d.ts"],
  ["tessera-sessions/store", "store.d.ts"],
];

function declared(file) {
  const text = readFileSync(new URL(`../types/${file}`, import.meta.url), "utf8");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const names = new Set();
  const classes = new Map();
  const exported = (s) => s.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  const isDefault = (s) => s.modifiers?.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword);
  for (const s of source.statements) {
    if (ts.isExportAssignment(s)) names.add("default");
    if (!exported(s)) continue;
    if (ts.isClassDeclaration(s) || ts.isFunctionDeclaration(s)) {
      names.add(isDefault(s) ? "default" : s.name.text);
      if (ts.isClassDeclaration(s)) {
        classes.set(s.name.text, new Set(s.members.filter((m) => ts.isMethodDeclaration(m) && !m.modifiers?.some((x) => x.kind === ts.SyntaxKind.StaticKeyword)).map((m) => m.name.getText())));
      }
    } else if (ts.isVariableStatement(s)) {
      for (const d of s.declarationList.declarations) names.add(d.name.getText());
    }
  }
  return { names, classes };
}

for (const [specifier, file] of ENTRY_POINTS) {
  test(`${specifier}: types/${file} declares every runtime export and no other`, async () => {
    const runtime = await import(specifier);
    const { names, classes } = declared(file);
    assert.deepEqual([...names].sort(), Object.keys(runtime).sort());
    for (const [name, methods] of classes) {
      const own = Object.getOwnPropertyNames(runtime[name].prototype).filter((m) => m !== "constructor" && typeof Object.getOwnPropertyDescriptor(runtime[name].prototype, m).value === "function");
      assert.deepEqual([...methods].sort(), own.sort(), `${name}'s methods`);
    }
  });
}
