// The client and its declarations against the OpenAPI document a real `tessera serve` serves:
// every operation has its entry in OPERATIONS (method, path, request and answer schemas) and a
// Client method; every schema of the document is an interface of types/index.d.ts with the
// same fields, the same required ones and the same types.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";

import ts from "typescript";

import { Client, OPERATIONS } from "./helpers.js";
import { startTessera } from "./tessera-server.js";

let doc;
let tessera;

before(async () => {
  tessera = await startTessera();
  doc = await (await fetch(`${tessera.url}/openapi.json`)).json();
});
after(() => tessera?.stop());

const METHODS = ["get", "put", "post", "delete", "patch"];

const operations = () =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ path, method: m.toUpperCase(), op: item[m] })),
  );

const refName = (schema) => schema?.$ref?.replace("#/components/schemas/", "") ?? null;

test("every operation of the document is in OPERATIONS, and nothing else", () => {
  const served = operations();
  const ids = served.map((o) => o.op.operationId);
  assert.deepEqual([...ids].sort(), Object.keys(OPERATIONS).sort());
  for (const { path, method, op } of served) {
    const mine = OPERATIONS[op.operationId];
    assert.equal(mine.method, method, op.operationId);
    assert.equal(mine.path, path, op.operationId);
    const body = op.requestBody?.content?.["application/json"]?.schema;
    assert.equal(mine.request, refName(body), `${op.operationId}: request schema`);
    const ok = op.responses["200"]?.content?.["application/json"]?.schema;
    assert.equal(mine.response, refName(ok), `${op.operationId}: answer schema`);
    assert.equal(typeof Client.prototype[mine.call], "function", `${op.operationId}: Client.${mine.call}`);
  }
});

test("every operation that needs the API key gets it, and no other", () => {
  for (const { op } of operations()) {
    const needs = (op.security ?? doc.security ?? []).some((s) => "api_key" in s);
    const mine = OPERATIONS[op.operationId];
    const public_ = ["jwks", "verify", "feed", "healthz", "readyz", "metrics", "openapi"].includes(op.operationId);
    assert.equal(needs, !public_, `${op.operationId} (${mine.path})`);
  }
});

// === the declarations ===

function interfaces() {
  const file = new URL("../types/index.d.ts", import.meta.url);
  const source = ts.createSourceFile("index.d.ts", readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const found = new Map();
  for (const s of source.statements) {
    if (ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) found.set(s.name.text, s);
  }
  return found;
}

const text = (node) => node.getText().replace(/\s+/g, " ");

/** Whether the TypeScript type `node` is exactly the JSON Schema `schema`. */
function agrees(schema, node, decls, seen) {
  if (ts.isParenthesizedTypeNode(node)) return agrees(schema, node.type, decls, seen);
  // A type alias stands for its type.
  const JSON_TYPES = ["JsonObject", "JsonValue"];
  const aliasName = ts.isTypeReferenceNode(node) ? node.typeName.getText() : null;
  if (aliasName && !JSON_TYPES.includes(aliasName) && decls.get(aliasName) && ts.isTypeAliasDeclaration(decls.get(aliasName)) && !schema.$ref) {
    return agrees(schema, decls.get(node.typeName.getText()).type, decls, seen);
  }
  const alternatives = (schema.oneOf ?? []).filter((s) => s.type !== "null");
  if (alternatives.length > 1) {
    // Several alternatives: the union's members (aliases flattened), one for each, in order.
    const flat = (n) => {
      if (ts.isParenthesizedTypeNode(n)) return flat(n.type);
      if (ts.isUnionTypeNode(n)) return n.types.flatMap(flat);
      const d = ts.isTypeReferenceNode(n) && !JSON_TYPES.includes(n.typeName.getText()) ? decls.get(n.typeName.getText()) : null;
      if (d && ts.isTypeAliasDeclaration(d)) return flat(d.type);
      return [n];
    };
    const members = flat(node);
    const isNullNode = (t) => ts.isLiteralTypeNode(t) && t.literal.kind === ts.SyntaxKind.NullKeyword;
    if (members.some(isNullNode) !== schema.oneOf.some((s) => s.type === "null")) return false;
    const rest = members.filter((t) => !isNullNode(t));
    return rest.length === alternatives.length && alternatives.every((alt, i) => agrees(alt, rest[i], decls, seen));
  }
  const union = ts.isUnionTypeNode(node) ? node.types : [node];
  const isNull = (t) => ts.isLiteralTypeNode(t) && t.literal.kind === ts.SyntaxKind.NullKeyword;
  const nullable =
    (Array.isArray(schema.type) && schema.type.includes("null")) ||
    (schema.oneOf ?? []).some((s) => s.type === "null");
  if (union.some(isNull) !== nullable) return false;
  const rest = union.filter((t) => !isNull(t));
  const inner = schema.oneOf ? schema.oneOf.find((s) => s.type !== "null") : schema;
  const type = Array.isArray(inner.type) ? inner.type.filter((t) => t !== "null") : [inner.type];
  if (inner.$ref) {
    const name = refName(inner);
    if (rest.length !== 1 || !ts.isTypeReferenceNode(rest[0]) || rest[0].typeName.getText() !== name) return false;
    const target = doc.components.schemas[name];
    const d = decls.get(name);
    if (d && ts.isTypeAliasDeclaration(d)) return agrees(target, d.type, decls, seen);
    checkInterface(name, target, decls, seen);
    return true;
  }
  if (inner.enum) {
    const literals = rest.map((t) => (ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal) ? t.literal.text : null));
    return JSON.stringify([...literals].sort()) === JSON.stringify([...inner.enum].sort());
  }
  if (!inner.type && !inner.$ref && !inner.enum) {
    // Any JSON value.
    return rest.length === 1 && ts.isTypeReferenceNode(rest[0]) && rest[0].typeName.getText() === "JsonValue";
  }
  if (rest.length !== 1 || type.length !== 1) return false;
  const t = rest[0];
  switch (type[0]) {
    case "string":
      return t.kind === ts.SyntaxKind.StringKeyword;
    case "integer":
    case "number":
      return t.kind === ts.SyntaxKind.NumberKeyword;
    case "boolean":
      return t.kind === ts.SyntaxKind.BooleanKeyword;
    case "array":
      return ts.isArrayTypeNode(t) && agrees(inner.items, t.elementType, decls, seen);
    case "object":
      if (inner.properties) {
        // An inline object schema: a named interface with exactly its fields.
        if (!ts.isTypeReferenceNode(t)) return false;
        checkInterface(t.typeName.getText(), inner, decls, seen);
        return true;
      }
      return ts.isTypeReferenceNode(t) && t.typeName.getText() === "JsonObject";
    default:
      return false;
  }
}

function checkInterface(name, schema, decls, seen) {
  if (seen.has(name)) return;
  seen.add(name);
  const decl = decls.get(name);
  assert.ok(decl, `types/index.d.ts declares no interface ${name}`);
  if (ts.isTypeAliasDeclaration(decl)) {
    assert.ok(agrees(schema, decl.type, decls, seen), `${name}: ${text(decl.type)} is not ${JSON.stringify(schema)}`);
    return;
  }
  const members = new Map(
    decl.members.filter(ts.isPropertySignature).map((m) => [m.name.getText(), m]),
  );
  const properties = schema.properties ?? {};
  assert.deepEqual([...members.keys()].sort(), Object.keys(properties).sort(), `${name}: its fields`);
  const required = new Set(schema.required ?? []);
  for (const [field, s] of Object.entries(properties)) {
    const m = members.get(field);
    assert.equal(!m.questionToken, required.has(field), `${name}.${field}: required in the document iff not optional`);
    assert.ok(agrees(s, m.type, decls, seen), `${name}.${field}: ${text(m.type)} is not ${JSON.stringify(s)}`);
  }
}

test("every schema of the document is an interface of types/index.d.ts, field for field", () => {
  const decls = interfaces();
  const seen = new Set();
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    checkInterface(name, schema, decls, seen);
  }
  assert.ok(seen.size >= Object.keys(doc.components.schemas).length);
});

test("the declared Client has a method for every operation", () => {
  const decl = ts
    .createSourceFile("index.d.ts", readFileSync(new URL("../types/index.d.ts", import.meta.url), "utf8"), ts.ScriptTarget.Latest, true)
    .statements.find((s) => ts.isClassDeclaration(s) && s.name?.text === "Client");
  const methods = new Set(decl.members.filter(ts.isMethodDeclaration).map((m) => m.name.getText()));
  for (const [id, o] of Object.entries(OPERATIONS)) assert.ok(methods.has(o.call), `${id}: Client.${o.call} declared`);
});
