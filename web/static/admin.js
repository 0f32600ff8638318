// Admin view: every node of the cluster with its load and the rooms it hosts (GET
// /api/admin/nodes), each node's media workers (their load as the node's heartbeat
// carries it; this node's fresh from GET /api/admin/live), this node's live rooms (GET /api/admin/live, every 2 s) with each
// room's viewers and their connection quality (GET /api/rooms/{room}/viewers), and two
// actions: end a broadcast, disconnect a viewer (on the node hosting the room: the nodes
// table links each node's own admin page). Admins only; others are told why not.
import { api, describe, h, setStatus, siteHeader } from "./ui.js";
import { t } from "./i18n.js";

const status = document.getElementById("status");
const POLL_MS = 2000;

function pct(fraction) {
  return fraction === null || fraction === undefined ? "—" : `${(fraction * 100).toFixed(1)}%`;
}

function num(value, digits = 0) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

async function act(path, what) {
  try {
    await api(path, { method: "POST" });
    setStatus(status, "ok", t("admin.done", { what }));
  } catch (err) {
    setStatus(status, "error", `${what}: ${describe(err)}`);
  }
  await refresh();
}

function renderNode(node) {
  const items = [[t("admin.node"), node.id], [t("admin.cpu"), node.cpu_pct === null ? "—" : `${node.cpu_pct}%`],
                 [t("admin.event_loop_lag"), node.event_loop_lag_ms === null ? "—" : `${node.event_loop_lag_ms} ms`],
                 [t("admin.live_rooms"), node.rooms_live], [t("admin.viewers"), node.viewers]];
  document.getElementById("node").replaceChildren(
    ...items.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { field: k } }, String(v))]));
  document.getElementById("node-section").hidden = false;
}

function renderNodes(cluster) {
  const body = document.querySelector("#nodes-table tbody");
  body.replaceChildren(...cluster.nodes.map((n) => {
    const load = n.load || {};
    const address = n.url
      ? (n.this ? n.url : h("a", { href: `${n.url}/static/admin.html` }, n.url))
      : "—";
    return h("tr", { dataset: { node: n.id, this: String(n.this) } },
      h("td", { "data-label": t("admin.node") }, n.id, n.this ? t("admin.this_node_suffix") : ""),
      h("td", { "data-label": t("admin.address") }, address),
      h("td", { "data-label": t("admin.cpu"), class: "num" }, load.cpu_pct === null || load.cpu_pct === undefined ? "—" : `${load.cpu_pct}%`),
      h("td", { "data-label": t("admin.loop_lag_ms"), class: "num" }, num(load.event_loop_lag_ms, 1)),
      h("td", { "data-label": t("admin.viewers"), class: "num viewers" }, num(load.viewers)),
      h("td", { "data-label": t("admin.rooms_hosted"), class: "rooms" }, n.rooms.length ? n.rooms.join(", ") : "—"),
      h("td", { "data-label": t("admin.last_heartbeat"), class: "num", title: n.last_heartbeat }, t("admin.seconds_ago", { s: n.heartbeat_age_s })));
  }));
  document.getElementById("nodes-section").hidden = false;
}

function renderWorkers(cluster, node) {
  // one row per media worker of every node; this node's from its live answer (fresher)
  const rows = [];
  for (const n of cluster.nodes) {
    const workers = n.this && node.workers ? node.workers : (n.load || {}).workers;
    for (const w of workers || []) rows.push([n, w]);
  }
  document.querySelector("#workers-table tbody").replaceChildren(...rows.map(([n, w]) =>
    h("tr", { dataset: { node: n.id, worker: String(w.worker), state: w.state } },
      h("td", { "data-label": t("admin.node") }, n.id),
      h("td", { "data-label": t("admin.worker"), class: "num" }, String(w.worker)),
      h("td", { "data-label": t("admin.pid"), class: "num" }, num(w.pid)),
      h("td", { "data-label": t("admin.state"), class: "state" }, t(`admin.worker_${w.state}`)),
      h("td", { "data-label": t("admin.sessions"), class: "num sessions" }, num(w.sessions)),
      h("td", { "data-label": t("admin.rooms_hosted"), class: "num" }, num(w.rooms_hosted)),
      h("td", { "data-label": t("admin.cpu"), class: "num" }, w.cpu_pct === null ? "—" : `${w.cpu_pct}%`),
      h("td", { "data-label": t("admin.loop_lag_ms"), class: "num" }, num(w.event_loop_lag_ms, 1)))));
  document.getElementById("workers-empty").hidden = rows.length > 0;
  document.getElementById("workers-section").hidden = false;
}

function placement(workers) {
  // {"0": {viewers, host}, ...} -> "host 0 · 0: 2 · 1: 1"
  if (!workers) return "—";
  const entries = Object.entries(workers);
  const host = entries.find(([, w]) => w.host);
  return [host ? t("admin.host_worker", { worker: host[0] }) : null,
          ...entries.map(([index, w]) => `${index}: ${w.viewers}`)].filter(Boolean).join(" · ");
}

function renderRooms(rooms) {
  const body = document.querySelector("#rooms-table tbody");
  body.replaceChildren(...rooms.map((r) => h("tr", { dataset: { room: r.room } },
    h("td", { "data-label": t("admin.room") }, r.room),
    h("td", { "data-label": t("admin.phase"), class: "phase" }, r.phase),
    h("td", { "data-label": t("admin.publisher_kbit_s"), class: "num" }, r.publisher ? num(r.publisher.ingest_kbps) : "—"),
    h("td", { "data-label": t("admin.viewers"), class: "num viewers" }, String(r.viewers)),
    h("td", { "data-label": t("admin.loss"), class: "num" }, `${pct(r.loss.mean)} / ${pct(r.loss.worst)}`),
    h("td", { "data-label": t("admin.keyframes_asked_sent"), class: "num keyframes" },
      r.keyframe_requests ? `${r.keyframe_requests.requested} / ${r.keyframe_requests.sent}` : "—"),
    h("td", { "data-label": t("admin.workers"), class: "workers" }, placement(r.workers)),
    h("td", { "data-label": t("admin.actions") },
      r.phase === "live" || r.phase === "reconnecting"
        ? h("button", { type: "button", class: "danger end-broadcast",
                        onclick: () => act(`/api/admin/rooms/${encodeURIComponent(r.room)}/end`,
                                           t("admin.end_broadcast_of", { room: r.room })) }, t("admin.end_broadcast"))
        : null))));
  document.getElementById("rooms-empty").hidden = rooms.length > 0;
  document.getElementById("rooms-section").hidden = false;
}

async function renderViewers(rooms) {
  const sections = [];
  for (const r of rooms.filter((x) => x.viewers > 0)) {
    const listing = await api(`/api/rooms/${encodeURIComponent(r.room)}/viewers`);
    const rows = listing.viewers.map((v) => {
      const video = v.video || {};
      return h("tr", { dataset: { viewer: v.id } },
        h("td", { "data-label": t("admin.viewer") }, v.id, v.user_id ? t("studio.user_id", { id: v.user_id }) : ""),
        h("td", { "data-label": t("admin.worker"), class: "num worker" }, v.worker === undefined ? "—" : String(v.worker)),
        h("td", { "data-label": t("admin.loss"), class: "num loss" }, pct(video.fraction_lost)),
        h("td", { "data-label": t("admin.rtt_ms"), class: "num" }, num(video.rtt_ms)),
        h("td", { "data-label": t("admin.jitter_ms"), class: "num" }, num(video.jitter_ms, 1)),
        h("td", { "data-label": t("admin.nacks"), class: "num" }, num(video.nacked)),
        h("td", { "data-label": t("admin.skips"), class: "num" }, num(video.dropped)),
        h("td", { "data-label": t("admin.actions") },
          h("button", { type: "button", class: "secondary disconnect",
                        onclick: () => act(`/api/admin/rooms/${encodeURIComponent(r.room)}/viewers/${encodeURIComponent(v.id)}/disconnect`,
                                           t("admin.disconnect_viewer", { id: v.id })) }, t("admin.disconnect"))));
    });
    const heading = `viewers-${r.room}`;
    sections.push(h("section", { "aria-labelledby": heading, dataset: { room: r.room } },
      h("h2", { id: heading }, t("admin.viewers_of", { room: r.room })),
      h("div", { class: "table-wrap" },
        h("table", { class: "stack viewers" },
          h("thead", {}, h("tr", {}, ...["viewer", "worker", "loss", "rtt_ms", "jitter_ms", "nacks", "skips", "actions"]
            .map((key) => h("th", { scope: "col" }, t(`admin.${key}`))))),
          h("tbody", {}, ...rows)))));
  }
  document.getElementById("room-viewers").replaceChildren(...sections);
}

async function refresh() {
  try {
    const [cluster, live] = await Promise.all([api("/api/admin/nodes"), api("/api/admin/live")]);
    renderNodes(cluster);
    renderNode(live.node);
    renderWorkers(cluster, live.node);
    renderRooms(live.rooms);
    await renderViewers(live.rooms);
    if (status.dataset.state === "loading") setStatus(status, "ok", t("admin.updated"));
    return true;
  } catch (err) {
    const why = err.status === 401 ? t("admin.log_in")
      : err.status === 403 ? t("admin.only_admins") : describe(err);
    setStatus(status, "error", why);
    return err.status !== 401 && err.status !== 403;
  }
}

async function main() {
  await siteHeader();
  if (await refresh()) setInterval(refresh, POLL_MS);
}

main();
