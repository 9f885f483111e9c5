"""Images: the pull secrets the workloads can use, and one libc verdict per distinct image."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from dnsaudit.core.model import LibcVerdict

from ...models import ImageVerdict
from ..progress import _problem, _retry

logger = logging.getLogger(__name__)


def _service_account_pull_secrets(client, inv, problems) -> dict[tuple[str, str], list[str]]:
    """``{(namespace, service account): [secret names]}``: the imagePullSecrets of the service accounts the
    workloads run as (the ServiceAccount admission adds them to each pod it creates)."""
    from dnsaudit.boundary.kube import KubeError

    if not inv.service_accounts:
        return {}
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
        return {}
    out: dict[tuple[str, str], list[str]] = {}
    for sa in accounts:
        meta = sa.get("metadata") or {}
        if meta.get("name") in inv.service_accounts.get(meta.get("namespace"), ()):
            out[(meta["namespace"], meta["name"])] = [
                s["name"] for s in sa.get("imagePullSecrets") or () if isinstance(s, dict) and s.get("name")
            ]
    return out


Credentials = dict[str, list[tuple[str, str]]]  # registry -> [(user, password), ...], tried in turn


def _workload_credentials(client, inv, problems) -> dict[tuple[str, str, str], Credentials]:
    """``{(namespace, kind, name): {registry: [(user, password), ...]}}``: per workload, the pull secrets its
    pods use, as the kubelet does — the pod template's imagePullSecrets and its service account's, in its
    own namespace. A workload's secrets are never lent to another workload (not even in its namespace);
    when two of its secrets hold credentials for the same registry both are kept (tried in turn), so a later
    secret never overrides an earlier one. Each secret is read once."""
    from dnsaudit.boundary.kube import KubeError
    from dnsaudit.boundary.registry import credentials_from_dockerconfigjson

    by_account = _service_account_pull_secrets(client, inv, problems)
    wanted: dict[tuple[str, str, str], list[str]] = {}
    for w in inv.workloads:
        names = [*w.pull_secrets, *by_account.get((w.namespace, w.service_account), ())]
        if names:
            wanted[(w.namespace, w.kind, w.name)] = list(dict.fromkeys(names))
    read: dict[tuple[str, str], Credentials] = {}
    denied: list[str] = []
    for ns, secret_name in sorted({(k[0], n) for k, names in wanted.items() for n in names}):
        try:
            secret = client.read_secret(ns, secret_name)
        except KubeError as exc:
            denied.append(f"{ns}/{secret_name}: {exc}")
            continue
        data = (secret or {}).get("data") or {}
        if ".dockerconfigjson" not in data:
            continue
        try:
            read[(ns, secret_name)] = credentials_from_dockerconfigjson(data[".dockerconfigjson"])
        except ValueError:
            continue
    if denied:
        problems.append(
            _problem(
                "image pull secrets",
                f"some pull secrets could not be read ({len(denied)}; first: {denied[0]})",
                "private images were inspected anonymously; where that failed the verdict is inferred from the image name",
            )
        )
    out: dict[tuple[str, str, str], Credentials] = {}
    for key, names in wanted.items():
        own: Credentials = {}
        for secret_name in names:
            for registry, cred in (read.get((key[0], secret_name)) or {}).items():
                bucket = own.setdefault(registry, [])
                if cred not in bucket:
                    bucket.append(cred)
        if own:
            out[key] = own
    return out


def _image_workloads(inv) -> dict[str, set[tuple[str, str, str]]]:
    """Image reference (as pods write it, and its imageID) -> the workloads that run it."""
    out: dict[str, set[tuple[str, str, str]]] = {}
    for w in inv.workloads:
        for c in w.containers:
            out.setdefault(c.image, set()).add((w.namespace, w.kind, w.name))
            if c.image_id:
                out.setdefault(c.image_id, set()).add((w.namespace, w.kind, w.name))
    return out


#: How long a verdict inferred because the registry was unreachable is reused (seconds), unless
#: ``DNSAUDIT_INFERRED_VERDICT_TTL`` says otherwise. Confirmed verdicts (by digest) never expire.
INFERRED_VERDICT_TTL = 3600


def inferred_verdict_ttl() -> float:
    return float(getattr(settings, "DNSAUDIT_INFERRED_VERDICT_TTL", INFERRED_VERDICT_TTL))


class Reachability:
    """Which registries one scan could not reach: each registry is contacted by one inspection first
    (the others for it wait); when that one finds it unreachable (``RegistryError.unreachable``), every
    other image on it is inferred at once, without a connection attempt, for the rest of the scan."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: dict[str, threading.Event] = {}
        self.down: dict[str, str] = {}  # registry -> the error that showed it unreachable

    def enter(self, registry: str) -> tuple[bool, str | None]:
        """``(this caller makes the first contact, why the registry is down or None)``."""
        with self._lock:
            event = self._first.get(registry)
            if event is None:
                self._first[registry] = threading.Event()
                return True, None
        event.wait()
        return False, self.down.get(registry)

    def done(self, registry: str, unreachable_because: str | None) -> None:
        """The first contact is over (call exactly once, from the caller that made it)."""
        with self._lock:
            if unreachable_because is not None:
                self.down[registry] = unreachable_because
            self._first[registry].set()


def _registry_of(ref: str) -> str:
    from dnsaudit.boundary.registry import normalise_registry, parse_reference

    try:
        return normalise_registry(parse_reference(ref).registry)
    except ValueError:
        return ref


def inspect_images(client, inv, problems, progress) -> dict[str, LibcVerdict]:
    """One verdict per distinct image (by digest when known), cached in the database across clusters.

    Each image is read with the credentials of the workloads that run it (their pods' and service
    accounts' pull secrets), one workload at a time (a workload whose credentials are refused gives way to
    the next; one without any reads anonymously), never with another workload's. The verdict, a fact about
    the digest, is then shared.

    A registry that cannot be reached from the worker is found out once per scan (:class:`Reachability`):
    its images are then inferred from their names with the reason in their evidence, and those inferred
    verdicts are cached for ``DNSAUDIT_INFERRED_VERDICT_TTL`` seconds (default one hour), so that the
    next scans of a closed network do not try again meanwhile."""
    from dnsaudit.boundary.registry import RegistryClient, RegistryLimits, resolve_image_id

    credentials = _workload_credentials(client, inv, problems)
    registry = RegistryClient(
        timeout=float(getattr(settings, "DNSAUDIT_REGISTRY_TIMEOUT", 15.0)),
        limits=RegistryLimits(
            deadline=float(settings.DNSAUDIT_REGISTRY_DEADLINE),
            max_manifest_bytes=settings.DNSAUDIT_REGISTRY_MAX_MANIFEST_BYTES,
            max_layer_bytes=settings.DNSAUDIT_REGISTRY_MAX_LAYER_BYTES,
            max_tar_entries=settings.DNSAUDIT_REGISTRY_MAX_TAR_ENTRIES,
            max_tar_header_bytes=settings.DNSAUDIT_REGISTRY_MAX_TAR_HEADER_BYTES,
        ),
    )
    runs_in = _image_workloads(inv)
    # key -> (pullable ref: the digest from imageID when known, platform, the tag reference). The tag
    # reference is what a fallback inference needs: "docker.io/library/python@sha256:…" says nothing
    # about Alpine, "python:3.12-alpine" does.
    work: dict[str, tuple[str, str, str]] = {}
    runners: dict[str, set[tuple[str, str, str]]] = {}  # key -> the workloads that run the image
    keys_for: dict[tuple[str, str | None, str], str] = {}
    for image, image_id, platform in sorted(inv.images, key=lambda t: (t[0], t[1] or "", t[2])):
        ref = resolve_image_id(image_id) if image_id else None
        ref = ref or image
        key = f"{ref}@{platform}"
        keys_for[(image, image_id, platform)] = key
        work.setdefault(key, (ref, platform, image or ref))
        runners.setdefault(key, set()).update(runs_in.get(image, ()), runs_in.get(image_id or "", ()))
    progress.set("images", done=0, total=len(work))
    ttl = inferred_verdict_ttl()
    usable = Q(confidence="confirmed")
    if ttl > 0:
        usable |= Q(confidence="inferred", inspected_at__gte=timezone.now() - timedelta(seconds=ttl))
    cached: dict[str, dict] = {}
    for iv in ImageVerdict.objects.filter(usable, key__in=list(work)):
        cached[iv.key] = iv.verdict
        if iv.confidence == "inferred":
            until = iv.inspected_at + timedelta(seconds=ttl)
            cached[iv.key] = {
                **iv.verdict,
                "evidence": [
                    *(iv.verdict.get("evidence") or []),
                    f"cached inferred verdict from {iv.inspected_at:%Y-%m-%d %H:%M:%S} UTC (registry unreachable "
                    f"then); the registry is tried again after {until:%Y-%m-%d %H:%M:%S} UTC "
                    "(DNSAUDIT_INFERRED_VERDICT_TTL)",
                ],
            }
    reach = Reachability()
    unreachable_keys: set[str] = set()
    results: dict[str, dict] = dict(cached)
    progress.set(done=len(cached), force=True)

    def inspect(item: tuple[str, tuple[str, str, str]]) -> tuple[str, dict]:
        from dnsaudit.boundary.registry import RegistryError
        from dnsaudit.core.libc import infer_from_reference

        key, (ref, platform, tag_ref) = item
        # One attempt per distinct credential set among the workloads that run the image, in workload
        # order; only a refusal (401/403) moves on to the next workload's credentials.
        attempts: list[dict] = []
        for workload in sorted(runners.get(key, ())):
            own = credentials.get(workload, {})
            if own not in attempts:
                attempts.append(own)
        attempts = attempts or [{}]
        host = _registry_of(ref)
        first, down = reach.enter(host)
        if down is not None:
            # Found unreachable earlier in this scan: no connection attempt for this image.
            verdict = infer_from_reference(tag_ref)
            verdict.platform = platform
            verdict.evidence.append(
                f"registry not read for {ref}: registry {host} was unreachable from the scanning worker "
                f"earlier in this scan ({down}); not tried again"
            )
            unreachable_keys.add(key)
            return key, verdict.to_dict()
        why_down: str | None = None
        try:
            for i, own in enumerate(attempts):
                try:
                    verdict = registry.inspect(ref, platform, credentials=own)
                    break
                except RegistryError as exc:
                    if exc.status in (401, 403) and i + 1 < len(attempts):
                        continue
                    raise
        except (RegistryError, ValueError) as exc:
            # The registry could not be read (unreachable, 401/404/5xx, slow blobs): infer from the tag
            # reference and keep the error as evidence. The scan goes on; the verdict says "inferred".
            verdict = infer_from_reference(tag_ref)
            verdict.platform = platform
            if getattr(exc, "unreachable", False):
                why_down = str(exc)
                unreachable_keys.add(key)
                verdict.evidence.append(
                    f"registry not read for {ref}: {exc}; registry {host} is treated as unreachable from the "
                    "scanning worker for the rest of this scan"
                )
            else:
                verdict.evidence.append(f"registry not read for {ref}: {exc}")
        except Exception as exc:  # a registry must never fail the scan: keep the scan going, log the bug
            logger.exception("inspecting %s failed unexpectedly", ref)
            verdict = infer_from_reference(tag_ref)
            verdict.platform = platform
            verdict.evidence.append(f"registry not read for {ref}: unexpected {type(exc).__name__}")
        finally:
            if first:
                reach.done(host, why_down)
        return key, verdict.to_dict()

    todo = [(k, v) for k, v in work.items() if k not in cached]
    if todo:
        with ThreadPoolExecutor(max_workers=settings.DNSAUDIT_IMAGE_CONCURRENCY) as pool:
            for key, verdict in pool.map(inspect, todo):
                results[key] = verdict
                progress.step()
        # Confirmed verdicts are cached for digest-pinned references only: a tag (alpine:3) moves, a
        # digest never does. They replace an inferred row for the same key.
        fresh = [
            ImageVerdict(key=k, verdict=results[k], confidence="confirmed", inspected_at=timezone.now())
            for k, (ref, _platform, _tag) in todo
            if results[k].get("confidence") == "confirmed" and "@sha256:" in ref
        ]
        # (No close_old_connections() here: this is the scan's own thread and connection; closing it
        # mid-scan breaks any enclosing transaction, and the pool threads never touched the database.)
        if fresh:
            ImageVerdict.objects.bulk_create(
                fresh,
                update_conflicts=True,
                unique_fields=["key"],
                update_fields=["verdict", "confidence", "inspected_at"],
            )
        # Inferred because the registry was unreachable: cached with a short expiry (any reference, the
        # verdict is about what could not be read). An expired inferred row is replaced; a confirmed row
        # (another scan may have read the image meanwhile) is never overwritten.
        inferred = sorted(k for k in unreachable_keys if results[k].get("confidence") != "confirmed")
        if inferred and ttl > 0:
            ImageVerdict.objects.filter(key__in=inferred, confidence="inferred").delete()
            ImageVerdict.objects.bulk_create(
                [
                    ImageVerdict(
                        key=k, verdict=results[k], confidence="inferred", inspected_at=timezone.now()
                    )
                    for k in inferred
                ],
                ignore_conflicts=True,
            )
    # Keyed by "<image>@<platform>" and "<imageID>@<platform>": a multi-arch image has one verdict per
    # platform (its imageID, the index digest, is the same on every architecture), and the audit looks a
    # container up with the platform of its pool's nodes.
    verdicts: dict[str, LibcVerdict] = {}
    for (image, image_id, platform), key in keys_for.items():
        v = LibcVerdict(**results[key])
        verdicts.setdefault(f"{image}@{platform}", v)
        if image_id:
            verdicts[f"{image_id}@{platform}"] = v
    return verdicts
