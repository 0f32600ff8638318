// A creator's public page (/static/creator.html?id=N): bio, followers, follow/unfollow,
// upcoming rooms and past rooms (GET /api/creators/{id}), and the creator's subscription plans
// (a Subscribe button per plan; "subscribed until" for a subscriber) and courses (series of
// rooms at one price: a Buy button, or "yours"). Texts go through ui.h.
import { api, checkoutUrl, describe, formatMoney, h, param, setStatus, siteHeader } from "./ui.js";
import { formatDate, formatDateTime, plural, t } from "./i18n.js";

const id = param("id", "");
const statusLine = document.getElementById("status");
const followButton = document.getElementById("follow");
let user = null;

function card(room) {
  const when = room.starts_at
    ? h("time", { datetime: room.starts_at },
        formatDateTime(room.starts_at))
    : null;
  return h("li", { class: "card" },
    h("a", { href: `/static/room.html?room=${encodeURIComponent(room.slug)}` }, room.title), " ",
    h("span", { class: "badge price" }, room.free ? t("common.free") : formatMoney(room.ticket_price, room.currency)), " ", when);
}

function render(page) {
  document.title = `Stagepass — ${page.creator.display_name}`;
  document.getElementById("name").textContent = page.creator.display_name;
  document.getElementById("bio").textContent = page.creator.bio;
  document.getElementById("followers").textContent =
    plural("creator.followers", page.followers);
  document.getElementById("upcoming-list").replaceChildren(...page.upcoming.map(card));
  document.getElementById("past-list").replaceChildren(...page.past.map(card));
  followButton.hidden = !user || user.id === page.creator.id;
  followButton.textContent = page.following ? t("creator.unfollow") : t("creator.follow");
  followButton.dataset.following = String(Boolean(page.following));
}

const EVERY = { month: () => t("creator.every_month"), year: () => t("creator.every_year") };

async function renderPlans(creatorId, passes) {
  const plans = (await api(`/api/creators/${encodeURIComponent(id)}/plans`)).plans;
  const mine = passes.find((p) => p.kind === "subscription"
    && p.creator_id === creatorId && (p.status === "active" || p.status === "past_due"));
  const subscribed = document.getElementById("subscribed");
  subscribed.hidden = !mine;
  if (mine) {
    const until = formatDate(mine.current_period_end);
    subscribed.dataset.state = mine.status === "active" ? "ok" : "error";
    subscribed.textContent = mine.status === "past_due" ? t("creator.subscription_past_due")
      : mine.cancel_at_period_end ? t("creator.subscribed_until_ending", { date: until })
      : t("creator.subscribed_until", { date: until });
  }
  document.getElementById("plans").replaceChildren(...(mine || (user && user.id === creatorId) ? [] : plans.map((plan) =>
    h("button", { type: "button", dataset: { interval: plan.interval }, onclick: () => subscribe(plan) },
      t("creator.subscribe_for", { price: formatMoney(plan.price, plan.currency), every: EVERY[plan.interval]() })))));
  document.getElementById("subscribe").hidden = !plans.length && !mine;
}

async function renderCourses(creatorId, passes) {
  const courses = (await api(`/api/creators/${encodeURIComponent(id)}/series`)).series;
  const held = new Set(passes.filter((p) => p.kind === "series" && p.status === "active").map((p) => p.series));
  document.getElementById("course-list").replaceChildren(...courses.map((course) => {
    const classes = plural("creator.classes", course.rooms.length);
    const action = held.has(course.slug) ? h("span", { class: "badge" }, t("creator.yours"))
      : user && user.id === creatorId ? null
      : h("button", { type: "button", onclick: () => buy({ kind: "series", series: course.slug }) },
          t("creator.buy_course", { price: formatMoney(course.price, course.currency) }));
    return h("li", { class: "card", dataset: { series: course.slug } }, h("strong", {}, course.title), " ",
      course.include_later ? t("creator.classes_and_later", { classes }) : classes, " ", action);
  }));
  document.getElementById("courses").hidden = !courses.length;
}

async function subscribe(plan) {
  await buy({ kind: "subscription", creator: Number(id), interval: plan.interval });
}

async function buy(what) {
  if (!user) {
    location.href = `/static/login.html?next=${encodeURIComponent(location.pathname + location.search)}`;
    return;
  }
  try {
    const body = { ...what, idempotency_key: crypto.randomUUID() };
    const started = (await api("/api/passes", { method: "POST", body })).pass;
    location.href = checkoutUrl(started, location.pathname + location.search);
  } catch (err) {
    statusLine.hidden = false;
    setStatus(statusLine, "error", describe(err));
  }
}

async function load() {
  try {
    const page = await api(`/api/creators/${encodeURIComponent(id)}`);
    render(page);
    const passes = user ? (await api("/api/me/passes")).passes : [];
    await renderPlans(page.creator.id, passes);
    await renderCourses(page.creator.id, passes);
    setStatus(statusLine, "ready", "");
    statusLine.hidden = true;
  } catch (err) {
    statusLine.hidden = false;
    setStatus(statusLine, "error", describe(err));
  }
}

followButton.addEventListener("click", async () => {
  const method = followButton.dataset.following === "true" ? "DELETE" : "POST";
  try {
    await api(`/api/creators/${encodeURIComponent(id)}/follow`, { method });
    await load();
  } catch (err) {
    statusLine.hidden = false;
    setStatus(statusLine, "error", describe(err));
  }
});

user = await siteHeader();
await load();
