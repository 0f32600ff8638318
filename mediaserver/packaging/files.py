"""The files of a packaged recording folder, by name (what packaging writes, what the
uploads publish and what replays serve)::

    hls/index.m3u8      VOD playlist (``packaging.playlist``)
    hls/seg-00000.ts    MPEG-TS segments: H.264 video + AAC-LC 48 kHz audio
    poster.jpg          the most detailed of the thumbnail frames, at video size
    thumbs.jpg          sprite of thumbnails, one every ``thumb_interval_s``
    thumbs.json         where each tile is and which time it shows
    thumbs.vtt          the same as WebVTT ``#xywh=`` cues (video.js, Plyr...)
    download.ts         the whole replay as one MPEG-TS file, built on demand
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = [
    "DOWNLOAD_NAME", "HLS_DIR", "IMAGE_FILES", "PLAYLIST", "PUBLIC_FILES", "SEGMENT_RE", "TMP_PREFIX",
    "object_name", "segment_name",
]

HLS_DIR = "hls"
PLAYLIST = "index.m3u8"
SEGMENT_RE = re.compile(r"^seg-\d{5}\.ts$")
#: the images packaging writes next to ``hls/``
IMAGE_FILES = ("poster.jpg", "thumbs.jpg", "thumbs.json", "thumbs.vtt")
#: images of a replay that the catalog shows to everyone (no token)
PUBLIC_FILES = frozenset(IMAGE_FILES)
#: the whole replay as one MPEG-TS file (the segments concatenated), built on demand
DOWNLOAD_NAME = "download.ts"
#: a packaging job's work folder inside the recording folder (removed after a crash)
TMP_PREFIX = ".vod-tmp-"


def segment_name(index: int) -> str:
    return f"seg-{index:05d}.ts"


def object_name(name: str) -> Optional[str]:
    """The folder-relative name of a public file name of a replay (None: not one)."""
    if name in PUBLIC_FILES:
        return name
    if name == PLAYLIST or SEGMENT_RE.match(name):
        return f"{HLS_DIR}/{name}"
    return None
