"""The cluster seam: state and messages shared by the processes of a deployment.

``Cluster`` is the interface, ``LocalCluster`` (one process) and ``RedisCluster`` (one
Redis, one connection pool per process) its implementations; ``NodeRegistry`` the live
view of nodes and the rooms they host. The assembly builds one cluster and hands it down.
"""

from .base import Cluster, MessageHandler, Subscription
from .local import LocalCluster
from .redis_cluster import RedisCluster
from .registry import NodeInfo, NodeRegistry

__all__ = ["Cluster", "LocalCluster", "MessageHandler", "NodeInfo", "NodeRegistry", "RedisCluster", "Subscription"]
