"""Exemptions: "we know, and we accept this one". Pure rules over plain data (no Django, no network).

Two sources, one model. An exemption never changes a verdict: the workload keeps its ``risk`` and its
report gains ``"exemption": {"reason", "source", "by", "expires", "id"}`` while the exemption applies.

* **annotation** — ``dnsaudit.io/exempt: "<reason>"`` and optionally ``dnsaudit.io/exempt-until:
  "YYYY-MM-DD"`` on the workload object or on its pod template. The two are read as a pair from one
  place: the object's own metadata when it carries ``dnsaudit.io/exempt``, else the pod template's (a
  reason from one and a date from the other are never mixed). It is input from the cluster: the reason is
  cleaned (control characters become spaces, runs of blanks one space) and cut to
  :data:`MAX_REASON` characters; an empty reason or a date that is not ``YYYY-MM-DD`` makes the annotation
  ignored, with a note the report shows in its reasons. Never an exception.
* **dnsaudit** — entered in dnsaudit per cluster, namespace, workload (``KIND/NAME``) or image reference
  (:class:`Scope`); the fields must all match (an empty one matches anything). Input from a person: a bad
  value is refused (:func:`check_reason`, :func:`parse_expires`, :func:`parse_workload`,
  :func:`parse_image`) rather than cleaned.

An exemption applies through its ``expires`` day included (:func:`applies`); past it, it stops applying
and is listed as expired.

Precedence when several match one workload: **the one that applies longest wins** (no expiry first, then
the latest expiry), so a workload stays exempted as long as any matching exemption applies — a scan row
keeps one exemption and its last day, and must not lose the workload's exemption when a shorter one ends.
On equal terms the annotation wins (it travels with the workload and says what its owners wrote); among
dnsaudit exemptions, then the most specific (workload > image > namespace > cluster), then the newest
(:func:`choose`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

#: The annotations read from the cluster (on the workload or on its pod template).
REASON_KEY = "dnsaudit.io/exempt"
UNTIL_KEY = "dnsaudit.io/exempt-until"
KEYS = (REASON_KEY, UNTIL_KEY)

#: Longest reason kept (characters); a longer annotation is cut, a longer entered reason refused.
MAX_REASON = 500
#: Longest raw annotation value the inventory keeps (the rest of a huge value is never held).
MAX_RAW = 2 * MAX_REASON

SOURCES = ("annotation", "dnsaudit")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BLANKS = re.compile(r"\s+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}")
_TAG = re.compile(r"\w[\w.-]{0,127}")
_REPO = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::\d{1,5})?")
DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


# --- annotations (from the cluster) ---------------------------------------------------------------------


def _pair(annotations: object) -> dict[str, str]:
    if not isinstance(annotations, Mapping):
        return {}
    reason = annotations.get(REASON_KEY)
    if not isinstance(reason, str):
        return {}
    out = {REASON_KEY: reason[:MAX_RAW]}
    until = annotations.get(UNTIL_KEY)
    if isinstance(until, str):
        out[UNTIL_KEY] = until[:MAX_RAW]
    return out


def kept_annotations(metadata: object, template_metadata: object = None) -> dict[str, str]:
    """The exemption annotations to keep for a workload: at most the two :data:`KEYS`, as strings of at
    most :data:`MAX_RAW` characters, from the object's own ``metadata`` when it has ``dnsaudit.io/exempt``,
    else from its pod template's metadata; ``{}`` when neither has it. Any value shape is accepted."""
    own = _pair(metadata.get("annotations") if isinstance(metadata, Mapping) else None)
    if own:
        return own
    return _pair(template_metadata.get("annotations") if isinstance(template_metadata, Mapping) else None)


def clean_reason(text: str) -> str:
    """A reason from the cluster as it may be shown: control characters as spaces, blanks collapsed,
    trimmed, at most :data:`MAX_REASON` characters (cut with ``…``)."""
    text = _BLANKS.sub(" ", _CONTROL.sub(" ", text)).strip()
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 1].rstrip() + "…"
    return text


def _shown(value: str, n: int = 40) -> str:
    out = ascii(value[:n])
    return out + ("…" if len(value) > n else "")


def from_annotations(annotations: Mapping[str, str] | None, today: date) -> tuple[dict | None, str | None]:
    """``(exemption, note)`` for a workload's kept annotations (:func:`kept_annotations`).

    ``exemption`` is the report's ``{"reason", "source": "annotation", "by": None, "expires", "id": None}``
    when the annotation applies on ``today``; ``note`` says why an annotation present does not apply (an
    empty reason, a bad date, expired), for the report's reasons. Both None without the annotation.
    """
    pair = _pair(annotations)
    if not pair:
        return None, None
    reason = clean_reason(pair[REASON_KEY])
    if not reason:
        return None, f"The {REASON_KEY} annotation is empty: an exemption needs a reason; it is ignored."
    expires: date | None = None
    raw_until = pair.get(UNTIL_KEY)
    if raw_until is not None and raw_until.strip():
        try:
            expires = parse_date(raw_until.strip())
        except ValueError:
            return None, (
                f"The {UNTIL_KEY} annotation {_shown(raw_until)} is not a date (YYYY-MM-DD): "
                f"the {REASON_KEY} annotation is ignored."
            )
    if expires is not None and expires < today:
        return None, (
            f"The {REASON_KEY} annotation expired on {expires.isoformat()} ({UNTIL_KEY}): it no longer applies."
        )
    return {
        "reason": reason,
        "source": "annotation",
        "by": None,
        "expires": expires.isoformat() if expires else None,
        "id": None,
    }, None


# --- values entered in dnsaudit (refused when bad) ------------------------------------------------------


def parse_date(text: str) -> date:
    """``YYYY-MM-DD`` as a date; ValueError otherwise."""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        raise ValueError(f"{_shown(str(text))} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{_shown(text)} is not a date (YYYY-MM-DD)") from None


def parse_expires(text: str | None, today: date) -> date | None:
    """An entered expiry: empty is None (no expiry); a date before ``today`` is refused (ValueError)."""
    if text is None or not str(text).strip():
        return None
    when = parse_date(str(text).strip())
    if when < today:
        raise ValueError(f"the expiry date {when.isoformat()} is in the past (today is {today.isoformat()})")
    return when


def check_reason(text: str | None) -> str:
    """An entered reason, trimmed; ValueError when empty, longer than :data:`MAX_REASON` characters or
    holding a control character (a newline included: a reason is one line)."""
    text = (text or "").strip()
    if not text:
        raise ValueError("a reason is required")
    if len(text) > MAX_REASON:
        raise ValueError(f"the reason is {len(text)} characters long; at most {MAX_REASON}")
    if _CONTROL.search(text):
        raise ValueError("the reason may not contain control characters (one line of text)")
    return text


def check_namespace(text: str | None) -> str:
    """An entered namespace (empty: every namespace); ValueError unless a DNS-1123 label."""
    text = (text or "").strip()
    if text and not _LABEL.fullmatch(text):
        raise ValueError(f"namespace {_shown(text)} is not a DNS-1123 label")
    return text


def parse_workload(text: str | None) -> str:
    """An entered ``KIND/NAME`` (empty: every workload), as stored; ValueError when malformed."""
    text = (text or "").strip()
    if not text:
        return ""
    kind, sep, name = text.partition("/")
    if not sep or not _KIND.fullmatch(kind):
        raise ValueError(f"workload {_shown(text)} is not KIND/NAME (e.g. Deployment/web)")
    if not (0 < len(name) <= 253 and all(_LABEL.fullmatch(p) for p in name.split("."))):
        raise ValueError(f"workload name {_shown(name)} is not a DNS-1123 subdomain")
    return f"{kind}/{name}"


@dataclass(frozen=True)
class ImageRef:
    """An image reference normalised as Docker does (``alpine`` = ``docker.io/library/alpine``)."""

    repository: str  # registry/name
    tag: str | None
    digest: str | None


def image_ref(text: str) -> ImageRef | None:
    """``[registry[:port]/]name[:tag][@digest]`` normalised, or None when it is not a reference."""
    ref = (text or "").strip()
    if not ref or len(ref) > 1024 or any(c.isspace() for c in ref):
        return None
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            return None
    tag = None
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
        if not _TAG.fullmatch(tag):
            return None
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, name = first, rest
        if not _HOST.fullmatch(registry):
            return None
    else:
        registry, name = DOCKER_HUB, ref
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in name:
        name = "library/" + name
    if not _REPO.fullmatch(name):
        return None
    return ImageRef(f"{registry.lower()}/{name}", tag, digest)


def parse_image(text: str | None) -> str:
    """An entered image reference (empty: any image), as typed; ValueError when it is not one."""
    text = (text or "").strip()
    if text and image_ref(text) is None:
        raise ValueError(f"{_shown(text)} is not an image reference ([registry/]name[:tag][@digest])")
    return text


def image_matches(pattern: str, image: str, digest: str | None = None) -> bool:
    """Whether a container's ``image`` (with its resolved ``digest``) is the exemption's ``pattern``.

    Same repository after normalisation; a pattern with a digest needs that digest (in the reference or
    resolved); a pattern with a tag needs that tag (an untagged image is ``latest``); a bare repository
    matches every tag and digest of it.
    """
    want, got = image_ref(pattern), image_ref(image)
    if want is None or got is None or want.repository != got.repository:
        return False
    if want.digest:
        return want.digest in (got.digest, digest)
    if want.tag:
        return (got.tag or ("latest" if got.digest is None else None)) == want.tag
    return True


# --- matching dnsaudit exemptions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """A dnsaudit exemption as the matcher sees it (``clusters.models.Exemption``'s fields)."""

    id: int
    namespace: str = ""
    workload: str = ""  # KIND/NAME
    image: str = ""
    reason: str = ""
    by: str = ""
    expires: date | None = None

    @property
    def specificity(self) -> int:
        return (4 if self.workload else 0) + (2 if self.image else 0) + (1 if self.namespace else 0)

    def as_exemption(self) -> dict:
        """The report's ``exemption`` object for this exemption."""
        return {
            "reason": self.reason,
            "source": "dnsaudit",
            "by": self.by,
            "expires": self.expires.isoformat() if self.expires else None,
            "id": self.id,
        }


def matches(scope: Scope, report: Mapping) -> bool:
    """Whether ``scope`` covers the workload of ``report`` (shared schema): namespace equal, ``KIND/NAME``
    equal (the kind case-insensitively), and some container's image matching :func:`image_matches`."""
    if scope.namespace and report.get("namespace") != scope.namespace:
        return False
    if scope.workload:
        kind, _, name = scope.workload.partition("/")
        if str(report.get("kind", "")).lower() != kind.lower() or report.get("name") != name:
            return False
    if scope.image:
        containers = report.get("containers") or ()
        if not any(
            isinstance(c, Mapping) and image_matches(scope.image, str(c.get("image") or ""), c.get("digest"))
            for c in containers
        ):
            return False
    return True


def applies(expires: date | str | None, today: date) -> bool:
    """An exemption applies through its ``expires`` day (None: no expiry)."""
    if expires is None or expires == "":
        return True
    if isinstance(expires, str):
        try:
            expires = date.fromisoformat(expires)
        except ValueError:
            return False
    return expires >= today


def choose(scopes: Iterable[Scope], report: Mapping, today: date) -> Scope | None:
    """The dnsaudit exemption that applies to ``report``'s workload on ``today`` (module docstring: the
    longest-lasting, then the most specific, then the newest), or None."""
    best: Scope | None = None
    best_key: tuple = ()
    for s in scopes:
        if not applies(s.expires, today) or not matches(s, report):
            continue
        key = (s.expires is None, s.expires or date.min, s.specificity, s.id)
        if best is None or key > best_key:
            best, best_key = s, key
    return best


def _last_day(expires: date | str | None) -> date:
    if expires is None or expires == "":
        return date.max
    return date.fromisoformat(expires) if isinstance(expires, str) else expires


def resolve(annotation: dict | None, scopes: Iterable[Scope], report: Mapping, today: date) -> dict | None:
    """The exemption of one workload on ``today``: of its annotation (while it applies) and
    :func:`choose`'s dnsaudit exemption, the one that applies longer; the annotation on equal terms."""
    if annotation is not None and not applies(annotation.get("expires"), today):
        annotation = None
    chosen = choose(scopes, report, today)
    if chosen is None:
        return annotation
    if annotation is not None and _last_day(annotation.get("expires")) >= _last_day(chosen.expires):
        return annotation
    return chosen.as_exemption()
