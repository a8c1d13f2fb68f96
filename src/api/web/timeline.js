// The timeline of one group: newest page first, older pages on scroll, live items from the SSE
// stream (resuming from its cursor) with edits, deletes and likes applied in place. The DOM holds
// at most MAX_ITEMS posts: what falls off either end is paged back in when scrolled to.

import { api, post, groupPath, authHeaders, errorOf, ApiError } from "./api.js";
import { el, $, renderContent, keyLabel, timeText, previewText, shortKey } from "./render.js";

export const PAGE = 50;
export const MAX_ITEMS = 500;
/** Live Updates/Deletes remembered for items not in the DOM, applied if they are paged in. */
const RECENT_REFS = 500;
/** Pixels from an end of the scroller at which the next page is fetched. */
const NEAR = 600;

const isContent = (o) => !!o && (o.type === "Note" || o.type === "Image");
const refOf = (o) => (typeof o === "string" ? o : o && typeof o.id === "string" ? o.id : null);

export class Timeline {
  /** ctx: { me (node key), onError(err, what), onLive(state, text), onReply(view) } */
  constructor(ctx) {
    this.ctx = ctx;
    this.scroller = $("timeline");
    this.list = $("items");
    this.endEl = $("timeline-end");
    this.newerBtn = $("newer");
    this.gen = 0;
    this.gid = null;
    this.abort = null;
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    // Scroll events do not fire when layout (a page added, scroll anchoring) moves an end into
    // view without the position changing: check now and then too.
    setInterval(() => this.maybeLoad(), 400);
    this.newerBtn.addEventListener("click", () => this.jumpToNewest());
  }

  /** Shows `group` (its info, with `cursor` = its latest item): the newest page, then live. */
  async open(group) {
    this.close();
    const gen = ++this.gen;
    this.group = group;
    this.gid = group.group_id;
    this.posts = new Map();   // trx_id → { view, el }
    this.recent = new Map();  // target trx_id → [live Update/Delete items]
    this.list.replaceChildren();
    this.loading = false;
    this.newCount = 0;
    this.liveSeen = BigInt(group.cursor || "0");
    this.top = { cursor: group.cursor || "0", atHead: true };
    this.bottom = { cursor: "0", atStart: true };
    this.updateNewer();
    this.endEl.textContent = "loading…";
    const before = (BigInt(group.cursor || "0") + 1n).toString();
    const page = await api(groupPath(this.gid, "/posts?before=" + before + "&limit=" + PAGE));
    if (gen !== this.gen) return 0;
    for (const v of page.items) this.list.append(this.build(v));
    this.bottom = { cursor: page.next_cursor, atStart: page.items.length < PAGE };
    this.updateEnd();
    this.scroller.scrollTop = 0;
    this.follow(gen, group.cursor || "0");
    queueMicrotask(() => this.maybeLoad());
    return page.items.length;
  }

  close() {
    this.gen++;
    if (this.abort) this.abort.abort();
    this.abort = null;
    this.gid = null;
  }

  get size() { return this.list.childElementCount; }

  // ---- items -------------------------------------------------------------------------------

  build(view) {
    const rec = { view, el: el("article", { class: "post", dataset: { trx: view.trx_id, cursor: view.cursor } }) };
    this.posts.set(view.trx_id, rec);
    for (const ref of this.recent.get(view.trx_id) || []) this.applyRef(rec, ref, false);
    this.paint(rec);
    return rec.el;
  }

  forget(node) {
    const rec = this.posts.get(node.dataset.trx);
    if (rec && rec.el === node) this.posts.delete(node.dataset.trx);
    node.remove();
  }

  paint(rec) {
    if (rec.editing) return;
    const v = rec.view;
    const o = v.object;
    const me = this.ctx.me;
    const who = v.origin && v.origin.author && v.origin.author.name
      ? el("span", { class: "who", text: v.origin.author.name + " via " + (v.origin.adapter || "gateway") })
      : el("span", { class: "who" }, keyLabel(v.sender, me, this.group.owner));
    const meta = el("div", { class: "meta" }, who, " · ",
      el("time", { text: timeText(v.timestamp), attrs: { datetime: new Date(v.timestamp).toISOString() } }),
      " · #" + v.height,
      v.edits ? el("span", { class: "edited", text: " · edited" }) : null);
    const parts = [meta];
    const target = o && typeof o.inReplyTo === "string" ? o.inReplyTo : null;
    if (target) {
      const t = this.posts.get(target);
      const label = t && t.view.object ? "“" + previewText(t.view.object) + "”" : shortKey(target) + "…";
      parts.push(el("div", { class: "reply-to" }, "↪ in reply to ",
        el("span", { class: "ref", text: label, on: { click: () => this.reveal(target) } })));
    }
    parts.push(renderContent(v));
    if (!v.deleted && o) parts.push(this.actions(rec));
    rec.el.replaceChildren(...parts);
    rec.el.classList.toggle("deleted", !!v.deleted);
  }

  actions(rec) {
    const v = rec.view;
    const mine = v.sender === this.ctx.me;
    const bar = el("div", { class: "actions" },
      el("button", { type: "button", class: "like", text: "Like" + (v.likes ? " · " + v.likes : ""),
        on: { click: () => this.send({ type: "Like", object: v.trx_id }, "Like") } }),
      el("button", { type: "button", class: "reply", text: "Reply", on: { click: () => this.ctx.onReply(v) } }));
    if (mine && v.object.type === "Note") {
      bar.append(el("button", { type: "button", class: "edit", text: "Edit", on: { click: () => this.edit(rec) } }));
    }
    if (mine || this.ctx.me === this.group.owner) {
      bar.append(confirmButton("delete", "Delete", "Confirm delete",
        () => this.send({ type: "Delete", object: v.trx_id }, "Delete")));
    }
    if (v.replies) bar.append(el("span", { class: "meta replies", text: v.replies + (v.replies === 1 ? " reply" : " replies") }));
    return bar;
  }

  edit(rec) {
    rec.editing = true;
    const o = rec.view.object;
    const box = el("textarea", { class: "edit-box", value: o.content || "" });
    const save = el("button", { type: "button", class: "save", text: "Save" });
    const cancel = el("button", { type: "button", class: "cancel", text: "Cancel" });
    const done = () => { rec.editing = false; this.paint(rec); };
    cancel.addEventListener("click", done);
    save.addEventListener("click", async () => {
      save.disabled = true;
      const object = { type: "Note", content: box.value };
      if (o.name) object.name = o.name;
      const ok = await this.send({ type: "Update", object: Object.assign({ id: rec.view.trx_id }, object) }, "Edit");
      if (ok) done(); else save.disabled = false;
    });
    const content = rec.el.querySelector(".content");
    const form = el("div", { class: "edit-form" }, box, el("div", { class: "row" }, save, cancel));
    content.replaceWith(form);
    const actions = rec.el.querySelector(".actions");
    if (actions) actions.remove();
    box.focus();
  }

  /** Posts an activity; errors go to the page in words. Resolves to whether it was stored. */
  async send(object, what) {
    try {
      await post(this.gid, object);
      return true;
    } catch (e) {
      this.ctx.onError(e, what + " failed");
      return false;
    }
  }

  reveal(trxId) {
    const rec = this.posts.get(trxId);
    if (!rec) return;
    rec.el.scrollIntoView({ block: "center" });
    rec.el.classList.add("highlight");
    setTimeout(() => rec.el.classList.remove("highlight"), 1500);
  }

  // ---- live --------------------------------------------------------------------------------

  /** Reads the SSE stream (through fetch: EventSource cannot send the token), reconnecting. */
  async follow(gen, cursor) {
    const ctl = new AbortController();
    this.abort = ctl;
    let delay = 500;
    while (gen === this.gen && !ctl.signal.aborted) {
      this.ctx.onLive("connecting", "connecting…");
      try {
        const resp = await fetch(groupPath(this.gid, "/stream"), {
          headers: authHeaders({ "Last-Event-ID": cursor, "Accept": "text/event-stream" }),
          signal: ctl.signal,
        });
        if (!resp.ok) throw await errorOf(resp);
        this.ctx.onLive("live", "live");
        delay = 500;
        const reader = resp.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let idx;
          while ((idx = buf.indexOf("\n\n")) >= 0) {
            const ev = parseEvent(buf.slice(0, idx));
            buf = buf.slice(idx + 2);
            if (gen !== this.gen) return;
            if (ev.event === "resume") {
              cursor = JSON.parse(ev.data).after;
              delay = 0;
            } else if (ev.event === "error") {
              const e = JSON.parse(ev.data).error || {};
              this.ctx.onError(new ApiError(200, e.code || "stream_failed", e.message || "the stream failed"), "Live updates");
            } else if (ev.data) {
              if (ev.id) cursor = ev.id;
              this.onItem(JSON.parse(ev.data));
            }
          }
        }
      } catch (e) {
        if (ctl.signal.aborted || gen !== this.gen) return;
        if (e instanceof ApiError && e.status !== 0) this.ctx.onError(e, "Live updates");
      }
      if (gen !== this.gen) return;
      this.ctx.onLive("reconnecting", "reconnecting…");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(Math.max(delay * 2, 500), 10000);
    }
  }

  /** One live item (any activity), in chain order. */
  onItem(item) {
    const c = BigInt(item.cursor);
    if (c > this.liveSeen) this.liveSeen = c;
    const o = item.object;
    if (o && !isContent(o)) {
      const target = refOf(o.object);
      if (!target) return;
      const rec = this.posts.get(target);
      if (o.type === "Update" || o.type === "Delete") {
        this.remember(target, item);
        if (rec && this.applyRef(rec, item, true)) this.paint(rec);
      } else if (o.type === "Like" && rec) {
        rec.view.likes = (rec.view.likes || 0) + 1;
        this.paint(rec);
      }
      return;
    }
    if (this.posts.has(item.trx_id)) return;
    if (o && typeof o.inReplyTo === "string") {
      const t = this.posts.get(o.inReplyTo);
      if (t) { t.view.replies = (t.view.replies || 0) + 1; this.paint(t); }
    }
    const readingOlder = this.size >= MAX_ITEMS && this.scroller.scrollTop > this.scroller.clientHeight;
    if (!this.top.atHead || readingOlder) {
      // Not showing the newest end: page it in when scrolled up (or on "new posts").
      this.top.atHead = false;
      this.newCount++;
      this.updateNewer();
      return;
    }
    const view = Object.assign({ deleted: false, updated_at: null, edits: 0, likes: 0, replies: 0 }, item);
    // At the top, stay there so the new post shows (scroll anchoring would keep the old one).
    const atTop = this.scroller.scrollTop < 4;
    this.list.prepend(this.build(view));
    if (atTop) this.scroller.scrollTop = 0;
    this.top.cursor = item.cursor;
    this.trimBottom();
  }

  remember(target, item) {
    const refs = this.recent.get(target) || [];
    refs.push(item);
    this.recent.delete(target);
    this.recent.set(target, refs);
    while (this.recent.size > RECENT_REFS) this.recent.delete(this.recent.keys().next().value);
  }

  /** Applies a live Update/Delete to an item if its sender may; whether anything changed. */
  applyRef(rec, item, live) {
    const v = rec.view;
    const o = item.object;
    if (o.type === "Delete") {
      if (v.deleted || (item.sender !== v.sender && item.sender !== this.group.owner)) return false;
      v.deleted = true;
      v.object = null;
      return true;
    }
    if (o.type !== "Update" || item.sender !== v.sender || v.deleted || !o.object || typeof o.object !== "object") return false;
    // A page read after this Update already shows it (or a later one).
    if (!live && v.updated_at && v.updated_at >= item.timestamp) return false;
    const next = Object.assign({}, o.object);
    delete next.id;
    if (v.object && v.object.inReplyTo) next.inReplyTo = v.object.inReplyTo;
    v.object = next;
    v.edits = (v.edits || 0) + 1;
    v.updated_at = item.timestamp;
    return true;
  }

  // ---- paging ------------------------------------------------------------------------------

  onScroll() {
    const s = this.scroller;
    if (s.scrollTop + s.clientHeight > s.scrollHeight - NEAR) this.loadOlder();
    else if (s.scrollTop < NEAR && !this.top.atHead) this.loadNewer();
  }

  /** Fetches again while the viewport is not filled or an end is still near. */
  maybeLoad() {
    if (this.gid) this.onScroll();
  }

  async loadOlder() {
    if (this.loading || this.bottom.atStart || !this.gid) return;
    const gen = this.gen;
    this.loading = true;
    this.endEl.textContent = "loading older posts…";
    try {
      const page = await api(groupPath(this.gid, "/posts?before=" + this.bottom.cursor + "&limit=" + PAGE));
      if (gen !== this.gen) return;
      for (const v of page.items) if (!this.posts.has(v.trx_id)) this.list.append(this.build(v));
      this.bottom = { cursor: page.next_cursor, atStart: page.items.length < PAGE };
      this.trimTop();
    } catch (e) {
      if (gen === this.gen) this.ctx.onError(e, "Loading older posts");
      return;
    } finally {
      if (gen === this.gen) { this.loading = false; this.updateEnd(); }
    }
    setTimeout(() => this.maybeLoad(), 0);
  }

  async loadNewer() {
    if (this.loading || this.top.atHead || !this.gid) return;
    const gen = this.gen;
    this.loading = true;
    try {
      for (let round = 0; round < 5; round++) {
        const page = await api(groupPath(this.gid, "/posts?after=" + this.top.cursor + "&limit=" + PAGE));
        if (gen !== this.gen) return;
        for (const v of page.items) {
          if (!this.posts.has(v.trx_id)) this.list.prepend(this.build(v));
          this.top.cursor = v.cursor;
        }
        this.trimBottom();
        // At the head once a short page was read past everything the stream has shown.
        if (page.items.length < PAGE && BigInt(page.next_cursor) >= this.liveSeen) {
          this.top = { cursor: page.next_cursor, atHead: true };
          this.newCount = 0;
          this.updateNewer();
          break;
        }
        if (page.items.length === PAGE) break;
      }
    } catch (e) {
      if (gen === this.gen) this.ctx.onError(e, "Loading newer posts");
      return;
    } finally {
      if (gen === this.gen) this.loading = false;
    }
    setTimeout(() => this.maybeLoad(), 0);
  }

  /** Drops the oldest items beyond MAX_ITEMS; scrolling down pages them back. */
  trimBottom() {
    let last = this.list.lastElementChild;
    if (this.size <= MAX_ITEMS) return;
    while (this.size > MAX_ITEMS && last) {
      const prev = last.previousElementSibling;
      this.forget(last);
      last = prev;
    }
    this.bottom = { cursor: this.list.lastElementChild.dataset.cursor, atStart: false };
    this.updateEnd();
  }

  /** Drops the newest items beyond MAX_ITEMS; scrolling up pages them back. */
  trimTop() {
    let first = this.list.firstElementChild;
    if (this.size <= MAX_ITEMS) return;
    while (this.size > MAX_ITEMS && first) {
      const next = first.nextElementSibling;
      this.forget(first);
      first = next;
    }
    this.top = { cursor: this.list.firstElementChild.dataset.cursor, atHead: false };
  }

  async jumpToNewest() {
    if (!this.gid) return;
    try {
      const g = await api(groupPath(this.gid));
      await this.open(g);
    } catch (e) { this.ctx.onError(e, "Loading the newest posts"); }
  }

  updateNewer() {
    this.newerBtn.hidden = this.top.atHead || this.newCount === 0;
    this.newerBtn.textContent = this.newCount + " newer post" + (this.newCount === 1 ? "" : "s") + " — show the newest";
  }

  updateEnd() {
    if (this.bottom.atStart) this.endEl.textContent = this.size ? "the beginning of the group" : "no posts yet";
    else this.endEl.textContent = "scroll for older posts";
  }
}

/** One Server-Sent Event block → { event, id, data }. */
function parseEvent(raw) {
  const ev = { event: "message", id: "", data: "" };
  const data = [];
  for (const line of raw.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") ev.event = value;
    else if (field === "id") ev.id = value;
    else if (field === "data") data.push(value);
  }
  ev.data = data.join("\n");
  return ev;
}

/** A button that asks once more before it acts. */
export function confirmButton(cls, label, confirmLabel, act) {
  let timer = null;
  const b = el("button", { type: "button", class: cls, text: label });
  b.addEventListener("click", async () => {
    if (!b.classList.contains("confirming")) {
      b.classList.add("confirming");
      b.textContent = confirmLabel;
      timer = setTimeout(() => { b.classList.remove("confirming"); b.textContent = label; }, 4000);
      return;
    }
    clearTimeout(timer);
    b.disabled = true;
    try { await act(); } finally { b.disabled = false; b.classList.remove("confirming"); b.textContent = label; }
  });
  return b;
}
