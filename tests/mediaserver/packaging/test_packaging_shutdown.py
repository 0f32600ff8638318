"""Stopping the server while replays are being packaged leaves no error lines behind."""

from __future__ import annotations

import asyncio
import gc
import logging

from mediaserver.packaging.jobs import PackagingJobs
from mediaserver.recording.manifest import read_manifest
from tests.support.recordings import OPTIONS, copy_recording
import pytest

pytestmark = pytest.mark.inprocess


async def test_close_mid_job_logs_no_errors_or_unretrieved_futures(tmp_path, caplog, recordings):
    recs = [copy_recording(recordings["vp8"], tmp_path, broadcast=f"b{i}") for i in range(2)]  # a transcode
    caplog.set_level(logging.DEBUG)
    jobs = PackagingJobs(tmp_path, OPTIONS)
    await jobs.start()
    for rec in recs:
        assert jobs.enqueue(rec)
    while jobs.current is None:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.2)  # the first job is running in its thread
    await jobs.close()
    for _ in range(3):  # unretrieved future exceptions are reported when collected
        gc.collect()
        await asyncio.sleep(0.05)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]
    assert not [r for r in caplog.records if r.exc_info], "tracebacks logged"
    assert read_manifest(recs[0])["status"] in ("processing", "ready")
    assert not list(recs[0].glob(".vod-tmp-*"))
