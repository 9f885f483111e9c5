"""dnsaudit's own Kubernetes test API server, realistic object generators and the demo fleet.

* ``FakeKube`` (server.py): HTTPS API server on loopback; clusters at the root or under ``/clusters/<name>``.
* ``objects``: builders for objects serialised as a real apiserver does.
* ``fleet``: ``ClusterSpec``, ``demo_fleet()``, ``scale_cluster()``, ``serve(specs)``.
* ``python -m dnsaudit.testbed.fakekube --fleet demo --kubeconfig-dir DIR``: serve the demo fleet.
* ``pytest_fixtures``: reusable pytest fixtures.

Nothing here is used by the product at run time except the demo (clearly marked, removable).
"""

from dnsaudit.testbed.fakekube.auth import ADMIN_RULES, AUDITOR_RULES, VIEW_RULES, Rule, User
from dnsaudit.testbed.fakekube.fleet import ClusterSpec, PoolSpec, UserSpec, demo_fleet, scale_cluster, serve
from dnsaudit.testbed.fakekube.server import Cluster, FakeKube, Faults, merge_kubeconfigs

__all__ = [
    "ADMIN_RULES",
    "AUDITOR_RULES",
    "VIEW_RULES",
    "Cluster",
    "ClusterSpec",
    "FakeKube",
    "Faults",
    "PoolSpec",
    "Rule",
    "User",
    "UserSpec",
    "demo_fleet",
    "merge_kubeconfigs",
    "scale_cluster",
    "serve",
]
