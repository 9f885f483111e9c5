"""Scans: request one, run one, reap dead ones.

The scan row is the record of a job; Celery (or, without a broker, a thread of the web process) only
delivers its primary key. ``execute_scan`` claims the row with a conditional UPDATE, reads the cluster
through the Kubernetes boundary, inspects images, probes DNS, runs the audit core and writes the whole
report in one transaction. A failed scan never replaces the last good report, because pages show the
newest scan that *finished* (succeeded or partial).
"""

from __future__ import annotations

import gc
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from dnsaudit.core.model import KubeletDNS, LibcVerdict, NodePool, ProbeResult

from .models import Cluster, ImageVerdict, NodePoolResult, Scan, WorkloadResult

log = logging.getLogger(__name__)
T = TypeVar("T")

WORKLOAD_RESOURCES = ("deployments", "statefulsets", "daemonsets", "replicasets", "cronjobs", "jobs", "pods")


class ScanAborted(Exception):
    """The scan cannot go on (unreachable, unauthorized...): mark it failed with this message."""


class ScanTimeLimit(Exception):
    """The scan ran past ``DNSAUDIT_SCAN_SOFT_TIME_LIMIT``: stop at the next checkpoint, cleanly.

    Checked by the scan itself (between API pages, stages and image inspections), so the limit holds
    in every mode — a Celery worker and the in-process thread alike — and does not depend on a
    signal reaching the pool process (Celery's own limits stay configured as a backstop).
    """


# --- requesting -------------------------------------------------------------------------------------


def request_scan(
    cluster: Cluster, *, trigger: str = "manual", user=None, dispatch_now: bool = True
) -> tuple[Scan, bool]:
    """Create a queued scan and dispatch it, or return the active one. Returns ``(scan, created)``.

    ``dispatch_now=False`` leaves the queued scan for the caller to run (``manage.py scan`` without a
    broker runs it in the foreground instead of a thread that would die with the command).
    """
    # A scan whose worker died (or, without a broker, whose process exited) must not block new scans.
    reap_dead_scans()
    active = cluster.active_scan()
    if active:
        return active, False
    try:
        with transaction.atomic():
            scan = Scan.objects.create(
                cluster=cluster,
                trigger=trigger,
                requested_by=user if getattr(user, "pk", None) else None,
                stage="queued",
            )
    except IntegrityError:
        # Another request won the race; the partial unique constraint kept us to one active scan.
        active = cluster.active_scan()
        if active:
            return active, False
        raise
    if dispatch_now:
        transaction.on_commit(lambda: dispatch(scan.pk))
    return scan, True


def dispatch(scan_id: int) -> None:
    """Hand the scan to Celery when a broker is configured, else to a thread of this process."""
    if settings.CELERY_BROKER_URL:
        from .tasks import run_scan

        try:
            run_scan.delay(scan_id)
        except Exception as exc:  # kombu raises OperationalError and friends when the broker is down
            log.exception("could not queue scan %s", scan_id)
            Scan.objects.filter(pk=scan_id, status=Scan.QUEUED).update(
                status=Scan.FAILED,
                finished_at=timezone.now(),
                stage="failed",
                error=f"could not queue the scan: the broker is unreachable ({type(exc).__name__}: {exc}). "
                "The previous report is kept; try again when the broker is back.",
            )
    else:
        thread = threading.Thread(target=_run_in_thread, args=(scan_id,), name=f"scan-{scan_id}", daemon=True)
        thread.start()


def _run_in_thread(scan_id: int) -> None:
    try:
        execute_scan(scan_id, worker=f"in-process:{socket.gethostname()}")
    except Exception:
        log.exception("in-process scan %s crashed", scan_id)
    finally:
        # This thread's connections die with it: close them (close_old_connections() would keep them
        # open for CONN_MAX_AGE, leaking one PostgreSQL session per scan).
        connections.close_all()


# --- running ----------------------------------------------------------------------------------------


def claim(scan_id: int, worker: str) -> bool:
    """Take the scan: queued -> running, or a running scan whose worker went silent (redelivery)."""
    now = timezone.now()
    took = Scan.objects.filter(pk=scan_id, status=Scan.QUEUED).update(
        status=Scan.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker,
        stage="connecting",
        attempts=F("attempts") + 1,
    )
    if took:
        return True
    stale = now - timedelta(seconds=settings.DNSAUDIT_SCAN_STALE_AFTER)
    took = Scan.objects.filter(pk=scan_id, status=Scan.RUNNING, heartbeat_at__lt=stale).update(
        heartbeat_at=now,
        worker=worker,
        stage="connecting",
        attempts=F("attempts") + 1,
        progress_done=0,
    )
    return bool(took)


@dataclass
class Progress:
    """Writes stage and counters to the scan row, at most a few times a second."""

    scan_id: int
    worker: str | None = None
    deadline: float | None = None  # time.monotonic() past which the scan stops (soft time limit)
    last: float = 0.0
    done: int = 0
    total: int = 0
    stage: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(
        self,
        stage: str | None = None,
        *,
        done: int | None = None,
        total: int | None = None,
        force: bool = False,
    ) -> None:
        if stage != "saving":
            self.check()
        with self.lock:
            if stage is not None:
                self.stage = stage
                force = True
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            now = time.monotonic()
            if not force and now - self.last < 0.3:
                return
            self.last = now
            values = {
                "stage": self.stage,
                "progress_done": self.done,
                "progress_total": self.total,
                "heartbeat_at": timezone.now(),
            }
        mine = Scan.objects.filter(pk=self.scan_id, status=Scan.RUNNING)
        if self.worker is not None:
            mine = mine.filter(worker=self.worker)
        mine.update(**values)

    def check(self) -> None:
        """Raise ScanTimeLimit once the deadline has passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ScanTimeLimit(
                f"the scan ran past its time limit ({settings.DNSAUDIT_SCAN_SOFT_TIME_LIMIT}s, "
                "DNSAUDIT_SCAN_SOFT_TIME_LIMIT) and was stopped; the previous report is kept"
            )

    def step(self, n: int = 1) -> None:
        with self.lock:
            self.done += n
        self.set()


def execute_scan(scan_id: int, *, worker: str = "", client_factory: Callable | None = None) -> Scan | None:
    """Run scan ``scan_id`` to the end. Returns the scan, or None when it was not ours to run."""
    # Unique per run: every later write is conditional on still being this run's scan, so a worker that
    # lost its claim (declared dead, re-claimed elsewhere) can never overwrite or double the result.
    worker = f"{worker or socket.gethostname()}#{secrets.token_hex(3)}"
    if not claim(scan_id, worker):
        log.info("scan %s not claimed (gone, finished or running elsewhere)", scan_id)
        return None
    scan = Scan.objects.select_related("cluster").get(pk=scan_id)
    progress = Progress(
        scan_id, worker=worker, deadline=time.monotonic() + settings.DNSAUDIT_SCAN_SOFT_TIME_LIMIT
    )
    from celery.exceptions import SoftTimeLimitExceeded

    try:
        result = collect_and_audit(scan.cluster, progress, client_factory=client_factory)
        progress.set("saving")
        return _save(scan_id, result, worker)
    except ScanAborted as exc:
        return _finish_failed(scan_id, str(exc), worker)
    except ScanTimeLimit as exc:
        return _finish_failed(scan_id, str(exc), worker)
    except SoftTimeLimitExceeded:
        # End the scan cleanly with what it means (the save transaction, if it was open, rolled back).
        return _finish_failed(
            scan_id, "the scan hit its time limit and was stopped; the previous report is kept", worker
        )
    except Exception as exc:
        log.exception("scan %s failed", scan_id)
        return _finish_failed(scan_id, f"internal error: {type(exc).__name__}: {exc}", worker)


def _finish_failed(scan_id: int, message: str, worker: str | None = None) -> Scan:
    mine = Scan.objects.filter(pk=scan_id, status=Scan.RUNNING)
    if worker is not None:
        mine = mine.filter(worker=worker)
    mine.update(status=Scan.FAILED, error=message, finished_at=timezone.now(), stage="failed")
    scan = Scan.objects.select_related("cluster").get(pk=scan_id)
    # Failed scans count towards the kept history too (the last good report is always kept).
    prune_scans(scan.cluster)
    return scan


@dataclass
class ScanResult:
    pools: list[NodePool]
    audits: list  # list[WorkloadAudit]
    problems: list[dict]
    facts: dict
    pods_seen: int
    images_inspected: int
    probes: list[ProbeResult]


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while API objects stream in.

    Parsed JSON has no reference cycles, but every few thousand new dicts the collector walks the whole
    heap (the Kubernetes client alone is hundreds of thousands of objects): at 50,000 pods that was more
    than half of a scan's time (bench/). Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _problem(fact: str, error: str, impact: str) -> dict:
    return {"fact": fact, "error": error, "impact": impact}


#: Attempts per Kubernetes API call (lists are restarted from the first page on a retry).
KUBE_ATTEMPTS = 3


def _retry(fn: Callable[[], T], attempts: int = KUBE_ATTEMPTS) -> T:
    """Call ``fn``; on a transient ``KubeError`` (network, timeout, 5xx, 429) try again, up to ``attempts``
    times in all, with exponential backoff (``DNSAUDIT_KUBE_RETRY_BACKOFF`` seconds, doubled each time).

    Permanent errors (401, 403, 404, TLS) and the last transient error are raised to the caller. A list
    is retried whole, so a failure mid-pagination never yields half a list.
    """
    from dnsaudit.boundary.kube import KubeError

    backoff = float(getattr(settings, "DNSAUDIT_KUBE_RETRY_BACKOFF", 0.5))
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except KubeError as exc:
            if not exc.transient or attempt >= attempts:
                raise
            log.info("transient API error (attempt %d/%d), retrying: %s", attempt, attempts, exc)
            time.sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def collect_and_audit(
    cluster: Cluster, progress: Progress, *, client_factory: Callable | None = None
) -> ScanResult:
    """Read the cluster, inspect images, probe DNS and audit. Raises ScanAborted when nothing useful can be read."""
    from dnsaudit.boundary.kube import KubeClient, KubeError
    from dnsaudit.core import inventory
    from dnsaudit.core.audit import AuditContext, audit_workloads, cluster_remediation

    from .registry import load_context

    problems: list[dict] = []
    facts: dict = {}
    progress.set("connecting")
    try:
        ctx = load_context(cluster)
    except ValueError as exc:  # DecryptionError, KubeconfigError, RegistryError: user-facing, secret-free
        raise ScanAborted(f"the stored kubeconfig of {cluster.name} cannot be used: {exc}") from exc
    client = (client_factory or KubeClient.from_context)(ctx)
    try:
        try:
            facts["server_version"] = _retry(client.server_version).get("gitVersion", "")
        except KubeError as exc:
            raise ScanAborted(_unreachable_message(cluster, exc)) from exc

        # Nodes and pools.
        progress.set("nodes")
        try:
            nodes = _retry(lambda: list(client.iter_list("nodes")))
        except KubeError as exc:
            if exc.reason in ("Forbidden",):
                nodes = []
                problems.append(
                    _problem(
                        "nodes",
                        str(exc),
                        "node pools, kubelet versions and architectures are unknown: every workload is audited "
                        "against the cluster's settings (assumed kubelet facts, linux/amd64 images)",
                    )
                )
            else:
                raise ScanAborted(_unreachable_message(cluster, exc)) from exc
        grouped = inventory.group_node_pools(nodes)
        pools = _pools_with_kubelet_facts(cluster, client, grouped, problems, progress)
        node_pool = inventory.node_pool_index(grouped)
        node_platform = {
            n["metadata"]["name"]: f"{p.os or 'linux'}/{p.architecture or 'amd64'}"
            for p in grouped.values()
            for n in p.nodes
        }
        default_pool = max(pools, key=lambda p: len(p.nodes)).name

        # Workloads.
        progress.set("workloads", done=0, total=len(WORKLOAD_RESOURCES))
        objects: dict[str, list[dict]] = {}
        with gc_paused():
            for resource in WORKLOAD_RESOURCES:
                keep = inventory.slim_pod if resource == "pods" else None
                objects[resource] = _list_everywhere(client, resource, problems, keep, progress.check)
                progress.step()
            inv = inventory.build_inventory(objects, node_pool, node_platform, default_pool=default_pool)
        del objects
        facts["namespaces"] = sorted({w.namespace for w in inv.workloads})

        # CoreDNS and Kyverno.
        progress.set("cluster add-ons")
        facts["coredns"] = _coredns_facts(client, problems)
        try:
            facts["kyverno_installed"] = _retry(lambda: client.api_group_served("kyverno.io"))
        except KubeError as exc:
            facts["kyverno_installed"] = False
            problems.append(_problem("kyverno", str(exc), "Kyverno is assumed absent"))

        # Images.
        verdicts = _inspect_images(client, inv, problems, progress)

        # DNS probes.
        probes = _probe_dns(cluster, pools, progress, problems)

        progress.set("audit", done=0, total=len(inv.workloads))
        assumed = [p["fact"] for p in problems]
        actx = AuditContext(
            pools={p.name: p for p in pools},
            default_pool=default_pool,
            libc=verdicts,
            probes=probes,
            probe_names=list(cluster.probe_names or ["example.com"]),
            coredns=facts["coredns"],
            kyverno_installed=facts["kyverno_installed"],
            assumed=assumed,
        )
        audits = audit_workloads(inv.workloads, actx)
        progress.set(done=len(audits), force=True)
        if cluster.exec_verification:
            _verify_in_pods(client, inv, audits, problems, facts, progress)
        try:
            facts["cluster_remediation"] = cluster_remediation(audits, actx)
        except Exception as exc:  # the report is still useful without the cluster-level artifacts
            log.exception("cluster remediation failed")
            problems.append(
                _problem("cluster remediation", f"{type(exc).__name__}: {exc}", "no cluster-level patches")
            )
        return ScanResult(
            pools=pools,
            audits=audits,
            problems=problems,
            facts=facts,
            pods_seen=inv.pods_seen,
            images_inspected=len(verdicts),
            probes=probes,
        )
    finally:
        close = getattr(client, "close", None)
        if close:
            close()


def _unreachable_message(cluster: Cluster, exc: Exception) -> str:
    reason = getattr(exc, "reason", "") or type(exc).__name__
    if reason == "Unauthorized":
        what = "the API server rejected the stored credentials (401)"
    elif reason == "Forbidden":
        what = "the stored credentials may not read the API (403)"
    else:
        what = "the API server could not be reached"
    return (
        f"{what} at {cluster.server}: {exc}. No verdicts were computed; the previous report (if any) stays "
        "in place."
    )


def _list_everywhere(
    client,
    resource: str,
    problems: list[dict],
    keep: Callable[[dict], dict] | None = None,
    check: Callable[[], None] | None = None,
) -> list[dict]:
    """List a resource in all namespaces; when that is forbidden, namespace by namespace.

    ``keep`` trims each item as it streams in (pods: only what the audit reads), so a big cluster's
    full objects are never all in memory at once.
    """
    from dnsaudit.boundary.kube import KubeError

    def listed(**kw) -> list[dict]:
        out = []
        for i, item in enumerate(client.iter_list(resource, **kw)):
            if check is not None and i % 500 == 0:
                check()  # the soft time limit, between pages of a long list
            out.append(keep(item) if keep else item)
        return out

    try:
        return _retry(lambda: listed())
    except KubeError as exc:
        if exc.reason != "Forbidden":
            raise ScanAborted(_list_failed(resource, None, exc)) from exc
    try:
        namespaces = _retry(lambda: [n["metadata"]["name"] for n in client.iter_list("namespaces")])
    except KubeError as exc:
        problems.append(
            _problem(
                resource,
                f"cannot list {resource} cluster-wide nor namespaces: {exc}",
                f"no {resource} were audited: workloads of this kind are missing from the report",
            )
        )
        return []
    items: list[dict] = []
    forbidden: list[str] = []
    for ns in namespaces:
        try:
            items.extend(_retry(lambda ns=ns: listed(namespace=ns)))
        except KubeError as exc:
            if exc.reason == "Forbidden":
                forbidden.append(ns)
            else:
                raise ScanAborted(_list_failed(resource, ns, exc)) from exc
    if forbidden:
        problems.append(
            _problem(
                f"{resource} in namespaces {', '.join(forbidden)}",
                f"forbidden (403) for {resource} in {len(forbidden)} namespace(s)",
                f"workloads in {', '.join(forbidden)} are missing from the report; their verdicts are unknown",
            )
        )
    return items


def _list_failed(resource: str, namespace: str | None, exc: Exception) -> str:
    where = f" in namespace {namespace}" if namespace else ""
    tries = f" after {KUBE_ATTEMPTS} attempts" if getattr(exc, "transient", False) else ""
    return (
        f"listing {resource}{where} failed{tries}: {exc} No verdicts were computed; the previous report (if any) "
        "stays in place."
    )


def _pools_with_kubelet_facts(cluster, client, grouped, problems, progress) -> list[NodePool]:
    """Kubelet DNS facts per pool: configz when readable, else the cluster's settings (assumed)."""
    from dnsaudit.boundary.kube import KubeError

    assumed_dns = tuple(cluster.cluster_dns or ["10.96.0.10"])
    pools: list[NodePool] = []
    progress.set("kubelet config", done=0, total=len(grouped))
    for name, group in grouped.items():
        node_names = [n["metadata"]["name"] for n in group.nodes]
        file_text = (cluster.pool_resolv_conf or {}).get(name) or cluster.node_resolv_conf or None
        observed = {"kubelet_config": False, "node_resolv_conf": False}
        notes: list[str] = []
        kubelet = KubeletDNS(
            cluster_dns=assumed_dns,
            cluster_domain=cluster.cluster_domain,
            version=group.kubelet_version or None,
        )
        try:
            raw = client.kubelet_configz(node_names[0])
            conf = raw.get("kubeletconfig", raw)
            kubelet = KubeletDNS(
                cluster_dns=tuple(conf.get("clusterDNS") or ()),
                cluster_domain=conf.get("clusterDomain", "") or "",
                resolv_conf=conf.get("resolvConf", "/etc/resolv.conf")
                if "resolvConf" in conf
                else "/etc/resolv.conf",
                version=group.kubelet_version or None,
            )
            observed["kubelet_config"] = True
        except KubeError as exc:
            what = "forbidden (needs get on nodes/proxy)" if exc.reason == "Forbidden" else str(exc)
            notes.append(f"kubelet configz unreadable on {node_names[0]}: {what}")
            problems.append(
                _problem(
                    f"kubelet config of pool {name}",
                    what,
                    f"assumed clusterDNS {', '.join(assumed_dns)}, clusterDomain {cluster.cluster_domain} and "
                    "resolvConf /etc/resolv.conf from the cluster's settings",
                )
            )
        if file_text is None:
            notes.append(
                "node resolv.conf content unknown: enter it in the cluster's settings to audit node search domains"
            )
        pools.append(
            NodePool(
                name=name,
                kubelet=kubelet,
                node_resolv_conf=file_text,
                nodes=node_names,
                architecture=group.architecture or "amd64",
                os=group.os or "linux",
                observed=observed,
                notes=notes,
            )
        )
        progress.step()
    if not pools:
        file_text = cluster.node_resolv_conf or None
        pools.append(
            NodePool(
                name="default",
                kubelet=KubeletDNS(cluster_dns=assumed_dns, cluster_domain=cluster.cluster_domain),
                node_resolv_conf=file_text,
                observed={"kubelet_config": False, "node_resolv_conf": False},
                notes=["no nodes could be read: all facts assumed from the cluster's settings"],
            )
        )
    return pools


def _coredns_facts(client, problems) -> dict:
    from dnsaudit.boundary.kube import KubeError

    facts: dict = {"variant": "unknown", "template_zones": [], "corefile": ""}
    try:
        cm = _retry(lambda: client.get_configmap("kube-system", "coredns"))
        custom = _retry(lambda: client.get_configmap("kube-system", "coredns-custom"))
        nodelocal = _retry(lambda: client.get_configmap("kube-system", "node-local-dns"))
    except KubeError as exc:
        problems.append(
            _problem(
                "CoreDNS configuration",
                str(exc),
                "cannot tell whether a CoreDNS template fix exists; the CoreDNS remediation is shown without that check",
            )
        )
        return facts
    corefile = ((cm or {}).get("data") or {}).get("Corefile", "")
    facts["corefile"] = corefile
    facts["variant"] = (
        "k3s" if ("NodeHosts" in corefile or custom is not None) else ("kubeadm" if corefile else "unknown")
    )
    facts["node_local_dns"] = nodelocal is not None
    texts = [corefile, *(((custom or {}).get("data") or {}).values())]
    zones = []
    for text in texts:
        for line in (text or "").splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "template":
                zones.extend(p.rstrip(".{") for p in parts[3:] if p != "{")
    facts["template_zones"] = sorted(set(zones))
    return facts


def _service_account_pull_secrets(client, inv, problems) -> list[tuple[str, str]]:
    """``(namespace, secret)`` for the imagePullSecrets of the service accounts the workloads run as."""
    from dnsaudit.boundary.kube import KubeError

    if not inv.service_accounts:
        return []
    try:
        accounts = _retry(lambda: list(client.iter_list("serviceaccounts")))
    except KubeError as exc:
        problems.append(
            _problem(
                "service accounts",
                str(exc),
                "pull secrets attached to service accounts were not used: private images whose pods name no "
                "imagePullSecrets of their own were inspected anonymously",
            )
        )
        return []
    out = []
    for sa in accounts:
        meta = sa.get("metadata") or {}
        if meta.get("name") in inv.service_accounts.get(meta.get("namespace"), ()):
            out.extend(
                (meta["namespace"], s["name"]) for s in sa.get("imagePullSecrets") or () if s.get("name")
            )
    return out


def _inspect_images(client, inv, problems, progress) -> dict[str, LibcVerdict]:
    """One verdict per distinct image (by digest when known), cached in the database across clusters."""
    from dnsaudit.boundary.kube import KubeError
    from dnsaudit.boundary.registry import RegistryClient, credentials_from_dockerconfigjson, resolve_image_id

    credentials: dict = {}
    denied = False
    secret_names = {ns: set(names) for ns, names in inv.pull_secrets.items()}
    for ns, name in _service_account_pull_secrets(client, inv, problems):
        secret_names.setdefault(ns, set()).add(name)
    for ns, names in sorted(secret_names.items()):
        for secret_name in names:
            try:
                secret = client.read_secret(ns, secret_name)
            except KubeError:
                denied = True
                continue
            data = (secret or {}).get("data") or {}
            if ".dockerconfigjson" in data:
                try:
                    credentials.update(credentials_from_dockerconfigjson(data[".dockerconfigjson"]))
                except ValueError:
                    continue
    if denied:
        problems.append(
            _problem(
                "image pull secrets",
                "some pull secrets could not be read",
                "private images were inspected anonymously; where that failed the verdict is inferred from the image name",
            )
        )
    registry = RegistryClient(
        credentials=credentials, timeout=float(getattr(settings, "DNSAUDIT_REGISTRY_TIMEOUT", 15.0))
    )
    # key -> (pullable ref: the digest from imageID when known, platform, the tag reference). The tag
    # reference is what a fallback inference needs: "docker.io/library/python@sha256:…" says nothing
    # about Alpine, "python:3.12-alpine" does.
    work: dict[str, tuple[str, str, str]] = {}
    keys_for: dict[tuple[str, str | None, str], str] = {}
    for image, image_id, platform in sorted(inv.images, key=lambda t: (t[0], t[1] or "", t[2])):
        ref = resolve_image_id(image_id) if image_id else None
        ref = ref or image
        key = f"{ref}@{platform}"
        keys_for[(image, image_id, platform)] = key
        work.setdefault(key, (ref, platform, image or ref))
    progress.set("images", done=0, total=len(work))
    cached = {
        iv.key: iv.verdict for iv in ImageVerdict.objects.filter(key__in=list(work), confidence="confirmed")
    }
    results: dict[str, dict] = dict(cached)
    progress.set(done=len(cached), force=True)

    def inspect(item: tuple[str, tuple[str, str, str]]) -> tuple[str, dict]:
        from dnsaudit.boundary.registry import RegistryError
        from dnsaudit.core.libc import infer_from_reference

        key, (ref, platform, tag_ref) = item
        try:
            verdict = registry.inspect(ref, platform)
        except (RegistryError, ValueError) as exc:
            # The registry could not be read (unreachable, 401/404/5xx, slow blobs): infer from the tag
            # reference and keep the error as evidence. The scan goes on; the verdict says "inferred".
            verdict = infer_from_reference(tag_ref)
            verdict.platform = platform
            verdict.evidence.append(f"registry not read for {ref}: {exc}")
        return key, verdict.to_dict()

    todo = [(k, v) for k, v in work.items() if k not in cached]
    if todo:
        with ThreadPoolExecutor(max_workers=settings.DNSAUDIT_IMAGE_CONCURRENCY) as pool:
            for key, verdict in pool.map(inspect, todo):
                results[key] = verdict
                progress.step()
        # Only digest-pinned verdicts are cached: a tag (alpine:3) moves, a digest never does.
        fresh = [
            ImageVerdict(key=k, verdict=results[k], confidence=results[k].get("confidence", "inferred"))
            for k, (ref, _platform, _tag) in todo
            if results[k].get("confidence") == "confirmed" and "@sha256:" in ref
        ]
        # (No close_old_connections() here: this is the scan's own thread and connection; closing it
        # mid-scan breaks any enclosing transaction, and the pool threads never touched the database.)
        ImageVerdict.objects.bulk_create(fresh, ignore_conflicts=True)
    verdicts: dict[str, LibcVerdict] = {}
    for (image, image_id, _platform), key in keys_for.items():
        v = LibcVerdict(**results[key])
        verdicts.setdefault(image, v)
        if image_id:
            verdicts[image_id] = v
    return verdicts


def _probe_dns(cluster, pools, progress, problems) -> list[ProbeResult]:
    """Ask A and AAAA for <probe>.<domain> per non-cluster search domain of each pool's node file.

    Each server is first asked for the first probe name itself (a control question it must answer). A
    server that does not answer that is unreachable from the worker: its silence says nothing about the
    search domains, so none of its answers are used (the scan is partial and those workloads stay
    at-risk instead of affected). Once the control is answered, a timeout under a domain is an
    observation like any rcode (musl fails on it).
    """
    from dnsaudit.boundary.dns import DNSProbeError, probe_domain, query
    from dnsaudit.core.kubelet import parse_node_resolv_conf

    servers = list(cluster.probe_nameservers or [])
    if not servers:
        return []
    domains: set[str] = set()
    for pool in pools:
        if not pool.node_resolv_conf:
            continue
        try:
            conf = parse_node_resolv_conf(pool.node_resolv_conf, pool.kubelet.version)
        except ValueError:
            continue
        cd = pool.kubelet.cluster_domain
        for d in conf.searches:
            if d and d != "." and not (cd and (d == cd or d.endswith("." + cd))):
                domains.add(d)
    if not domains:
        return []
    timeout = float(getattr(settings, "DNSAUDIT_PROBE_TIMEOUT", 2.0))
    names = [*(cluster.probe_names or ["example.com"]), f"dnsaudit-{secrets.token_hex(4)}.com"]
    work = [(s, d, n) for s in servers for d in sorted(domains) for n in names]
    progress.set("dns probes", done=0, total=len(work))
    results: list[ProbeResult] = []
    failures: list[str] = []
    unreachable: set[str] = set()
    for server in servers:
        try:
            control = query(server, names[0], "A", timeout=timeout)
        except DNSProbeError as exc:
            failures.append(f"{server}: {exc}")
            unreachable.add(server)
            continue
        if control.rcode is None:
            failures.append(
                f"{server}: no answer within {timeout:g}s even for {names[0]} (probe server unreachable)"
            )
            unreachable.add(server)
    for server, domain, name in work:
        if server not in unreachable:
            try:
                results.append(probe_domain(server, domain, name, timeout=timeout))
            except DNSProbeError as exc:
                failures.append(f"{server}: {exc}")
        progress.step()
    if failures:
        problems.append(
            _problem(
                "DNS probes",
                "; ".join(sorted(set(failures)))[:500],
                "some search domains have no observed answer: their workloads are at-risk rather than confirmed affected",
            )
        )
    return results


# --- saving -----------------------------------------------------------------------------------------


def _summary_libc(report: dict) -> tuple[str, str]:
    libcs = {c.get("libc") or "unknown" for c in report.get("containers", [])}
    versions = sorted({c.get("musl_version") for c in report.get("containers", []) if c.get("musl_version")})
    if not libcs:
        return "unknown", ""
    libc = libcs.pop() if len(libcs) == 1 else ("musl" if "musl" in libcs else "mixed")
    return libc, versions[0] if versions else ""


def _save(scan_id: int, result: ScanResult, worker: str | None = None) -> Scan:
    """Write the whole report in one transaction, then prune old scans."""
    counts = {"affected": 0, "at-risk": 0, "safe": 0, "unknown": 0}
    rows: list[WorkloadResult] = []
    for audit in result.audits:
        rep = audit.report
        counts[rep["risk"]] = counts.get(rep["risk"], 0) + 1
        libc, musl_version = _summary_libc(rep)
        rows.append(
            WorkloadResult(
                scan_id=scan_id,
                namespace=rep["namespace"],
                kind=rep["kind"],
                name=rep["name"],
                node_pool=rep.get("node_pool") or "",
                risk=rep["risk"],
                libc=libc,
                musl_version=musl_version,
                recommended=rep.get("remediation", {}).get("recommended", ""),
                dns_policy=rep.get("dns_policy", ""),
                host_network=bool(rep.get("host_network")),
                report=rep,
                detail=audit.detail,
                search_text=" ".join(
                    [
                        rep["namespace"],
                        rep["kind"],
                        rep["name"],
                        *[c.get("image", "") for c in rep.get("containers", [])],
                    ]
                )[:1024].lower(),
            )
        )
    pool_rows = [_pool_row(scan_id, pool, result.probes) for pool in result.pools]
    status = Scan.PARTIAL if result.problems else Scan.SUCCEEDED
    with transaction.atomic():
        # The first statement locks the scan row (UPDATE) and checks it is still ours: a reaper that
        # declared us dead, or a second worker that re-claimed the scan, wins and we write nothing.
        mine = Scan.objects.filter(pk=scan_id, status=Scan.RUNNING)
        if worker is not None:
            mine = mine.filter(worker=worker)
        if not mine.update(stage="saving", heartbeat_at=timezone.now()):
            return Scan.objects.get(pk=scan_id)
        NodePoolResult.objects.filter(scan_id=scan_id).delete()
        WorkloadResult.objects.filter(scan_id=scan_id).delete()
        NodePoolResult.objects.bulk_create(pool_rows)
        WorkloadResult.objects.bulk_create(rows, batch_size=500)
        Scan.objects.filter(pk=scan_id).update(
            status=status,
            finished_at=timezone.now(),
            stage="done",
            progress_done=len(rows),
            progress_total=len(rows),
            workloads_total=len(rows),
            affected=counts["affected"],
            at_risk=counts["at-risk"],
            safe=counts["safe"],
            unknown=counts["unknown"],
            pods_seen=result.pods_seen,
            images_inspected=result.images_inspected,
            problems=result.problems,
            facts=result.facts,
            heartbeat_at=timezone.now(),
        )
    scan = Scan.objects.select_related("cluster").get(pk=scan_id)
    prune_scans(scan.cluster)
    return scan


def _pool_row(scan_id: int, pool: NodePool, probes: list[ProbeResult]) -> NodePoolResult:
    from dnsaudit.core.kubelet import parse_node_resolv_conf
    from dnsaudit.core.resolver import search_step

    searches = []
    if pool.node_resolv_conf:
        try:
            conf = parse_node_resolv_conf(pool.node_resolv_conf, pool.kubelet.version)
            cd = pool.kubelet.cluster_domain
            for d in conf.searches:
                safe = bool(cd) and (d == cd or d.endswith("." + cd))
                searches.append({"domain": d, "origin": "node resolv.conf", "cluster": safe})
        except ValueError as exc:
            searches.append(
                {"domain": "", "origin": f"unparseable node resolv.conf: {exc}", "cluster": False}
            )
    domain_names = {s["domain"] for s in searches}
    probe_rows = []
    for p in probes:
        if p.domain in domain_names:
            probe_rows.append(
                {
                    "domain": p.domain,
                    "probe_name": p.probe_name,
                    "qname": p.qname,
                    "server": p.server,
                    "a": p.a.label,
                    "aaaa": p.aaaa.label,
                    # The same simulation as the verdicts (musl >= 1.2.1 pairing, glibc 2.36).
                    "musl": search_step(p.a, p.aaaa, "musl"),
                    "glibc": search_step(p.a, p.aaaa, "glibc"),
                }
            )
    return NodePoolResult(
        scan_id=scan_id,
        name=pool.name,
        nodes=pool.nodes,
        kubelet_version=pool.kubelet.version or "",
        architecture=pool.architecture,
        cluster_dns=list(pool.kubelet.cluster_dns),
        cluster_domain=pool.kubelet.cluster_domain,
        resolv_conf_path=pool.kubelet.resolv_conf,
        node_resolv_conf=pool.node_resolv_conf or "",
        searches=searches,
        observed=pool.observed,
        probes=probe_rows,
        notes=pool.notes,
    )


def prune_scans(cluster: Cluster, keep: int | None = None) -> int:
    """Keep the newest ``keep`` finished scans of a cluster (results cascade), and always the last good
    report: a run of failed scans must not prune away the report the dashboard shows."""
    keep = keep if keep is not None else settings.DNSAUDIT_KEEP_SCANS
    finished = list(
        cluster.scans.exclude(status__in=Scan.ACTIVE)
        .order_by("-created_at", "-pk")
        .values_list("pk", flat=True)
    )
    last_good = cluster.last_report_scan()
    old = [pk for pk in finished[max(keep, 0) :] if last_good is None or pk != last_good.pk]
    if old:
        Scan.objects.filter(pk__in=old).delete()
    return len(old)


def reap_dead_scans(now=None) -> int:
    """Mark scans failed whose worker stopped reporting (killed, lost). Returns how many."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.DNSAUDIT_SCAN_STALE_AFTER)
    dead = Scan.objects.filter(status=Scan.RUNNING, heartbeat_at__lt=stale).update(
        status=Scan.FAILED,
        finished_at=now,
        stage="failed",
        error=(
            "the worker running this scan stopped reporting (killed or lost); the scan was abandoned and the "
            "previous report is kept. The next scan runs normally."
        ),
    )
    # Without a broker a queued scan starts within a second in a thread of the process that queued
    # it; one still queued after two minutes belongs to a process that is gone.
    queued_timeout = settings.DNSAUDIT_SCAN_QUEUED_TIMEOUT if settings.CELERY_BROKER_URL else 120
    never = now - timedelta(seconds=min(settings.DNSAUDIT_SCAN_QUEUED_TIMEOUT, queued_timeout))
    lost = Scan.objects.filter(status=Scan.QUEUED, created_at__lt=never).update(
        status=Scan.FAILED,
        finished_at=now,
        stage="failed",
        error="no worker picked this scan up in time: is a Celery worker running and connected to the broker?",
    )
    return dead + lost


def start_in_process_scheduler(interval: float = 60.0) -> threading.Thread:
    """Without a broker there is no celery beat: a daemon thread reaps dead scans and starts the
    periodic scans of clusters with a scan interval, every ``interval`` seconds."""

    def loop() -> None:
        while True:
            try:
                reap_dead_scans()
                for cluster in due_clusters():
                    request_scan(cluster, trigger="schedule")
            except Exception:
                log.exception("in-process scheduler tick failed")
            finally:
                connections.close_all()
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="dnsaudit-scheduler", daemon=True)
    thread.start()
    return thread


def due_clusters(now=None) -> list[Cluster]:
    """Clusters with a scan interval whose last scan is older than it."""
    now = now or timezone.now()
    due = []
    for cluster in Cluster.objects.filter(scan_interval_minutes__gt=0):
        last = cluster.scans.order_by("-created_at").first()
        if last is None or last.created_at <= now - timedelta(minutes=cluster.scan_interval_minutes):
            due.append(cluster)
    return due


def _verify_in_pods(client, inv, audits, problems: list[dict], facts: dict, progress: Progress) -> None:
    """Optional (per cluster, off by default): read /etc/resolv.conf and list /lib in one running pod
    per musl workload, and compare with the computed file. A mismatch is a finding of its own (a pod
    created before a fix, a node file that differs from the settings); the risk stays as computed."""
    from dnsaudit.core.verify import finding_reason

    from .verify import pick_targets, verify_exec

    targets = pick_targets((a.report for a in audits), inv.running_pods)
    workloads = {(t[0]["namespace"], t[0]["kind"], t[0]["name"]) for t in targets}
    progress.set("exec verification", done=0, total=len(workloads))
    findings = verify_exec(
        client,
        targets,
        timeout=10,
        budget=float(settings.DNSAUDIT_EXEC_BUDGET),
        progress=lambda done, total: progress.set(done=done),
    )
    by_key = {(a.report["namespace"], a.report["kind"], a.report["name"]): a for a in audits}
    for finding in findings:
        audit = by_key.get((finding["namespace"], finding["kind"], finding["name"]))
        if audit is None:
            continue
        audit.detail["exec_verification"] = finding
        audit.report["exec_verification"] = {
            "pod": finding.get("pod"),
            "matches": finding.get("matches"),
            "libc_confirmed": finding.get("libc_confirmed"),
            "error": finding.get("error"),
        }
        reason = finding_reason(finding)
        if reason:
            audit.report["reasons"].append(reason)
    denied = sorted({f["namespace"] for f in findings if f.get("error") and "pods/exec" in f["error"]})
    if denied:
        problems.append(
            _problem(
                "exec verification",
                f"pods/exec forbidden in {', '.join(denied)}",
                "those workloads' running pods were not checked against the computed resolv.conf",
            )
        )
    facts["exec_verification"] = {
        "verified": sum(f.get("matches") is not None for f in findings),
        "mismatches": sum(f.get("matches") is False or f.get("libc_confirmed") is False for f in findings),
    }
