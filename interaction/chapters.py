"""Replay chapters: the answered questions and the polls of a broadcast as WebVTT chapters.

A chapter starts when a question was answered (``answered_t_ms``) or a poll opened
(``opened_t_ms``) and lasts until the next one starts (the last one until the end of
the replay). Cue text is plain text: WebVTT's ``&``, ``<`` and ``>`` are escaped, line
breaks folded, and ``-->`` cannot appear, so a question cannot forge cues or markup.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["chapters_of", "to_webvtt"]

MAX_TITLE = 120


def chapters_of(answered: list[dict], polls: list[dict]) -> list[dict]:
    """Chapters in time order: {t_ms, kind ("question"|"poll"), title, id}."""
    items = [{"t_ms": int(q["answered_t_ms"]), "kind": "question", "title": f"Q: {q['text']}", "id": q["id"]}
             for q in answered if q.get("answered_t_ms") is not None]
    items += [{"t_ms": int(p["opened_t_ms"]), "kind": "poll", "title": f"Poll: {p['question']}", "id": p["id"]}
              for p in polls]
    items.sort(key=lambda c: (c["t_ms"], c["kind"], c["id"]))
    return items


def _timestamp(ms: int) -> str:
    ms = max(0, ms)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _cue_text(title: str) -> str:
    text = " ".join(title.split())
    if len(text) > MAX_TITLE:
        text = text[: MAX_TITLE - 1] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(chapters: list[dict], end_ms: Optional[int]) -> str:
    """WebVTT chapter cues; ``end_ms`` closes the last one (the replay's duration)."""
    lines = ["WEBVTT", ""]
    for i, chapter in enumerate(chapters):
        start = chapter["t_ms"]
        end = chapters[i + 1]["t_ms"] if i + 1 < len(chapters) else max(end_ms or 0, start + 1000)
        if end <= start:
            end = start + 1
        lines += [f"{chapter['kind']}-{chapter['id']}", f"{_timestamp(start)} --> {_timestamp(end)}",
                  _cue_text(chapter["title"]), ""]
    return "\n".join(lines)
