// Which rendition the server sends a WHEP player: on a weak network it switches the viewer
// to the room's low rendition or to audio only, and back (GET on the session URL answers
// {"rendition": "full" | "low" | "audio"}). Shared by the watch page and the room page.

import { t } from "./i18n.js";

const RENDITIONS = { full: "watch.full_quality", low: "watch.low_quality", audio: "watch.audio_only" };

/** Show `session`'s rendition in `line` (its `data-rendition` too), asked every `everyMs`
 * while `isCurrent()` holds; the line is hidden when it stops. */
export async function followRendition(session, line, isCurrent, everyMs = 2000) {
  while (isCurrent() && session.location) {
    try {
      const response = await fetch(session.location, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const { rendition } = await response.json();
        line.dataset.rendition = rendition;
        line.textContent = RENDITIONS[rendition] ? t(RENDITIONS[rendition]) : rendition; // never innerHTML
        line.hidden = false;
      }
    } catch {
      // transient: asked again below
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  line.hidden = true;
}
