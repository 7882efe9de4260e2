// ESLint (flat config): the recommended rules, Node's globals.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "types/", "test-types/"] },
  js.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2024, sourceType: "module", globals: { ...globals.node } },
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrors: "none" }],
      eqeqeq: "error",
      "prefer-const": "error",
      "no-var": "error",
    },
  },
];
