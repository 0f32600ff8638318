// The per-viewer watermark of paid content (paywall/watermark.py says for whom): the viewer's
// masked id and the time, drawn on a canvas inside a closed shadow root, moving around the
// player every few seconds. A leaked screen recording names its account.
//
// CSS alone does not take it away: the box's styles are inline and `!important` (they win
// over any stylesheet), reasserted whenever they change and every second; the text is
// pixels in a closed shadow root (no selector reaches it); a removed box is re-created at
// once (MutationObserver). It sits under the danmaku layer (before it, same stacking level),
// so it never hides the danmaku, and it takes no clicks.
import { formatTime } from "./i18n.js";

const MOVE_MS = 5000;
const TICK_MS = 1000;
const FONT_PX = 13;
const PADDING_PX = 4;

function boxStyle(left, top, width, height) {
  return {
    position: "absolute", left: `${left}px`, top: `${top}px`, width: `${width}px`, height: `${height}px`,
    right: "auto", bottom: "auto", margin: "0", padding: "0", border: "0", display: "block",
    visibility: "visible", opacity: "1", transform: "none", filter: "none", "clip-path": "none",
    "mask-image": "none", "z-index": "0", "pointer-events": "none", "user-select": "none",
    overflow: "hidden", background: "transparent", "mix-blend-mode": "normal",
  };
}

/**
 * Overlay `label` (and the time) on `stage`, right after `anchor` (the video), so the danmaku
 * layer that follows stays on top. Returns `{ stop() }`.
 */
export function mountWatermark(stage, label, anchor = stage.querySelector("video")) {
  let host = null;
  let canvas = null;
  let style = {};
  let position = { x: 0.05, y: 0.05 };
  let movedAt = 0;
  let stopped = false;

  const hostWatcher = new MutationObserver(() => reassert());
  const stageWatcher = new MutationObserver(() => { if (!host || host.parentNode !== stage) create(); });

  function create() {
    if (host) {
      hostWatcher.disconnect();
      host.remove();
    }
    host = document.createElement("div");
    host.setAttribute("aria-hidden", "true");
    const shadow = host.attachShadow({ mode: "closed" });
    canvas = document.createElement("canvas");
    canvas.style.cssText = "display:block;width:100%;height:100%";
    shadow.append(canvas);
    if (anchor && anchor.parentNode === stage) anchor.after(host);
    else stage.prepend(host);
    hostWatcher.observe(host, { attributes: true });
    draw();
  }

  function reassert() {
    if (!host) return;
    for (const [name, value] of Object.entries(style)) {
      if (host.style.getPropertyValue(name) !== value || host.style.getPropertyPriority(name) !== "important") {
        host.style.setProperty(name, value, "important");
      }
    }
    for (const attribute of [...host.attributes]) {
      if (attribute.name !== "style" && attribute.name !== "aria-hidden") host.removeAttribute(attribute.name);
    }
  }

  function defeated() {
    const computed = getComputedStyle(host);
    return computed.display === "none" || computed.visibility !== "visible" || Number(computed.opacity) < 1
      || host.getClientRects().length === 0;
  }

  function draw() {
    const now = Date.now();
    const text = `${label} · ${formatTime(now)}`;
    const ratio = window.devicePixelRatio || 1;
    const context = canvas.getContext("2d");
    const font = `${FONT_PX}px system-ui, sans-serif`;
    context.font = font;
    const width = Math.ceil(context.measureText(text).width) + 2 * PADDING_PX;
    const height = FONT_PX + 2 * PADDING_PX + 2;
    if (now - movedAt >= MOVE_MS) { // somewhere else, at least 30 % of the way across and down
      position = { x: (position.x + 0.3 + 0.4 * Math.random()) % 1, y: (position.y + 0.3 + 0.4 * Math.random()) % 1 };
      movedAt = now;
    }
    const room = { x: Math.max(0, stage.clientWidth - width), y: Math.max(0, stage.clientHeight - height - 40) }; // clear of the controls
    style = boxStyle(Math.round(position.x * room.x), Math.round(position.y * room.y), width, height);
    reassert();
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.font = font;
    context.textBaseline = "top";
    context.lineWidth = 3;
    context.strokeStyle = "rgba(0, 0, 0, 0.35)";
    context.fillStyle = "rgba(255, 255, 255, 0.55)";
    context.strokeText(text, PADDING_PX, PADDING_PX + 1);
    context.fillText(text, PADDING_PX, PADDING_PX + 1);
  }

  function tick() {
    if (stopped || stage.getClientRects().length === 0) return; // the player is not shown
    if (!host || host.parentNode !== stage || defeated()) create();
    else draw();
  }

  create();
  stageWatcher.observe(stage, { childList: true });
  const timer = setInterval(tick, TICK_MS);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      stageWatcher.disconnect();
      hostWatcher.disconnect();
      if (host) host.remove();
      host = null;
    },
  };
}
