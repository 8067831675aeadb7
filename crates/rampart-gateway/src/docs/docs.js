// Renders the published OpenAPI description next to this page (openapi.json): one section
// per operation. Text from the description is only ever set as text, never as HTML.
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function resolve(doc, v) {
  // Follows local references (#/components/...) a few levels deep.
  for (let i = 0; i < 8 && v && typeof v.$ref === "string" && v.$ref.startsWith("#/"); i++) {
    v = v.$ref.slice(2).split("/").reduce((o, k) => (o ? o[k.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined), doc);
  }
  return v || {};
}

function parameters(doc, item, op) {
  const all = [...(item.parameters || []), ...(op.parameters || [])].map((p) => resolve(doc, p));
  if (!all.length) return null;
  const t = el("table");
  const head = el("tr");
  ["name", "in", "required", "type", "description"].forEach((h) => head.appendChild(el("th", h)));
  t.appendChild(head);
  for (const p of all) {
    const row = el("tr");
    const schema = resolve(doc, p.schema);
    [p.name, p.in, p.required ? "yes" : "no", schema.type || "", p.description || ""].forEach((c) => row.appendChild(el("td", c)));
    t.appendChild(row);
  }
  return t;
}

function body(doc, op) {
  const rb = resolve(doc, op.requestBody);
  if (!rb.content) return null;
  const box = el("div");
  for (const [type, media] of Object.entries(rb.content)) {
    box.appendChild(el("p", "Request body (" + type + ")" + (rb.required ? ", required" : "")));
    if (media.schema) box.appendChild(el("pre", JSON.stringify(resolve(doc, media.schema), null, 2)));
  }
  return box;
}

function render(doc) {
  const info = doc.info || {};
  document.title = (info.title || "API") + " — documentation";
  document.getElementById("title").textContent = info.title || "API";
  const servers = (doc.servers || []).map((s) => s.url).join(", ");
  document.getElementById("version").textContent =
    "Version " + (info.version || "?") + (servers ? " · " + servers : "");
  const main = document.getElementById("operations");
  main.textContent = "";
  const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const m of methods) {
      const op = item[m];
      if (!op) continue;
      const s = el("section", null, "op");
      s.id = op.operationId || m + " " + path;
      s.dataset.operation = op.operationId || "";
      const h = el("h2");
      h.appendChild(el("span", m, "method " + m));
      h.appendChild(el("span", path, "path"));
      s.appendChild(h);
      if (op.summary) s.appendChild(el("p", op.summary, "summary"));
      if (op.description) s.appendChild(el("p", op.description));
      if (op.operationId) s.appendChild(el("p", "operationId: " + op.operationId));
      const p = parameters(doc, item, op);
      if (p) s.appendChild(p);
      const b = body(doc, op);
      if (b) s.appendChild(b);
      main.appendChild(s);
    }
  }
  document.body.dataset.ready = "true";
}

fetch("openapi.json", { credentials: "same-origin" })
  .then((r) => {
    if (!r.ok) throw new Error("the description could not be loaded (" + r.status + ")");
    return r.json();
  })
  .then(render)
  .catch((e) => {
    const main = document.getElementById("operations");
    main.textContent = "";
    main.appendChild(el("p", e.message, "error"));
    document.body.dataset.ready = "error";
  });
