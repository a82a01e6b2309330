// Usage charts for the console: the last 15 minutes of CPU and memory of each
// node and pod, from the API server's /usage series (what agents report for
// metrics.k8s.io). Plain SVG polylines: nothing from a CDN, nothing inline
// that the page's Content-Security-Policy would refuse.
"use strict";

const USAGE_WINDOW_SECONDS = 15 * 60;
const USAGE_POLL_MS = 5000;

const usage = {
  nodes: new Map(),  // name -> [[t, cores, bytes], ...]
  pods: new Map(),   // "ns/name" -> points
  error: "",
  timer: null,
};

const formatCores = (v) => (v >= 1 ? `${v.toFixed(2)} cores` : `${Math.round(v * 1000)}m`);
const formatBytes = (v) => (v >= 1024 ** 3 ? `${(v / 1024 ** 3).toFixed(1)}Gi` : `${Math.round(v / 1024 ** 2)}Mi`);

// One small line chart: `column` 1 is CPU (cores), 2 is memory (bytes).
function sparkline(points, column, label, format) {
  const width = 240, height = 40;
  if (!points || points.length === 0) {
    return `<figure class="chart"><figcaption>${label} <span class="muted">no data yet</span></figcaption></figure>`;
  }
  const end = points[points.length - 1][0];
  const start = end - USAGE_WINDOW_SECONDS;
  const shown = points.filter((p) => p[0] >= start);
  const top = Math.max(...shown.map((p) => p[column]), 1e-9) * 1.1;
  const xy = shown.map((p) => {
    const x = ((p[0] - start) / USAGE_WINDOW_SECONDS) * width;
    const y = height - (p[column] / top) * height;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(" ");
  const latest = format(shown[shown.length - 1][column]);
  return `<figure class="chart" data-column="${column}"><figcaption>${label} <b>${latest}</b></figcaption>
    <svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${label} over the last 15 minutes, now ${latest}">
    <polyline class="${column === 1 ? "cpu" : "memory"}" points="${xy}"></polyline></svg></figure>`;
}

function usageCharts(points) {
  return `<div class="charts">${sparkline(points, 1, "CPU", formatCores)}${sparkline(points, 2, "Memory", formatBytes)}</div>`;
}

const nodeUsageCharts = (name) => usageCharts(usage.nodes.get(name));
// A pod without samples (not running, or its node reports none) gets a dash, not two empty charts.
const podUsageCharts = (key) => (usage.pods.has(key) ? usageCharts(usage.pods.get(key)) : '<span class="muted">–</span>');

// What a re-render would show differently: the newest point of every series.
const usageSignature = () => JSON.stringify([usage.error,
  ...[...usage.nodes, ...usage.pods].map(([key, points]) => [key, points.length && points[points.length - 1][0]])]);

async function pollUsage(onChange) {
  const before = usageSignature();
  try {
    const [nodes, pods] = await Promise.all([api("GET", "/usage/nodes"), api("GET", "/usage/pods")]);
    usage.nodes = new Map(nodes.nodes.map((n) => [n.name, n.points]));
    usage.pods = new Map(pods.pods.map((p) => [`${p.namespace}/${p.name}`, p.points]));
    usage.error = "";
  } catch (error) {
    // A user who may not list metrics.k8s.io sees the reason, not empty charts.
    usage.error = error.message;
  }
  // Re-render only for news: the page stays still (and typing undisturbed) when idle.
  if (usageSignature() !== before) onChange();
}

function startUsagePolling(onChange) {
  if (usage.timer) return;
  pollUsage(onChange);
  usage.timer = setInterval(() => pollUsage(onChange), USAGE_POLL_MS);
}

function stopUsagePolling() {
  if (usage.timer) clearInterval(usage.timer);
  usage.timer = null;
}
