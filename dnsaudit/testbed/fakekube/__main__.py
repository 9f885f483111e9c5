"""Serve the demo fleet (or a scale cluster) until killed.

    python -m dnsaudit.testbed.fakekube --fleet demo --port 0 --kubeconfig-dir DIR [--state-dir DIR]

One HTTPS server on ``--host`` (loopback) hosts every cluster under ``/clusters/<name>``. For each cluster
``DIR/<name>.yaml`` is written (one context, user ``dnsaudit`` with the documented read-only rights,
client-certificate auth, data fields only), plus ``DIR/fleet.yaml`` (all contexts) and
``DIR/fleet.json`` (per cluster: server URL, kubeconfig path, context, description, node pools with
their node resolv.conf content, upstream behaviour — what ``make run`` needs to register the fleet
with its settings). With ``--state-dir`` the throwaway CA is kept there, so kubeconfigs written by an
earlier run stay valid when the server restarts on the same ``--port``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

import trustme

from dnsaudit.testbed.fakekube.fleet import DEMO_USER, ClusterSpec, demo_fleet, scale_cluster, serve
from dnsaudit.testbed.fakekube.server import FakeKube, merge_kubeconfigs


def _load_ca(state_dir: Path | None) -> trustme.CA:
    if state_dir is None:
        return trustme.CA(organization_name="dnsaudit fakekube")
    state_dir.mkdir(parents=True, exist_ok=True)
    cert, key = state_dir / "ca.pem", state_dir / "ca-key.pem"
    if cert.exists() and key.exists():
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
    ca = trustme.CA(organization_name="dnsaudit fakekube")
    cert.write_bytes(ca.cert_pem.bytes())
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(ca.private_key_pem.bytes())
    return ca


def write_kubeconfigs(
    server: FakeKube, specs: list[ClusterSpec], out_dir: Path, user: str = DEMO_USER
) -> dict:
    """Write one kubeconfig per cluster, the merged one and ``fleet.json``; return the fleet.json data."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts, clusters = [], []
    for spec in specs:
        cluster = server.cluster(spec.name)
        text = cluster.kubeconfig(user, context_name=spec.name)
        path = out_dir / f"{spec.name}.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        texts.append(text)
        clusters.append(
            {
                "name": spec.name,
                "demo": spec.demo,
                "description": spec.description,
                "distribution": spec.distribution,
                "server": cluster.url,
                "context": spec.name,
                "kubeconfig": str(path),
                "kyverno": spec.kyverno,
                "upstream": spec.upstream,
                "pools": [
                    {
                        "name": p.name,
                        "nodes": p.nodes,
                        "node_resolv_conf": p.node_resolv_conf,
                        "resolv_conf_path": p.resolv_conf_path,
                        "cluster_dns": list(p.cluster_dns),
                        "cluster_domain": p.cluster_domain,
                        "kubelet_version": p.info.kubelet_version,
                        "architecture": p.info.architecture,
                        "configz_status": p.configz_status,
                    }
                    for p in spec.pools
                ],
            }
        )
    merged = out_dir / "fleet.yaml"
    merged.write_text(merge_kubeconfigs(texts))
    merged.chmod(0o600)
    data = {"url": server.url, "kubeconfig": str(merged), "clusters": clusters}
    (out_dir / "fleet.json").write_text(json.dumps(data, indent=2))
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dnsaudit.testbed.fakekube", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--fleet", choices=["demo", "scale"], default="demo")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--kubeconfig-dir", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, default=None, help="keep the CA here across restarts")
    ap.add_argument("--user", default=DEMO_USER, help="user the written kubeconfigs authenticate as")
    ap.add_argument("--scale-pods", type=int, default=50_000)
    ap.add_argument("--scale-clusters", type=int, default=1)
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the test API server only listens on loopback")

    import gc

    gc.disable()  # building 50,000 pods makes millions of objects that all survive: skip the useless scans
    if args.fleet == "demo":
        specs = demo_fleet()
    else:
        specs = [scale_cluster(args.scale_pods, name=f"scale-{i}") for i in range(args.scale_clusters)]
    server = FakeKube(host=args.host, port=args.port, ca=_load_ca(args.state_dir)).start()
    serve(specs, server)
    for spec in specs:  # the objects now live serialised in the store
        spec.objects = []
    gc.collect()
    gc.freeze()  # a large static heap makes every later collection slow
    gc.enable()
    data = write_kubeconfigs(server, specs, args.kubeconfig_dir, args.user)
    for c in data["clusters"]:
        print(f"fakekube: cluster {c['name']} at {c['server']} kubeconfig {c['kubeconfig']}", flush=True)
    print(f"fakekube: fleet kubeconfig {data['kubeconfig']}", flush=True)
    print(f"fakekube: fleet description {args.kubeconfig_dir / 'fleet.json'}", flush=True)
    print(
        f"fakekube: serving {len(specs)} cluster(s) at {server.url} (demo data; stop with Ctrl-C)", flush=True
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
