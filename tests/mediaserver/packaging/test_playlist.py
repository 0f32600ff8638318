"""mediaserver.packaging.playlist: the m3u8 the packager writes is the one replays read
back (segment starts on the media clock, discontinuities, signed URIs, preview cut)."""

from __future__ import annotations

from mediaserver.packaging.playlist import parse_playlist, render_playlist, segment_start, signed_playlist
import pytest

pytestmark = pytest.mark.unit

TICKS = 90000
SEGMENTS = [  # start / duration in 90 kHz ticks, as the segmenter leaves them
    {"file": "seg-00000.ts", "start": 0, "duration": 4 * TICKS + 30 * 90, "discontinuity": False},
    {"file": "seg-00001.ts", "start": 4 * TICKS + 30 * 90, "duration": 2 * TICKS, "discontinuity": True},
    {"file": "seg-00002.ts", "start": 6 * TICKS + 30 * 90, "duration": 5 * TICKS + 1, "discontinuity": False},
]


def test_render_then_parse_gives_the_segments_back():
    text = render_playlist(SEGMENTS, TICKS)
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and "#EXT-X-TARGETDURATION:6" in lines
    header, segments = parse_playlist(text)
    assert "#EXT-X-TARGETDURATION:6" in header
    assert [s.uri for _, s in segments] == [s["file"] for s in SEGMENTS]
    assert [s.start_ms for _, s in segments] == [0, 4030, 6030]
    assert [s.duration_ms for _, s in segments] == [4030, 2000, 5000]
    assert [("#EXT-X-DISCONTINUITY" in tags) for tags, _ in segments] == [False, True, False]
    assert segment_start(text, "seg-00002.ts") == 6030
    assert segment_start(text, "seg-00009.ts") is None and segment_start(None, "seg-00000.ts") is None


def test_signed_playlist_carries_the_query_and_cuts_the_preview():
    text = render_playlist(SEGMENTS, TICKS)
    full = signed_playlist(text, "token=abc")
    assert [s.uri for _, s in parse_playlist(full)[1]] == [f"{s['file']}?token=abc" for s in SEGMENTS]
    preview = signed_playlist(text, "token=abc", limit_ms=5000)
    uris = [s.uri for _, s in parse_playlist(preview)[1]]
    assert uris == ["seg-00000.ts?token=abc", "seg-00001.ts?token=abc"]
    assert preview.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-DISCONTINUITY" in preview
