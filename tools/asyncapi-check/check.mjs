// Load an AsyncAPI document with AsyncAPI's own parser; print each diagnostic, one per line.
// Exit 0 when it loads without an error-level diagnostic, 1 otherwise, 2 on bad usage.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const [, , file] = process.argv;
if (!file) {
  console.error("usage: node check.mjs ASYNCAPI.yaml");
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"));
const names = { 0: "error", 1: "warning", 2: "info", 3: "hint" };
for (const d of diagnostics) {
  const where = (d.path || []).join(".");
  console.log(`${names[d.severity] ?? d.severity} ${d.code} ${where}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
console.log(`${errors.length} error(s), ${diagnostics.length - errors.length} other diagnostic(s)`);
process.exit(document && errors.length === 0 ? 0 : 1);
