// Busline dashboard. Plain JavaScript, no dependencies, no build step.
// Every URL is relative, so the page works wherever the handler is mounted.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  session: null,       // api/session: name, read_only, csrf, ...
  overview: null,      // the last overview received
  open: new Set(),     // groups whose consumers are shown
  dead: null,          // the group whose dead letters are shown
  deadCount: -1,       // its dead-letter count when the list was loaded
  tail: null,          // the EventSource of the live tail
  rendered: "",        // the HTML of the events, to skip identical renders
  holding: false,      // a pointer is down: a render now would swallow the click
  pending: false,      // a render waits for the pointer to come up
};

// A click is a press and a release on the same element: replacing the
// events' HTML between the two would lose it, so renders wait for release.
document.addEventListener("pointerdown", () => { state.holding = true; }, true);
function released() {
  setTimeout(() => {
    state.holding = false;
    if (state.pending && state.overview) { state.pending = false; renderEvents(state.overview); }
  }, 0);
}
document.addEventListener("pointerup", released, true);
document.addEventListener("pointercancel", released, true);
window.addEventListener("blur", released);

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function count(n) { return n === null || n === undefined ? "?" : n.toLocaleString("en-US"); }

function duration(ms) {
  if (ms === null || ms === undefined) return "?";
  if (ms <= 0) return "–";
  const s = ms / 1000;
  if (s < 1) return Math.round(ms) + " ms";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return Math.floor(s / 60) + "m " + String(Math.floor(s % 60)).padStart(2, "0") + "s";
  if (s < 172800) return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function ago(iso) {
  if (!iso) return "never";
  return duration(Date.now() - Date.parse(iso)) + " ago";
}

function clock(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function rate(r) {
  if (r === null || r === undefined) return "…";
  if (r === 0) return "0/s";
  return (r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString("en-US")) + "/s";
}

let toastTimer = 0;
function toast(msg, isError) {
  const t = $("toast");
  t.textContent = msg;
  t.className = "toast" + (isError ? " error" : "");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, isError ? 8000 : 3500);
}

// ---- session and actions -------------------------------------------------

async function loadSession() {
  const res = await fetch("api/session", { credentials: "same-origin", cache: "no-store" });
  if (res.status === 401) { location.reload(); return; }
  applySession(await res.json());
}

function applySession(doc) {
  state.session = doc;
  $("transport").textContent = $("transport").title = state.session.name || "";
  $("readonly").hidden = !state.session.read_only;
  document.body.classList.toggle("read-only", state.session.read_only);
  $("dead-replay-all").hidden = state.session.read_only;
  $("dead-purge").hidden = state.session.read_only;
  $("tail").hidden = !state.session.tail;
}

// post sends an action with the CSRF token; a stale token (the dashboard
// restarted) is fetched again once.
async function post(path, body, retried) {
  const res = await fetch(path, {
    method: "POST", credentials: "same-origin", cache: "no-store",
    headers: { "Content-Type": "application/json", "X-Busline-CSRF": state.session.csrf },
    body: JSON.stringify(body),
  });
  let doc = {};
  try { doc = await res.json(); } catch (e) { /* empty body */ }
  if (res.status === 403 && !retried && /CSRF/.test(doc.error || "")) {
    await loadSession();
    return post(path, body, true);
  }
  if (res.status === 401) { location.reload(); }
  if (!res.ok) throw new Error(doc.error || res.status + " " + res.statusText);
  return doc;
}

// confirmAction shows the confirmation dialog and resolves to true on Confirm.
function confirmAction(title, text, verb) {
  const d = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = verb;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "";
    d.showModal();
    $("confirm-cancel").focus();
  });
}

// ---- overview ------------------------------------------------------------

function setStatus(kind, text) {
  const s = $("status");
  s.dataset.state = kind;
  s.textContent = text;
}

function showOverview(ov) {
  state.overview = ov;
  const banner = $("banner");
  if (!ov.ok) {
    setStatus("broker-down", "broker unreachable");
    banner.textContent = "The broker is unreachable: " + ov.error +
      (ov.last_ok ? " — figures below are from " + clock(ov.last_ok) + "." : "") + " Retrying…";
    banner.hidden = false;
  } else {
    setStatus("live", "live · " + new Date(ov.at).toLocaleTimeString());
    banner.hidden = true;
  }
  renderSummary(ov);
  renderEvents(ov);
  renderNotes(ov);
  renderTailChoices(ov);
  if (state.dead) {
    const g = ov.groups.find((x) => x.group === state.dead);
    if (g && g.dead_letters !== state.deadCount) loadDead(state.dead);
  }
}

function renderSummary(ov) {
  let pending = 0, lag = 0, dead = 0, stale = 0, unknown = false;
  for (const g of ov.groups) {
    if (g.pending === null) unknown = true; else pending += g.pending;
    if (g.lag === null) unknown = true; else lag += g.lag;
    dead += g.dead_letters;
    stale += g.stale;
  }
  const stat = (n, label, cls) => `<div class="stat ${cls || ""}"><b>${esc(n)}</b><span>${esc(label)}</span></div>`;
  $("summary").innerHTML =
    stat(count(ov.events.length), "events") +
    stat(count(ov.groups.length), "consumer groups") +
    stat(count(lag) + (unknown ? "+" : ""), "lag (not yet delivered)", lag > 0 ? "warn" : "") +
    stat(count(pending) + (unknown ? "+" : ""), "pending (unacknowledged)") +
    stat(count(dead), "dead letters", dead > 0 ? "alert" : "") +
    stat(count(stale), "stale consumers", stale > 0 ? "warn" : "");
}

function groupRows(groups) {
  let h = "";
  for (const g of groups) {
    const open = state.open.has(g.group);
    const deadCell = g.dead_letters > 0 && state.session.dead_letters
      ? `<button type="button" class="link dead-link" data-dead="${esc(g.group)}">${count(g.dead_letters)}</button>`
      : (state.session.dead_letters ? `<button type="button" class="link" data-dead="${esc(g.group)}">0</button>` : count(g.dead_letters));
    const staleTag = g.stale > 0 ? ` <span class="tag hot">${g.stale} stale</span>` : "";
    h += `<tr data-group="${esc(g.group)}">
      <td class="group"><button type="button" class="link" data-toggle="${esc(g.group)}" aria-expanded="${open}">${open ? "▾" : "▸"} ${esc(g.group)}</button>${staleTag}</td>
      <td class="num">${count(g.consumers)}</td>
      <td class="num ${g.pending > 0 ? "hot" : ""}">${count(g.pending)}</td>
      <td class="num ${g.lag > 0 ? "hot" : ""}">${count(g.lag)}</td>
      <td class="num hide-narrow">${g.pending === 0 ? "–" : duration(g.oldest_pending_ms)}</td>
      <td class="num">${deadCell}</td></tr>`;
    if (open) {
      let m = "";
      for (const c of g.members) {
        m += `<div class="member ${c.stale ? "stale" : ""}" data-consumer="${esc(c.name)}"><span class="name">${esc(c.name)}</span>
          <span>pending <b>${count(c.pending)}</b></span><span>idle <b>${duration(c.idle_ms)}</b></span>${c.live ? '<span class="tag live" title="holds an open subscription now">live</span>' : ""}${c.stale ? '<span class="tag">stale</span>' : ""}</div>`;
      }
      if (!m) m = `<span class="muted">${g.consumers > 0 ? g.consumers + " consumer(s); the broker does not describe them" : "no consumers"}</span>`;
      h += `<tr class="members"><td colspan="6"><div class="members-list">${m}</div></td></tr>`;
    }
  }
  return h;
}

function groupTable(groups) {
  if (!groups.length) return `<p class="muted">No consumer group reads this event.</p>`;
  return `<div class="table-wrap"><table><thead><tr><th>Group</th><th class="num">Consumers</th><th class="num">Pending</th>
    <th class="num">Lag</th><th class="num hide-narrow">Oldest pending</th><th class="num">Dead</th></tr></thead>
    <tbody>${groupRows(groups)}</tbody></table></div>`;
}

// scheduledFact says how many events fired with a delay wait, and when the next is due.
function scheduledFact(e) {
  if (!e.scheduled) return "";
  const due = e.next_due ? Date.parse(e.next_due) - Date.now() : null;
  const when = due === null ? "" : due <= 0 ? ", next due now" : `, next in ${esc(duration(due))}`;
  return `<span>scheduled <b>${count(e.scheduled)}</b>${when}</span>`;
}

function renderEvents(ov) {
  if (state.holding) { state.pending = true; return; }
  let h = "";
  const byEvent = new Map();
  for (const g of ov.groups) {
    if (!byEvent.has(g.event)) byEvent.set(g.event, []);
    byEvent.get(g.event).push(g);
  }
  for (const e of ov.events) {
    const groups = byEvent.get(e.event) || [];
    byEvent.delete(e.event);
    h += `<article class="event" data-event="${esc(e.event)}">
      <div class="event-head"><span class="event-name">${esc(e.event)}</span>
        <span class="facts"><span>retained <b>${count(e.length)}</b></span><span>rate <b>${rate(e.rate)}</b></span>
        <span>last event <b>${esc(ago(e.last_event_at))}</b></span>${scheduledFact(e)}</span>
        <span class="spacer"></span>
        ${state.session.tail ? `<button type="button" data-tail="${esc(e.event)}">Tail</button>` : ""}</div>
      ${groupTable(groups)}</article>`;
  }
  for (const [event, groups] of byEvent) {
    h += `<article class="event" data-event="${esc(event)}">
      <div class="event-head"><span class="event-name">${event ? esc(event) : "Groups"}</span>
      <span class="facts">${event ? "no retained stream" : "the broker does not say which event each group reads"}</span></div>
      ${groupTable(groups)}</article>`;
  }
  if (!h) h = ov.unsupported ? "" : `<p class="muted">No events yet: nothing has been fired on this transport.</p>`;
  if (h !== state.rendered) {
    state.rendered = h;
    $("events").innerHTML = h;
  }
}

function renderNotes(ov) {
  $("notes").innerHTML = ov.notes.map((n) => `<p>Note: ${esc(n)}</p>`).join("");
}

function renderTailChoices(ov) {
  const list = $("tail-events");
  const want = ov.events.map((e) => e.event);
  const have = Array.from(list.options).map((o) => o.value);
  if (want.join("\n") !== have.join("\n")) {
    list.innerHTML = want.map((e) => `<option value="${esc(e)}"></option>`).join("");
  }
  const input = $("tail-event");
  if (!input.value && want.length && document.activeElement !== input) input.value = want[0];
}

// ---- dead letters --------------------------------------------------------

async function loadDead(group) {
  state.dead = group;
  const g = state.overview && state.overview.groups.find((x) => x.group === group);
  state.deadCount = g ? g.dead_letters : -1;
  $("dead").hidden = false;
  $("dead-group").textContent = group;
  const list = $("dead-list");
  try {
    const res = await fetch("api/dead?group=" + encodeURIComponent(group), { credentials: "same-origin", cache: "no-store" });
    const doc = await res.json();
    if (!res.ok) throw new Error(doc.error || res.statusText);
    if (state.dead !== group) return;
    renderDead(doc);
  } catch (e) {
    list.innerHTML = `<p class="bad">Could not load the dead letters: ${esc(e.message)}</p>`;
  }
}

function renderDead(doc) {
  const items = doc.dead_letters;
  $("dead-replay-all").disabled = $("dead-purge").disabled = items.length === 0;
  if (!items.length) {
    $("dead-list").innerHTML = `<p class="muted">No dead letters in this group.</p>`;
    return;
  }
  let h = items.length >= doc.limit ? `<p class="muted">The oldest ${doc.limit} are shown.</p>` : "";
  for (const d of items) {
    const md = Object.keys(d.metadata).sort().map((k) => `${esc(k)}: ${esc(d.metadata[k])}`).join("\n");
    h += `<article class="dead-letter" data-id="${esc(d.id)}">
      <div class="dl-head"><span class="mono">${esc(d.event || "?")}</span>
        <span class="muted">attempts <b>${count(d.attempts)}</b></span>
        <span class="muted" title="${esc(d.dead_at || "")}">dead ${esc(ago(d.dead_at))}</span>
        <span class="spacer"></span>
        ${state.session.read_only ? "" : `<button type="button" class="replay" data-replay="${esc(d.id)}">Replay</button>`}</div>
      <div class="reason">${esc(d.reason)}</div>
      <div class="muted mono">event ${esc(d.event_id || "?")} · dead-letter ${esc(d.id)} · ${esc(clock(d.dead_at))}</div>
      <details open><summary>Payload${d.payload_json ? " (JSON)" : ""}${d.truncated ? " — truncated" : ""}</summary><pre class="payload">${esc(d.payload)}</pre></details>
      <details><summary>Metadata</summary><pre>${md}</pre></details></article>`;
  }
  $("dead-list").innerHTML = h;
}

async function replayOne(id) {
  const group = state.dead;
  if (!(await confirmAction("Replay this dead letter?", `It goes back to ${group} as a fresh delivery with its original event ID.`, "Replay"))) return;
  try {
    await post("api/dead/replay", { group, id });
    toast("Replayed 1 dead letter to " + group);
  } catch (e) { toast("Replay failed: " + e.message, true); }
  loadDead(group);
}

async function replayAll() {
  const group = state.dead;
  if (!(await confirmAction("Replay every dead letter?", `Every dead letter of ${group} goes back to the group as a fresh delivery.`, "Replay all"))) return;
  try {
    const r = await post("api/dead/replay", { group, all: true });
    toast(`Replayed ${r.replayed} dead letter(s) to ${group}`);
  } catch (e) { toast("Replay failed: " + e.message, true); }
  loadDead(group);
}

async function purge() {
  const group = state.dead;
  if (!(await confirmAction("Delete every dead letter?", `The dead letters of ${group} are deleted for good. This cannot be undone.`, "Purge"))) return;
  try {
    const r = await post("api/dead/purge", { group });
    toast(`Purged ${r.purged} dead letter(s) of ${group}`);
  } catch (e) { toast("Purge failed: " + e.message, true); }
  loadDead(group);
}

// ---- live tail -----------------------------------------------------------

function stopTail(msg) {
  if (state.tail) { state.tail.close(); state.tail = null; }
  $("tail-toggle").textContent = "Follow";
  if (msg) $("tail-status").textContent = msg;
}

function startTail(event) {
  stopTail();
  if (!event) return;
  $("tail-event").value = event;
  $("tail-list").innerHTML = "";
  $("tail-status").textContent = "Connecting to " + event + "…";
  $("tail-toggle").textContent = "Stop";
  const es = new EventSource("api/tail?event=" + encodeURIComponent(event));
  state.tail = es;
  es.addEventListener("ready", () => { $("tail-status").textContent = "Following " + event + " since " + new Date().toLocaleTimeString() + "."; });
  es.addEventListener("event", (m) => {
    const ev = JSON.parse(m.data);
    let body = ev.payload;
    if (ev.payload_json && !ev.truncated) {
      try { body = JSON.stringify(JSON.parse(ev.payload)); } catch (e) { /* as it came */ }
    }
    const div = document.createElement("div");
    div.className = "tailed";
    div.innerHTML = `<div class="when">${esc(clock(ev.fired_at || ev.at))} · <span class="mono">${esc(ev.id)}</span>${ev.source ? " · " + esc(ev.source) : ""}</div>` +
      (ev.error ? `<div class="bad">${esc(ev.error)}</div>` : "") + `<pre>${esc(body)}</pre>`;
    const list = $("tail-list");
    list.prepend(div);
    while (list.children.length > 200) list.lastChild.remove();
  });
  es.addEventListener("failed", (m) => stopTail("The tail stopped: " + JSON.parse(m.data).error));
  es.onerror = () => {
    if (state.tail !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      // Refused (not an event name, or no tail on this transport): say why.
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 3000);
      fetch("api/tail?event=" + encodeURIComponent(event), { credentials: "same-origin", signal: ac.signal })
        .then((r) => r.json()).then((d) => stopTail("Cannot follow " + event + ": " + (d.error || "refused")))
        .catch(() => stopTail("Cannot follow " + event + "."));
      return;
    }
    $("tail-status").textContent = "Reconnecting the tail of " + event + "…";
  };
}

// ---- wiring --------------------------------------------------------------

function connect() {
  const es = new EventSource("api/stream");
  es.addEventListener("overview", (m) => showOverview(JSON.parse(m.data)));
  es.onerror = () => {
    setStatus("offline", "dashboard unreachable");
    $("banner").textContent = "The dashboard server does not answer; reconnecting…";
    $("banner").hidden = false;
  };
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.toggle !== undefined) {
    const g = b.dataset.toggle;
    if (state.open.has(g)) state.open.delete(g); else state.open.add(g);
    if (state.overview) renderEvents(state.overview);
  } else if (b.dataset.dead !== undefined) {
    loadDead(b.dataset.dead).then(() => $("dead").scrollIntoView({ block: "start" }));
  } else if (b.dataset.replay !== undefined) {
    replayOne(b.dataset.replay);
  } else if (b.dataset.tail !== undefined) {
    startTail(b.dataset.tail);
    $("tail").scrollIntoView({ block: "start" });
  }
});
$("dead-close").addEventListener("click", () => { state.dead = null; $("dead").hidden = true; });
$("dead-replay-all").addEventListener("click", replayAll);
$("dead-purge").addEventListener("click", purge);
$("tail-toggle").addEventListener("click", () => { if (state.tail) stopTail("Stopped."); else startTail($("tail-event").value.trim()); });
$("tail-event").addEventListener("keydown", (ev) => { if (ev.key === "Enter") startTail($("tail-event").value.trim()); });

// The first figures come from one request, so the page is filled at
// once; the event stream keeps them fresh.
async function firstOverview() {
  const res = await fetch("api/overview", { credentials: "same-origin", cache: "no-store" });
  if (res.ok) showOverview(await res.json());
}

// The page carries its first session and figures; without them (an old
// cached page) they are fetched.
function start() {
  const initial = document.getElementById("initial");
  if (initial) {
    try {
      const doc = JSON.parse(initial.textContent);
      applySession(doc.session);
      showOverview(doc.overview);
      return Promise.resolve();
    } catch (e) { /* fetch them instead */ }
  }
  return loadSession().then(firstOverview);
}

start().then(connect).catch((e) => {
  setStatus("offline", "dashboard unreachable");
  $("banner").textContent = "Could not load the dashboard: " + e.message;
  $("banner").hidden = false;
  setTimeout(() => location.reload(), 5000);
});
