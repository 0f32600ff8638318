// The studio's subscription plans (PlansForm: the creator's monthly and yearly prices), courses
// (CoursesPanel: series of the creator's rooms at one price, rooms added later), and its
// "Sales and team" panel of the selected room: coupons (create, list, disable or
// enable), the room's orders and their refund, the minimum price of a paid question, and the
// room's moderators (appointed by email, dismissed). Everything goes through the JSON API;
// every refusal is shown as the server's message next to the form that caused it.
import { api, describe, formatMoney, fromMinor, h, parseMinor, setStatus } from "./ui.js";

const $ = (id) => document.getElementById(id);

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
    try {
      this.renderCoupons((await api(this.path("/coupons"))).coupons);
    } catch (err) {
      setStatus($("coupon-status"), "error", `Could not load the coupons: ${describe(err)}`);
    }
  }

  renderCoupons(coupons) {
    if (this.closed) return;
    $("coupons-empty").hidden = coupons.length > 0;
    $("coupon-list").replaceChildren(...coupons.map((c) => {
      const off = c.kind === "percent" ? `${c.value}% off` : `${formatMoney(c.value, this.room.currency)} off`;
      const uses = c.max_uses ? `${c.uses} of ${c.max_uses} used` : `${c.uses} used`;
      const button = h("button", { type: "button", class: "secondary", onclick: () => this.toggleCoupon(c) },
        c.active ? "Disable" : "Enable");
      return h("li", { dataset: { coupon: c.code, active: String(c.active) } },
        h("strong", {}, c.code), ` · ${off} · ${uses}`, c.expires_at ? ` · until ${new Date(c.expires_at).toLocaleString()}` : "",
        c.active ? "" : h("span", { class: "tag" }, " disabled"), " ", button);
    }));
  }

  async addCoupon() {
    const kind = $("coupon-kind").value;
    const raw = $("coupon-value").value;
    const value = kind === "percent" ? Number(raw) : parseMinor(raw, this.room.currency);
    if (value === null || !Number.isFinite(value)) {
      setStatus($("coupon-status"), "error", `Value: a number like 9.90 in ${this.room.currency}`);
      return;
    }
    const body = { code: $("coupon-code").value.trim(), kind, value };
    const maxUses = $("coupon-max").value.trim();
    if (maxUses) body.max_uses = Number(maxUses);
    try {
      await api(this.path("/coupons"), { method: "POST", body });
      setStatus($("coupon-status"), "ok", `Coupon ${body.code.toUpperCase()} created.`);
      $("coupon-form").reset();
      await this.loadCoupons();
    } catch (err) {
      setStatus($("coupon-status"), "error", `Coupon not created: ${describe(err)}`);
    }
  }

  async toggleCoupon(coupon) {
    try {
      await api(this.path(`/coupons/${encodeURIComponent(coupon.code)}`), { method: "PATCH", body: { active: !coupon.active } });
      setStatus($("coupon-status"), "ok", `Coupon ${coupon.code} ${coupon.active ? "disabled" : "enabled"}.`);
      await this.loadCoupons();
    } catch (err) {
      setStatus($("coupon-status"), "error", describe(err));
    }
  }

  // ----------------------------------------------------------------- orders and refunds
  async loadOrders() {
    try {
      this.renderOrders((await api(this.path("/orders"))).orders);
    } catch (err) {
      setStatus($("orders-status"), "error", `Could not load the orders: ${describe(err)}`);
    }
  }

  renderOrders(orders) {
    if (this.closed) return;
    $("orders-empty").hidden = orders.length > 0;
    $("order-list").replaceChildren(...orders.map((o) => {
      const refund = o.status === "paid"
        ? h("button", { type: "button", class: "danger", onclick: () => this.refund(o) }, "Refund")
        : h("span", { class: "tag" }, o.status);
      return h("li", { dataset: { order: o.id, status: o.status } },
        h("strong", {}, o.buyer), ` · ${o.product} · ${formatMoney(o.amount, o.currency)}`,
        o.coupon ? ` · coupon ${o.coupon}` : "", " ", refund);
    }));
  }

  async refund(order) {
    const what = `${order.product} of ${order.buyer} (${formatMoney(order.amount, order.currency)})`;
    if (!confirm(`Refund the ${what}? Their access ends at once.`)) return;
    try {
      await api(`/api/orders/${encodeURIComponent(order.id)}/refund`, { method: "POST" });
      setStatus($("orders-status"), "ok", `Refunded the ${what}.`);
    } catch (err) {
      setStatus($("orders-status"), "error", `Not refunded: ${describe(err)}`);
    }
    await this.loadOrders();
  }

  // ----------------------------------------------------------------- paid questions
  async saveMinimum() {
    const minor = parseMinor($("qmin-price").value, this.room.currency);
    if (minor === null) {
      setStatus($("qmin-status"), "error", `A number like 2.00 in ${this.room.currency}; 0: any amount`);
      return;
    }
    try {
      const room = (await api(this.path(), { method: "PATCH", body: { question_min_price: minor } })).room;
      this.room = room;
      setStatus($("qmin-status"), "ok", room.question_min_price
        ? `Paid questions cost at least ${formatMoney(room.question_min_price, room.currency)}.`
        : "Paid questions: any amount.");
    } catch (err) {
      setStatus($("qmin-status"), "error", describe(err));
    }
  }

  // ----------------------------------------------------------------- moderators
  async loadModerators() {
    try {
      this.renderModerators((await api(this.path("/moderators"))).moderators);
    } catch (err) {
      setStatus($("team-status"), "error", `Could not load the moderators: ${describe(err)}`);
    }
  }

  renderModerators(people) {
    if (this.closed) return;
    $("moderators-empty").hidden = people.length > 0;
    $("moderator-list").replaceChildren(...people.map((p) => h("li", { dataset: { user: String(p.user_id) } },
      h("strong", {}, p.display_name), ` (user ${p.user_id}) `,
      h("button", { type: "button", class: "secondary", onclick: () => this.dismiss(p) }, "Dismiss"))));
  }

  async appoint() {
    const email = $("mod-email").value.trim();
    try {
      this.renderModerators((await api(this.path("/moderators"), { method: "POST", body: { email } })).moderators);
      setStatus($("team-status"), "ok", `${email} moderates this room now.`);
      $("mod-email").value = "";
    } catch (err) {
      setStatus($("team-status"), "error", `Not appointed: ${describe(err)}`);
    }
  }

  async dismiss(person) {
    try {
      const body = await api(this.path(`/moderators/${person.user_id}`), { method: "DELETE" });
      this.renderModerators(body.moderators);
      setStatus($("team-status"), "ok", `${person.display_name} no longer moderates this room.`);
    } catch (err) {
      setStatus($("team-status"), "error", describe(err));
    }
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
    try {
      const plans = (await api(`/api/creators/${this.creatorId}/plans`)).plans;
      for (const plan of plans) {
        this.offered[plan.interval] = plan;
        $("plan-currency").value = plan.currency;
        $(`plan-${plan.interval}`).value = fromMinor(plan.price, plan.currency);
      }
    } catch (err) {
      setStatus($("plans-status"), "error", `Could not load your plans: ${describe(err)}`);
    }
  }

  async save() {
    const currency = $("plan-currency").value.trim().toUpperCase();
    const saved = [];
    for (const interval of ["month", "year"]) {
      const text = $(`plan-${interval}`).value.trim();
      const offered = this.offered[interval];
      if (!text) {
        if (!offered) continue;
        try { // an emptied price withdraws the plan (running subscriptions go on)
          await api(`/api/creator/plans/${interval}`, { method: "PUT",
            body: { price: offered.price, currency: offered.currency, active: false } });
          delete this.offered[interval];
        } catch (err) {
          setStatus($("plans-status"), "error", `Not saved: ${describe(err)}`);
          return;
        }
        continue;
      }
      const price = parseMinor(text, currency);
      if (price === null) {
        setStatus($("plans-status"), "error", `${interval === "month" ? "Monthly" : "Yearly"} price: a number like 9.90 in ${currency}`);
        return;
      }
      try {
        this.offered[interval] = (await api(`/api/creator/plans/${interval}`, { method: "PUT", body: { price, currency } })).plan;
        saved.push(`${formatMoney(price, currency)} a ${interval}`);
      } catch (err) {
        setStatus($("plans-status"), "error", `Not saved: ${describe(err)}`);
        return;
      }
    }
    setStatus($("plans-status"), "ok", saved.length ? `Subscriptions offered: ${saved.join(", ")}.` : "No subscription offered.");
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
    try {
      this.courses = (await api(`/api/creators/${this.creatorId}/series`)).series;
    } catch (err) {
      setStatus($("course-status"), "error", `Could not load your courses: ${describe(err)}`);
    }
    this.render();
  }

  renderRoomChoices() {
    $("course-rooms").replaceChildren(...this.rooms().map((room) => h("label", {},
      h("input", { type: "checkbox", value: room.slug, name: "course-room" }), ` ${room.title} `)));
  }

  render() {
    $("my-courses").replaceChildren(...this.courses.map((course) => {
      const missing = this.rooms().filter((room) => !course.rooms.includes(room.slug));
      const select = h("select", { "aria-label": `A room to add to ${course.title}` },
        ...missing.map((room) => h("option", { value: room.slug }, room.title)));
      const add = h("button", { type: "button", class: "secondary", onclick: () => this.addRoom(course, select.value) },
        "Add room");
      return h("li", { dataset: { series: course.slug } },
        h("strong", {}, course.title), ` · ${formatMoney(course.price, course.currency)} · ${course.rooms.join(", ") || "no rooms yet"}`,
        course.include_later ? " · later rooms included" : "", " ", missing.length ? select : null, missing.length ? add : null);
    }));
  }

  async create() {
    const currency = $("course-currency").value.trim().toUpperCase();
    const price = parseMinor($("course-price").value, currency);
    if (price === null) {
      setStatus($("course-status"), "error", `Price: a number like 49.00 in ${currency}`);
      return;
    }
    const rooms = [...document.querySelectorAll('input[name="course-room"]:checked')].map((box) => box.value);
    const body = { slug: $("course-slug").value.trim(), title: $("course-title").value.trim(), price, currency,
                   include_later: $("course-later").checked, rooms };
    try {
      const course = (await api("/api/series", { method: "POST", body })).series;
      setStatus($("course-status"), "ok", `Course “${course.title}” is on sale.`);
      $("course-form").reset();
      await this.load();
    } catch (err) {
      setStatus($("course-status"), "error", `Course not created: ${describe(err)}`);
    }
  }

  async addRoom(course, slug) {
    try {
      await api(`/api/series/${encodeURIComponent(course.slug)}/rooms`, { method: "POST", body: { room: slug } });
      setStatus($("course-status"), "ok", `Added ${slug} to “${course.title}”.`);
      await this.load();
    } catch (err) {
      setStatus($("course-status"), "error", describe(err));
    }
  }
}
