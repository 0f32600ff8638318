"""A real S3 API for tests: moto's standalone server on a free 127.0.0.1 port.

``moto_endpoint`` starts one ``moto_server`` for the session; ``s3`` gives each test a
fresh bucket and points the standard AWS variables at the server (never mocked calls:
the code under test talks HTTP to it like to AWS, R2 or MinIO). ``start_moto`` starts
extra servers (one that checks credentials, for the wrong-credentials tests).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tests.support.missing_tools import missing_tool

__all__ = ["S3Bucket", "moto_endpoint", "s3", "start_moto"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(env: Optional[dict] = None) -> tuple[subprocess.Popen, str]:
    """A moto_server process on a free port and its endpoint URL (the caller stops it)."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not os.path.exists(binary):
        missing_tool("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start on port {port}")
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    proc, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class S3Bucket:
    endpoint: str
    bucket: str
    client: object  #: a boto3 client, for the tests' own look into the bucket

    def keys(self, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                out[item["Key"]] = item["Size"]
        return out

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def aws_env(endpoint: str, key: str = "testing", secret: str = "testing") -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3(moto_endpoint, monkeypatch) -> Iterator[S3Bucket]:
    """A fresh bucket on the session's moto server; the AWS variables point at it."""
    import boto3

    for name, value in aws_env(moto_endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"test-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=bucket)
    yield S3Bucket(moto_endpoint, bucket, client)
    keys = [{"Key": k} for k in S3Bucket(moto_endpoint, bucket, client).keys()]
    for i in range(0, len(keys), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": keys[i:i + 1000]})
    client.delete_bucket(Bucket=bucket)
