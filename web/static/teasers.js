// Free teaser clips as cards (room page, catalog): poster, title, length, a link to the clip.
import { api, h } from "./ui.js";
import { t } from "./i18n.js";

function length(ms) {
  const s = Math.round((ms || 0) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Show the teasers of `room` (all rooms when null) in `section`'s list; hidden when none. */
export async function showTeasers(section, list, room = null) {
  const query = `/api/clips?teaser=1${room ? `&room=${encodeURIComponent(room)}` : ""}`;
  let clips = [];
  try {
    ({ clips } = await api(query));
  } catch {
    return;
  }
  list.replaceChildren(...clips.map((clip) => h("li", { class: "card teaser", dataset: { clip: clip.id } },
    h("a", { href: clip.page_url },
      h("img", { src: clip.poster_url, alt: "", loading: "lazy" }),
      h("span", { class: "title" }, clip.title || t("teasers.clip_of", { room: clip.room_title })),
      h("span", { class: "hint" }, ` ${length(clip.duration_ms)} · ${t("common.free_lower")}`)))));
  section.hidden = clips.length === 0;
}
