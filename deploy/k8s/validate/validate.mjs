// Offline validation of rendered Kubernetes manifests (deploy/k8s/validate.sh).
//
//   node validate.mjs [--quiet] RENDERED.yaml...
//
// For every object of every multi-document YAML file:
//  1. schema: built-in kinds with kubernetes-models' classes (`new Deployment(obj).validate()`:
//     the Kubernetes OpenAPI schemas compiled with ajv: types, required fields, enums, formats);
//     ServiceMonitor with @kubernetes-models/prometheus-operator; LeaderWorkerSet with a
//     hand-written, partial JSON schema (lws-schema.json) whose pod templates are checked as
//     core PodTemplateSpecs.
//  2. strictness: kubernetes-models' validators ignore unknown fields (the OpenAPI schemas
//     have no additionalProperties: false), so a typo such as `imagePullPolicyy` would pass. This
//     script walks each object along the field lists of kubernetes-models' TypeScript
//     declarations (the .d.ts files, generated from the same schemas) and reports every field
//     the type does not declare (the API server's `--validate=strict`, offline).
//  3. conventions of this project: every object carries app.kubernetes.io/name; every pod
//     template runs as non-root, every container has CPU and memory requests, drops ALL
//     capabilities and may not escalate privileges.
// Exit status 0 when every object passes, 1 otherwise (each problem on stderr), 2 on bad usage.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import Ajv from "ajv";

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = path.join(here, "node_modules");

// --- kind -> model module ---------------------------------------------------------------------
function modelModule(apiVersion, kind) {
  if (apiVersion === "monitoring.coreos.com/v1") {
    return path.join(nodeModules, "@kubernetes-models/prometheus-operator", apiVersion, kind);
  }
  const dir = apiVersion.includes("/") ? apiVersion : `v1`;
  if (!apiVersion.includes("/") && apiVersion !== "v1") return null;
  return path.join(nodeModules, "kubernetes-models", dir, kind);
}

// --- strictness: field lists from the .d.ts declarations --------------------------------------
const interfaces = new Map(); // d.ts path -> {fields: Map(name -> type)} | null (a leaf type)

function resolveImport(fromFile, spec) {
  const bare = spec.replace(/\.js$/, "");
  const base = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), bare)
                                    : path.join(nodeModules, bare);
  for (const candidate of [`${base}.d.ts`, path.join(base, "index.d.ts")]) {
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`cannot resolve type import '${spec}' from ${fromFile}`);
}

// A field's type: {kind: "leaf"} | {kind: "ref", file} | {kind: "array", of} | {kind: "map", of}
function parseType(text, imports, file) {
  text = text.trim().replace(/;$/, "").trim();
  const array = /^Array<(.*)>$/.exec(text);
  if (array) return { kind: "array", of: parseType(array[1], imports, file) };
  if (/^I\w+$/.test(text) && imports.has(text)) return { kind: "ref", file: imports.get(text) };
  return { kind: "leaf" };
}

function loadInterface(file) {
  if (interfaces.has(file)) return interfaces.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) {
    for (const name of m[1].split(",").map((s) => s.trim())) {
      if (/^I\w+$/.test(name)) imports.set(name, resolveImport(file, m[2]));
    }
  }
  const lines = text.split("\n");
  const start = lines.findIndex((l) => /^export interface I\w+( extends [\w, ]+)? \{$/.test(l));
  const parents = start < 0 ? [] : (/ extends ([\w, ]+) \{$/.exec(lines[start])?.[1] ?? "")
    .split(",").map((s) => s.trim()).filter((s) => imports.has(s));
  if (start < 0) {
    interfaces.set(file, null); // a type alias (Quantity, IntOrString, Time...): a leaf
    return null;
  }
  const fields = new Map();
  // Inherited fields first (TypeMeta is not imported as an I... type: apiVersion and kind are
  // repeated in every kind's own interface).
  for (const parent of parents) {
    for (const [k, v] of loadInterface(imports.get(parent))?.fields ?? []) fields.set(k, v);
  }
  for (let i = start + 1; i < lines.length && lines[i] !== "}"; i++) {
    const m = /^ {4}"([^"]+)"\??: (.*)$/.exec(lines[i]);
    if (!m) continue;
    if (m[2] === "{") {
      // An inline object type: in these packages a map `{ [key: string]: T; }`.
      const body = [];
      for (i++; i < lines.length && !/^ {4}\};?$/.test(lines[i]); i++) body.push(lines[i].trim());
      const map = /^\[key: string\]: (.*)$/.exec(body.join(" "));
      fields.set(m[1], map ? { kind: "map", of: parseType(map[1], imports, file) }
                          : { kind: "leaf" });  // not met in the kinds used here
    } else {
      fields.set(m[1], parseType(m[2], imports, file));
    }
  }
  const result = { fields };
  interfaces.set(file, result);
  return result;
}

function strictWalk(value, type, where, problems) {
  if (value === null || value === undefined) return;
  switch (type.kind) {
    case "leaf":
      return;
    case "array":
      if (Array.isArray(value)) value.forEach((v, i) => strictWalk(v, type.of, `${where}[${i}]`, problems));
      return; // a wrong type is the schema validator's to report
    case "map":
      if (typeof value === "object" && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value)) strictWalk(v, type.of, `${where}.${k}`, problems);
      }
      return;
    case "ref": {
      const iface = loadInterface(type.file);
      if (!iface || typeof value !== "object" || Array.isArray(value)) return;
      for (const [k, v] of Object.entries(value)) {
        const field = iface.fields.get(k);
        if (!field) {
          problems.push(`${where ? `${where}.` : ""}${k}: unknown field (not in ${path.basename(type.file, ".d.ts")})`);
          continue;
        }
        strictWalk(v, field, where ? `${where}.${k}` : k, problems);
      }
    }
  }
}

// --- schema validation ------------------------------------------------------------------------
async function validateModel(modulePath, obj, where, problems) {
  const file = `${modulePath}.js`;
  if (!fs.existsSync(file)) return false;
  const kind = path.basename(modulePath);
  const mod = await import(file);
  const Model = mod[kind];
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${where}schema: ${e.message}`);
  }
  strictWalk(obj, { kind: "ref", file: `${modulePath}.d.ts` }, where.replace(/: $/, ""), problems);
  return true;
}

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const lwsValidate = ajv.compile(JSON.parse(fs.readFileSync(path.join(here, "lws-schema.json"), "utf8")));
const podTemplateSpec = path.join(nodeModules, "kubernetes-models/v1/PodTemplateSpec");

async function validateLeaderWorkerSet(obj, problems) {
  if (!lwsValidate(obj)) {
    for (const e of lwsValidate.errors) {
      const extra = e.params?.additionalProperty ? ` '${e.params.additionalProperty}'` : "";
      problems.push(`schema (lws-schema.json): ${e.instancePath || "/"} ${e.message}${extra}`);
    }
  }
  const lwt = obj?.spec?.leaderWorkerTemplate ?? {};
  for (const t of ["leaderTemplate", "workerTemplate"]) {
    if (lwt[t] && typeof lwt[t] === "object") {
      await validateModel(podTemplateSpec, lwt[t], `spec.leaderWorkerTemplate.${t}: `, problems);
    }
  }
  // The metadata is ObjectMeta: check it as the core kinds' is.
  strictWalk(obj.metadata, {
    kind: "ref",
    file: path.join(nodeModules, "@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta.d.ts"),
  }, "metadata", problems);
}

// --- this project's conventions ---------------------------------------------------------------
function podTemplatesOf(obj) {
  const spec = obj.spec ?? {};
  if (spec.template) return [["spec.template", spec.template]];
  const lwt = spec.leaderWorkerTemplate ?? {};
  return ["leaderTemplate", "workerTemplate"].filter((t) => lwt[t])
    .map((t) => [`spec.leaderWorkerTemplate.${t}`, lwt[t]]);
}

function checkConventions(obj, problems) {
  if (!obj.metadata?.labels?.["app.kubernetes.io/name"]) {
    problems.push("metadata.labels: no app.kubernetes.io/name");
  }
  for (const [where, template] of podTemplatesOf(obj)) {
    const pod = template.spec ?? {};
    if (pod.securityContext?.runAsNonRoot !== true) {
      problems.push(`${where}.spec.securityContext.runAsNonRoot: must be true`);
    }
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      const at = `${where}.spec.containers[${c.name}]`;
      const req = c.resources?.requests ?? {};
      if (req.cpu === undefined || req.memory === undefined) {
        problems.push(`${at}.resources.requests: needs cpu and memory`);
      }
      const sc = c.securityContext ?? {};
      if (sc.allowPrivilegeEscalation !== false) {
        problems.push(`${at}.securityContext.allowPrivilegeEscalation: must be false`);
      }
      if (!(sc.capabilities?.drop ?? []).includes("ALL")) {
        problems.push(`${at}.securityContext.capabilities.drop: must include ALL`);
      }
    }
  }
}

// --- main -------------------------------------------------------------------------------------
const args = process.argv.slice(2);
// --each-must-fail: the validator's own test; succeeds only when every FILE has a refused object.
const eachMustFail = args[0] === "--each-must-fail" && args.shift();
const quiet = eachMustFail || (args[0] === "--quiet" && args.shift());
if (args.length === 0) {
  console.error("usage: node validate.mjs [--quiet | --each-must-fail] FILE.yaml...");
  process.exit(2);
}
let failed = 0;
let count = 0;
const passedFiles = [];
for (const file of args) {
  const failedBefore = failed;
  const docs = parseAllDocuments(fs.readFileSync(file, "utf8"));
  for (const doc of docs) {
    if (doc.errors.length) {
      console.error(`${file}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    count++;
    const name = `${file}: ${obj.kind}/${obj.metadata?.name}`;
    const problems = [];
    if (obj.apiVersion === "leaderworkerset.x-k8s.io/v1" && obj.kind === "LeaderWorkerSet") {
      await validateLeaderWorkerSet(obj, problems);
    } else {
      const mod = typeof obj.apiVersion === "string" && typeof obj.kind === "string"
        ? modelModule(obj.apiVersion, obj.kind) : null;
      if (!mod || !(await validateModel(mod, obj, "", problems))) {
        problems.push(`no schema for apiVersion '${obj.apiVersion}' kind '${obj.kind}'`);
      }
    }
    checkConventions(obj, problems);
    if (problems.length) {
      failed++;
      const tag = eachMustFail ? "refused (as expected)" : "FAIL";
      for (const p of problems) console.error(`${tag} ${name}: ${p}`);
    } else if (!quiet) {
      console.log(`ok   ${name}`);
    }
  }
  if (failed === failedBefore) passedFiles.push(file);
}
console.log(`${count} objects, ${failed} failed`);
if (eachMustFail) {
  for (const file of passedFiles) console.error(`NOT REFUSED: ${file} passed validation`);
  process.exit(passedFiles.length ? 1 : 0);
}
process.exit(failed ? 1 : 0);
