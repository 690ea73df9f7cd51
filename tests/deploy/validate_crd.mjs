// Validates prometheus-operator resources (a JSON array on stdin) against the CRD schemas that
// @kubernetes-models/prometheus-operator bundles; prints one line per invalid document.
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const documents = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => resolve(text));
}));
let invalid = 0;
for (const document of documents) {
  const Model = document.apiVersion === "monitoring.coreos.com/v1" && v1[document.kind];
  try {
    if (!Model) throw new Error(`no schema for ${document.apiVersion} ${document.kind}`);
    new Model(document).validate();
  } catch (error) {
    invalid += 1;
    console.log(`${document.kind}/${document.metadata?.name}: ${error.message}`);
  }
}
process.exit(invalid ? 1 : 0);
