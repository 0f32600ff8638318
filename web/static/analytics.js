// One room's insight for its creator: the conversion funnel (bar chart), revenue, costs and
// ROI, each session's audience retention live and on replay (line chart, drop-offs marked),
// engagement and peak moments, and the CSV exports. Data: /api/creator/insight/rooms/...
import { api, describe, formatMoney, h, param, setStatus, siteHeader } from "./ui.js";
import { lang, plural, t } from "./i18n.js";

const slug = param("room", "");
const base = `/api/creator/insight/rooms/${encodeURIComponent(slug)}`;
const status = document.getElementById("status");
const STEPS = { visited: t("analytics.visited"), previewed: t("analytics.previewed"), checkout: t("analytics.checkout"),
                purchased: t("analytics.purchased"), watched_5_min: t("analytics.watched_5_min") };
let funnelChart = null;
let retentionChart = null;
window.stagepass = { charts: () => ({ funnel: funnelChart, retention: retentionChart }) };

const pct = (x) => (x === null ? "—" : `${(x * 100).toFixed(1)} %`);

function money(minor, currency) {
  return minor ? formatMoney(minor, currency)
    : new Intl.NumberFormat(lang, { style: "currency", currency }).format(0);
}

function figures(el, pairs) {
  el.replaceChildren(...pairs.map(([name, value, key]) => h("div", {}, h("dt", {}, name),
    h("dd", { dataset: { key } }, String(value)))));
}

function showFunnel(funnel) {
  document.getElementById("funnel-section").hidden = false;
  document.querySelector("#funnel-table tbody").replaceChildren(...funnel.map((s) => h("tr", { dataset: { step: s.step } },
    h("th", { scope: "row" }, STEPS[s.step]), h("td", { class: "num people" }, String(s.people)),
    h("td", { class: "num" }, pct(s.rate)), h("td", { class: "num" }, pct(s.of_first)))));
  if (typeof Chart === "undefined") return;
  funnelChart?.destroy();
  funnelChart = new Chart(document.getElementById("funnel-chart"), {
    type: "bar",
    data: { labels: funnel.map((s) => STEPS[s.step]),
            datasets: [{ label: t("analytics.people"), data: funnel.map((s) => s.people), backgroundColor: "#2563eb" }] },
    options: { animation: false, responsive: true, maintainAspectRatio: false, indexAxis: "y",
               plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
}

function showRevenue(r) {
  document.getElementById("revenue-section").hidden = false;
  figures(document.getElementById("revenue"), [
    [t("analytics.gross"), money(r.gross, r.currency), "gross"], [t("analytics.refunds"), money(r.refunds, r.currency), "refunds"],
    [t("analytics.fees"), money(r.fees, r.currency), "fees"], [t("analytics.net"), money(r.net, r.currency), "net"],
    [t("analytics.costs"), money(r.costs, r.currency), "costs"], [t("analytics.profit"), money(r.profit, r.currency), "profit"],
    [t("analytics.roi"), r.roi === null ? t("analytics.enter_costs") : pct(r.roi), "roi"],
    [t("analytics.viewer_minutes"), String(r.viewer_minutes), "viewer_minutes"],
    [t("analytics.net_per_viewer_minute"), r.net_per_viewer_minute === null ? "—" : money(Math.round(r.net_per_viewer_minute), r.currency),
     "net_per_viewer_minute"],
  ]);
}

async function showSession(id) {
  const one = await api(`${base}/sessions/${encodeURIComponent(id)}`);
  const live = one.live.retention;
  const replay = one.replay.retention;
  const drops = [...one.live.drop_offs.map((d) => ({ ...d, where: "live" })),
                 ...one.replay.drop_offs.map((d) => ({ ...d, where: "replay" }))];
  document.getElementById("retention-caption").textContent =
    t("analytics.joined", { live: one.live.joiners, replay: one.replay.viewers }) +
    (drops.length ? t("analytics.drop_offs", { list: drops.map((d) => t(`analytics.drop_${d.where}`, { minute: d.minute, drop: pct(d.drop) })).join(", ") })
      : t("analytics.no_drop_off"));
  const e = one.engagement;
  figures(document.getElementById("engagement"), [
    [t("analytics.viewer_minutes"), String(e.viewer_minutes), "viewer_minutes"], [t("analytics.danmaku"), String(e.danmaku), "danmaku"],
    [t("analytics.questions"), String(e.questions), "questions"],
    [t("analytics.danmaku_per_minute"), e.danmaku_per_viewer_minute ?? "—", "danmaku_per_viewer_minute"],
    [t("analytics.questions_per_minute"), e.questions_per_viewer_minute ?? "—", "questions_per_viewer_minute"],
  ]);
  const replayUrl = (ms) => `/static/replay.html?recording=${encodeURIComponent(id)}#t=${Math.floor(ms / 1000)}`;
  document.getElementById("chapters").replaceChildren(...one.chapters.map((c) => h("li", {},
    h("a", { href: replayUrl(c.t_ms) }, `${Math.floor(c.t_ms / 60000)}:${String(Math.floor(c.t_ms / 1000) % 60).padStart(2, "0")}`),
    ` ${c.title} (${plural("analytics.danmaku_count", c.danmaku)})`)));
  if (typeof Chart === "undefined") return;
  const points = (curve) => curve.map((y, x) => ({ x, y }));
  const marks = (curve, list) => list.map((d) => ({ x: d.minute, y: curve[d.minute] }));
  retentionChart?.destroy();
  retentionChart = new Chart(document.getElementById("retention-chart"), {
    type: "line",
    data: { datasets: [
      { label: t("analytics.live"), data: points(live), borderColor: "#2563eb", pointRadius: 0, borderWidth: 2 },
      { label: t("analytics.replay"), data: points(replay), borderColor: "#16a34a", pointRadius: 0, borderWidth: 2 },
      { label: t("analytics.drop_offs_label"), type: "scatter", data: [...marks(live, one.live.drop_offs), ...marks(replay, one.replay.drop_offs)],
        pointRadius: 6, pointStyle: "triangle", rotation: 180, backgroundColor: "#dc2626" },
    ] },
    options: { animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
               scales: { x: { type: "linear", min: 0, title: { display: true, text: t("analytics.minute") } },
                         y: { min: 0, max: 1, ticks: { callback: (v) => `${v * 100} %` },
                              title: { display: true, text: t("analytics.share_watching") } } } },
  });
}

function showExports() {
  document.getElementById("exports").hidden = false;
  document.getElementById("export-links").replaceChildren(...["funnel", "revenue", "retention", "events", "danmaku"]
    .flatMap((r, i) => [i ? " · " : "", h("a", { href: `${base}/export/${r}.csv`, download: "" }, r)]));
}

async function load() {
  const body = await api(base);
  document.getElementById("title").textContent = t("analytics.title", { title: body.room.title });
  showFunnel(body.funnel);
  showRevenue(body.revenue);
  showExports();
  const select = document.getElementById("session-select");
  if (body.sessions.length) {
    document.getElementById("session-section").hidden = false;
    select.replaceChildren(...body.sessions.map((s) => h("option", { value: s.id },
      `${s.id} (${t("dashboard.minutes", { m: Math.round(s.duration_ms / 60000) })})`)));
    select.onchange = () => showSession(select.value).catch((err) => setStatus(status, "error", describe(err)));
    await showSession(body.sessions[0].id);
  }
  return body;
}

document.getElementById("cost-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("cost-error");
  error.hidden = true;
  try {
    const amount = Math.round(Number(document.getElementById("cost-amount").value) * 100);
    await api(`${base}/costs`, { method: "POST", body: { category: document.getElementById("cost-category").value,
                                                          amount, note: document.getElementById("cost-note").value } });
    event.target.reset();
    await load();
    setStatus(status, "ready", t("analytics.cost_added"));
  } catch (err) {
    error.hidden = false;
    error.textContent = describe(err);
  }
});

async function main() {
  await siteHeader();
  try {
    await load();
    setStatus(status, "ready", t("analytics.up_to_date"));
  } catch (err) {
    setStatus(status, "error", err.status === 404 ? t("analytics.no_such_room") : describe(err));
  }
}

main();
