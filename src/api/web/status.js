// Node status panels: peers (and banned peers), a group's sync progress, producers and members.

import { api, optional, groupPath } from "./api.js";
import { el, $, shortKey, keyLabel } from "./render.js";

export async function renderPeers() {
  const v = await api("/api/v1/peers");
  const box = $("peers");
  const rows = v.peers.map((p) => el("div", { class: "peer" },
    el("div", {}, el("span", { class: "key", title: p.peer_id, text: p.peer_id.slice(-12) }),
      el("span", { class: "meta", text: " · " + (p.agent || "unknown agent") })),
    el("div", { class: "meta", text: (p.groups || []).length + " shared group(s) · score " + Number(p.score || 0).toFixed(1)
      + (p.penalties ? " · " + p.penalties + " penalties" : "") }),
    el("div", { class: "meta", text: (p.addrs || []).join(" ") })));
  if (!rows.length) rows.push(el("div", { class: "meta", text: "no peers connected" }));
  for (const b of v.banned || []) {
    rows.push(el("div", { class: "peer failing" },
      el("span", { class: "key", title: b.peer_id, text: "banned " + b.peer_id.slice(-12) }),
      el("div", { class: "meta", text: b.reason + " · " + b.remaining_secs + " s left" })));
  }
  box.replaceChildren(...rows);
  return v;
}

/** The sync line of a group: state, heights and a progress bar while syncing. */
export function renderSync(group) {
  const s = group.sync || {};
  const box = $("sync");
  const text = s.state === "syncing"
    ? "syncing: block " + s.local_height + " of " + s.remote_height + " (" + Math.floor((s.progress || 0) * 100) + " %)"
    : "synced at block " + (s.local_height ?? group.height) + (group.pending ? " · " + group.pending + " pending" : "");
  const bar = s.state === "syncing" ? el("progress", { max: s.remote_height || 1, value: s.local_height || 0 }) : null;
  box.replaceChildren(...[bar, bar ? " " : null, text].filter(Boolean));
  box.dataset.state = s.state || "";
}

function entries(v, name) {
  if (!v) return null;
  if (Array.isArray(v)) return v;
  if (Array.isArray(v[name])) return v[name];
  if (Array.isArray(v.items)) return v.items;
  return [];
}

function person(entry, me, owner) {
  const key = typeof entry === "string" ? entry : entry.key || entry.public_key || entry.pubkey || "";
  const extra = typeof entry === "object" && entry
    ? Object.entries(entry).filter(([k, v]) => !["key", "public_key", "pubkey"].includes(k) && (typeof v === "string" || typeof v === "number" || typeof v === "boolean"))
      .map(([k, v]) => k + ": " + v).join(" · ")
    : "";
  return el("li", { class: "person" }, keyLabel(key, me, owner), extra ? el("span", { class: "meta", text: " " + extra }) : null);
}

/**
 * Producers and members of a group, from `GET …/producers` and `…/members` where this node
 * serves them (else the producers of the group info); the section stays hidden otherwise.
 */
export async function renderPeople(group, me) {
  const gid = group.group_id;
  const [prod, mem] = await Promise.all([
    optional(groupPath(gid, "/producers")).catch(() => null),
    optional(groupPath(gid, "/members")).catch(() => null),
  ]);
  const producers = entries(prod, "producers") || group.producers || [];
  const members = entries(mem, "members");
  const section = $("people");
  $("producers").replaceChildren(
    el("h3", { text: "Producers (" + producers.length + ")" }),
    el("ul", { class: "plain" }, ...producers.map((p) => person(p, me, group.owner))));
  if (members) {
    $("members").replaceChildren(
      el("h3", { text: "Members (" + members.length + ")" }),
      el("ul", { class: "plain" }, ...members.map((m) => person(m, me, group.owner))));
  } else {
    $("members").replaceChildren();
  }
  section.hidden = producers.length === 0 && !members;
  section.dataset.source = prod ? "producers-route" : "group-info";
}

export function nodeLine(node, peerCount) {
  return "node " + shortKey(node.node_id) + " · v" + node.version + " · " + peerCount + " peer" + (peerCount === 1 ? "" : "s");
}
