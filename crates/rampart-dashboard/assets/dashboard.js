// The live dashboard: reads /dashboard/stream (server-sent events over fetch, so the
// bearer token travels in a header) and draws what it says. Every value from the gateway
// is written with textContent: event URIs and reasons carry what attackers sent.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("rampart-token") || "";
let abort = null;
let routesKnown = "";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function setStatus(text, cls) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + (cls || "");
}

function showLogin(message) {
  $("board").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  document.body.dataset.state = "login";
}

function fmt(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n * 100) / 100);
}

function bars(id, items) {
  const ol = $(id);
  ol.replaceChildren();
  if (!items.length) {
    ol.append(el("li", "none", "empty"));
    return;
  }
  const max = Math.max(...items.map((i) => i.n));
  for (const i of items) {
    const li = el("li");
    const bar = el("span", null, "bar");
    bar.style.width = (100 * i.n / max).toFixed(1) + "%";
    li.append(bar, el("span", i.key), el("span", fmt(i.n)));
    li.dataset.key = i.key;
    li.dataset.n = i.n;
    ol.append(li);
  }
}

function rows(tbodyParent, list, cells, rowClass) {
  const tb = $(tbodyParent).querySelector("tbody");
  tb.replaceChildren();
  for (const item of list) {
    const tr = el("tr");
    if (rowClass) tr.className = rowClass(item);
    for (const [text, cls] of cells(item)) tr.append(el("td", text, cls));
    tb.append(tr);
  }
}

function chart(series, step) {
  const c = $("traffic");
  const ctx = c.getContext("2d");
  const w = c.width, h = c.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  const rates = series.map((p) => p.slice(1).map((v) => v / step));
  const max = Math.max(1, ...rates.map((r) => r[0]));
  const x = (i) => pad + (w - pad - 4) * i / Math.max(1, series.length - 1);
  const y = (v) => h - 18 - (h - 26) * v / max;
  ctx.strokeStyle = "#2d3844";
  ctx.fillStyle = "#8a96a3";
  ctx.font = "11px sans-serif";
  for (const f of [0, 0.5, 1]) {
    ctx.beginPath();
    ctx.moveTo(pad, y(max * f));
    ctx.lineTo(w, y(max * f));
    ctx.stroke();
    ctx.fillText(fmt(max * f), 2, y(max * f) + 4);
  }
  // Stacked areas: 2xx, 3xx, 4xx, 5xx (indexes 1..4 of each rate row).
  const colors = ["#46a758", "#3e8ed0", "#e0a526", "#c93c37"];
  const base = rates.map(() => 0);
  for (let k = 0; k < 4; k++) {
    ctx.beginPath();
    rates.forEach((r, i) => ctx.lineTo(x(i), y(base[i] + r[k + 1])));
    for (let i = rates.length - 1; i >= 0; i--) ctx.lineTo(x(i), y(base[i]));
    ctx.closePath();
    ctx.fillStyle = colors[k];
    ctx.globalAlpha = 0.75;
    ctx.fill();
    ctx.globalAlpha = 1;
    rates.forEach((r, i) => { base[i] += r[k + 1]; });
  }
  ctx.beginPath();
  ctx.strokeStyle = "#ffffff";
  ctx.lineWidth = 1.5;
  rates.forEach((r, i) => ctx.lineTo(x(i), y(r[5])));
  ctx.stroke();
  ctx.lineWidth = 1;
  if (series.length) {
    ctx.fillStyle = "#8a96a3";
    const t = (s) => new Date(s * 1000).toLocaleTimeString();
    ctx.fillText(t(series[0][0]), pad, h - 4);
    ctx.fillText(t(series[series.length - 1][0]), w - 70, h - 4);
  }
}

function render(d) {
  $("login").hidden = true;
  $("board").hidden = false;
  const t = d.totals;
  $("rps").textContent = fmt(d.rps);
  $("requests").textContent = fmt(t.requests);
  $("blocked").textContent = fmt(t.blocked);
  const l = d.latency_ms;
  $("latency").textContent = [l.p50, l.p95, l.p99].map(fmt).join(" / ");
  $("mix").textContent = `2xx ${t["2xx"]} · 3xx ${t["3xx"]} · 4xx ${t["4xx"]} · 5xx ${t["5xx"]}`;
  chart(d.series, d.step);
  bars("stages", d.blocked_by_stage);
  bars("rules", d.blocked_by_rule);
  bars("ips", d.top_ips);
  bars("consumers", d.top_consumers);
  bars("countries", d.top_countries);
  rows("routes", d.routes, (r) => [[r.route], [r.requests, "num"], [r["2xx"], "num"],
    [r["3xx"], "num"], [r["4xx"], "num"], [r["5xx"], "num"], [r.blocked, "num"], [fmt(r.p95_ms), "num"]]);
  rows("upstreams", d.upstreams || [], (u) => [[u.upstream], [u.target],
    [u.healthy ? "● healthy" : "● down", u.healthy ? "up" : "downs"]]);
  rows("events", d.events || [], (e) => [[e.ts.slice(11, 23)], [e.stage], [e.action],
    [e.status, "num"], [e.client_ip || ""], [e.route || ""], [`${e.method} ${e.host}${e.uri}`, "req"],
    [e.reason], [(e.rules || []).map((r) => r.data ? `${r.id}: ${r.data}` : String(r.id)).join("\n"), "req"]],
    (e) => e.action);
  const names = (d.route_names || []).join("\n");
  if (names !== routesKnown) {
    routesKnown = names;
    const sel = $("route");
    const keep = sel.value;
    sel.replaceChildren(el("option", "all routes"));
    sel.firstChild.value = "";
    for (const n of d.route_names || []) {
      const o = el("option", n);
      o.value = n;
      sel.append(o);
    }
    sel.value = keep;
  }
  document.body.dataset.state = "live";
  document.body.dataset.updated = String(d.now);
}

async function connect() {
  if (abort) abort.abort();
  if (!token) {
    showLogin();
    return;
  }
  abort = new AbortController();
  const q = new URLSearchParams({ window: $("window").value, route: $("route").value });
  setStatus("connecting…");
  let resp;
  try {
    resp = await fetch("/dashboard/stream?" + q, {
      headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
      signal: abort.signal,
      cache: "no-store",
    });
  } catch (e) {
    if (e.name === "AbortError") return;
    setStatus("disconnected, retrying", "down");
    setTimeout(connect, 2000);
    return;
  }
  if (resp.status === 401 || resp.status === 403) {
    sessionStorage.removeItem("rampart-token");
    token = "";
    showLogin(resp.status === 401 ? "That token was refused." : "That token lacks the viewer role.");
    return;
  }
  if (!resp.ok || !resp.body) {
    setStatus("error " + resp.status + ", retrying", "down");
    setTimeout(connect, 2000);
    return;
  }
  setStatus("live", "live");
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) render(JSON.parse(data));
      }
    }
  } catch (e) {
    if (e.name === "AbortError") return;
  }
  setStatus("disconnected, retrying", "down");
  setTimeout(connect, 2000);
}

// A token may come in the fragment (never sent to the server); it is moved to this tab's
// storage and taken out of the address bar.
function tokenFromFragment() {
  const m = location.hash.match(/token=([^&]+)/);
  if (!m) return false;
  token = decodeURIComponent(m[1]);
  sessionStorage.setItem("rampart-token", token);
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

window.addEventListener("hashchange", () => {
  if (tokenFromFragment()) connect();
});

document.addEventListener("DOMContentLoaded", () => {
  tokenFromFragment();
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("rampart-token", token);
    connect();
  });
  $("route").addEventListener("change", connect);
  $("window").addEventListener("change", connect);
  connect();
});
