// Notification settings: one checkbox per kind and channel (PATCH /api/me/notification-settings).
import { api, describe, h, setStatus, siteHeader } from "./ui.js";

const LABELS = {
  scheduled: "A room is scheduled",
  reminder: "15 minutes before a room starts",
  live: "A room goes live",
  replay: "A replay is ready",
};
const statusLine = document.getElementById("status");
const body = document.querySelector("#preferences tbody");

function render(prefs) {
  body.replaceChildren(...Object.entries(prefs).map(([kind, channels]) => h("tr", {},
    h("th", { scope: "row" }, LABELS[kind] || kind),
    ...["inbox", "email"].map((channel) => h("td", {}, h("input", {
      type: "checkbox", checked: channels[channel], "aria-label": `${LABELS[kind] || kind}: ${channel}`,
      dataset: { kind, channel },
      onchange: async (event) => {
        try {
          render((await api("/api/me/notification-settings", {
            method: "PATCH", body: { [kind]: { [channel]: event.target.checked } },
          })).preferences);
          setStatus(statusLine, "ready", "Saved.");
        } catch (err) {
          setStatus(statusLine, "error", describe(err));
        }
      },
    }))))));
}

const user = await siteHeader();
if (!user) {
  setStatus(statusLine, "error", "Log in to choose your notifications.");
} else {
  try {
    render((await api("/api/me/notification-settings")).preferences);
    setStatus(statusLine, "ready", "");
  } catch (err) {
    setStatus(statusLine, "error", describe(err));
  }
}
