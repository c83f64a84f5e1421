// Leaseline web view: pool bars and the latest binding changes from the
// server's event stream (/ui/events), and a search of the current binding
// and its history (/ui/command, the control API's read-only commands).
// Every value is put in the page as text (textContent), never as markup.
"use strict";

const MAX_ROWS = 100;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c === null || c === undefined ? "" : c);
  return e;
}

function pad(n) { return String(n).padStart(2, "0"); }

// Unix seconds as local "YYYY-MM-DD HH:MM:SS".
function when(unix) {
  if (unix === null || unix === undefined || unix === 0) return "";
  const d = new Date(unix * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// ---- live status ----
const status = document.getElementById("status");
function setStatus(text, cls) {
  status.textContent = text;
  status.className = "status " + cls;
}

// ---- pools ----
const pools = document.getElementById("pools");
function renderUsage(list) {
  if (list.length === 0) {
    pools.replaceChildren(el("p", { class: "empty" }, "No pool is configured."));
    return;
  }
  const items = list.map((p) => {
    const free = Math.max(0, p.total - p.assigned - p.declined);
    const pct = (n) => (p.total > 0 ? (100 * n) / p.total : 0).toFixed(2) + "%";
    const label = `Pool ${p.first} to ${p.last} (subnet ${p.prefix}): ` +
      `${p.assigned} assigned, ${p.declined} declined, ${free} free of ${p.total}`;
    const bar = el("div", { class: "bar", role: "img", "aria-label": label },
      el("span", { class: "assigned" }),
      el("span", { class: "declined" }),
      el("span", { class: "free" }));
    // Widths through the CSSOM (the page's policy forbids inline style attributes).
    bar.children[0].style.flexBasis = pct(p.assigned);
    bar.children[1].style.flexBasis = pct(p.declined);
    bar.children[2].style.flexBasis = pct(free);
    return el("div", {
      class: "pool", id: `pool-${p["subnet-id"]}-${p.first}`,
      "data-assigned": p.assigned, "data-declined": p.declined,
      "data-free": free, "data-total": p.total,
    },
    el("div", { class: "name" }, `${p.first} – ${p.last}`, el("br"),
      el("small", {}, `subnet ${p.prefix}`)),
    bar,
    el("div", { class: "counts", "aria-hidden": "true" },
      `${p.assigned} assigned · ${p.declined} declined · ${free} free`));
  });
  pools.replaceChildren(...items);
}

// ---- live changes ----
const rows = document.querySelector("#changes tbody");
function addChanges(list) {
  for (const c of list) {
    const old = rows.querySelector(`tr[data-ip="${CSS.escape(c["ip-address"])}"]`);
    if (old) old.remove();
    const tr = el("tr", { class: "fresh", "data-ip": c["ip-address"], "data-state": c.state },
      el("td", {}, el("time", { datetime: new Date(c.time * 1000).toISOString() }, when(c.time))),
      el("td", {}, c["ip-address"]),
      el("td", {}, c.state),
      el("td", {}, c["hw-address"] || ""),
      el("td", {}, c["client-id"] || ""),
      el("td", {}, c["remote-id"] || ""),
      el("td", {}, c.state === "active" ? when(c.expire) : ""));
    rows.prepend(tr);
  }
  while (rows.rows.length > MAX_ROWS) rows.lastElementChild.remove();
}

function connect() {
  const source = new EventSource("/ui/events");
  source.addEventListener("open", () => setStatus("Live", "live"));
  source.addEventListener("error", () => {
    // EventSource reconnects by itself (the server closes a stalled stream).
    setStatus("Reconnecting…", "down");
  });
  source.addEventListener("usage", (e) => renderUsage(JSON.parse(e.data)));
  source.addEventListener("changes", (e) => addChanges(JSON.parse(e.data)));
}

// ---- search ----
const form = document.getElementById("search");
const result = document.getElementById("search-result");

async function command(name, args) {
  const r = await fetch("/ui/command", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ command: name, arguments: args }),
    credentials: "same-origin",
  });
  if (r.status === 401) {
    window.location.assign("/ui");
    throw new Error("signed out");
  }
  return r.json();
}

const GET_BY = {
  "ip-address": "lease4-get",
  "hw-address": "lease4-get-by-hw-address",
  "client-id": "lease4-get-by-client-id",
};

function bindingList(lease) {
  const ll = (lease["user-context"] || {}).leaseline || {};
  const fields = [
    ["Address", lease["ip-address"]],
    ["State", ll.state],
    ["MAC", lease["hw-address"]],
    ["Client id", lease["client-id"]],
    ["Circuit id", ll["circuit-id"]],
    ["Remote id", ll["remote-id"]],
    ["Host name", lease.hostname],
    ["Last transaction", when(lease.cltt)],
    ["Expires", when(ll.expire)],
  ];
  const dl = el("dl", { class: "binding", "data-ip": lease["ip-address"] });
  for (const [k, v] of fields) {
    if (v === null || v === undefined || v === "") continue;
    dl.append(el("dt", {}, k), el("dd", {}, String(v)));
  }
  return dl;
}

function timeline(entries) {
  const ol = el("ol", { class: "timeline", id: "timeline" });
  for (const h of entries) {
    const span = `${when(h.start)} – ${h.end === null ? "now" : when(h.end)}`;
    const who = [h["hw-address"] && `MAC ${h["hw-address"]}`,
      h["client-id"] && `client id ${h["client-id"]}`,
      h["remote-id"] && `remote id ${h["remote-id"]}`].filter(Boolean).join(", ");
    ol.append(el("li", { "data-ip": h["ip-address"], "data-state": h.state },
      el("strong", {}, span), `: ${h["ip-address"]} ${h.state}${who ? " (" + who + ")" : ""}`));
  }
  return ol;
}

async function search(kind, value) {
  const out = [];
  const history = await command("lease4-history", { [kind]: value, limit: 200 });
  // Current binding(s).
  let leases = [];
  if (GET_BY[kind]) {
    const got = await command(GET_BY[kind], { [kind]: value });
    if (got.result === 0) leases = got.arguments.leases || [got.arguments];
    else if (got.result !== 3) out.push(el("p", { class: "error", role: "alert" }, got.text));
  } else if (history.result === 0) {
    // By remote id: the addresses its history says it holds now.
    const open = history.arguments.history.filter((h) => h.end === null);
    for (const ip of new Set(open.map((h) => h["ip-address"]))) {
      const got = await command("lease4-get", { "ip-address": ip });
      if (got.result === 0) leases.push(got.arguments);
    }
  }
  out.push(el("h3", {}, "Current binding"));
  if (leases.length === 0) out.push(el("p", { class: "empty", id: "no-binding" }, "No current binding."));
  for (const l of leases) out.push(bindingList(l));
  // History, when the server keeps it.
  out.push(el("h3", {}, "History"));
  if (history.result === 0) out.push(timeline(history.arguments.history));
  else if (history.result === 3) out.push(el("p", { class: "empty" }, "No history."));
  else if (history.result === 2) out.push(el("p", { class: "hint", id: "no-history" }, "This server keeps no lease history (lease4-history is not available)."));
  else out.push(el("p", { class: "error", role: "alert" }, history.text));
  result.replaceChildren(...out);
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const kind = document.getElementById("search-kind").value;
  const value = document.getElementById("search-value").value.trim();
  if (value === "") return;
  result.replaceChildren(el("p", { class: "hint" }, "Searching…"));
  search(kind, value).catch((err) => {
    result.replaceChildren(el("p", { class: "error", role: "alert" }, `Search failed: ${err.message}`));
  });
});

connect();
