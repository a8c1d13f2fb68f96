// rumgate web page: plain fetch against the REST API; the token stays in this browser.
"use strict";
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("rumgate-token") || "";
// `/#token=…` hands the page a token once (a fragment never reaches the server or its logs).
if (location.hash.startsWith("#token=")) {
  token = decodeURIComponent(location.hash.slice(7));
  localStorage.setItem("rumgate-token", token);
  history.replaceState(null, "", location.pathname);
}
let current = null;      // selected group id
let streamAbort = null;  // AbortController of the live stream

function headers(extra) {
  return Object.assign({ "Authorization": "Bearer " + token }, extra || {});
}

async function api(path, opts) {
  const resp = await fetch(path, Object.assign({ headers: headers(opts && opts.json ? { "Content-Type": "application/json" } : {}) }, opts || {}));
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = body.error || {};
    throw new Error((e.code || resp.status) + ": " + (e.message || resp.statusText));
  }
  return body;
}

function showError(e) { $("error").textContent = e ? String(e.message || e) : ""; }

function renderItem(item) {
  const div = document.createElement("div");
  div.className = "item";
  div.dataset.cursor = item.cursor;
  div.dataset.trx = item.trx_id;
  const o = item.object;
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = item.origin && item.origin.author && item.origin.author.name ? item.origin.author.name + " via " + item.origin.adapter : item.sender.slice(0, 8);
  meta.textContent = "#" + item.height + " · " + who + " · " + new Date(item.timestamp).toLocaleString() + (item.edits ? " · edited" : "");
  const body = document.createElement("div");
  if (item.deleted || !o) {
    body.className = "deleted";
    body.textContent = item.deleted ? "(deleted)" : "(encrypted)";
  } else if (o.type === "Image") {
    const img = document.createElement("img");
    img.className = "inline";
    if (typeof o.url === "string" && o.url.startsWith("data:image/")) img.src = o.url;
    body.appendChild(img);
    if (o.content) body.appendChild(document.createTextNode(o.content));
  } else if (o.type === "Note") {
    body.textContent = (o.name ? o.name + "\n" : "") + o.content;
    body.style.whiteSpace = "pre-wrap";
  } else {
    body.className = "meta";
    body.textContent = o.type + " " + (typeof o.object === "string" ? o.object.slice(0, 12) : (o.object && o.object.id ? o.object.id.slice(0, 12) + ": " + (o.object.content || "") : ""));
  }
  div.append(meta, body);
  return div;
}

async function loadNode() {
  try {
    const n = await api("/api/v1/node");
    $("node").textContent = "node " + n.node_id.slice(0, 12) + " · v" + n.version + " · " + n.groups + " groups";
  } catch (e) { $("node").textContent = ""; showError(e); }
}

async function loadGroups() {
  const list = await api("/api/v1/groups");
  const ul = $("groups");
  ul.replaceChildren();
  for (const g of list.groups) {
    const li = document.createElement("li");
    li.className = "group" + (g.group_id === current ? " active" : "");
    li.textContent = g.name + " (" + g.kind + ", " + g.role + ", #" + g.height + ")";
    li.onclick = () => selectGroup(g);
    ul.appendChild(li);
  }
}

async function selectGroup(g) {
  current = g.group_id;
  localStorage.setItem("rumgate-group", current);
  $("title").textContent = g.name;
  await loadGroups();
  const tl = $("timeline");
  tl.replaceChildren();
  let after = "0", last = "0";
  for (;;) {
    const page = await api("/api/v1/groups/" + current + "/posts?limit=500&after=" + after);
    for (const it of page.items) tl.prepend(renderItem(it));
    if (!page.items.length) break;
    after = page.next_cursor;
  }
  last = after;
  follow(current, last);
}

// Live items: the SSE endpoint read through fetch (EventSource cannot send the token header).
async function follow(group, cursor) {
  if (streamAbort) streamAbort.abort();
  const ctl = new AbortController();
  streamAbort = ctl;
  while (!ctl.signal.aborted && group === current) {
    try {
      const resp = await fetch("/api/v1/groups/" + group + "/stream", { headers: headers({ "Last-Event-ID": cursor }), signal: ctl.signal });
      if (!resp.ok) throw new Error("stream " + resp.status);
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let idx;
        while ((idx = buf.indexOf("\n\n")) >= 0) {
          const raw = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          let ev = "message", id = "", data = "";
          for (const line of raw.split("\n")) {
            if (line.startsWith("event:")) ev = line.slice(6).trim();
            else if (line.startsWith("id:")) id = line.slice(3).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (ev === "resume") { cursor = JSON.parse(data).after; break; }
          if (ev === "message" && data) {
            const item = JSON.parse(data);
            if (id) cursor = id;
            const o = item.object || {};
            if (o.type === "Note" || o.type === "Image") $("timeline").prepend(renderItem(item));
            else reloadSoon();
          }
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

let reloadTimer = null;
function reloadSoon() {
  // Edits, deletes and likes change earlier items: re-read the timeline once things settle.
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => { if (current) api("/api/v1/groups/" + current).then(selectGroup).catch(showError); }, 300);
}

async function loadLinks() {
  try {
    const v = await api("/api/v1/links");
    const ul = $("links");
    ul.replaceChildren();
    for (const l of v.links) {
      const li = document.createElement("li");
      li.className = "item";
      const h = document.createElement("span");
      h.className = l.health;
      h.textContent = l.health;
      li.append(h, document.createTextNode(" " + l.kind + " " + l.direction + " → " + (l.chat || l.inbound_url || "") + " · depth " + l.outbox_depth + (l.last_error ? " · " + l.last_error : "")));
      ul.appendChild(li);
    }
  } catch (e) { /* read-only tokens may lack access */ }
}

$("save-token").onclick = () => {
  token = $("token").value.trim();
  localStorage.setItem("rumgate-token", token);
  $("token").value = "";
  start();
};

$("post").onsubmit = async (ev) => {
  ev.preventDefault();
  const text = $("text").value;
  if (!current || !text.trim()) return;
  $("status").textContent = "posting…";
  try {
    const r = await fetch("/api/v1/groups/" + current + "/posts", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() }),
      body: JSON.stringify({ content: text }),
    });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error.code + ": " + body.error.message);
    $("text").value = "";
    $("status").textContent = "stored " + body.trx_id.slice(0, 12);
    showError(null);
  } catch (e) { $("status").textContent = ""; showError(e); }
};

$("create").onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    const g = await api("/api/v1/groups", { method: "POST", json: true, body: JSON.stringify({ name: $("new-name").value, kind: $("new-kind").value }) });
    $("new-name").value = "";
    await selectGroup(g);
  } catch (e) { showError(e); }
};

async function start() {
  if (!token) { showError("Paste the API token (data/api.token) above."); return; }
  showError(null);
  await loadNode();
  try {
    const list = await api("/api/v1/groups");
    const last = localStorage.getItem("rumgate-group");
    const g = list.groups.find((x) => x.group_id === last) || list.groups[0];
    if (g) await selectGroup(g); else await loadGroups();
  } catch (e) { showError(e); }
  loadLinks();
}
setInterval(loadLinks, 5000);
start();
