// Creator dashboard: rooms with tickets, revenue and earnings (GET /api/creator/dashboard),
// each room's sessions with peak/average viewers, and a Chart.js line of concurrent viewers
// over a session's timeline (GET /api/creator/broadcasts/{id}/audience).
import { api, describe, formatMoney, h, setStatus, siteHeader } from "./ui.js";
import { formatDate, formatDateTime, lang, plural, t } from "./i18n.js";

const status = document.getElementById("status");
const refresh = document.getElementById("refresh");
const charts = new Map(); // room slug -> Chart instance

/** Minor units as money; unlike formatMoney, zero is "$0.00" (a sum, not a price). */
function money(minor, currency) {
  return minor ? formatMoney(minor, currency)
    : new Intl.NumberFormat(lang, { style: "currency", currency }).format(0);
}

function amounts(list, key) {
  return list.length ? list.map((x) => money(x[key], x.currency)).join(" + ") : "—";
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return t("dashboard.seconds", { s });
  const m = Math.floor(s / 60);
  if (m < 60) return t("dashboard.min_s", { m, s: String(s % 60).padStart(2, "0") });
  return t("dashboard.h_min", { h: Math.floor(m / 60), m: String(m % 60).padStart(2, "0") });
}

function when(iso) {
  return formatDateTime(iso);
}

function roomLinks(slug) {
  const q = encodeURIComponent(slug);
  return h("span", { class: "room-links" },
    h("a", { href: `/static/studio.html?room=${q}` }, t("nav.studio")), " · ",
    h("a", { href: `/static/room.html?room=${q}` }, t("replay.room_page")), " · ",
    h("a", { href: `/static/analytics.html?room=${q}` }, t("analytics.insight")));
}

function revenueCell(room) {
  const refunded = room.revenue.filter((r) => r.refunded);
  return h("td", { class: "num revenue", "data-label": t("dashboard.revenue") }, amounts(room.revenue, "net"),
    refunded.length ? h("span", { class: "sub" }, t("dashboard.refunds", { amount: amounts(refunded, "refunded") })) : null);
}

function roomRow(room) {
  return h("tr", { dataset: { room: room.slug } },
    h("th", { scope: "row" },
      h("a", { href: `#room-${room.slug}`, class: "room-title" }, room.title),
      h("span", { class: "sub" }, room.slug)),
    h("td", { class: "num tickets", "data-label": t("dashboard.tickets_sold") }, String(room.tickets_sold)),
    revenueCell(room),
    h("td", { class: "num earnings", "data-label": t("dashboard.your_earnings") }, amounts(room.earnings, "amount")),
    h("td", { class: "num", "data-label": t("dashboard.sessions") }, String(room.sessions_total)));
}

/** Draw (or redraw) a room's chart with one session's samples. An answer that comes after
 * another session was asked for, or after a refresh replaced the figure, is dropped: drawn,
 * it would show the wrong session, or go to a detached canvas while the shown one stays empty. */
async function showSession(room, session, figure, buttons) {
  const caption = figure.querySelector("figcaption");
  const canvas = figure.querySelector("canvas");
  for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.session === session.id));
  figure.hidden = false;
  figure.dataset.asked = String(session.id);
  const stale = () => !figure.isConnected || figure.dataset.asked !== String(session.id);
  setStatus(caption, "loading", t("dashboard.loading_audience"));
  let body;
  try {
    body = await api(`/api/creator/broadcasts/${encodeURIComponent(session.id)}/audience`);
  } catch (err) {
    if (!stale()) setStatus(caption, "error", t("dashboard.audience_failed", { error: describe(err) }));
    return;
  }
  if (stale()) return;
  const points = body.samples.map(([t, v]) => ({ x: t / 60000, y: v }));
  const s = body.session;
  caption.dataset.state = "ok";
  caption.textContent = t("dashboard.session_caption", { when: when(s.started_at), duration: duration(s.duration_ms),
    peak: s.peak_viewers, average: s.avg_viewers }) + (s.live ? t("dashboard.so_far") : "") +
    (points.length ? t("dashboard.full_stop") : t("dashboard.no_samples"));
  canvas.setAttribute("aria-label", t("dashboard.chart_label", { caption: caption.textContent }));
  if (typeof Chart === "undefined") {
    caption.textContent += t("dashboard.no_chart");
    return;
  }
  const existing = charts.get(room.slug);
  if (existing) {
    existing.data.datasets[0].data = points;
    existing.update();
    return;
  }
  charts.set(room.slug, new Chart(canvas, {
    type: "line",
    data: { datasets: [{ label: t("dashboard.viewers"), data: points, stepped: "after", pointRadius: 0,
                         borderWidth: 2, fill: true, borderColor: "#2563eb",
                         backgroundColor: "rgba(37, 99, 235, 0.15)" }] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      parsing: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: {
          title: (items) => t("dashboard.minutes", { m: items[0].parsed.x.toFixed(1) }),
          label: (item) => plural("dashboard.viewer_count", item.parsed.y),
        } },
      },
      scales: {
        x: { type: "linear", min: 0, title: { display: true, text: t("dashboard.minutes_into") } },
        y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: t("dashboard.viewers") } },
      },
    },
  }));
}

function roomDetails(room) {
  const section = h("section", { class: "room-card", id: `room-${room.slug}`,
                                 "aria-labelledby": `room-${room.slug}-heading` });
  section.append(
    h("h2", { id: `room-${room.slug}-heading` }, room.title),
    h("p", { class: "room-meta" }, h("span", { class: "sub" }, room.slug), " ", roomLinks(room.slug)),
  );
  if (!room.sessions.length) {
    section.append(h("p", { class: "hint" }, t("dashboard.no_sessions")));
    return section;
  }
  const figure = h("figure", { class: "chart", hidden: true },
    h("div", { class: "chart-box" }, h("canvas", { role: "img", "aria-label": t("dashboard.concurrent_viewers") })),
    h("figcaption", { class: "status", "aria-live": "polite" }));
  const buttons = [];
  const rows = room.sessions.map((s) => {
    const button = h("button", { type: "button", class: "secondary small", dataset: { session: s.id },
                                 "aria-pressed": "false",
                                 "aria-label": t("dashboard.chart_of", { when: when(s.started_at) }) }, t("dashboard.chart"));
    button.addEventListener("click", () => showSession(room, s, figure, buttons));
    buttons.push(button);
    return h("tr", { dataset: { session: s.id } },
      h("td", { class: "started" }, when(s.started_at), s.live ? h("span", { class: "badge live" }, t("studio.live_status")) : null),
      h("td", { class: "num", "data-label": t("dashboard.duration") }, duration(s.duration_ms)),
      h("td", { class: "num peak", "data-label": t("dashboard.peak") }, String(s.peak_viewers)),
      h("td", { class: "num avg", "data-label": t("dashboard.average") }, String(s.avg_viewers)),
      h("td", { class: "action" }, button));
  });
  section.append(...[
    h("div", { class: "table-wrap", role: "region", tabindex: "0", "aria-label": t("dashboard.sessions_of", { title: room.title }) },
      h("table", { class: "sessions stack" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, t("dashboard.started")), h("th", { scope: "col", class: "num" }, t("dashboard.duration")),
          h("th", { scope: "col", class: "num" }, t("dashboard.peak")), h("th", { scope: "col", class: "num" }, t("dashboard.average")),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, t("dashboard.chart"))))),
        h("tbody", {}, rows))),
    room.sessions_total > room.sessions.length
      ? h("p", { class: "hint" }, t("dashboard.latest_sessions", { shown: room.sessions.length, total: room.sessions_total })) : null,
    figure,
  ].filter(Boolean)); // Element.append would turn null into the text "null"
  showSession(room, room.sessions[0], figure, buttons); // the newest session's chart at once
  return section;
}

async function load() {
  refresh.disabled = true;
  setStatus(status, "loading", t("dashboard.loading"));
  let data;
  try {
    data = await api("/api/creator/dashboard");
  } catch (err) {
    if (err.status === 401) {
      status.replaceChildren(h("a", { href: `/static/login.html?next=${encodeURIComponent(location.pathname)}` },
        t("common.log_in")), t("dashboard.to_see"));
      status.dataset.state = "error";
    } else if (err.status === 403) {
      setStatus(status, "error", t("dashboard.for_creators"));
    } else {
      setStatus(status, "error", t("dashboard.load_failed", { error: describe(err) }));
      refresh.disabled = false;
    }
    return;
  }
  for (const chart of charts.values()) chart.destroy();
  charts.clear();

  document.getElementById("balance").textContent = data.balance.length
    ? amounts(data.balance, "amount") : t("dashboard.nothing_earned");
  // payouts recorded by the platform (newest first); the reference is the creator's proof
  document.getElementById("payouts-empty").hidden = data.payouts.length > 0;
  document.getElementById("payouts").replaceChildren(...data.payouts.map((p) =>
    h("li", { dataset: { payout: p.id } },
      h("time", { datetime: p.created_at }, formatDate(p.created_at)), " — ",
      h("strong", {}, formatMoney(p.amount, p.currency)), " — ", p.reference)));
  document.getElementById("money").hidden = false;

  const tbody = document.querySelector("#rooms-table tbody");
  tbody.replaceChildren(...data.rooms.map(roomRow));
  document.getElementById("rooms-section").hidden = !data.rooms.length;
  document.getElementById("room-details").replaceChildren(...data.rooms.map(roomDetails));
  if (data.rooms.length) {
    setStatus(status, "ok", plural("dashboard.rooms_count", data.rooms.length));
  } else {
    status.replaceChildren(t("dashboard.no_rooms"),
      h("a", { href: "/static/studio.html" }, t("dashboard.studio")), t("dashboard.full_stop"));
    status.dataset.state = "ok";
  }
  refresh.disabled = false;
}

refresh.addEventListener("click", load);
siteHeader().then(load, load);
