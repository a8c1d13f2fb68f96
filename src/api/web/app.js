// rumgate web page: sign-in, groups, timeline, gateways and node status, all through the
// REST API of this node. The API token stays in this browser (localStorage).

import { api, auth, post, groupPath, takeTokenFromHash, onUnauthorized, ApiError } from "./web/api.js";
import { el, $, previewText, shortKey } from "./web/render.js";
import { Timeline, confirmButton } from "./web/timeline.js";
import { Gateways } from "./web/gateways.js";
import { renderPeers, renderSync, renderPeople, nodeLine } from "./web/status.js";

const GROUP_KEY = "rumgate-group";
const REFRESH_MS = 5000;

const state = { node: null, groups: [], current: null, replyTo: null, firstPage: false, refreshing: false, timer: null };

// ---- errors, in words -----------------------------------------------------------------------

function showError(err, what) {
  const msg = err instanceof ApiError ? err.message + " (" + err.code + ")" : String(err && err.message ? err.message : err);
  $("error-text").textContent = (what ? what + ": " : "") + msg;
  $("error").hidden = false;
}
function clearError() { $("error").hidden = true; $("error-text").textContent = ""; }
$("error-close").addEventListener("click", clearError);
window.addEventListener("unhandledrejection", (ev) => showError(ev.reason, "Unexpected error"));

// ---- sign-in --------------------------------------------------------------------------------

function showSignIn(reason) {
  stop();
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("signin").hidden = false;
  $("node-info").textContent = "";
  if (reason) showError(reason, "Sign-in failed");
  $("signin-token").focus();
}

onUnauthorized((err) => {
  auth.clear();
  showSignIn(err);
});

$("signin-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("signin-token").value.trim();
  if (!t) return;
  auth.set(t);
  $("signin-token").value = "";
  start();
});

$("sign-out").addEventListener("click", () => {
  auth.clear();
  localStorage.removeItem(GROUP_KEY);
  showSignIn(null);
});

// ---- groups ---------------------------------------------------------------------------------

const timeline = new Timeline({
  get me() { return state.node ? state.node.public_key : null; },
  onError: showError,
  onLive: (s, text) => { $("live-state").dataset.state = s; $("live-state").textContent = text; },
  onReply: (view) => setReply(view),
});

const gateways = new Gateways({
  onError: showError,
  onDone: clearError,
  currentGroup: () => state.current,
  groupName: (id) => { const g = state.groups.find((x) => x.group_id === id); return g ? g.name : shortKey(id); },
});

function renderGroups() {
  const ul = $("groups");
  ul.replaceChildren(...state.groups.map((g) => {
    const sync = g.sync && g.sync.state === "syncing" ? " · syncing " + Math.floor(g.sync.progress * 100) + " %" : "";
    return el("li", {
      class: "group" + (state.current && g.group_id === state.current.group_id ? " active" : ""),
      dataset: { group: g.group_id },
      title: g.group_id,
      on: { click: () => selectGroup(g.group_id) },
    }, el("div", { class: "name", text: g.name }),
    el("div", { class: "meta", text: g.kind + " · " + g.role + " · block " + g.height + sync }));
  }));
  if (!state.groups.length) ul.append(el("li", { class: "meta", text: "no groups yet" }));
}

async function loadGroups() {
  state.groups = (await api("/api/v1/groups")).groups;
  renderGroups();
}

function renderGroupHead(g) {
  $("no-group").hidden = true;
  $("group-head").hidden = false;
  $("group-name").textContent = g.name;
  $("group-meta").textContent = g.kind + " · " + g.role + " · owner " + shortKey(g.owner) + " · " + shortKey(g.group_id);
  renderSync(g);
  const leave = $("leave-button");
  const fresh = confirmButton("", "Leave", "Confirm leave", () => leaveGroup(g));
  fresh.id = "leave-button";
  leave.replaceWith(fresh);
}

async function selectGroup(gid) {
  let g;
  try { g = await api(groupPath(gid)); } catch (e) { showError(e, "Opening the group"); return; }
  state.current = g;
  localStorage.setItem(GROUP_KEY, gid);
  setReply(null);
  $("seed-panel").hidden = true;
  renderGroups();
  renderGroupHead(g);
  gateways.renderLinks();
  try {
    await timeline.open(g);
    if (!state.firstPage) {
      state.firstPage = true;
      void $("items").offsetHeight; // lay the first page out before the mark
      performance.mark("rumgate:first-page");
    }
  } catch (e) { showError(e, "Loading the timeline"); }
  renderPeople(g, state.node.public_key).catch((e) => showError(e, "Producers and members"));
}

function noGroup() {
  timeline.close();
  state.current = null;
  $("no-group").hidden = false;
  $("group-head").hidden = true;
  $("items").replaceChildren();
  $("timeline-end").textContent = "";
  $("people").hidden = true;
}

async function leaveGroup(g) {
  try {
    await api(groupPath(g.group_id), { method: "DELETE" });
    localStorage.removeItem(GROUP_KEY);
    noGroup();
    await loadGroups();
    if (state.groups.length) await selectGroup(state.groups[0].group_id);
  } catch (e) { showError(e, "Leaving the group"); }
}

$("create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const g = await api("/api/v1/groups", { method: "POST", body: { name: $("create-name").value.trim(), kind: $("create-kind").value } });
    $("create-name").value = "";
    clearError();
    await loadGroups();
    await selectGroup(g.group_id);
  } catch (e) { showError(e, "Creating the group"); }
});

$("join-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const g = await api("/api/v1/groups/join", { method: "POST", body: { seed: $("join-seed").value.trim() } });
    $("join-seed").value = "";
    clearError();
    await loadGroups();
    await selectGroup(g.group_id);
  } catch (e) { showError(e, "Joining the group"); }
});

// ---- seed -----------------------------------------------------------------------------------

$("seed-button").addEventListener("click", async () => {
  const panel = $("seed-panel");
  if (!panel.hidden) { panel.hidden = true; return; }
  try {
    const s = await api(groupPath(state.current.group_id, "/seed"));
    $("seed-text").value = s.seed;
    $("seed-status").textContent = "";
    panel.hidden = false;
  } catch (e) { showError(e, "Reading the seed"); }
});

$("seed-copy").addEventListener("click", async () => {
  const text = $("seed-text").value;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
    } else {
      $("seed-text").select();
      if (!document.execCommand("copy")) throw new Error("the browser refused to copy; select the text and copy it");
    }
    $("seed-status").textContent = "copied";
  } catch (e) {
    $("seed-text").select();
    $("seed-status").textContent = "could not copy (" + (e.message || e) + "): the seed is selected, copy it by hand";
  }
});

// ---- composer -------------------------------------------------------------------------------

function setReply(view) {
  state.replyTo = view;
  $("reply-to").hidden = !view;
  $("reply-to-text").textContent = view ? "Replying to " + shortKey(view.sender) + ": “" + previewText(view.object) + "”" : "";
  if (view) $("post-text").focus();
}
$("reply-cancel").addEventListener("click", () => setReply(null));

$("composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("post-text").value;
  if (!state.current || !text.trim()) return;
  const object = { type: "Note", content: text };
  if (state.replyTo) object.inReplyTo = state.replyTo.trx_id;
  $("post-button").disabled = true;
  $("post-status").textContent = "posting…";
  try {
    const r = await post(state.current.group_id, object);
    $("post-text").value = "";
    setReply(null);
    $("post-status").textContent = "stored " + shortKey(r.trx_id) + (r.status === "pending" ? ", waiting for a block" : "");
  } catch (e) {
    $("post-status").textContent = "";
    showError(e, "Posting");
  } finally { $("post-button").disabled = false; }
});

$("post-text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("composer").requestSubmit();
});

// ---- periodic refresh -----------------------------------------------------------------------

async function refresh() {
  if (state.refreshing || document.hidden || $("app").hidden) return;
  state.refreshing = true;
  try {
    const [node, peers] = await Promise.all([api("/api/v1/node"), renderPeers()]);
    state.node = node;
    $("node-info").textContent = nodeLine(node, peers.peers.length);
    await loadGroups();
    const cur = state.current && state.groups.find((g) => g.group_id === state.current.group_id);
    if (cur) { state.current = cur; renderSync(cur); }
    await gateways.refresh();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e, "Refreshing");
  } finally { state.refreshing = false; }
}

function stop() {
  timeline.close();
  clearInterval(state.timer);
  state.timer = null;
}

// ---- start ----------------------------------------------------------------------------------

async function start() {
  if (!auth.token) { showSignIn(null); return; }
  let node;
  try { node = await api("/api/v1/node"); } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showSignIn(e);
    return;
  }
  state.node = node;
  clearError();
  $("signin").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("node-info").textContent = nodeLine(node, node.peer_count);
  try {
    await loadGroups();
    const last = localStorage.getItem(GROUP_KEY);
    const g = state.groups.find((x) => x.group_id === last) || state.groups[0];
    if (g) await selectGroup(g.group_id); else noGroup();
  } catch (e) { showError(e, "Loading groups"); }
  gateways.refresh().catch((e) => showError(e, "Gateways"));
  renderPeers().catch((e) => showError(e, "Peers"));
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
}

takeTokenFromHash();
start();
