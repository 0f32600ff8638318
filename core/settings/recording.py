"""The ``recording`` section: recording while live and where finished replays are stored."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.settings.parsing import ConfigError, parse_bool

__all__ = ["RecordingSettings"]


@dataclass
class RecordingSettings:
    """Recording while live and where finished replays are stored."""

    recordings: bool = field(
        default=True,
        metadata={
            "help": "record every broadcast into DATA_DIR/recordings (on/off)",
            "parse": parse_bool,
        },
    )
    recording_keyframe_interval: float = field(
        default=4.0,
        metadata={
            "help": "while recording H.264, ask for a keyframe when the last is this many "
                    "seconds old, so the replay is remuxed, not re-encoded (0: never)",
        },
    )
    storage_url: str = field(
        default="",
        metadata={"help": "where finished replays live: empty or file:// (DATA_DIR/recordings on this disk), "
                          "or s3://BUCKET/PREFIX (S3-compatible object storage; endpoint and credentials from "
                          "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)"},
    )
    storage_proxy: bool = field(
        default=False,
        metadata={"help": "stream stored replay files through this node (with Range) instead of redirecting "
                          "browsers to short-lived presigned URLs, for buckets browsers cannot reach",
                  "parse": parse_bool},
    )
    keep_local: bool = field(
        default=False,
        metadata={"help": "keep the local media of a replay after it is uploaded to object storage",
                  "parse": parse_bool},
    )

    def validate(self) -> None:
        if self.recording_keyframe_interval < 0:
            raise ConfigError("recording_keyframe_interval: 0 (off) or more seconds")
