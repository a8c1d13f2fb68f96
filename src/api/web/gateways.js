// Gateway accounts and links: create, delete, health and last error, retry dead letters.

import { api, ApiError } from "./api.js";
import { el, $, ago, shortKey } from "./render.js";
import { confirmButton } from "./timeline.js";

const CHAT_HINT = {
  webhook: "receiver URL (https://…) for out links; empty for in-only",
  telegram: "chat id, e.g. -1001234567890 (or -100…/topic)",
  mixin: "conversation id (UUID)",
};

export class Gateways {
  /** ctx: { onError(err, what), onDone() (clears the error), currentGroup() → group info or null, groupName(id) } */
  constructor(ctx) {
    this.ctx = ctx;
    this.accounts = [];
    this.links = [];
    $("gw-kind").addEventListener("change", () => this.showKindFields());
    $("link-gateway").addEventListener("change", () => this.showLinkFields());
    $("gateway-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.createAccount(); });
    $("link-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.createLink(); });
    this.showKindFields();
  }

  async refresh() {
    let a, l;
    try {
      [a, l] = await Promise.all([api("/api/v1/gateways"), api("/api/v1/links")]);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 403)) throw e;
      // A read-only token: say so where the gateways would be.
      $("links").replaceChildren(el("div", { class: "meta", text: "Gateways need an admin token: " + e.message }));
      $("link-form").hidden = true;
      $("gateway-form").hidden = true;
      return;
    }
    $("link-form").hidden = false;
    $("gateway-form").hidden = false;
    this.accounts = a.gateways;
    this.links = l.links;
    this.renderAccounts();
    this.renderLinks();
  }

  showKindFields() {
    const kind = $("gw-kind").value;
    $("gw-telegram").hidden = kind !== "telegram";
    $("gw-mixin").hidden = kind !== "mixin";
  }

  showLinkFields() {
    const acc = this.accounts.find((a) => a.id === $("link-gateway").value);
    const kind = acc ? acc.kind : "";
    $("link-webhook").hidden = kind !== "webhook";
    $("link-chat").placeholder = CHAT_HINT[kind] || "chat";
  }

  renderAccounts() {
    const ul = $("gateways");
    ul.replaceChildren(...this.accounts.map((a) => el("li", { class: "gateway", dataset: { gateway: a.id } },
      el("span", { class: "name", text: a.name }),
      el("span", { class: "meta", text: a.kind + " · " + a.id }),
      el("span", { class: "spacer" }),
      confirmButton("delete", "Delete", "Confirm delete", () => this.deleteAccount(a)))));
    if (!this.accounts.length) ul.append(el("li", { class: "meta", text: "no accounts yet" }));
    const sel = $("link-gateway");
    const keep = sel.value;
    sel.replaceChildren(...this.accounts.map((a) => el("option", { value: a.id, text: a.name + " (" + a.kind + ")" })));
    if (this.accounts.some((a) => a.id === keep)) sel.value = keep;
    $("link-button").disabled = !this.accounts.length;
    this.showLinkFields();
  }

  renderLinks() {
    const g = this.ctx.currentGroup();
    // The current group's links first, then the others.
    const links = [...this.links].sort((x, y) => (y.group_id === (g && g.group_id)) - (x.group_id === (g && g.group_id)));
    const box = $("links");
    box.replaceChildren(...links.map((l) => this.linkRow(l)));
    if (!links.length) box.append(el("div", { class: "meta", text: "no links yet" }));
  }

  linkRow(l) {
    const acc = this.accounts.find((a) => a.id === l.gateway_id);
    const dead = l.dead_letters || [];
    const detail = "outbox " + l.outbox_depth
      + (l.oldest_pending_age_ms ? " (oldest " + Math.round(l.oldest_pending_age_ms / 1000) + " s)" : "")
      + " · delivered " + l.delivered_total;
    return el("div", { class: "link", dataset: { link: l.id, health: l.health } },
      el("div", { class: "row" },
        el("span", { class: "health " + l.health, text: l.health }),
        el("span", { text: (acc ? acc.name : l.kind) + " · " + l.direction }),
        el("span", { class: "meta", text: "· " + this.ctx.groupName(l.group_id) })),
      el("div", { class: "meta chat", text: l.chat || "(no chat)" }),
      el("div", { class: "meta", text: detail }),
      l.last_error ? el("div", { class: "last-error", text: l.last_error + (l.last_error_at ? " · " + ago(l.last_error_at) : "") }) : null,
      l.inbound_url ? el("div", { class: "meta inbound", text: "inbound: " + location.origin + l.inbound_url }) : null,
      el("div", { class: "row" },
        dead.length ? el("span", { class: "failing dead", text: dead.length + " dead letter" + (dead.length === 1 ? "" : "s"),
          title: dead.map((d) => shortKey(d.trx_id) + ": " + d.error).join("\n") }) : null,
        dead.length ? el("button", { type: "button", class: "retry", text: "Retry", on: { click: () => this.retry(l) } }) : null,
        el("span", { class: "spacer" }),
        confirmButton("delete", "Remove", "Confirm remove", () => this.deleteLink(l))));
  }

  async createAccount() {
    const kind = $("gw-kind").value;
    const body = { kind, name: $("gw-name").value.trim() };
    if (kind === "telegram") {
      const token = $("gw-tg-token").value.trim();
      const file = $("gw-tg-token-file").value.trim();
      const url = $("gw-tg-api-url").value.trim();
      if (token) body.token = token;
      if (file) body.token_file = file;
      if (url) body.api_url = url;
    } else if (kind === "mixin") {
      const ks = $("gw-mx-keystore").value.trim();
      const file = $("gw-mx-keystore-file").value.trim();
      if (ks) {
        try { body.keystore = JSON.parse(ks); } catch (e) {
          this.ctx.onError(new Error("the keystore is not JSON: " + e.message), "Adding the account");
          return;
        }
      }
      if (file) body.keystore_file = file;
    }
    try {
      await api("/api/v1/gateways", { method: "POST", body });
      this.ctx.onDone();
      for (const id of ["gw-name", "gw-tg-token", "gw-tg-token-file", "gw-tg-api-url", "gw-mx-keystore", "gw-mx-keystore-file"]) $(id).value = "";
      await this.refresh();
    } catch (e) { this.ctx.onError(e, "Adding the account"); }
  }

  async createLink() {
    const g = this.ctx.currentGroup();
    if (!g) { this.ctx.onError(new Error("select a group first"), "Adding the link"); return; }
    const acc = this.accounts.find((a) => a.id === $("link-gateway").value);
    const body = {
      group_id: g.group_id,
      gateway_id: $("link-gateway").value,
      direction: $("link-direction").value,
      chat: $("link-chat").value.trim(),
      backfill: Number($("link-backfill").value || 0),
    };
    const nick = $("link-nick").value;
    if (nick) body.nick_format = nick;
    if (acc && acc.kind === "webhook") {
      body.webhook = { format: $("link-wh-format").value, allow_private_target: $("link-wh-private").checked };
      const secret = $("link-wh-secret").value.trim();
      if (secret) body.webhook.secret = secret;
    }
    try {
      const l = await api("/api/v1/links", { method: "POST", body });
      this.ctx.onDone();
      $("link-status").textContent = "linked " + l.id + (l.inbound_url ? " · inbound " + location.origin + l.inbound_url : "");
      $("link-chat").value = "";
      $("link-wh-secret").value = "";
      await this.refresh();
    } catch (e) { this.ctx.onError(e, "Adding the link"); }
  }

  async deleteAccount(a) {
    try {
      await api("/api/v1/gateways/" + encodeURIComponent(a.id), { method: "DELETE" });
      this.ctx.onDone();
      await this.refresh();
    } catch (e) { this.ctx.onError(e, "Deleting the account"); }
  }

  async deleteLink(l) {
    try {
      await api("/api/v1/links/" + encodeURIComponent(l.id), { method: "DELETE" });
      this.ctx.onDone();
      await this.refresh();
    } catch (e) { this.ctx.onError(e, "Removing the link"); }
  }

  async retry(l) {
    try {
      const r = await api("/api/v1/links/" + encodeURIComponent(l.id) + "/retry", { method: "POST" });
      this.ctx.onDone();
      $("link-status").textContent = "retrying " + r.retrying + " dead letter(s)";
      await this.refresh();
    } catch (e) { this.ctx.onError(e, "Retrying"); }
  }
}
