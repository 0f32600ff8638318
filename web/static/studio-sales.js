// The studio's subscription plans (PlansForm: the creator's monthly and yearly prices), courses
// (CoursesPanel: series of the creator's rooms at one price, rooms added later), and its
// "Sales and team" panel of the selected room: coupons (create, list, disable or
// enable), the room's orders and their refund, the minimum price of a paid question, and the
// room's moderators (appointed by email, dismissed). Everything goes through the JSON API;
// every refusal is shown as the server's message next to the form that caused it.
import { api, describe, formatMoney, fromMinor, h, parseMinor, setStatus } from "./ui.js";
import { formatDateTime, has, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

/** A product's name for people ("ticket", "replay", ...; an unknown one as the server says it). */
function product(code) {
  return has(`studio.product_${code}`) ? t(`studio.product_${code}`) : code;
}

/** Runs `action` (async; it returns the message to show when it worked, or nothing) and shows
 * the outcome in the status element `statusId`: that message, or the refusal as the server
 * worded it (put in a sentence by `failure(error)` when one is given). True if it worked. */
async function attempt(statusId, action, failure) {
  try {
    const message = await action();
    if (message !== undefined) setStatus($(statusId), "ok", message);
    return true;
  } catch (err) {
    setStatus($(statusId), "error", failure ? failure(describe(err)) : describe(err));
    return false;
  }
}

/** Fills the list `listId` with one element per item (`item(x)`); `emptyId` shows when there are none. */
function showList(listId, emptyId, items, item) {
  $(emptyId).hidden = items.length > 0;
  $(listId).replaceChildren(...items.map(item));
}

export class SalesPanel {
  /** `room` is the selected RoomView ({slug, currency, question_min_price, ...}). */
  constructor(room) {
    this.room = room;
    this.closed = false;
    this.handlers = [];
    this.listen("coupon-form", "submit", (e) => { e.preventDefault(); this.addCoupon(); });
    this.listen("qmin-form", "submit", (e) => { e.preventDefault(); this.saveMinimum(); });
    this.listen("mod-appoint-form", "submit", (e) => { e.preventDefault(); this.appoint(); });
    this.listen("orders-refresh", "click", () => this.loadOrders());
    $("qmin-price").value = fromMinor(room.question_min_price || 0, room.currency);
    $("qmin-currency").textContent = room.currency;
    $("coupon-currency").textContent = room.currency;
    for (const id of ["coupon-status", "orders-status", "qmin-status", "team-status"]) setStatus($(id), "idle", "");
  }

  listen(id, type, fn) {
    $(id).addEventListener(type, fn);
    this.handlers.push([id, type, fn]);
  }

  close() {
    this.closed = true;
    for (const [id, type, fn] of this.handlers) $(id).removeEventListener(type, fn);
  }

  async load() {
    await Promise.all([this.loadCoupons(), this.loadOrders(), this.loadModerators()]);
  }

  path(tail = "") {
    return `/api/rooms/${encodeURIComponent(this.room.slug)}${tail}`;
  }

  // ----------------------------------------------------------------- coupons
  async loadCoupons() {
    await attempt("coupon-status", async () => this.renderCoupons((await api(this.path("/coupons"))).coupons),
                  (error) => t("studio.coupons_not_loaded", { error }));
  }

  renderCoupons(coupons) {
    if (this.closed) return;
    showList("coupon-list", "coupons-empty", coupons, (c) => {
      const off = c.kind === "percent" ? t("studio.coupon_percent_off", { value: c.value })
        : t("studio.coupon_amount_off", { amount: formatMoney(c.value, this.room.currency) });
      const uses = c.max_uses ? t("studio.coupon_uses_of", { uses: c.uses, max: c.max_uses }) : t("studio.coupon_uses", { uses: c.uses });
      const button = h("button", { type: "button", class: "secondary", onclick: () => this.toggleCoupon(c) },
        c.active ? t("studio.disable") : t("studio.enable"));
      return h("li", { dataset: { coupon: c.code, active: String(c.active) } },
        h("strong", {}, c.code), ` · ${off} · ${uses}`, c.expires_at ? ` · ${t("studio.coupon_until", { date: formatDateTime(c.expires_at) })}` : "",
        c.active ? "" : h("span", { class: "tag" }, ` ${t("studio.coupon_disabled")}`), " ", button);
    });
  }

  async addCoupon() {
    const kind = $("coupon-kind").value;
    const raw = $("coupon-value").value;
    const value = kind === "percent" ? Number(raw) : parseMinor(raw, this.room.currency);
    if (value === null || !Number.isFinite(value)) {
      setStatus($("coupon-status"), "error", t("studio.number_like", { label: t("studio.coupon_value"), example: "9.90", currency: this.room.currency }));
      return;
    }
    const body = { code: $("coupon-code").value.trim(), kind, value };
    const maxUses = $("coupon-max").value.trim();
    if (maxUses) body.max_uses = Number(maxUses);
    const created = await attempt("coupon-status", async () => {
      await api(this.path("/coupons"), { method: "POST", body });
      return t("studio.coupon_created", { code: body.code.toUpperCase() });
    }, (error) => t("studio.coupon_not_created", { error }));
    if (created) {
      $("coupon-form").reset();
      await this.loadCoupons();
    }
  }

  async toggleCoupon(coupon) {
    const toggled = await attempt("coupon-status", async () => {
      await api(this.path(`/coupons/${encodeURIComponent(coupon.code)}`), { method: "PATCH", body: { active: !coupon.active } });
      return t(coupon.active ? "studio.coupon_now_disabled" : "studio.coupon_now_enabled", { code: coupon.code });
    });
    if (toggled) await this.loadCoupons();
  }

  // ----------------------------------------------------------------- orders and refunds
  async loadOrders() {
    await attempt("orders-status", async () => this.renderOrders((await api(this.path("/orders"))).orders),
                  (error) => t("studio.orders_not_loaded", { error }));
  }

  renderOrders(orders) {
    if (this.closed) return;
    showList("order-list", "orders-empty", orders, (o) => {
      const refund = o.status === "paid"
        ? h("button", { type: "button", class: "danger", onclick: () => this.refund(o) }, t("studio.refund"))
        : h("span", { class: "tag" }, has(`studio.order_${o.status}`) ? t(`studio.order_${o.status}`) : o.status);
      return h("li", { dataset: { order: o.id, status: o.status } },
        h("strong", {}, o.buyer), ` · ${product(o.product)} · ${formatMoney(o.amount, o.currency)}`,
        o.coupon ? ` · ${t("studio.order_coupon", { code: o.coupon })}` : "", " ", refund);
    });
  }

  async refund(order) {
    const what = t("studio.order_what", { product: product(order.product), buyer: order.buyer,
                                          amount: formatMoney(order.amount, order.currency) });
    if (!confirm(t("studio.refund_confirm", { what }))) return;
    await attempt("orders-status", async () => {
      await api(`/api/orders/${encodeURIComponent(order.id)}/refund`, { method: "POST" });
      return t("studio.refunded", { what });
    }, (error) => t("studio.not_refunded", { error }));
    await this.loadOrders();
  }

  // ----------------------------------------------------------------- paid questions
  async saveMinimum() {
    const minor = parseMinor($("qmin-price").value, this.room.currency);
    if (minor === null) {
      setStatus($("qmin-status"), "error", t("studio.qmin_number", { currency: this.room.currency }));
      return;
    }
    await attempt("qmin-status", async () => {
      const room = (await api(this.path(), { method: "PATCH", body: { question_min_price: minor } })).room;
      this.room = room;
      return room.question_min_price
        ? t("studio.qmin_at_least", { amount: formatMoney(room.question_min_price, room.currency) })
        : t("studio.qmin_any");
    });
  }

  // ----------------------------------------------------------------- moderators
  async loadModerators() {
    await attempt("team-status", async () => this.renderModerators((await api(this.path("/moderators"))).moderators),
                  (error) => t("studio.moderators_not_loaded", { error }));
  }

  renderModerators(people) {
    if (this.closed) return;
    showList("moderator-list", "moderators-empty", people, (p) => h("li", { dataset: { user: String(p.user_id) } },
      h("strong", {}, p.display_name), ` ${t("studio.moderator_user", { id: p.user_id })} `,
      h("button", { type: "button", class: "secondary", onclick: () => this.dismiss(p) }, t("studio.dismiss"))));
  }

  async appoint() {
    const email = $("mod-email").value.trim();
    const appointed = await attempt("team-status", async () => {
      this.renderModerators((await api(this.path("/moderators"), { method: "POST", body: { email } })).moderators);
      return t("studio.moderator_appointed", { email });
    }, (error) => t("studio.not_appointed", { error }));
    if (appointed) $("mod-email").value = "";
  }

  async dismiss(person) {
    await attempt("team-status", async () => {
      this.renderModerators((await api(this.path(`/moderators/${person.user_id}`), { method: "DELETE" })).moderators);
      return t("studio.moderator_dismissed", { name: person.display_name });
    });
  }
}

export class PlansForm {
  /** `creatorId`: the logged-in creator, whose plans these are. */
  constructor(creatorId) {
    this.creatorId = creatorId;
    this.offered = {}; // interval -> the plan on offer now
    $("plans-form").addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
  }

  async load() {
    await attempt("plans-status", async () => {
      for (const plan of (await api(`/api/creators/${this.creatorId}/plans`)).plans) {
        this.offered[plan.interval] = plan;
        $("plan-currency").value = plan.currency;
        $(`plan-${plan.interval}`).value = fromMinor(plan.price, plan.currency);
      }
    }, (error) => t("studio.plans_not_loaded", { error }));
  }

  async save() {
    const currency = $("plan-currency").value.trim().toUpperCase();
    const saved = [];
    for (const interval of ["month", "year"]) {
      const text = $(`plan-${interval}`).value.trim();
      const offered = this.offered[interval];
      if (!text) {
        if (!offered) continue;
        const withdrawn = await attempt("plans-status", async () => { // running subscriptions go on
          await api(`/api/creator/plans/${interval}`, { method: "PUT",
            body: { price: offered.price, currency: offered.currency, active: false } });
          delete this.offered[interval];
        }, (error) => t("studio.plans_not_saved", { error }));
        if (!withdrawn) return;
        continue;
      }
      const price = parseMinor(text, currency);
      if (price === null) {
        setStatus($("plans-status"), "error", t("studio.number_like", { label: t(interval === "month" ? "studio.monthly_price" : "studio.yearly_price"), example: "9.90", currency }));
        return;
      }
      const offeredNow = await attempt("plans-status", async () => {
        this.offered[interval] = (await api(`/api/creator/plans/${interval}`, { method: "PUT", body: { price, currency } })).plan;
        saved.push(t(interval === "month" ? "studio.price_a_month" : "studio.price_a_year", { price: formatMoney(price, currency) }));
      }, (error) => t("studio.plans_not_saved", { error }));
      if (!offeredNow) return;
    }
    setStatus($("plans-status"), "ok", saved.length ? t("studio.plans_offered", { plans: saved.join(", ") }) : t("studio.no_plan_offered"));
  }
}

export class CoursesPanel {
  /** `rooms()`: the creator's rooms now (RoomViews), to put in a course. */
  constructor(creatorId, rooms) {
    this.creatorId = creatorId;
    this.rooms = rooms;
    this.courses = [];
    $("course-form").addEventListener("submit", (e) => { e.preventDefault(); this.create(); });
  }

  async load() {
    this.renderRoomChoices();
    await attempt("course-status", async () => {
      this.courses = (await api(`/api/creators/${this.creatorId}/series`)).series;
    }, (error) => t("studio.courses_not_loaded", { error }));
    this.render();
  }

  renderRoomChoices() {
    $("course-rooms").replaceChildren(...this.rooms().map((room) => h("label", {},
      h("input", { type: "checkbox", value: room.slug, name: "course-room" }), ` ${room.title} `)));
  }

  render() {
    $("my-courses").replaceChildren(...this.courses.map((course) => {
      const missing = this.rooms().filter((room) => !course.rooms.includes(room.slug));
      const select = h("select", { "aria-label": t("studio.course_room_to_add", { title: course.title }) },
        ...missing.map((room) => h("option", { value: room.slug }, room.title)));
      const add = h("button", { type: "button", class: "secondary", onclick: () => this.addRoom(course, select.value) },
        t("studio.add_room"));
      return h("li", { dataset: { series: course.slug } },
        h("strong", {}, course.title), ` · ${formatMoney(course.price, course.currency)} · ${course.rooms.join(", ") || t("studio.course_no_rooms")}`,
        course.include_later ? ` · ${t("studio.course_later_included")}` : "", " ", missing.length ? select : null, missing.length ? add : null);
    }));
  }

  async create() {
    const currency = $("course-currency").value.trim().toUpperCase();
    const price = parseMinor($("course-price").value, currency);
    if (price === null) {
      setStatus($("course-status"), "error", t("studio.number_like", { label: t("studio.course_price"), example: "49.00", currency }));
      return;
    }
    const rooms = [...document.querySelectorAll('input[name="course-room"]:checked')].map((box) => box.value);
    const body = { slug: $("course-slug").value.trim(), title: $("course-title").value.trim(), price, currency,
                   include_later: $("course-later").checked, rooms };
    const created = await attempt("course-status", async () => {
      const course = (await api("/api/series", { method: "POST", body })).series;
      return t("studio.course_on_sale", { title: course.title });
    }, (error) => t("studio.course_not_created", { error }));
    if (created) {
      $("course-form").reset();
      await this.load();
    }
  }

  async addRoom(course, slug) {
    const added = await attempt("course-status", async () => {
      await api(`/api/series/${encodeURIComponent(course.slug)}/rooms`, { method: "POST", body: { room: slug } });
      return t("studio.course_room_added", { room: slug, title: course.title });
    });
    if (added) await this.load();
  }
}
