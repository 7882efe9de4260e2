// What the tests import from the package, by its name (the package's own "exports").
export * from "tessera-sessions";
export * as errors from "tessera-sessions";
