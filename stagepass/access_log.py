"""``RedactingAccessLogger``: aiohttp's access log without query strings.

Replay URLs carry their token in the query (``?token=``) because a media player fetches
segments by URL; the default access log would write those tokens to the log. This one
logs method, path, status, size, duration and client, never the query or any header.
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

__all__ = ["RedactingAccessLogger"]


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        # files go out by sendfile, which body_length does not count
        size = response.content_length if response.content_length is not None else response.body_length
        self.logger.info(
            '%s "%s %s" %d %s %.1fms', request.remote, request.method, request.path,
            response.status, size, time * 1000,
        )
