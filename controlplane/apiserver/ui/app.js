// corral's web console: plain JavaScript against the Kubernetes-shaped API.
// Every call carries the signed-in user's token; the API's authentication and
// RBAC decide what works. Lists are kept live with list-then-watch, and the
// page re-renders at most once per animation frame, so a thousand pods
// streaming in do not freeze it.
"use strict";

const KINDS = {
  nodes: { path: "/api/v1/nodes" },
  pods: { path: "/api/v1/pods" },
  events: { path: "/api/v1/events" },
  services: { path: "/api/v1/services" },
  endpoints: { path: "/api/v1/endpoints" },
  replicationcontrollers: { path: "/api/v1/replicationcontrollers" },
  replicasets: { path: "/apis/apps/v1/replicasets" },
  deployments: { path: "/apis/apps/v1/deployments" },
};
const WORKLOAD_PATHS = {
  Deployment: (ns) => `/apis/apps/v1/namespaces/${ns}/deployments`,
  ReplicaSet: (ns) => `/apis/apps/v1/namespaces/${ns}/replicasets`,
  ReplicationController: (ns) => `/api/v1/namespaces/${ns}/replicationcontrollers`,
};
const REVISION = "deployment.kubernetes.io/revision";
const TEMPLATE_HASH = "pod-template-hash";

const state = {
  token: sessionStorage.getItem("corral-token") || "",
  user: "",
  stores: {},        // kind -> Map(key -> object)
  errors: {},        // kind -> message when it cannot be listed
  watchers: {},      // kind -> AbortController of its list-and-watch
  dirty: false,
  selectedPod: null, // key of the pod whose log is shown
  logAbort: null,
  may: new Map(),    // "verb kind ns" -> true/false, from dry-run probes
};

const $ = (selector) => document.querySelector(selector);
const esc = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const keyOf = (o) => (o.metadata.namespace ? `${o.metadata.namespace}/` : "") + o.metadata.name;

// --- the API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, path, body, contentType = "application/json", signal = undefined) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers["Content-Type"] = contentType;
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let decoded = null;
  try { decoded = text ? JSON.parse(text) : null; } catch (_) { decoded = { message: text }; }
  if (!response.ok) throw new ApiError(response.status, decoded);
  return decoded;
}

// What each view keeps live. A browser opens at most six HTTP/1.1
// connections to one server and every watch holds one, so only the current
// view's kinds are watched, leaving room for the log stream and actions.
const VIEW_KINDS = {
  overview: ["nodes", "pods", "events"],
  nodes: ["nodes", "pods"],
  workloads: ["deployments", "replicationcontrollers", "replicasets"],
  pods: ["pods"],
  services: ["services", "endpoints"],
  events: ["events"],
  apply: [],
};

function watchFor(view) {
  const wanted = new Set(VIEW_KINDS[view]);
  for (const [kind, abort] of Object.entries(state.watchers)) {
    if (!wanted.has(kind)) {
      abort.abort();
      delete state.watchers[kind];
      delete state.stores[kind];
    }
  }
  for (const kind of wanted) if (!state.watchers[kind]) follow(kind);
}

// List, then watch from the listed version; on any break, list again.
async function follow(kind) {
  const store = new Map();
  state.stores[kind] = store;
  const abort = new AbortController();
  state.watchers[kind] = abort;
  let delay = 500;
  while (!abort.signal.aborted) {
    try {
      const list = await api("GET", KINDS[kind].path, undefined, undefined, abort.signal);
      store.clear();
      for (const item of list.items) store.set(keyOf(item), item);
      delete state.errors[kind];
      invalidate();
      await stream(kind, store, list.metadata.resourceVersion, abort.signal);
      delay = 500;
    } catch (error) {
      if (abort.signal.aborted) return;
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        state.errors[kind] = error.message;
        invalidate();
        return; // no rights to see it: say so, do not hammer the API
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
}

async function stream(kind, store, version, signal) {
  const url = `${KINDS[kind].path}?watch=true&allowWatchBookmarks=true&resourceVersion=${version}`;
  const response = await fetch(url, { headers: { Authorization: `Bearer ${state.token}` }, signal });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (!line) continue;
      const event = JSON.parse(line);
      if (event.type === "ERROR") throw new ApiError(event.object.code || 500, event.object);
      if (event.type === "BOOKMARK") continue;
      if (event.type === "DELETED") store.delete(keyOf(event.object));
      else store.set(keyOf(event.object), event.object);
      invalidate();
    }
  }
}

function invalidate() {
  if (state.dirty) return;
  state.dirty = true;
  requestAnimationFrame(() => { state.dirty = false; render(); });
}

const items = (kind) => [...(state.stores[kind] || new Map()).values()];
const byName = (a, b) => keyOf(a).localeCompare(keyOf(b));

// --- permissions, asked of the API itself ----------------------------------------------

// Whether the user may scale this workload: a dry-run write of its current
// scale, which RBAC judges like a real one and which changes nothing.
function mayScale(obj) {
  const id = `scale ${obj.kind} ${obj.metadata.namespace}`;
  if (!state.may.has(id)) {
    state.may.set(id, null);
    const path = `${WORKLOAD_PATHS[obj.kind](obj.metadata.namespace)}/${obj.metadata.name}/scale?dryRun=All`;
    api("PATCH", path, { spec: { replicas: obj.spec.replicas ?? 1 } },
      "application/merge-patch+json")
      .then(() => state.may.set(id, true))
      .catch((e) => state.may.set(id, !(e instanceof ApiError && (e.status === 403 || e.status === 401))))
      .finally(invalidate);
  }
  return state.may.get(id);
}

// --- actions --------------------------------------------------------------------------------

function toast(message) {
  const line = document.createElement("div");
  line.textContent = message;
  $("#toast").appendChild(line);
  setTimeout(() => line.remove(), 6000);
}

function confirmAction(title, text, extraHtml = "") {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-extra").innerHTML = extraHtml;
  dialog.returnValue = "";
  dialog.showModal();
  const first = dialog.querySelector("input") || $("#confirm-ok");
  first.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function act(label, work) {
  try {
    await work();
    toast(`${label}: done`);
  } catch (error) {
    toast(`${label}: ${error.message}`);
  }
}

async function scale(obj) {
  const current = obj.spec.replicas ?? 1;
  const ok = await confirmAction(`Scale ${obj.kind.toLowerCase()} ${obj.metadata.name}`,
    `Now ${current} replicas. New count:`,
    `<label>Replicas <input id="scale-to" type="number" min="0" value="${current}"></label>`);
  if (!ok) return;
  const replicas = Number($("#scale-to").value);
  const path = `${WORKLOAD_PATHS[obj.kind](obj.metadata.namespace)}/${obj.metadata.name}/scale`;
  await act(`scale ${obj.metadata.name} to ${replicas}`, () =>
    api("PATCH", path, { spec: { replicas } }, "application/merge-patch+json"));
}

async function restart(obj) {
  if (!await confirmAction(`Restart ${obj.metadata.name}`, "Replace every pod, as a rolling update does.")) return;
  const patch = { spec: { template: { metadata: { annotations: {
    "kubectl.kubernetes.io/restartedAt": new Date().toISOString() } } } } };
  await act(`restart ${obj.metadata.name}`, () => api("PATCH",
    `${WORKLOAD_PATHS.Deployment(obj.metadata.namespace)}/${obj.metadata.name}`, patch,
    "application/strategic-merge-patch+json"));
}

function revisionsOf(deployment) {
  return items("replicasets")
    .filter((rs) => rs.metadata.namespace === deployment.metadata.namespace &&
      (rs.metadata.ownerReferences || []).some((o) => o.uid === deployment.metadata.uid))
    .map((rs) => ({ rs, revision: Number((rs.metadata.annotations || {})[REVISION] || 0) }))
    .filter((r) => r.revision > 0)
    .sort((a, b) => b.revision - a.revision);
}

async function undo(obj) {
  const revisions = revisionsOf(obj);
  if (revisions.length < 2) { toast(`no earlier revision of ${obj.metadata.name}`); return; }
  const target = revisions[1];
  if (!await confirmAction(`Undo ${obj.metadata.name}`,
    `Roll back to revision ${target.revision}.`)) return;
  const template = JSON.parse(JSON.stringify(target.rs.spec.template));
  if (template.metadata && template.metadata.labels) delete template.metadata.labels[TEMPLATE_HASH];
  await act(`undo ${obj.metadata.name}`, () => api("PATCH",
    `${WORKLOAD_PATHS.Deployment(obj.metadata.namespace)}/${obj.metadata.name}`,
    [{ op: "replace", path: "/spec/template", value: template }], "application/json-patch+json"));
}

async function cordon(node, unschedulable) {
  const verb = unschedulable ? "cordon" : "uncordon";
  if (!await confirmAction(`${verb} ${node.metadata.name}`,
    unschedulable ? "No new pods will be placed on it." : "New pods may be placed on it again.")) return;
  await act(`${verb} ${node.metadata.name}`, () => api("PATCH", `/api/v1/nodes/${node.metadata.name}`,
    { spec: { unschedulable } }, "application/merge-patch+json"));
}

// Drain: cordon, then evict each pod through the eviction subresource, which
// refuses (429) while a disruption budget would be broken; retry those.
async function drain(node) {
  const name = node.metadata.name;
  if (!await confirmAction(`Drain ${name}`, "Cordon it, then evict its pods, honouring disruption budgets.")) return;
  const progress = $("#drain-progress");
  const say = (text) => { if (progress) progress.textContent = text; };
  try {
    await api("PATCH", `/api/v1/nodes/${name}`, { spec: { unschedulable: true } },
      "application/merge-patch+json");
    for (let round = 0; round < 120; round++) {
      const left = items("pods").filter((p) => p.spec.nodeName === name &&
        !p.metadata.deletionTimestamp &&
        !(p.metadata.ownerReferences || []).some((o) => o.kind === "DaemonSet"));
      if (!left.length) { say(`${name} drained`); toast(`drain ${name}: done`); return; }
      say(`draining ${name}: ${left.length} pods left`);
      for (const pod of left) {
        try {
          await api("POST", `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/eviction`,
            { apiVersion: "policy/v1", kind: "Eviction",
              metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace } });
        } catch (error) {
          if (!(error instanceof ApiError) || ![404, 429].includes(error.status)) throw error;
        }
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
    say(`drain ${name}: gave up after 4 minutes`);
  } catch (error) {
    say(`drain ${name}: ${error.message}`);
  }
}

async function deletePod(pod) {
  if (!await confirmAction(`Delete pod ${pod.metadata.name}`, `In namespace ${pod.metadata.namespace}.`)) return;
  await act(`delete ${pod.metadata.name}`, () =>
    api("DELETE", `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`));
}

// --- apply --------------------------------------------------------------------------------

function collectionPath(obj, namespace) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const plural = { Pod: "pods", Service: "services", ReplicationController: "replicationcontrollers",
    ConfigMap: "configmaps", Secret: "secrets", Namespace: "namespaces", Endpoints: "endpoints",
    Deployment: "deployments", ReplicaSet: "replicasets", PodDisruptionBudget: "poddisruptionbudgets",
    ServiceAccount: "serviceaccounts", Role: "roles", RoleBinding: "rolebindings",
    ClusterRole: "clusterroles", ClusterRoleBinding: "clusterrolebindings" }[obj.kind];
  if (!plural) throw new Error(`${obj.kind}: this page cannot apply that kind`);
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const cluster = ["Namespace", "ClusterRole", "ClusterRoleBinding", "Node"].includes(obj.kind);
  return cluster ? `${base}/${plural}` : `${base}/namespaces/${namespace}/${plural}`;
}

function showCauses(error) {
  const causes = (error.body.details && error.body.details.causes) || [];
  const list = causes.map((c) => `<li><code>${esc(c.field)}</code>: ${esc(c.message)}</li>`).join("");
  return `<p class="error">${esc(error.message)}</p>` + (list ? `<ul class="causes">${list}</ul>` : "");
}

async function applyManifest() {
  const out = $("#apply-result");
  let document_;
  try {
    document_ = JSON.parse($("#manifest").value);
  } catch (error) {
    out.innerHTML = `<p class="error">not valid JSON: ${esc(error.message)}</p>`;
    return;
  }
  const namespace = $("#apply-namespace").value || "default";
  const objects = document_.kind === "List" ? document_.items : [document_];
  const lines = [];
  for (const obj of objects) {
    const label = `${(obj.kind || "?").toLowerCase()}/${(obj.metadata || {}).name || "?"}`;
    try {
      const path = collectionPath(obj, (obj.metadata || {}).namespace || namespace);
      try {
        await api("POST", `${path}?fieldValidation=Strict`, obj);
        lines.push(`<p>${esc(label)} created</p>`);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 409) throw error;
        await api("PATCH", `${path}/${obj.metadata.name}?fieldValidation=Strict`, obj,
          "application/strategic-merge-patch+json");
        lines.push(`<p>${esc(label)} configured</p>`);
      }
    } catch (error) {
      lines.push(`<div><p><b>${esc(label)}</b></p>${error instanceof ApiError ? showCauses(error) : `<p class="error">${esc(error.message)}</p>`}</div>`);
    }
  }
  out.innerHTML = lines.join("");
}

// --- views ----------------------------------------------------------------------------------

function ready(pod) {
  return (pod.status && pod.status.conditions || []).some((c) => c.type === "Ready" && c.status === "True");
}

function nodeReady(node) {
  const c = (node.status && node.status.conditions || []).find((x) => x.type === "Ready");
  return c ? c.status : "Unknown";
}

function quantity(text) {
  if (text === undefined || text === null) return 0;
  const s = String(text);
  const units = { m: 1e-3, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9 };
  const match = s.match(/^([0-9.]+)([A-Za-z]*)$/);
  if (!match) return 0;
  return Number(match[1]) * (units[match[2]] || 1);
}

function requested(pods, resource) {
  let total = 0;
  for (const pod of pods) for (const c of pod.spec.containers || []) {
    total += quantity(((c.resources || {}).requests || {})[resource]);
  }
  return total;
}

// The page's Content-Security-Policy allows no inline style attribute: a bar's
// width is set through the DOM once the markup is in place (sizeBars).
function bar(label, used, total, format) {
  const share = total ? Math.min(100, (used / total) * 100) : 0;
  return `<div>${esc(label)} <span class="muted">${format(used)} of ${format(total)}</span>
    <div class="bar" role="img" aria-label="${esc(label)} ${share.toFixed(0)}%"><span data-share="${share.toFixed(1)}"></span></div></div>`;
}

function sizeBars(root) {
  for (const span of root.querySelectorAll(".bar span[data-share]")) span.style.width = `${span.dataset.share}%`;
}

const cpu = (v) => `${Math.round(v * 1000)}m`;
const mem = (v) => `${(v / 1024 ** 3).toFixed(1)}Gi`;
const phasePill = (phase) => `<span class="pill ${phase === "Running" || phase === "Succeeded" ? "ok" : phase === "Failed" ? "bad" : "warn"}">${esc(phase || "Pending")}</span>`;

function usageProblem() {
  return usage.error ? `<p class="error">usage charts: ${esc(usage.error)}</p>` : "";
}

function problem(kind) {
  return state.errors[kind] ? `<p class="error">${esc(kind)}: ${esc(state.errors[kind])}</p>` : "";
}

function viewOverview() {
  const pods = items("pods");
  const phases = {};
  for (const p of pods) { const ph = (p.status || {}).phase || "Pending"; phases[ph] = (phases[ph] || 0) + 1; }
  const nodes = items("nodes").sort(byName).map((n) => {
    const mine = pods.filter((p) => p.spec.nodeName === n.metadata.name && !["Succeeded", "Failed"].includes((p.status || {}).phase));
    const alloc = (n.status || {}).allocatable || {};
    const r = nodeReady(n);
    return `<div class="card node" data-node="${esc(n.metadata.name)}"><h3>${esc(n.metadata.name)}
      <span class="pill ${r === "True" ? "ok" : "bad"}">${r === "True" ? "Ready" : "NotReady"}</span>
      ${n.spec.unschedulable ? '<span class="pill warn">cordoned</span>' : ""}</h3>
      ${bar("CPU requested", requested(mine, "cpu"), quantity(alloc.cpu), cpu)}
      ${bar("Memory requested", requested(mine, "memory"), quantity(alloc.memory), mem)}
      <div class="muted">${mine.length} pods of ${esc(alloc.pods || "?")}</div></div>`;
  }).join("");
  const events = recentEvents(15);
  return `<h2>Overview</h2>${problem("nodes")}${problem("pods")}
    <div class="counts" id="phases">${Object.entries(phases).map(([k, v]) => `<div><b>${v}</b>${esc(k)}</div>`).join("") || "<div><b>0</b>pods</div>"}</div>
    <h3>Nodes</h3><div class="grid" id="node-cards">${nodes || '<p class="muted">No nodes.</p>'}</div>
    <h3>Recent events</h3>${events}`;
}

function recentEvents(limit) {
  const events = items("events").sort((a, b) =>
    String(b.lastTimestamp || b.eventTime || b.metadata.creationTimestamp).localeCompare(
      String(a.lastTimestamp || a.eventTime || a.metadata.creationTimestamp))).slice(0, limit);
  if (!events.length) return `${problem("events")}<p class="muted">No events.</p>`;
  return `${problem("events")}<table><thead><tr><th>Last seen</th><th>Type</th><th>Reason</th><th>Object</th><th>Message</th></tr></thead><tbody>${
    events.map((e) => `<tr><td>${esc(e.lastTimestamp || e.eventTime || "")}</td><td>${esc(e.type)}</td><td>${esc(e.reason)}</td>
      <td>${esc((e.involvedObject || {}).kind)}/${esc((e.involvedObject || {}).name)}</td><td>${esc(e.message)}</td></tr>`).join("")}</tbody></table>`;
}

function viewNodes() {
  const pods = items("pods");
  return `<h2>Nodes</h2>${problem("nodes")}${usageProblem()}<p id="drain-progress" role="status"></p>` + items("nodes").sort(byName).map((n) => {
    const mine = pods.filter((p) => p.spec.nodeName === n.metadata.name).sort(byName);
    return `<section class="card"><h3>${esc(n.metadata.name)} <span class="pill ${nodeReady(n) === "True" ? "ok" : "bad"}">${nodeReady(n) === "True" ? "Ready" : "NotReady"}</span>
      ${n.spec.unschedulable ? '<span class="pill warn">cordoned</span>' : ""}</h3>
      <div class="toolbar">
        <button data-action="${n.spec.unschedulable ? "uncordon" : "cordon"}" data-key="${esc(keyOf(n))}">${n.spec.unschedulable ? "Uncordon" : "Cordon"}</button>
        <button data-action="drain" data-key="${esc(keyOf(n))}">Drain</button></div>
      ${nodeUsageCharts(n.metadata.name)}
      <ul>${mine.map((p) => `<li>${esc(keyOf(p))} ${phasePill((p.status || {}).phase)}</li>`).join("") || '<li class="muted">no pods</li>'}</ul></section>`;
  }).join("");
}

function viewWorkloads() {
  const rows = [];
  for (const [kind, label] of [["deployments", "Deployment"], ["replicationcontrollers", "ReplicationController"], ["replicasets", "ReplicaSet"]]) {
    for (const w of items(kind).sort(byName)) {
      w.kind = w.kind || label;
      const s = w.status || {};
      const may = mayScale(w);
      const revisions = label === "Deployment" ? revisionsOf(w).map((r) => r.revision).join(", ") : "";
      const owned = (w.metadata.ownerReferences || []).length > 0;
      rows.push(`<tr data-workload="${esc(label)}/${esc(keyOf(w))}"><td>${esc(label)}</td><td>${esc(keyOf(w))}</td>
        <td class="desired">${w.spec.replicas ?? 1}</td><td class="ready">${s.readyReplicas || 0}</td><td>${s.availableReplicas || 0}</td>
        <td>${esc(revisions)}</td><td>
        ${owned ? "" : `<button data-action="scale" data-kind="${kind}" data-key="${esc(keyOf(w))}" ${may === true ? "" : "disabled"}
          title="${may === false ? "your token may not scale this" : "scale"}">Scale</button>`}
        ${label === "Deployment" ? `<button data-action="restart" data-kind="${kind}" data-key="${esc(keyOf(w))}" ${may === true ? "" : "disabled"}>Restart</button>
          <button data-action="undo" data-kind="${kind}" data-key="${esc(keyOf(w))}" ${may === true ? "" : "disabled"}>Undo</button>` : ""}
        </td></tr>`);
    }
  }
  return `<h2>Workloads</h2>${problem("deployments")}${problem("replicationcontrollers")}${problem("replicasets")}
    <table id="workloads"><thead><tr><th>Kind</th><th>Name</th><th>Desired</th><th>Ready</th><th>Available</th><th>Revisions</th><th>Actions</th></tr></thead>
    <tbody>${rows.join("") || '<tr><td colspan="7" class="muted">No workloads.</td></tr>'}</tbody></table>`;
}

function viewPods() {
  const filter = sessionStorage.getItem("pod-filter") || "";
  const needle = filter.toLowerCase();
  const pods = items("pods").filter((p) => !needle || keyOf(p).toLowerCase().includes(needle)).sort(byName);
  const shown = pods.slice(0, 500);
  const rows = shown.map((p) => `<tr data-pod="${esc(keyOf(p))}"><td>${esc(p.metadata.namespace)}</td><td>${esc(p.metadata.name)}</td>
    <td>${phasePill((p.status || {}).phase)}</td><td>${ready(p) ? "yes" : "no"}</td><td>${esc(p.spec.nodeName || "")}</td><td>${esc((p.status || {}).podIP || "")}</td>
    <td class="usage">${podUsageCharts(keyOf(p))}</td>
    <td><button data-action="logs" data-key="${esc(keyOf(p))}">Logs</button>
    <button class="danger" data-action="delete" data-key="${esc(keyOf(p))}">Delete</button></td></tr>`).join("");
  return `<h2>Pods</h2>${problem("pods")}${usageProblem()}
    <div class="toolbar"><label>Filter <input id="pod-filter" value="${esc(filter)}"></label>
    <span class="muted">${pods.length} pods${pods.length > shown.length ? `, first ${shown.length} shown` : ""}</span></div>
    <table id="pods"><thead><tr><th>Namespace</th><th>Name</th><th>Phase</th><th>Ready</th><th>Node</th><th>IP</th><th>Usage (15 min)</th><th></th></tr></thead>
    <tbody>${rows || '<tr><td colspan="8" class="muted">No pods.</td></tr>'}</tbody></table>
    <h3 id="log-title">${state.selectedPod ? `Log of ${esc(state.selectedPod)}` : ""}</h3><pre class="log" id="log" ${state.selectedPod ? "" : "hidden"}></pre>`;
}

function viewServices() {
  const endpoints = state.stores.endpoints || new Map();
  const rows = items("services").sort(byName).map((s) => {
    const ep = endpoints.get(keyOf(s));
    const addresses = ((ep && ep.subsets) || []).flatMap((sub) =>
      (sub.addresses || []).flatMap((a) => (sub.ports || []).map((p) => `${a.ip}:${p.port}`)));
    const ports = (s.spec.ports || []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol || "TCP"}`).join(", ");
    return `<tr><td>${esc(keyOf(s))}</td><td>${esc(s.spec.type || "ClusterIP")}</td><td>${esc(s.spec.clusterIP)}</td><td>${esc(ports)}</td><td>${esc(addresses.join(", ") || "none")}</td></tr>`;
  }).join("");
  return `<h2>Services</h2>${problem("services")}${problem("endpoints")}<table><thead><tr><th>Name</th><th>Type</th><th>ClusterIP</th><th>Ports</th><th>Endpoints</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="5" class="muted">No services.</td></tr>'}</tbody></table>`;
}

function viewEvents() {
  return `<h2>Events</h2>${recentEvents(200)}`;
}

function viewApply() {
  return `<h2>Apply a manifest</h2>
    <p>JSON: one object, or a <code>List</code>. Objects that exist are patched, others created; the server checks every field.</p>
    <div class="toolbar"><label>Namespace <input id="apply-namespace" value="default"></label>
    <label>Or upload <input id="apply-file" type="file" accept=".json,application/json"></label></div>
    <label for="manifest">Manifest</label><textarea id="manifest" spellcheck="false"></textarea>
    <div class="toolbar"><button class="primary" data-action="apply">Apply</button></div>
    <div id="apply-result" role="status"></div>`;
}

const VIEWS = { overview: viewOverview, nodes: viewNodes, workloads: viewWorkloads, pods: viewPods,
  services: viewServices, events: viewEvents, apply: viewApply };

function currentView() {
  const name = location.hash.slice(1);
  return VIEWS[name] ? name : "overview";
}

function render() {
  if (!state.user) return;
  const name = currentView();
  watchFor(name);
  // Usage series only for the views that chart them.
  if (name === "nodes" || name === "pods") startUsagePolling(invalidate);
  else stopUsagePolling();
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = $("#view");
  // The apply form and the log keep what the user typed and what streamed in.
  if (name === "apply" && view.dataset.view === "apply") return;
  // A re-render replaces the elements: the focused one gets its focus and
  // caret back, so typing in the filter is never disturbed.
  const active = document.activeElement;
  const focused = active && active.id;
  const caret = active && "selectionStart" in active && active.type !== "number"
    ? [active.selectionStart, active.selectionEnd] : null;
  const log = $("#log");
  const logText = log ? log.textContent : "";
  view.innerHTML = VIEWS[name]();
  sizeBars(view);
  view.dataset.view = name;
  if ($("#log")) $("#log").textContent = logText;
  const again = focused && document.getElementById(focused);
  if (again) {
    again.focus();
    if (caret && "setSelectionRange" in again) again.setSelectionRange(caret[0], caret[1]);
  }
}

async function showLogs(key) {
  if (state.logAbort) state.logAbort.abort();
  state.selectedPod = key;
  render();
  const [namespace, name] = key.split("/");
  const abort = new AbortController();
  state.logAbort = abort;
  const log = $("#log");
  log.textContent = "";
  try {
    const response = await fetch(`/api/v1/namespaces/${namespace}/pods/${name}/log?follow=true&tailLines=200`,
      { headers: { Authorization: `Bearer ${state.token}` }, signal: abort.signal });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      $("#log").textContent = body.message || `HTTP ${response.status}`;
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const target = $("#log");
      if (!target) return;
      target.textContent = (target.textContent + decoder.decode(value, { stream: true })).slice(-200000);
      target.scrollTop = target.scrollHeight;
    }
  } catch (error) {
    if (!abort.signal.aborted && $("#log")) $("#log").textContent += `\n[${error.message}]`;
  }
}

function find(kind, key) {
  return (state.stores[kind] || new Map()).get(key);
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button || button.disabled) return;
  const { action, kind, key } = button.dataset;
  if (action === "scale") scale(find(kind, key));
  else if (action === "restart") restart(find(kind, key));
  else if (action === "undo") undo(find(kind, key));
  else if (action === "cordon") cordon(find("nodes", key), true);
  else if (action === "uncordon") cordon(find("nodes", key), false);
  else if (action === "drain") drain(find("nodes", key));
  else if (action === "delete") deletePod(find("pods", key));
  else if (action === "logs") showLogs(key);
  else if (action === "apply") applyManifest();
});

document.addEventListener("input", (event) => {
  if (event.target.id === "pod-filter") {
    sessionStorage.setItem("pod-filter", event.target.value);
    invalidate();
  }
});

document.addEventListener("change", async (event) => {
  if (event.target.id === "apply-file" && event.target.files.length) {
    $("#manifest").value = await event.target.files[0].text();
  }
});

window.addEventListener("hashchange", () => {
  $("#view").dataset.view = "";
  render();
  $("#main").focus();
});

// --- signing in -------------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  // Who the token is: the API answers 401 for a bad one, and the namespaces
  // list (or its 403) proves it authenticates.
  try {
    await api("GET", "/api/v1/namespaces?limit=1");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw new Error("the API does not accept this token");
    if (!(error instanceof ApiError && error.status === 403)) throw error;
  }
  sessionStorage.setItem("corral-token", token);
  state.user = "signed in";
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  $("#view").hidden = false;
  $("#who").innerHTML = `signed in <button id="signout">Sign out</button>`;
  $("#signout").addEventListener("click", signOut);
  render();
}

function signOut() {
  for (const watcher of Object.values(state.watchers)) watcher.abort();
  if (state.logAbort) state.logAbort.abort();
  sessionStorage.removeItem("corral-token");
  location.hash = "";
  location.reload();
}

$("#signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#signin-error").textContent = "";
  try {
    await signIn($("#token").value.trim());
  } catch (error) {
    state.token = "";
    $("#signin-error").textContent = error.message;
  }
});

if (state.token) signIn(state.token).catch(() => { state.token = ""; sessionStorage.removeItem("corral-token"); });
else $("#token").focus();
