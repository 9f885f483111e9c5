"""What to do first: the smallest set of changes that fixes every affected and at-risk workload of a scan.

Input: the stored workload rows (each with its risk, its node pool, the fix the audit recommends for it and
the alternatives that passed their checks — ``report["remediation"]``) and the scan's cluster-level fixes
(``facts["cluster_remediation"]["artifacts"]``, :func:`dnsaudit.core.audit.cluster_remediation`). Pure: no
database, no Django; the report page caches the result per finished scan.

**The changes.** A fix kind applies at one of two scopes:

* cluster-level — ``kubelet`` (one change per node pool: the kubelet's ``resolvConf`` on that pool fixes
  every workload of the pool that lists it), ``kyverno`` and ``coredns`` (one change for the cluster);
* per workload — ``dnsConfig`` (a patch of that workload) and ``base-image`` (rebuild it on glibc).

A change *fixes* a workload when its kind is the workload's recommended fix or one of its alternatives
(alternatives are listed only when their patch was checked and re-simulated), and, for ``kubelet``, the
workload runs on that pool.

**The selection: greedy set cover.** Choosing the fewest changes that together fix every workload is the
set-cover problem (NP-hard in general). Greedy — repeatedly take the change that fixes the most workloads
not fixed yet — is within a factor ln(n) of the optimum and exact in the usual shapes (one pool change, a
few per-workload patches). Two rules keep it faithful to the per-workload recommendations:

1. only changes that are the *recommended* fix of at least one target workload are candidates: the plan
   never proposes a fix the audit ranked below another for every workload it touches (a CoreDNS template
   that would also cover everything is not preferred over the kubelet change the audit recommends);
   each target workload's own recommendation is a candidate, so every fixable workload is covered;
2. ties are broken by how many of the newly fixed workloads recommend that change, then by scope
   (cluster-level first: fewer things to roll out), then by name (a stable order).

Each step's ``workloads`` are the workloads it newly fixes when taken, so the counts add up to the number
of fixable target workloads. Workloads whose recommendation is ``none`` (no fix passed its checks) are
returned in ``unfixable``; ``unknown`` workloads are not targets (their libc or node file must be known
first) and are only counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

TARGET_RISKS = ("affected", "at-risk")
CLUSTER_KINDS = ("kubelet", "kyverno", "coredns")
WORKLOAD_KINDS = ("dnsConfig", "base-image")
#: Order of preference among otherwise equal changes (lower first).
KIND_ORDER = {"kubelet": 0, "coredns": 1, "kyverno": 2, "dnsConfig": 3, "base-image": 4}

#: How each change is named on the page ("kubelet resolvConf on pool general fixes 6").
KIND_WORDS = {
    "kubelet": "kubelet resolvConf",
    "kyverno": "Kyverno policy",
    "coredns": "CoreDNS template",
    "dnsConfig": "dnsConfig patch",
    "base-image": "glibc base image",
}

_POOL_IN_TITLE = re.compile(r"\(node pool (?P<pool>[^)]+)\)\s*$")


@dataclass(frozen=True)
class PlanWorkload:
    """One stored workload row as the plan needs it. ``ref``: anything the caller wants back (a row id)."""

    key: str  # "namespace/Kind/name"
    risk: str
    recommended: str
    alternatives: tuple[str, ...] = ()
    pool: str = ""
    ref: object = None

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(k for k in (self.recommended, *self.alternatives) if k and k != "none")


@dataclass
class Step:
    """One change of the plan. ``scope``: ``pool`` | ``cluster`` | ``workload``; ``target``: the pool name,
    ``""`` for the cluster, or the workload key. ``artifact``: index of the matching cluster-level fix in the
    scan's artifacts (``None`` when there is none: per-workload fixes, or a scan stored without it)."""

    kind: str
    scope: str
    target: str
    workloads: list[str] = field(default_factory=list)
    refs: list = field(default_factory=list)
    recommended_for: int = 0
    artifact: int | None = None

    @property
    def count(self) -> int:
        return len(self.workloads)

    @property
    def words(self) -> str:
        return KIND_WORDS.get(self.kind, self.kind)

    @property
    def where(self) -> str:
        """``pool general`` | ``the cluster`` | ``storefront/web`` (namespace/name)."""
        if self.scope == "pool":
            return f"pool {self.target}"
        if self.scope == "cluster":
            return "the cluster"
        namespace, _, rest = self.target.partition("/")
        return f"{namespace}/{rest.partition('/')[2]}"

    @property
    def sentence(self) -> str:
        return f"{self.words} on {self.where} fixes {self.count}"


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    unfixable: list[PlanWorkload] = field(default_factory=list)
    targets: int = 0  # affected + at-risk workloads
    unknown: int = 0

    @property
    def fixed(self) -> int:
        return sum(s.count for s in self.steps)

    @property
    def summary(self) -> str:
        """``kubelet resolvConf on pool general fixes 6 · dnsConfig patch on storefront/web fixes 1``."""
        return " · ".join(s.sentence for s in self.steps)

    def as_dict(self) -> dict:
        """Plain data (for a cache or JSON): every field plus each step's ``words``/``where``/``sentence``."""
        data = asdict(self)
        for step, raw in zip(self.steps, data["steps"], strict=True):
            raw.update(words=step.words, where=step.where, sentence=step.sentence, count=step.count)
        data.update(fixed=self.fixed, summary=self.summary)
        return data


def _change(kind: str, w: PlanWorkload) -> tuple[str, str, str] | None:
    """(kind, scope, target) of the change of ``kind`` that fixes ``w``; None for a kind we do not know."""
    if kind == "kubelet":
        return (kind, "pool", w.pool)
    if kind in CLUSTER_KINDS:
        return (kind, "cluster", "")
    if kind in WORKLOAD_KINDS:
        return (kind, "workload", w.key)
    return None


def artifact_index(artifacts: Iterable[Mapping], kind: str, pool: str = "") -> int | None:
    """Index of the cluster-level fix of ``kind`` (for ``kubelet``: of ``pool``, named by its files
    ``kubelet/<pool>/…`` or its title ``… (node pool <pool>)``), or None."""
    for i, art in enumerate(artifacts):
        if art.get("kind") != kind:
            continue
        if kind != "kubelet":
            return i
        files = art.get("files") or {}
        if any(str(path).startswith(f"kubelet/{pool}/") for path in files):
            return i
        m = _POOL_IN_TITLE.search(str(art.get("title") or ""))
        if m and m.group("pool") == pool:
            return i
    return None


def plan_fixes(workloads: Iterable[PlanWorkload], artifacts: Iterable[Mapping] = ()) -> Plan:
    """The changes that together fix every affected and at-risk workload (see the module docstring)."""
    artifacts = list(artifacts)
    rows = list(workloads)
    plan = Plan(unknown=sum(1 for w in rows if w.risk == "unknown"))
    targets = [w for w in rows if w.risk in TARGET_RISKS]
    plan.targets = len(targets)
    plan.unfixable = [w for w in targets if not w.recommended or w.recommended == "none"]
    fixable = [w for w in targets if w.recommended and w.recommended != "none"]

    covers: dict[tuple[str, str, str], set[int]] = {}
    recommends: dict[tuple[str, str, str], set[int]] = {}
    for i, w in enumerate(fixable):
        for kind in w.options:
            change = _change(kind, w)
            if change is None:
                continue
            covers.setdefault(change, set()).add(i)
            if kind == w.recommended:
                recommends.setdefault(change, set()).add(i)
    candidates = [c for c in covers if c in recommends]
    # A workload whose recommended kind is unknown to the plan still needs a change: its own.
    for i, w in enumerate(fixable):
        if not any(i in covers[c] for c in candidates):
            plan.unfixable.append(w)

    def score(c: tuple[str, str, str], left: set[int]) -> tuple:
        new = covers[c] & left
        scope_rank = 0 if c[1] != "workload" else 1
        return (-len(new), -len(recommends[c] & new), scope_rank, KIND_ORDER.get(c[0], 9), c[2])

    left = {i for c in candidates for i in covers[c]}
    while left:
        best = min(candidates, key=lambda c: score(c, left))
        new = covers[best] & left
        if not new:
            break
        kind, scope, target = best
        ordered = sorted(new, key=lambda i: fixable[i].key)
        plan.steps.append(
            Step(
                kind=kind,
                scope=scope,
                target=target,
                workloads=[fixable[i].key for i in ordered],
                refs=[fixable[i].ref for i in ordered],
                recommended_for=len(recommends[best] & new),
                artifact=artifact_index(artifacts, kind, target) if scope != "workload" else None,
            )
        )
        left -= new
    return plan
