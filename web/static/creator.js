// A creator's public page (/static/creator.html?id=N): bio, followers, follow/unfollow,
// upcoming rooms and past rooms (GET /api/creators/{id}), and the creator's subscription plans
// (a Subscribe button per plan; "subscribed until" for a subscriber) and courses (series of
// rooms at one price: a Buy button, or "yours"). Texts go through ui.h.
import { api, checkoutUrl, describe, formatMoney, h, param, setStatus, siteHeader } from "./ui.js";

const id = param("id", "");
const statusLine = document.getElementById("status");
const followButton = document.getElementById("follow");
let user = null;

function card(room) {
  const when = room.starts_at
    ? h("time", { datetime: room.starts_at },
        new Date(room.starts_at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }))
    : null;
  return h("li", { class: "card" },
    h("a", { href: `/static/room.html?room=${encodeURIComponent(room.slug)}` }, room.title), " ",
    h("span", { class: "badge price" }, room.free ? "Free" : formatMoney(room.ticket_price, room.currency)), " ", when);
}

function render(page) {
  document.title = `Stagepass — ${page.creator.display_name}`;
  document.getElementById("name").textContent = page.creator.display_name;
  document.getElementById("bio").textContent = page.creator.bio;
  document.getElementById("followers").textContent =
    page.followers === 1 ? "1 follower" : `${page.followers} followers`;
  document.getElementById("upcoming-list").replaceChildren(...page.upcoming.map(card));
  document.getElementById("past-list").replaceChildren(...page.past.map(card));
  followButton.hidden = !user || user.id === page.creator.id;
  followButton.textContent = page.following ? "Unfollow" : "Follow";
  followButton.dataset.following = String(Boolean(page.following));
}

const EVERY = { month: "a month", year: "a year" };

async function renderPlans(creatorId, passes) {
  const plans = (await api(`/api/creators/${encodeURIComponent(id)}/plans`)).plans;
  const mine = passes.find((p) => p.kind === "subscription"
    && p.creator_id === creatorId && (p.status === "active" || p.status === "past_due"));
  const subscribed = document.getElementById("subscribed");
  subscribed.hidden = !mine;
  if (mine) {
    const until = new Date(mine.current_period_end).toLocaleDateString(undefined, { dateStyle: "medium" });
    subscribed.dataset.state = mine.status === "active" ? "ok" : "error";
    subscribed.textContent = mine.status === "past_due"
      ? "Your subscription's payment failed: update your card to watch again."
      : `Subscribed until ${until}${mine.cancel_at_period_end ? " (not renewing)" : ""}.`;
  }
  document.getElementById("plans").replaceChildren(...(mine || (user && user.id === creatorId) ? [] : plans.map((plan) =>
    h("button", { type: "button", dataset: { interval: plan.interval }, onclick: () => subscribe(plan) },
      `Subscribe: ${formatMoney(plan.price, plan.currency)} ${EVERY[plan.interval]}`))));
  document.getElementById("subscribe").hidden = !plans.length && !mine;
}

async function renderCourses(creatorId, passes) {
  const courses = (await api(`/api/creators/${encodeURIComponent(id)}/series`)).series;
  const held = new Set(passes.filter((p) => p.kind === "series" && p.status === "active").map((p) => p.series));
  document.getElementById("course-list").replaceChildren(...courses.map((course) => {
    const classes = course.rooms.length === 1 ? "1 class" : `${course.rooms.length} classes`;
    const action = held.has(course.slug) ? h("span", { class: "badge" }, "Yours")
      : user && user.id === creatorId ? null
      : h("button", { type: "button", onclick: () => buy({ kind: "series", series: course.slug }) },
          `Buy the course: ${formatMoney(course.price, course.currency)}`);
    return h("li", { class: "card", dataset: { series: course.slug } }, h("strong", {}, course.title), " ",
      `${classes}${course.include_later ? ", and the ones added later" : ""} `, action);
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
