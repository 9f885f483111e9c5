"""``manage.py demo [--serve] [--addr HOST:PORT] [--remove]``: the demo fleet behind ``make run``.

Starts, inside this process, the project's HTTPS Kubernetes test API server loaded with the demo
clusters (``dnsaudit.testbed.fakekube.fleet.demo_fleet``) and a scripted upstream DNS server on loopback that
answers like the demo's closed network (SERVFAIL under ``openstacklocal``), and a read-only registry of
synthetic stand-ins for the demo's images (``dnsaudit.testbed.demoregistry``), set as the registry mirror of
docker.io, gcr.io, registry.k8s.io, ghcr.io and cgr.dev for this process's scans (and the Celery worker it
starts) through ``DNSAUDIT_REGISTRY_MIRRORS``: the pods' ``imageID`` name the stand-ins' digests, so the
demo's verdicts are read from image contents (``confirmed``), and their evidence says they come from the
demo stand-ins. The stand-ins answer by digest only, so real clusters' images are never answered by them
(their mirrors, if the variable was already set, still follow). Registers each demo cluster
through the same kubeconfig import users go through (marked ``is_demo``; re-registered on every start
because the throwaway CA and ports change), with the settings an admin would enter: node resolv.conf
per pool and the probe nameserver. Queues a first scan of each. With ``--serve`` it then runs the
dashboard (and, when a broker is configured, a Celery worker) until interrupted; the demo servers live
as long as this process. ``--remove`` deletes the demo clusters and their scans.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from clusters import crypto
from clusters.models import Cluster
from clusters.scan import request_scan, start_in_process_scheduler

MIRRORS_ENV = "DNSAUDIT_REGISTRY_MIRRORS"  # read by dnsaudit.boundary.registry.RegistryClient

DEMO_DNS_SCRIPT = {
    "default": {"action": "NXDOMAIN"},
    "rules": [
        {"name": "example.com", "a": ["93.184.215.14"], "aaaa": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"]},
        {"name": "registry.corp.example", "a": ["10.20.0.5"]},
        {"name": "*.openstacklocal", "action": "SERVFAIL"},
    ],
}


class Command(BaseCommand):
    help = (
        "Register the demo fleet (served by an in-process test API server) and optionally run the dashboard."
    )

    def add_arguments(self, parser):
        parser.add_argument("--serve", action="store_true", help="run the dashboard after registering")
        parser.add_argument(
            "--addr", default="127.0.0.1:8000", help="where the dashboard listens (with --serve)"
        )
        parser.add_argument("--remove", action="store_true", help="delete the demo clusters and exit")
        parser.add_argument("--no-scan", action="store_true", help="do not queue a first scan")

    def handle(self, *args, **opts):
        if opts["remove"]:
            count, _ = Cluster.objects.filter(is_demo=True).delete()
            self.stdout.write(f"demo fleet removed ({count} rows deleted)")
            return
        from dnsaudit.testbed.demoregistry import DemoRegistry, demo_image_digest
        from dnsaudit.testbed.fakedns import ScriptedDNS, script_from_json
        from dnsaudit.testbed.fakekube import objects
        from dnsaudit.testbed.fakekube.fleet import demo_fleet, serve

        # The stand-ins' digests must be in place before the fleet's pods are built (their imageID).
        images = DemoRegistry(serve_tags=False).start()
        previous_provider = objects.set_image_digest_provider(demo_image_digest)
        previous_mirrors = os.environ.get(MIRRORS_ENV)
        os.environ[MIRRORS_ENV] = _with_demo_mirrors(images.mirrors_env(), previous_mirrors)
        specs = demo_fleet()
        kube = serve(specs)
        dns_server = ScriptedDNS(script_from_json(DEMO_DNS_SCRIPT), host="127.0.0.1", port=0).start()
        registered = [self._register(kube, spec, f"127.0.0.1:{dns_server.port}") for spec in specs]
        self.stdout.write(
            f"demo fleet: test API server at {kube.url}, upstream DNS at 127.0.0.1:{dns_server.port}, "
            f"registry mirror of {', '.join(sorted(images.mirrors()))} at {images.url} "
            "(synthetic stand-ins of the demo images); "
            f"registered {', '.join(c.name for c in registered if c)} (marked demo; `manage.py demo --remove` deletes them)"
        )
        if not opts["no_scan"]:
            for cluster in registered:
                if cluster is not None:
                    request_scan(cluster, trigger="demo")
        if not opts["serve"]:
            if not opts["no_scan"] and not settings.CELERY_BROKER_URL:
                self.stdout.write("note: without --serve the in-process scans stop when this command exits")
            return
        worker = self._start_worker()
        try:
            call_command("runserver", opts["addr"], use_reloader=False)
        finally:
            if worker is not None:
                worker.terminate()
            kube.stop()
            dns_server.stop()
            images.stop()
            objects.set_image_digest_provider(previous_provider)
            if previous_mirrors is None:
                os.environ.pop(MIRRORS_ENV, None)
            else:
                os.environ[MIRRORS_ENV] = previous_mirrors

    def _register(self, kube, spec, probe_server: str) -> Cluster | None:
        from clusters.registry import import_kubeconfig
        from dnsaudit.core.inventory import group_node_pools
        from dnsaudit.core.kubeconfig import minimal_kubeconfig, parse_kubeconfig, summarize

        text = kube.cluster(spec.name).kubeconfig(_demo_user(spec), context_name=spec.name)
        nodes = [o for o in spec.objects if o.get("kind") == "Node"]
        # The node files an admin would enter: those of spec.entered_pools (every pool when None). With
        # exec reads allowed, the scan observes the others where it can (and says which stay unknown).
        entered = set(spec.entered_pools) if spec.entered_pools is not None else {p.name for p in spec.pools}
        file_of_node = {n: p.node_resolv_conf for p in spec.pools if p.name in entered for n in p.nodes}
        pool_files = {}
        for name, group in group_node_pools(nodes).items():
            first = group.nodes[0]["metadata"]["name"]
            if first in file_of_node:
                pool_files[name] = file_of_node[first]
        first_pool = spec.pools[0]
        scan_settings = {
            "allow_exec": spec.allow_exec,
            "cluster_dns": list(first_pool.cluster_dns),
            "cluster_domain": first_pool.cluster_domain,
            "probe_nameservers": [probe_server],
            "probe_names": ["example.com"],
            "notes": f"DEMO — {spec.description}",
        }
        existing = Cluster.objects.filter(name=spec.name).first()
        if existing is not None and not existing.is_demo:
            self.stderr.write(f"skipping demo cluster {spec.name}: a real cluster with that name exists")
            return None
        with transaction.atomic():
            if existing is None:
                cluster = import_kubeconfig(text, context=spec.name, name=spec.name, is_demo=True).clusters[0]
            else:
                parsed = parse_kubeconfig(text)
                ctx = parsed.context(spec.name)
                existing.kubeconfig_encrypted = crypto.encrypt(minimal_kubeconfig(ctx))
                existing.summary = summarize(ctx, parsed.warnings_for(spec.name))
                existing.server = ctx.server
                existing.save()
                cluster = existing
            for key, value in scan_settings.items():
                setattr(cluster, key, value)
            cluster.pool_resolv_conf, cluster.node_resolv_conf, cluster.node_resolv_conf_entered = {}, "", {}
            for pool, text in sorted(pool_files.items()):
                cluster.enter_node_file(pool, text, by="demo")
            cluster.save()
        return cluster

    def _start_worker(self):
        if not settings.CELERY_BROKER_URL:
            self.stdout.write(
                "scans run in-process (no REDIS_URL): no Celery worker needed; a scheduler thread reaps "
                "dead scans and runs periodic scans"
            )
            start_in_process_scheduler()
            return None
        celery = shutil.which("celery") or str(settings.BASE_DIR / ".venv" / "bin" / "celery")
        self.stdout.write("starting a Celery worker for the demo")
        try:
            return subprocess.Popen(
                [celery, "-A", "dnsaudit", "worker", "--loglevel", "INFO", "--concurrency", "2"],
                stdout=sys.stdout,
                stderr=sys.stderr,
            )
        except OSError as exc:
            raise CommandError(f"could not start a Celery worker: {exc}") from exc


def _demo_user(spec) -> str:
    from dnsaudit.testbed.fakekube.fleet import DEMO_USER

    names = [u.name for u in spec.users]
    return DEMO_USER if DEMO_USER in names or not names else names[0]


def _with_demo_mirrors(demo: str, previous: str | None) -> str:
    """The demo's mirror entries first, then the ones already set, minus those of an earlier demo run in
    this process (its server may be gone; asking it would only cost retries)."""
    from dnsaudit.testbed.demoregistry import PREFIX

    kept = [e for e in (previous or "").split(",") if e.strip() and f"/{PREFIX}/" not in e]
    return ",".join([demo, *kept])
