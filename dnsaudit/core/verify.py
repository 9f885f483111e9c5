"""Exec verification, the pure part: compare what a pod really has with what the audit computed.

The optional exec verification (issue 4) reads ``/etc/resolv.conf`` and lists ``/lib`` inside one running
pod per musl workload. This module judges those observations; ``clusters/verify.py`` gathers them.

* :func:`resolv_differences` compares the computed resolv.conf (the report's ``resolv_conf`` lists) with the
  file read from the pod *as the libc parses them*, not byte for byte: comments, spacing, line order and
  options the libc ignores do not count; a search line musl drops for length does; for musl the order of
  nameservers does not count (it asks all of them in parallel), for glibc it does (it asks in turn).
  A pod's file differs from the computed one when the pod was created before a change (node resolv.conf,
  kubelet flags, the workload's ``dnsConfig``): the file is written once, at sandbox creation.
* :func:`musl_loader` finds ``ld-musl-<arch>.so.1`` in an ``ls /lib`` listing; :func:`libc_confirmation`
  says whether that agrees with the libc verdict from the image inspection.
* :func:`build_finding` assembles the finding dict stored with the workload.

No Django, network or client imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dnsaudit.core.kubelet import render_resolv_conf
from dnsaudit.core.model import ResolvConf
from dnsaudit.core.resolvconf import GlibcConf, MuslConf, parse_glibc, parse_musl

#: musl's dynamic loader: ``/lib/ld-musl-$(ARCH)$(SUBARCH).so.1`` (x86_64, aarch64, armhf, riscv64…).
_MUSL_LOADER = re.compile(r"^(?:/lib/)?(ld-musl-[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*\.so\.1)$")


def _as_conf(expected: ResolvConf | Mapping) -> ResolvConf:
    if isinstance(expected, ResolvConf):
        return expected
    return ResolvConf(
        nameservers=tuple(expected.get("nameservers") or ()),
        searches=tuple(expected.get("searches") or ()),
        options=tuple(expected.get("options") or ()),
    )


def _diff(field: str, expected: object, observed: object, message: str) -> dict:
    return {"field": field, "expected": expected, "observed": observed, "message": message}


def _list_delta(expected: tuple[str, ...], observed: tuple[str, ...], what: str) -> str:
    extra = [x for x in observed if x not in expected]
    missing = [x for x in expected if x not in observed]
    parts = []
    if extra:
        parts.append(f"the pod has {', '.join(extra)} which the computed file does not")
    if missing:
        parts.append(f"the pod lacks {', '.join(missing)}")
    if not parts:
        parts.append("same entries in a different order")
    return f"{what}: " + "; ".join(parts)


def resolv_differences(
    expected: ResolvConf | Mapping, observed_text: str, *, libc: str = "musl"
) -> list[dict]:
    """What differs between the computed resolv.conf and the pod's file, as ``libc`` reads them.

    ``expected`` is a :class:`ResolvConf` or the report's ``resolv_conf`` dict; ``libc`` is ``"musl"``
    (default) or ``"glibc"``. Returns one dict per differing item: ``{"field", "expected", "observed",
    "message"}`` with ``field`` in ``nameservers``, ``searches``, ``ndots``, ``timeout``, ``attempts``,
    ``search_line_ignored`` (musl) or ``flags`` (glibc). An empty list means the libc sees the same thing.
    Never raises.
    """
    text = render_resolv_conf(_as_conf(expected))
    out: list[dict] = []
    if libc == "glibc":
        eg, og = parse_glibc(text), parse_glibc(observed_text)
        _common(eg, og, out, ordered_nameservers=True)
        if eg.flags != og.flags:
            out.append(
                _diff(
                    "flags",
                    sorted(eg.flags),
                    sorted(og.flags),
                    f"options: computed {sorted(eg.flags) or 'none'}, the pod has {sorted(og.flags) or 'none'}",
                )
            )
        return out
    em, om = parse_musl(text), parse_musl(observed_text)
    _common(em, om, out, ordered_nameservers=False)
    if em.search_line_ignored != om.search_line_ignored:
        out.append(
            _diff(
                "search_line_ignored",
                em.search_line_ignored,
                om.search_line_ignored,
                "musl ignores the pod's search line (longer than 254 characters)"
                if om.search_line_ignored
                else "musl would ignore the computed search line, but reads the pod's",
            )
        )
    return out


def _common(
    e: MuslConf | GlibcConf, o: MuslConf | GlibcConf, out: list[dict], *, ordered_nameservers: bool
) -> None:
    same_ns = (
        e.nameservers == o.nameservers if ordered_nameservers else set(e.nameservers) == set(o.nameservers)
    )
    if not same_ns:
        out.append(
            _diff(
                "nameservers",
                list(e.nameservers),
                list(o.nameservers),
                _list_delta(e.nameservers, o.nameservers, "nameservers"),
            )
        )
    if e.search != o.search:
        out.append(
            _diff("searches", list(e.search), list(o.search), _list_delta(e.search, o.search, "search"))
        )
    for key in ("ndots", "timeout", "attempts"):
        ev, ov = getattr(e, key), getattr(o, key)
        if ev != ov:
            out.append(_diff(key, ev, ov, f"{key}: computed {ev}, the pod has {ov}"))


def musl_loader(listing: str) -> str | None:
    """The musl loader's path from the output of ``ls /lib`` (names) or ``ls /lib/ld-musl-*`` (paths)."""
    for line in listing.splitlines():
        m = _MUSL_LOADER.match(line.strip())
        if m:
            return "/lib/" + m.group(1)
    return None


def libc_confirmation(libc: str | None, loader: str | None, *, listed: bool) -> bool | None:
    """Whether the pod's ``/lib`` agrees with the image's libc verdict.

    True: a musl verdict and a musl loader, or a glibc/static verdict and none. False: they disagree.
    None: ``/lib`` could not be listed (``listed`` false) or the verdict is unknown.
    """
    if not listed or libc not in ("musl", "glibc", "static"):
        return None
    return (loader is not None) == (libc == "musl")


def build_finding(
    report: Mapping,
    pod: str,
    container: str | None,
    *,
    observed_resolv_conf: str | None,
    lib_listing: str | None,
    error: str | None = None,
) -> dict:
    """One exec-verification finding for a workload (the report dict from the audit).

    ``observed_resolv_conf`` is the pod's file (None if it could not be read); ``lib_listing`` is the output
    of ``ls /lib`` (None if it could not be listed). ``matches`` is None when nothing was observed.
    The libc compared against is the verdict of ``container`` in ``report["containers"]`` (musl when unknown:
    only musl workloads are verified).
    """
    verdict = next(
        (c.get("libc") for c in report.get("containers") or () if c.get("name") == container),
        None,
    )
    parse_as = "glibc" if verdict == "glibc" else "musl"
    differences: list[dict] = []
    matches: bool | None = None
    if observed_resolv_conf is not None:
        differences = resolv_differences(report.get("resolv_conf") or {}, observed_resolv_conf, libc=parse_as)
        matches = not differences
    loader = musl_loader(lib_listing) if lib_listing is not None else None
    return {
        "namespace": report.get("namespace"),
        "kind": report.get("kind"),
        "name": report.get("name"),
        "pod": pod,
        "container": container,
        "observed_resolv_conf": observed_resolv_conf,
        "matches": matches,
        "differences": differences,
        "musl_loader": loader,
        "libc_confirmed": libc_confirmation(verdict, loader, listed=lib_listing is not None),
        "error": error,
    }


def finding_reason(finding: Mapping) -> str | None:
    """The one-line reason to add to the workload's reasons, or None when the pod agrees with the audit."""
    who = f"pod {finding.get('pod')}"
    if finding.get("error"):
        return f"Exec verification could not run in {who}: {finding['error']}"
    parts = []
    if finding.get("matches") is False:
        what = "; ".join(d["message"] for d in finding.get("differences") or ())
        parts.append(
            f"Exec verification: {who}'s /etc/resolv.conf differs from the computed one ({what}); the file is "
            "written when the pod starts, so pods created before a change keep the old one until restarted."
        )
    if finding.get("libc_confirmed") is False:
        loader = finding.get("musl_loader")
        parts.append(
            f"Exec verification: {who} has {loader}, but the image was judged not to use musl."
            if loader
            else f"Exec verification: {who} has no /lib/ld-musl-*, but the image was judged to use musl."
        )
    return " ".join(parts) or None
