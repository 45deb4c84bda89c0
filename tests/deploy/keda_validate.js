// Validates the JSON documents on stdin (an array) against KEDA's CRD schemas, as compiled into
// @kubernetes-models/keda. NODE_PATH points at the node_modules that tests/tools.py fetched.
// Prints one line per problem and exits 1 if any document is invalid.
"use strict";
const keda = require("@kubernetes-models/keda/keda.sh/v1alpha1");

const docs = JSON.parse(require("fs").readFileSync(0, "utf8"));
let failed = false;
for (const doc of docs) {
  const Model = keda[doc.kind];
  if (!Model) {
    console.log(`${doc.kind}: not a KEDA kind`);
    failed = true;
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (err) {
    console.log(`${doc.kind}/${doc.metadata && doc.metadata.name}: ${err.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
