"""Observe each node pool's resolv.conf by reading ``/etc/resolv.conf`` in its running pods through exec.

The node file is not in the Kubernetes API (issue #8). Per pool, in the order
:func:`dnsaudit.core.nodefiles.plan_reads` chose (host-file pods, then cluster-DNS pods, spread across
nodes, containers with ``cat`` first), run ``cat /etc/resolv.conf`` (argv, no shell) until the pure module
accepts ``readings_per_pool`` readings, then merge them (:func:`dnsaudit.core.nodefiles.merge_readings`).

Failure handling, on purpose (as in ``clusters/verify.py``):

* the executable is missing (distroless, scratch: ``ExecResult.executable_missing``) → the pod's next
  container, then the next pod;
* 403 on ``pods/exec`` is per namespace (RoleBindings): every later candidate in that namespace is skipped;
* 400 (pod pending, container not running), 404 (pod gone), timeouts, a failing runtime, ``cat`` exiting
  non-zero, or a file the pure module rejects → the next pod;
* 401 or a TLS failure ends the whole step (nothing else would work);
* ``budget`` seconds bound the whole step and ``timeout`` each command (never beyond the budget); pools
  not reached are reported.

Output: ``exec_read`` stops a command that prints more than ``max_bytes`` (here a little over
:data:`~dnsaudit.core.nodefiles.MAX_POD_FILE_BYTES`, ``KubeError`` ``TooLarge``: next pod); at most
``MAX_POD_FILE_BYTES`` of it is ever parsed, and a longer file is rejected.

Every failure is returned in words in ``NodeFileResults.failures`` so that the scan can list them in its
problems. No Django import: ``client`` is anything with ``exec_read`` (``dnsaudit.boundary.kube.KubeClient``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dnsaudit.boundary.kube import KubeError
from dnsaudit.core.nodefiles import (
    MAX_POD_FILE_BYTES,
    NodeFileReading,
    PlannedRead,
    PoolPlan,
    merge_readings,
    reading_for,
)

READ_RESOLV = ("cat", "/etc/resolv.conf")
#: Failures after which nothing else can work with these credentials.
FATAL_REASONS = frozenset({"Unauthorized", "TLS"})


@dataclass
class PoolNodeFile:
    """What the exec step learned for one pool.

    ``reading`` is the merged reading (None: not learned); ``attempts`` say what happened at each pod, in
    order; ``disagreements`` name pods whose file disagreed with the kept reading.
    """

    pool: str
    reading: NodeFileReading | None = None
    attempts: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "pool": self.pool,
            "reading": self.reading.to_dict() if self.reading else None,
            "attempts": list(self.attempts),
            "disagreements": list(self.disagreements),
        }


@dataclass
class NodeFileResults:
    """Per pool the outcome; ``failures`` in words (one line each) for the scan's problems;
    ``forbidden`` maps each namespace where exec was refused to the API's message."""

    pools: dict[str, PoolNodeFile] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    forbidden: dict[str, str] = field(default_factory=dict)
    budget_exhausted: bool = False
    #: Images found without ``cat`` in this run: their containers elsewhere are not asked again (kube-proxy,
    #: CNI and CoreDNS pods run on every node, and each would cost a round trip for the same answer).
    no_cat_images: set[str] = field(default_factory=set)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def read_node_files(
    client,
    plan: Mapping[str, PoolPlan] | Iterable[PoolPlan],
    *,
    timeout: float = 10.0,
    budget: float = 60.0,
    readings_per_pool: int = 2,
    now: Callable[[], float] = time.monotonic,
) -> NodeFileResults:
    """Read the planned pods' ``/etc/resolv.conf`` per pool (see the module doc). Never raises for
    Kubernetes failures: they become ``attempts`` and ``failures``.

    ``readings_per_pool`` accepted readings are gathered before a pool is done (two let pods on different
    nodes confirm each other; fewer are merged when the candidates run out).
    """
    plans = list(plan.values()) if isinstance(plan, Mapping) else list(plan)
    results = NodeFileResults()
    deadline = now() + budget
    fatal: str | None = None
    unreached: list[str] = []
    for pool_plan in plans:
        outcome = PoolNodeFile(pool=pool_plan.pool)
        results.pools[pool_plan.pool] = outcome
        if fatal is not None or now() >= deadline:
            unreached.append(pool_plan.pool)
            continue
        readings: list[NodeFileReading] = []
        tried = 0
        for read in pool_plan.reads:
            if len(readings) >= max(readings_per_pool, 1):
                break
            c = read.candidate
            name = f"{c.namespace}/{c.pod}"
            if c.namespace in results.forbidden:
                outcome.attempts.append(f"{name}: skipped, pods/exec is forbidden in namespace {c.namespace}")
                continue
            if now() >= deadline:
                results.budget_exhausted = True
                outcome.attempts.append(f"{name}: not tried, the time budget of {budget:g} s was used up")
                break
            tried += 1
            reading, line, stop = _read_pod(client, pool_plan, read, timeout, deadline, now, results)
            outcome.attempts.append(line)
            if reading is not None:
                readings.append(reading)
            if stop is not None:
                fatal = stop
                break
        merged, disagreements = merge_readings(readings)
        outcome.reading = merged
        outcome.disagreements = disagreements
        for d in disagreements:
            results.failures.append(f"pool {pool_plan.pool}: pods disagree on the node file: {d}")
        if merged is None:
            if not pool_plan.reads:
                results.failures.append(
                    f"pool {pool_plan.pool}: no running pod whose /etc/resolv.conf shows the node file "
                    "(host-network, dnsPolicy Default or cluster-DNS pods); node search domains not observed"
                )
            else:
                results.failures.append(
                    f"pool {pool_plan.pool}: {tried} pod{'s' if tried != 1 else ''} tried, node search domains "
                    "not observed: " + "; ".join(outcome.attempts)
                )
    if unreached:
        why = fatal or f"the time budget of {budget:g} s for reading node files was used up"
        if fatal is None:
            results.budget_exhausted = True
        results.failures.append(f"pools not read ({why}): {', '.join(unreached)}")
    elif fatal is not None:
        results.failures.append(f"reading node files stopped: {fatal}")
    for ns, message in results.forbidden.items():
        results.failures.append(f"pods/exec forbidden in namespace {ns}: {_short(message)}")
    return results


def _read_pod(
    client,
    pool_plan: PoolPlan,
    read: PlannedRead,
    timeout: float,
    deadline: float,
    now: Callable[[], float],
    results: NodeFileResults,
) -> tuple[NodeFileReading | None, str, str | None]:
    """Try the pod's containers in order. Returns (reading or None, what happened in words, fatal error)."""
    c = read.candidate
    name = f"{c.namespace}/{c.pod}"
    missing: list[str] = []
    image_of = dict(zip(c.containers, c.images, strict=False)) if c.images else {}
    for container in read.containers:
        image = image_of.get(container)
        if image and image in results.no_cat_images:
            missing.append(container)
            continue
        left = deadline - now()
        if left <= 0:
            results.budget_exhausted = True
            return None, f"{name}: the time budget was used up", None
        try:
            res = client.exec_read(
                c.namespace,
                c.pod,
                container,
                list(READ_RESOLV),
                timeout=min(timeout, left),
                max_bytes=MAX_POD_FILE_BYTES + 4096,
            )
        except KubeError as exc:
            if exc.reason == "Forbidden":
                results.forbidden[c.namespace] = str(exc)
                return None, f"{name}: pods/exec forbidden in namespace {c.namespace}", None
            if exc.reason in FATAL_REASONS:
                return None, f"{name}: {_short(str(exc))}", _short(str(exc))
            if exc.reason == "BadRequest":
                return None, f"{name}: not running or not ready for exec ({_short(str(exc))})", None
            if exc.reason == "NotFound":
                return None, f"{name}: gone ({_short(str(exc))})", None
            if exc.reason == "Timeout":
                return None, f"{name}: `cat /etc/resolv.conf` did not finish in time", None
            return None, f"{name}: {_short(str(exc))}", None
        if res.executable_missing:
            missing.append(container)
            if image:
                results.no_cat_images.add(image)
            continue
        if res.exit_code != 0:
            detail = _short(res.stderr or res.message or "")
            return None, f"{name}: `cat /etc/resolv.conf` exited with {res.exit_code}: {detail}", None
        text = res.stdout[: MAX_POD_FILE_BYTES + 1]
        try:
            reading = reading_for(pool_plan, read, text)
        except ValueError as exc:
            return None, f"{name}: file not used: {_short(str(exc), 300)}", None
        return reading, f"{name} (container {container}) on node {c.node}: read ({reading.scope})", None
    which = ", ".join(missing)
    return (
        None,
        f"{name} has no cat (distroless?) in container{'s' if len(missing) > 1 else ''} {which}",
        None,
    )
