// DOM helpers and the one function that turns post content into DOM (text only, never HTML).

/**
 * Builds an element. `props`: class, text, title, dataset {…}, attrs {…}, on {event: fn},
 * hidden, and any other DOM property (value, type, disabled…). Children: nodes, strings, null.
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  const p = props || {};
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "attrs") for (const [a, av] of Object.entries(v)) node.setAttribute(a, av);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c);
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

export function shortKey(hex) {
  return typeof hex === "string" ? hex.slice(0, 8) : "?";
}

export function timeText(ms) {
  if (!ms) return "";
  return new Date(ms).toLocaleString();
}

export function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

/** A key shown short, with the whole key as tooltip and who it is. */
export function keyLabel(key, me, owner) {
  const tags = [];
  if (key === me) tags.push("you");
  if (key === owner) tags.push("owner");
  return el("span", { class: "key", title: key, text: shortKey(key) + (tags.length ? " (" + tags.join(", ") + ")" : "") });
}

/** Plain text of a post for previews (reply targets). */
export function previewText(object) {
  if (!object) return "";
  const t = typeof object.content === "string" ? object.content : (object.name || object.type || "");
  return t.length > 60 ? t.slice(0, 60) + "…" : t;
}

/**
 * Renders a post's content: the only place content becomes DOM. Text goes through
 * textContent; images only from inline `data:image/…` URLs (the CSP allows nothing else).
 * Formatted (HTML) content will be sanitised here when it is supported.
 */
export function renderContent(view) {
  const o = view.object;
  if (view.deleted) return el("div", { class: "content", text: "(deleted)" });
  if (!o) return el("div", { class: "content encrypted", text: "(encrypted: this node has no key for it)" });
  if (o.type === "Image") {
    const box = el("div", { class: "content image" });
    const url = typeof o.url === "string" ? o.url : (o.url && typeof o.url.href === "string" ? o.url.href : "");
    if (/^data:image\/(png|jpeg|gif|webp);base64,/.test(url)) {
      box.append(el("img", { src: url, alt: typeof o.name === "string" ? o.name : "image" }));
    } else {
      box.append(el("span", { class: "meta", text: "(image not shown: not an inline image)" }));
    }
    if (typeof o.content === "string" && o.content) box.append(el("div", { class: "note", text: o.content }));
    return box;
  }
  if (o.type === "Note") {
    return el("div", { class: "content note" },
      typeof o.name === "string" && o.name ? el("div", { class: "title", text: o.name }) : null,
      typeof o.content === "string" ? o.content : "");
  }
  return el("div", { class: "content meta", text: "(" + String(o.type || "unknown") + ")" });
}
