// The dashboard page: a snapshot first, then server-sent events from the snapshot's cursor.
// Everything from the streams goes into the page as text (textContent), never as markup.
"use strict";

const KEEP = 500;          // readings held in the page (the live list)
const SHOWN = 200;         // rows drawn at once
const STATS_EVERY_MS = 2000;
const REOPEN_AFTER_MS = 3000;
const STATS_AFTER_NEWS_MS = 300;  // counters follow a new reading this soon, not at the next poll

const state = {
  readings: [],            // newest first: {entry_id, reading}
  seen: new Set(),         // entry ids, so the snapshot and the stream never show one twice
  events: [],
  alerts: [],              // newest first: {entry_id, alert}
  alertCursor: "0-0",
  cameras: new Set(),
  cursor: "",
  search: null,            // {query, results} while a plate search is active
  source: null,
};

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};
const norm = (text) => (text || "").toUpperCase().replace(/[^0-9A-Z]/g, "");
const pct = (x) => `${Math.round(x * 100)}%`;
const confColour = (c) => (c >= 0.8 ? "var(--ok)" : c >= 0.5 ? "var(--mid)" : "var(--low)");

function filters() {
  return { camera: $("camera").value, status: $("status").value, query: norm($("search").value) };
}

function passes(reading, f) {
  if (f.camera !== "*" && (reading.camera_id || "") !== f.camera) return false;
  if (f.status && reading.status !== f.status) return false;
  if (f.query && !norm(reading.text).includes(f.query)) return false;
  return true;
}

function when(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const time = d.toLocaleTimeString([], { hour12: false });
  // The history search reaches back months: a reading of another day says which.
  return d.toDateString() === new Date().toDateString()
    ? time : `${d.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" })} ${time}`;
}

function readingRow(view, fresh) {
  const r = view.reading;
  const row = $("reading-row").content.firstElementChild.cloneNode(true);
  row.classList.add(r.status);
  if (fresh) row.classList.add("fresh");
  row.dataset.entryId = view.entry_id;
  row.dataset.camera = r.camera_id || "";
  row.dataset.status = r.status;
  row.dataset.text = r.text;

  const img = row.querySelector("img");
  const noCrop = row.querySelector(".no-crop");
  img.src = `/api/crop/${encodeURIComponent(r.job_id)}`;
  img.alt = r.text ? `crop read as ${r.text}` : "crop";
  img.addEventListener("error", () => cropMissing(img, noCrop));

  const plate = row.querySelector(".plate");
  if (r.status === "error") {
    plate.append(el("span", "err-code", r.error.code), el("span", "err-msg", r.error.message));
  } else if (!r.characters.length) {
    plate.append(el("span", "err-msg", "no characters read"));
  } else {
    let lastRow = r.characters[0].row;
    for (const c of r.characters) {
      const ch = el("span", "ch", c.char);
      if (c.row !== lastRow) ch.classList.add("row-break");
      lastRow = c.row;
      ch.style.setProperty("--c", confColour(c.confidence));
      ch.title = `${c.char}: ${(c.confidence * 100).toFixed(1)}%`;
      ch.append(el("small", null, pct(c.confidence)));
      plate.append(ch);
    }
  }
  const camera = row.querySelector(".camera");
  camera.textContent = r.camera_id || "no camera";
  const t = r.timings;
  const latency = row.querySelector(".latency");
  latency.textContent = `${t.total_ms.toFixed(0)} ms`;
  latency.title = `queue ${t.queue_wait_ms.toFixed(1)} ms · decode ${t.decode_ms.toFixed(1)} ms · ` +
    `model ${t.infer_ms.toFixed(1)} ms · total ${t.total_ms.toFixed(1)} ms`;
  row.querySelector(".when").textContent = when(r.created_at);
  row.querySelector(".when").title = `${r.worker_id} on ${r.device}, job ${r.job_id}`;

  const score = row.querySelector(".score");
  if (r.status === "ok") {
    score.textContent = pct(r.confidence);
    score.style.color = confColour(r.confidence);
    score.append(el("small", null, "plate"));
  } else {
    score.textContent = "error";
    score.style.color = "var(--low)";
  }
  return row;
}

// Ask the server why (the job expired, a file:// crop, not an image) and say so in its place.
async function cropMissing(img, label) {
  const url = img.src;
  img.remove();
  label.textContent = "no crop";
  try {
    const answer = await (await fetch(url)).json();
    if (answer.error) label.textContent = `no crop: ${answer.error}`;
  } catch (e) { /* keep "no crop" */ }
}

function cropThumb(jobId) {
  const thumb = el("div", "thumb small");
  const img = el("img");
  const label = el("span", "no-crop");
  img.alt = "best crop";
  img.loading = "lazy";
  img.src = `/api/crop/${encodeURIComponent(jobId)}`;
  img.addEventListener("error", () => cropMissing(img, label));
  thumb.append(img, label);
  return thumb;
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

function liveNote(shown) {
  return `${plural(shown, "reading", "readings")} shown of the ${state.readings.length} newest` +
    (shown > SHOWN ? ` (first ${SHOWN} drawn)` : "");
}

function visible() {
  const f = filters();
  const pool = state.search ? state.search.results : state.readings;
  return pool.filter((v) => passes(v.reading, f));
}

function render() {
  const list = $("readings");
  const rows = visible();
  list.replaceChildren(...rows.slice(0, SHOWN).map((v) => readingRow(v, false)));
  $("no-readings").classList.toggle("hidden", rows.length > 0);
  $("no-readings").textContent = state.readings.length || state.search
    ? "No reading matches these filters." : "Waiting for readings…";
  $("feed-note").textContent = state.search
    ? `${plural(rows.length, "reading", "readings")} with “${state.search.query}” ` +
      (state.search.source === "history"
        ? "in the history"
        : `among the newest ${state.search.scanned} in the stream`) +
      " — clear the box to go back to the live list"
    : liveNote(rows.length);
  renderEvents();
}

let statsSoon = null;
function refreshStatsSoon() {
  if (statsSoon === null) statsSoon = setTimeout(() => { statsSoon = null; refreshStats(); }, STATS_AFTER_NEWS_MS);
}

function addReading(view) {
  if (state.seen.has(view.entry_id)) return;
  refreshStatsSoon();
  state.seen.add(view.entry_id);
  state.readings.unshift(view);
  noteCamera(view.reading.camera_id || "");
  while (state.readings.length > KEEP) state.seen.delete(state.readings.pop().entry_id);
  const f = filters();
  const shows = passes(view.reading, f);
  if (state.search && shows) state.search.results.unshift(view);
  if (shows) {
    const list = $("readings");
    list.prepend(readingRow(view, true));
    while (list.children.length > SHOWN) list.lastElementChild.remove();
    $("no-readings").classList.add("hidden");
  }
  if (!state.search) $("feed-note").textContent = liveNote(visible().length);
}

function noteCamera(camera) {
  if (state.cameras.has(camera)) return;
  state.cameras.add(camera);
  const select = $("camera");
  const keep = select.value;
  const options = [...state.cameras].sort().map((c) => {
    const o = el("option", null, c || "(no camera)");
    o.value = c;
    return o;
  });
  const all = el("option", null, "all cameras");
  all.value = "*";
  select.replaceChildren(all, ...options);
  select.value = keep;
}

// Our consolidator's entries carry the whole PlateEvent as JSON in `event` (the flat fields are
// only a few copies to filter on); other producers may write flat fields alone. The vote, when
// there, is shown from the JSON.
function voteOf(fields) {
  let e;
  try {
    e = fields.event ? JSON.parse(fields.event) : null;
  } catch (err) {
    return {};
  }
  if (!e || typeof e !== "object") return {};
  const vote = {};
  if (typeof e.confidence === "number") vote.confidence = String(e.confidence);
  if (typeof e.reads === "number") {
    vote.reads = typeof e.agreeing_reads === "number" ? `${e.agreeing_reads} of ${e.reads} agree` : String(e.reads);
  }
  if (Array.isArray(e.candidates) && e.candidates.length) {
    vote.vote = e.candidates.map((c) => `${c.text} ${pct(c.score)} (${c.reads})`).join(" · ");
  }
  for (const key of ["best_job_id", "best_reading_id"]) if (typeof e[key] === "string") vote[key] = e[key];
  return vote;
}

function eventCard(view) {
  const f = Object.assign({}, view.fields, voteOf(view.fields));
  const card = el("div", "event");
  card.dataset.camera = f.camera_id || "";
  // The event names its best reading; the page finds that reading's job for the crop.
  const best = f.best_reading_id || f.reading_id;
  const known = best && state.readings.find((v) => v.reading.reading_id === best);
  const jobId = f.best_job_id || f.job_id || (known && known.reading.job_id);
  if (jobId) card.append(cropThumb(jobId));
  const text = el("div", "text", f.text || "—");
  const conf = parseFloat(f.confidence);
  if (!isNaN(conf)) {
    const small = el("small", null, pct(conf));
    small.style.color = confColour(conf);
    text.append(small);
  }
  card.append(text);
  const dl = el("dl");
  for (const [key, label] of [["camera_id", "camera"], ["track_id", "track"], ["reads", "reads"], ["vote", "vote"], ["event_id", "event"]]) {
    if (f[key] === undefined || f[key] === "") continue;
    dl.append(el("dt", null, label), el("dd", null, f[key]));
  }
  const ms = parseInt(view.entry_id, 10);
  if (!isNaN(ms)) dl.append(el("dt", null, "at"), el("dd", null, new Date(ms).toLocaleTimeString([], { hour12: false })));
  card.append(dl);
  card.title = Object.entries(f).map(([k, v]) => `${k}: ${v.length > 200 ? v.slice(0, 200) + "…" : v}`).join("\n");
  return card;
}

function renderEvents() {
  const camera = $("camera").value;
  const shown = state.events.filter((v) => camera === "*" || (v.fields.camera_id || "") === camera);
  $("events").replaceChildren(...shown.slice(0, SHOWN).map(eventCard));
  $("no-events").classList.toggle("hidden", shown.length > 0);
}

function addEvent(view) {
  if (state.events.some((e) => e.entry_id === view.entry_id)) return;
  state.events.unshift(view);
  state.events.length = Math.min(state.events.length, KEEP);
  renderEvents();
}

// Watch-list alerts: their own list and their own live stream (/api/alerts/stream).
function alertCard(view, fresh) {
  const a = view.alert;
  const card = el("div", fresh ? "alert fresh" : "alert");
  card.dataset.plate = a.entry.plate;
  card.dataset.list = a.watch_list;
  if (a.job_id) card.append(cropThumb(a.job_id));
  const text = el("div", "text", a.entry.plate);
  text.append(el("small", null, `${a.watch_list}${a.entry.label ? " · " + a.entry.label : ""}`));
  card.append(text);
  const dl = el("dl");
  const how = a.match.kind === "fuzzy" ? `fuzzy ${a.match.edits.join(" ")}` : a.match.kind;
  for (const [label, value] of [
    ["read", a.plate_read], ["match", how], ["score", pct(a.score)],
    ["camera", a.camera_id || ""], ["at", when(a.seen_at)],
  ]) {
    if (value) dl.append(el("dt", null, label), el("dd", null, value));
  }
  card.append(dl);
  return card;
}

function addAlert(view, fresh) {
  if (state.alerts.some((v) => v.entry_id === view.entry_id)) return;
  state.alerts.unshift(view);
  state.alerts.length = Math.min(state.alerts.length, KEEP);
  $("alerts").prepend(alertCard(view, fresh));
  while ($("alerts").children.length > SHOWN) $("alerts").lastChild.remove();
  $("no-alerts").classList.toggle("hidden", state.alerts.length > 0);
}

function openAlertStream() {
  const source = new EventSource(`/api/alerts/stream?cursor=${encodeURIComponent(state.alertCursor)}`);
  source.addEventListener("alert", (e) => { state.alertCursor = e.lastEventId; addAlert(JSON.parse(e.data), true); });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(openAlertStream, REOPEN_AFTER_MS);
  });
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function setConnection(stateName, text) {
  const c = $("connection");
  c.dataset.state = stateName;
  c.textContent = text;
}

function openStream() {
  const source = new EventSource(`/api/stream?cursor=${encodeURIComponent(state.cursor)}`);
  state.source = source;
  source.addEventListener("open", () => setConnection("live", "live"));
  source.addEventListener("reading", (e) => { state.cursor = e.lastEventId; addReading(JSON.parse(e.data)); });
  source.addEventListener("event", (e) => { state.cursor = e.lastEventId; addEvent(JSON.parse(e.data)); });
  source.addEventListener("error", () => {
    setConnection("down", "reconnecting…");
    // The browser retries a dropped connection itself, but gives up after an error answer.
    if (source.readyState === EventSource.CLOSED) setTimeout(openStream, REOPEN_AFTER_MS);
  });
}

function countRow(cells) {
  const tr = el("tr");
  cells.forEach(([text, cls]) => tr.append(el("td", cls, String(text))));
  return tr;
}

async function refreshStats() {
  try {
    const s = await getJSON("/api/stats");
    if (state.source && state.source.readyState === EventSource.OPEN) setConnection("live", "live");
    $("queued").textContent = s.queued;
    $("started").textContent = s.started;
    $("failed").textContent = s.failed;
    $("worker-count").textContent = s.workers.length;
    $("queue-name").textContent = `queue ${s.queue}`;
    $("window-note").textContent = `newest ${plural(s.window, "reading", "readings")}`;
    $("events-stream").textContent = s.events_stream;
    $("camera-counts").tBodies[0].replaceChildren(...Object.entries(s.cameras).map(([cam, c]) => {
      noteCamera(cam);
      return countRow([[cam || "(no camera)"], [c.ok || 0], [c.error || 0, c.error ? "err" : ""]]);
    }));
    const errors = Object.entries(s.errors);
    $("error-counts").tBodies[0].replaceChildren(...errors.map(([code, n]) => countRow([[code], [n, "err"]])));
    $("no-errors").classList.toggle("hidden", errors.length > 0);
    $("workers").replaceChildren(...s.workers.map((w) => {
      const li = el("li");
      li.append(el("span", "name", w.name), el("span", `state ${w.state}`, w.state));
      const beat = w.heartbeat_age_s === null ? "" : `heartbeat ${Math.round(w.heartbeat_age_s)} s ago · `;
      li.append(el("span", "beat", `${beat}${w.successful} ok, ${w.failed} failed`));
      return li;
    }));
    $("no-workers").classList.toggle("hidden", s.workers.length > 0);
  } catch (e) {
    setConnection("down", "Redis or dashboard unreachable");
  }
}

let searchTimer = null;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const f = filters();
    if (!f.query) { state.search = null; render(); return; }
    const params = new URLSearchParams({ q: f.query, limit: "1000" });
    if (f.camera !== "*") params.set("camera", f.camera);
    if (f.status) params.set("status", f.status);
    const answer = await getJSON(`/api/readings?${params}`);
    if (norm($("search").value) !== f.query) return;  // typed on meanwhile
    state.search = {
      query: f.query, results: answer.readings, scanned: answer.scanned, source: answer.source,
    };
    render();
  }, 250);
}

async function start() {
  $("camera").addEventListener("change", () => (state.search ? onSearch() : render()));
  $("status").addEventListener("change", () => (state.search ? onSearch() : render()));
  $("search").addEventListener("input", onSearch);
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); onSearch(); });

  const [snap, events] = await Promise.all([getJSON(`/api/readings?limit=${KEEP}`), getJSON("/api/events?limit=100")]);
  state.cursor = snap.cursor;
  for (const view of snap.readings) {
    state.seen.add(view.entry_id);
    state.readings.push(view);
    noteCamera(view.reading.camera_id || "");
  }
  state.events = events.events;
  render();
  openStream();
  const alerts = await getJSON("/api/alerts?limit=50");
  state.alertCursor = alerts.cursor;
  for (const view of alerts.alerts.reverse()) addAlert(view, false);
  openAlertStream();
  refreshStats();
  setInterval(refreshStats, STATS_EVERY_MS);
}

start().catch((e) => setConnection("down", `could not load: ${e.message}`));
