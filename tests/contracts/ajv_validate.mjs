// Validates message files against schemas/json with ajv (JSON Schema 2020-12 and
// ajv-formats), as a team outside Python would, all in one process.
//
//   node ajv_validate.mjs <dir holding node_modules> <schemas/json> <file.json>...
//
// A file is a message envelope, or a negative example {"reason", "path", "message"}.
// The schema is chosen by the message's type and version, as a consumer would.
// Prints one JSON object: file -> {valid, schema, errors: [{path, keyword, message}]},
// where path is a JSON pointer that names the missing or unexpected property too.
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [modules, schemaDir, ...files] = process.argv.slice(2);
if (!modules || !schemaDir) {
  console.error("usage: node ajv_validate.mjs <dir with node_modules> <schemas/json> <file>...");
  process.exit(2);
}
// Resolve the packages from the cache they were installed in, not from this file's folder.
const require = createRequire(join(resolve(modules), "package.json"));
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

// strict: a keyword ajv does not know (a constraint pydantic wrote under its own name)
// is an error, not silently ignored.
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const validators = new Map();
for (const name of readdirSync(schemaDir).filter((n) => n.endsWith(".schema.json")).sort()) {
  validators.set(name, ajv.compile(JSON.parse(readFileSync(join(schemaDir, name), "utf8"))));
}

function where(error) {
  const property = error.params.missingProperty ?? error.params.additionalProperty;
  return property === undefined ? error.instancePath : `${error.instancePath}/${property}`;
}

const verdicts = {};
for (const file of files) {
  const content = JSON.parse(readFileSync(file, "utf8"));
  const message = "reason" in content && "message" in content ? content.message : content;
  const schema = `${message.type}.v${message.version}.schema.json`;
  const validate = validators.get(schema);
  if (validate === undefined) {
    verdicts[file] = {
      valid: false,
      schema: null,
      errors: [{ path: "", keyword: "schema", message: `no schema ${schema}` }],
    };
    continue;
  }
  const valid = validate(message);
  verdicts[file] = {
    valid,
    schema,
    errors: (validate.errors ?? []).map((e) => ({
      path: where(e),
      keyword: e.keyword,
      message: e.message,
    })),
  };
}
process.stdout.write(JSON.stringify(verdicts));
