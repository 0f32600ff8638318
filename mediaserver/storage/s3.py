"""``S3Storage``: finished media in an S3-compatible bucket (AWS S3, R2, MinIO, Ceph) via aiobotocore.

Endpoint, credentials and region come from the standard AWS variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``) or the usual
botocore configuration files; request signing is botocore's. Uploads send ``Content-MD5``
(the server refuses a corrupted body), files above ``multipart_threshold`` go up in parts
(each with its MD5), and the stored size is checked afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import AsyncIterator, Optional

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from .base import StorageError, StorageLocation

__all__ = ["S3Storage", "describe_error"]

log = logging.getLogger("stagepass.storage")

MB = 1 << 20


def describe_error(exc: BaseException) -> str:
    """One line saying which of: unreachable endpoint, wrong credentials, missing bucket, other."""
    if isinstance(exc, EndpointConnectionError):
        return f"endpoint unreachable ({exc})"
    if isinstance(exc, NoCredentialsError):
        return "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket", "404") or (status == 404 and code in ("", "NotFound")):
            return "bucket missing (NoSuchBucket)"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden") \
                or status == 403:
            return f"wrong credentials or no access ({code or status})"
        return f"{code or status}: {err.get('Message') or exc}"
    if isinstance(exc, (BotoCoreError, OSError, asyncio.TimeoutError)):
        return f"endpoint unreachable ({exc.__class__.__name__}: {exc})"
    return f"{exc.__class__.__name__}: {exc}"


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


async def _md5_off_loop(data: bytes) -> str:
    """Hashing megabytes takes milliseconds: not on the loop that forwards media."""
    return _md5_b64(data) if len(data) <= 65536 else await asyncio.to_thread(_md5_b64, data)


class S3Storage:
    def __init__(
        self,
        location: StorageLocation,
        *,
        multipart_threshold: int = 16 * MB,
        part_size: int = 8 * MB,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        assert location.scheme == "s3"
        self.location = location
        self.bucket = location.bucket
        self._root = f"{location.prefix}/" if location.prefix else ""
        self.multipart_threshold = multipart_threshold
        self.part_size = max(5 * MB, part_size)
        options = dict(
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"} if os.environ.get("AWS_ENDPOINT_URL") else None,
            signature_version="s3v4",
        )
        try:  # botocore >= 1.36 adds CRC checksums by default, which some S3-compatible
            # stores refuse; every upload here carries Content-MD5 instead
            config = AioConfig(**options, request_checksum_calculation="when_required",
                               response_checksum_validation="when_required")
        except TypeError:
            config = AioConfig(**options)
        self._session = get_session()
        self._config = config
        self._stack = contextlib.AsyncExitStack()
        self._client = None
        self._lock = asyncio.Lock()

    @property
    def remote(self) -> bool:
        return True

    def key(self, key: str) -> str:
        """The bucket key of a store key."""
        return self._root + key

    async def client(self):
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._stack.enter_async_context(
                        self._session.create_client("s3", config=self._config))
        return self._client

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    # ------------------------------------------------------------------ checks
    async def check(self) -> None:
        try:
            s3 = await self.client()
            await s3.head_bucket(Bucket=self.bucket)
            # credentials that may look but not list/write are found here, not at the first upload
            await s3.list_objects_v2(Bucket=self.bucket, Prefix=self._root, MaxKeys=1)
        except Exception as exc:
            raise StorageError(f"{self.location.url}: {describe_error(exc)}") from exc

    # ------------------------------------------------------------------ writes
    async def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        s3 = await self.client()
        md5 = await _md5_off_loop(data)
        await s3.put_object(Bucket=self.bucket, Key=self.key(key), Body=data, ContentMD5=md5, ContentType=content_type)

    async def put_file(self, key: str, path: Path) -> int:
        size = path.stat().st_size
        content_type = _content_type(path.name)
        if size <= self.multipart_threshold:
            data = await asyncio.to_thread(path.read_bytes)
            await self.put_bytes(key, data, content_type)
        else:
            await self._multipart(key, path, size, content_type)
        stored = await self.size(key)
        if stored != size:
            raise StorageError(f"{key}: stored size {stored} != local size {size}")
        return size

    async def _multipart(self, key: str, path: Path, size: int, content_type: str) -> None:
        s3 = await self.client()
        upload = await s3.create_multipart_upload(Bucket=self.bucket, Key=self.key(key), ContentType=content_type)
        upload_id = upload["UploadId"]
        parts = []
        try:
            with open(path, "rb") as f:
                number = 1
                while True:
                    data = await asyncio.to_thread(f.read, self.part_size)
                    if not data:
                        break
                    got = await s3.upload_part(Bucket=self.bucket, Key=self.key(key), UploadId=upload_id,
                                               PartNumber=number, Body=data, ContentMD5=await _md5_off_loop(data))
                    parts.append({"PartNumber": number, "ETag": got["ETag"]})
                    number += 1
            await s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key(key), UploadId=upload_id,
                                               MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key(key), UploadId=upload_id)
            raise

    async def delete_prefix(self, prefix: str) -> int:
        s3 = await self.client()
        keys = list(await self.list(prefix))
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self.key(k)} for k in keys[i:i + 1000]]
            await s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    # ------------------------------------------------------------------ reads
    async def size(self, key: str) -> Optional[int]:
        s3 = await self.client()
        try:
            head = await s3.head_object(Bucket=self.bucket, Key=self.key(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        return int(head["ContentLength"])

    async def read(self, key: str) -> Optional[bytes]:
        s3 = await self.client()
        try:
            got = await s3.get_object(Bucket=self.bucket, Key=self.key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        async with got["Body"] as body:
            return await body.read()

    async def stream(self, key: str, start: int = 0, end: Optional[int] = None) -> AsyncIterator[bytes]:
        s3 = await self.client()
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        got = await s3.get_object(Bucket=self.bucket, Key=self.key(key), **extra)
        async with got["Body"] as body:
            while True:
                chunk = await body.read(256 * 1024)
                if not chunk:
                    break
                yield chunk

    async def list(self, prefix: str) -> dict[str, int]:
        s3 = await self.client()
        out: dict[str, int] = {}
        cut = len(self._root)
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(prefix)):
            for item in page.get("Contents", ()):
                out[item["Key"][cut:]] = int(item["Size"])
        return out

    async def children(self, prefix: str) -> list[str]:
        s3 = await self.client()
        base = self.key(prefix)
        names: list[str] = []
        async for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"):
            for item in page.get("CommonPrefixes", ()):
                names.append(item["Prefix"][len(base):].rstrip("/"))
        return names

    async def presign_get(self, key: str, expires_s: int) -> Optional[str]:
        s3 = await self.client()
        return await s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(key)}, ExpiresIn=int(expires_s))


def _content_type(name: str) -> str:
    if name.endswith(".m3u8"):
        return "application/vnd.apple.mpegurl"
    if name.endswith(".ts"):
        return "video/mp2t"
    if name.endswith(".jpg"):
        return "image/jpeg"
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".vtt"):
        return "text/vtt"
    if name.endswith((".mkv", ".webm")):
        return "video/x-matroska"
    return "application/octet-stream"
