"""Application keys of what the assembly owns (packaging jobs, the audience sampler, the
cluster and its node registry, the RTMP ingest), apart from ``app.py`` so the operator wiring can read them
without importing the assembly back."""

from __future__ import annotations

from aiohttp import web

from core.cluster import Cluster, NodeRegistry
from mediaserver.ingest.rtmp_server import RtmpIngest
from mediaserver.packaging.jobs import PackagingJobs
from paywall.audience import AudienceSampler
from paywall.notifications import Notifications

__all__ = ["AUDIENCE", "CLUSTER", "NODES", "NOTIFICATIONS", "PACKAGING", "RTMP"]

PACKAGING = web.AppKey("packaging", PackagingJobs)
AUDIENCE = web.AppKey("audience", AudienceSampler)
CLUSTER = web.AppKey("cluster", Cluster)
NODES = web.AppKey("nodes", NodeRegistry)
RTMP = web.AppKey("rtmp", RtmpIngest)
NOTIFICATIONS = web.AppKey("notifications", Notifications)
