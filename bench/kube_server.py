"""Serve scale clusters from the project's test API server until terminated (a benchmark helper).

    python bench/kube_server.py --spec clusters.json --out DIR

``clusters.json`` is a list of ``dnsaudit.testbed.fakekube.fleet.scale_cluster`` keyword sets (``pods``,
``namespaces``, ``images``, ``nodes``, ``workloads``, ``name``). Writes ``DIR/<name>.yaml`` kubeconfigs
(the documented read-only ``dnsaudit`` user) and ``DIR/fleet.json``, then prints ``READY``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import signal
import sys
import threading
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from dnsaudit.testbed.fakekube.__main__ import write_kubeconfigs
    from dnsaudit.testbed.fakekube.fleet import scale_cluster, serve
    from dnsaudit.testbed.fakekube.server import FakeKube

    server = FakeKube().start()
    specs = []
    for kw in json.loads(args.spec.read_text()):
        spec = scale_cluster(**kw)
        serve([spec], server)
        spec.objects = []  # now serialised in the store; drop the dicts
        specs.append(spec)
    gc.collect()
    gc.freeze()  # a large static heap makes every later collection slow
    write_kubeconfigs(server, specs, args.out)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("READY", server.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
