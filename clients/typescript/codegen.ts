import type { CodegenConfig } from "@graphql-codegen/cli";

// Typed operations for Parley: the schema is the repository's
// schema.graphql, the operations are the graphql(`…`) calls in src/, and
// the client preset writes src/gql/ (a typed graphql() function and a
// TypedDocumentNode per operation) that Apollo Client and urql both take.
const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.ts", "!src/gql/**/*"],
  ignoreNoDocuments: false,
  // Imports with .js extensions, as Node.js ES modules need.
  emitLegacyCommonJSImports: false,
  generates: {
    "src/gql/": {
      preset: "client",
      config: {
        // Parley's scalars as they travel in JSON.
        scalars: { DateTime: "string", JSON: "unknown" },
        enumsAsTypes: true,
        useTypeImports: true,
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};

export default config;
