"""Images: the pull secrets the workloads can use, and one libc verdict per distinct image."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
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


# --- what one inspection learns, shared with the next ones --------------------------------------------

#: Key prefix of the layer records kept in the ImageVerdict table (``layer:<registry host>/<layer digest>``).
LAYER_KEY_PREFIX = "layer:"
#: ImageVerdict.confidence of a layer record (never "confirmed"/"inferred": no image lookup matches it).
LAYER_CONFIDENCE = "layer"
#: Bytes of compressed layer records one process keeps in memory.
LAYER_MEMORY_BYTES = 64 * 1024 * 1024


def _encode_layer(record: dict) -> str:
    return base64.b64encode(zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 6)).decode()


def _decode_layer(blob: str) -> dict | None:
    try:
        record = json.loads(zlib.decompress(base64.b64decode(blob), bufsize=1 << 20))
    except (ValueError, zlib.error):
        return None
    return record if isinstance(record, dict) else None


class _Memory:
    """A thread-safe LRU of strings, bounded by their total length."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[str, str] = OrderedDict()
        self._size = 0

    def get(self, key: str) -> str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._size -= len(old) if old is not None else 0
            if len(value) > self.limit:
                return
            self._items[key] = value
            self._size += len(value)
            while self._size > self.limit:
                _k, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


_LAYERS = _Memory(LAYER_MEMORY_BYTES)


class LayerStore:
    """The registry client's ``layer_cache``: what each layer told the libc detector (see
    ``dnsaudit.boundary.registry.layer_facts``), so that an image whose base layers were read for another
    image fetches only its manifest, its config and its own layers.

    Records live in this process (``_LAYERS``, compressed, LRU) and in ImageVerdict rows keyed
    ``layer:<registry host>/<layer digest>``. With ``db_in_threads`` (PostgreSQL, the scan's connection in
    autocommit) the inspection threads read and write the rows themselves, so that other workers see a
    record as soon as it is made; otherwise the threads never touch the database and :meth:`flush`
    writes the new records from the scan's own thread at the end of the stage."""

    def __init__(self, db_in_threads: bool) -> None:
        self.db_in_threads = db_in_threads
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict | None:
        blob = _LAYERS.get(key)
        if blob is None and self.db_in_threads:
            try:
                row = (
                    ImageVerdict.objects.filter(key=LAYER_KEY_PREFIX + key, confidence=LAYER_CONFIDENCE)
                    .values_list("verdict", flat=True)
                    .first()
                )
            except Exception:  # the cache is an optimisation: a database hiccup is a miss
                logger.warning("reading the layer record of %s failed", key, exc_info=True)
                row = None
            if isinstance(row, dict) and isinstance(row.get("z"), str):
                blob = row["z"]
                _LAYERS.put(key, blob)
        return _decode_layer(blob) if blob else None

    def __setitem__(self, key: str, record: dict) -> None:
        blob = _encode_layer(record)
        _LAYERS.put(key, blob)
        if self.db_in_threads:
            try:
                _save_layers({key: blob})
            except Exception:
                logger.warning("saving the layer record of %s failed", key, exc_info=True)
        else:
            with self._lock:
                self._pending[key] = blob

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            _save_layers(pending)


def _save_layers(blobs: dict[str, str]) -> None:
    """Upsert layer records: the newest replaces the row (a record only grows for one process; two workers
    racing on one layer may store the shorter one, and the next reader then downloads the rest)."""
    ImageVerdict.objects.bulk_create(
        [
            ImageVerdict(
                key=LAYER_KEY_PREFIX + k,
                verdict={"z": v},
                confidence=LAYER_CONFIDENCE,
                inspected_at=timezone.now(),
            )
            for k, v in sorted(blobs.items())
        ],
        update_conflicts=True,
        unique_fields=["key"],
        update_fields=["verdict", "inspected_at"],
    )


class _Claim:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.verdict: dict | None = None


class Claims:
    """One inspection per verdict key at a time in this process, whichever scan asks.

    The first scan to ask for a key inspects it; the others wait for its result (at most ``wait``
    seconds, then they inspect themselves) and take it when it is confirmed — a fact about the digest,
    shared like the database cache shares it. A failed inspection is not shared: the next scan tries with
    its own workloads' credentials. Nothing is kept once the claim ends: a scan that asks later reads the
    database cache (digest-pinned references) or inspects (a tag moves)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, _Claim] = {}

    @contextlib.contextmanager
    def hold(self, key: str, wait: float) -> Iterator[tuple[bool, dict | None]]:
        """``(owner, verdict another scan found)``. The owner (first caller) gives its result to
        :meth:`publish` before leaving; a waiter gets the owner's confirmed verdict, or None (failed, or
        ``wait`` seconds passed) and then inspects without a claim."""
        with self._lock:
            claim = self._active.get(key)
            owner = claim is None
            if owner:
                claim = self._active[key] = _Claim()
        assert claim is not None
        if not owner:
            claim.event.wait(wait)
            yield False, (_copy(claim.verdict) if claim.event.is_set() and claim.verdict else None)
            return
        try:
            yield True, None
        finally:
            with self._lock:
                self._active.pop(key, None)
            claim.event.set()

    def publish(self, key: str, verdict: dict) -> None:
        """The owner's result: the scans waiting for it get it when it is confirmed."""
        if verdict.get("confidence") != "confirmed":
            return
        with self._lock:
            claim = self._active.get(key)
            if claim is not None:
                claim.verdict = _copy(verdict)  # each scan that takes it gets its own copy


CLAIMS = Claims()


def _copy(verdict: dict) -> dict:
    """A verdict dict another scan may change (its evidence list) without touching this one."""
    return {**verdict, "evidence": list(verdict.get("evidence") or [])}


def reset_process_caches() -> None:
    """Forget the layer records this process keeps in memory: for benchmarks and tests that start cold.
    The database rows are not touched."""
    _LAYERS.clear()


def _advisory_key(key: str) -> int:
    return int.from_bytes(hashlib.sha256(b"dnsaudit-image:" + key.encode()).digest()[:8], "big", signed=True)


def _confirmed_row(key: str) -> dict | None:
    row = (
        ImageVerdict.objects.filter(key=key, confidence="confirmed").values_list("verdict", flat=True).first()
    )
    return row if isinstance(row, dict) else None


@contextlib.contextmanager
def database_claim(key: str, wait: float, poll: float = 0.2) -> Iterator[dict | None]:
    """Across worker processes (PostgreSQL): one inspection per key at a time.

    A session advisory lock keyed by a hash of ``key`` (``pg_try_advisory_lock``, polled, so nothing
    blocks inside the database): the holder inspects, saves the verdict and unlocks; a worker that finds
    the lock taken polls for the holder's row and yields it (then nothing is inspected). After ``wait``
    seconds without the lock it yields None and inspects anyway: a stuck or dead holder never stops a
    scan (a dead one's lock goes with its session). Yields the verdict found, or None (inspect)."""
    lock = _advisory_key(key)
    deadline = time.monotonic() + wait
    held = False
    found = None
    with connection.cursor() as cur:
        while True:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [lock])
            held = bool(cur.fetchone()[0])
            found = _confirmed_row(key)  # saved by a holder that has finished (or before we asked)
            if held or found is not None or time.monotonic() >= deadline:
                break
            time.sleep(poll)
    try:
        yield found
    finally:
        if held:
            try:
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", [lock])
            except DatabaseError:  # the lock goes with the session, which the thread closes
                logger.warning("releasing the claim of %s failed", key, exc_info=True)


def _save_verdict(key: str, verdict: dict) -> None:
    ImageVerdict.objects.bulk_create(
        [ImageVerdict(key=key, verdict=verdict, confidence="confirmed", inspected_at=timezone.now())],
        update_conflicts=True,
        unique_fields=["key"],
        update_fields=["verdict", "confidence", "inspected_at"],
    )


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
    next scans of a closed network do not try again meanwhile.

    Each distinct image is inspected once across the scans running at the same time (:class:`Claims` in
    a process, :func:`database_claim` between workers), and a layer already read is not downloaded again
    unless an image needs more of it than was read: what it told the detector is recorded
    (:class:`LayerStore`) and replayed for the next image built on it."""
    from dnsaudit.boundary.registry import RegistryClient, RegistryLimits, resolve_image_id

    credentials = _workload_credentials(client, inv, problems)
    # Inspection threads use the database themselves (layer records, verdicts, advisory locks) only on
    # PostgreSQL and when the scan's connection is in autocommit: inside a transaction, rows saved by
    # other connections would not be seen, and ours would not be seen by them.
    db_in_threads = (
        connection.vendor == "postgresql" and connection.get_autocommit() and not connection.in_atomic_block
    )
    layers = LayerStore(db_in_threads)
    claim_wait = float(settings.DNSAUDIT_REGISTRY_DEADLINE) + 10.0
    registry = RegistryClient(
        layer_cache=layers,
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
        """One image, inspected once across the scans of the fleet: the verdict another scan of
        this process is inspecting is waited for; else the first scan to ask inspects (:data:`CLAIMS`)
        and, between workers, the one holding the key's advisory lock (:func:`database_claim`); the others
        wait for it and read its result. Only digest-pinned references are shared between workers, through
        their saved verdict (a tag moves)."""
        key, (ref, _platform, _tag) = item
        try:
            with CLAIMS.hold(key, claim_wait) as (owner, found):
                if found is not None:
                    return key, found
                if owner and db_in_threads and "@sha256:" in ref:
                    key, verdict = inspect_across_workers(item)
                else:
                    key, verdict = inspect_one(item)
                CLAIMS.publish(key, verdict)
                return key, verdict
        finally:
            if db_in_threads:
                connection.close()  # this pool thread's own connection (and any advisory lock with it)

    def inspect_across_workers(item: tuple[str, tuple[str, str, str]]) -> tuple[str, dict]:
        key = item[0]
        with contextlib.ExitStack() as stack:
            try:
                found = stack.enter_context(database_claim(key, claim_wait))
            except DatabaseError:
                logger.warning("no cross-worker claim for %s: the database refused it", key, exc_info=True)
                return inspect_one(item)
            if found is not None:
                return key, found
            key, verdict = inspect_one(item)
            if verdict.get("confidence") == "confirmed":
                # Saved before the lock is released: the workers waiting for it read this row.
                try:
                    _save_verdict(key, verdict)
                except DatabaseError:
                    logger.warning("saving the verdict of %s failed", key, exc_info=True)
            return key, verdict

    def inspect_one(item: tuple[str, tuple[str, str, str]]) -> tuple[str, dict]:
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
        layers.flush()
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
