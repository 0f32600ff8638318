// Notification settings: one checkbox per kind and channel (PATCH /api/me/notification-settings).
import { api, describe, h, setStatus, siteHeader } from "./ui.js";
import { t } from "./i18n.js";

const LABELS = {
  scheduled: t("notifications.scheduled"),
  reminder: t("notifications.reminder"),
  live: t("notifications.live"),
  replay: t("notifications.replay"),
};
const statusLine = document.getElementById("status");
const body = document.querySelector("#preferences tbody");

function render(prefs) {
  body.replaceChildren(...Object.entries(prefs).map(([kind, channels]) => h("tr", {},
    h("th", { scope: "row" }, LABELS[kind] || kind),
    ...["inbox", "email"].map((channel) => h("td", {}, h("input", {
      type: "checkbox", checked: channels[channel], "aria-label": `${LABELS[kind] || kind}: ${t(`notifications.${channel}`)}`,
      dataset: { kind, channel },
      onchange: async (event) => {
        try {
          render((await api("/api/me/notification-settings", {
            method: "PATCH", body: { [kind]: { [channel]: event.target.checked } },
          })).preferences);
          setStatus(statusLine, "ready", t("notifications.saved"));
        } catch (err) {
          setStatus(statusLine, "error", describe(err));
        }
      },
    }))))));
}

const user = await siteHeader();
if (!user) {
  setStatus(statusLine, "error", t("notifications.log_in"));
} else {
  try {
    render((await api("/api/me/notification-settings")).preferences);
    setStatus(statusLine, "ready", "");
  } catch (err) {
    setStatus(statusLine, "error", describe(err));
  }
}
