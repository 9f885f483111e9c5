"""The API server's checks on ``pod.spec.dnsPolicy`` and ``pod.spec.dnsConfig``.

A Python model of ``validateDNSPolicy`` and ``validatePodDNSConfig`` in ``pkg/apis/core/validation``,
used to check every dnsConfig we render before a user sees it. Messages follow the API's
``field.Error`` format: ``<path>: <Type>: <value>: <detail>``, e.g.
``spec.dnsConfig.nameservers[0]: Invalid value: "10.0.0.300": must be a valid IP address, ...``.
Values are quoted as JSON (Go prints them with its own formatting; the wording otherwise matches).

Search entries: one trailing dot is trimmed, then the entry must be a DNS-1123 subdomain. With
``RelaxedDNSSearchValidation`` (alpha 1.32, on by default from 1.33, KEP-4427) ``_`` is allowed where
``-`` is, and a single ``.`` is accepted as is.

IP addresses are checked with :mod:`ipaddress`, which is stricter than Go's ``ParseIPSloppy`` in one
way: IPv4 octets with leading zeros (``010.0.0.1``) are refused. We never render those, so erring on
the strict side is safe. Zone suffixes (``fe80::1%eth0``) are refused, as Go's parser does.
"""

from __future__ import annotations

import ipaddress
import json
import re

from dnsaudit.core.kubelet import (
    DNS_POLICIES,
    MAX_NAMESERVERS,
    MAX_SEARCH_LIST_CHARS,
    MAX_SEARCH_PATHS,
)

DNS1123_SUBDOMAIN_MAX = 253

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = _LABEL + r"(\." + _LABEL + r")*"
_LABEL_US = r"_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_US_FMT = _LABEL_US + r"(\." + _LABEL_US + r")*"
_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_FMT)
_SUBDOMAIN_US_RE = re.compile(DNS1123_SUBDOMAIN_US_FMT)

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    f"validation is '{DNS1123_SUBDOMAIN_FMT}')"
)
_SUBDOMAIN_US_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    f"validation is '{DNS1123_SUBDOMAIN_US_FMT}')"
)
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def _quote(value: object) -> str:
    return json.dumps(value)


def _required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def _invalid(path: str, value: object, detail: str) -> str:
    return f"{path}: Invalid value: {_quote(value)}: {detail}"


def is_valid_ip(value: str) -> bool:
    """An IPv4 or IPv6 address literal, without a zone suffix (``IsValidIP``)."""
    if not isinstance(value, str) or "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def dns1123_subdomain_errors(value: str, *, allow_underscore: bool = False) -> list[str]:
    """``IsDNS1123Subdomain`` (or ``...WithUnderscore``): the reasons ``value`` is not a subdomain."""
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    pattern, msg = (
        (_SUBDOMAIN_US_RE, _SUBDOMAIN_US_MSG) if allow_underscore else (_SUBDOMAIN_RE, _SUBDOMAIN_MSG)
    )
    if not pattern.fullmatch(value):
        errs.append(msg)
    return errs


def validate_dns_policy(dns_policy: str, *, field_path: str = "spec") -> list[str]:
    """``validateDNSPolicy``: one of the four policies; ``""`` is "Required" (defaulting sets ClusterFirst,
    so pass the defaulted value for objects that omit it)."""
    path = f"{field_path}.dnsPolicy"
    if dns_policy in DNS_POLICIES:
        return []
    if dns_policy == "":
        return [_required(path)]
    supported = ", ".join(_quote(p) for p in sorted(DNS_POLICIES))
    return [f"{path}: Unsupported value: {_quote(dns_policy)}: supported values: {supported}"]


def _validate_searches(searches: list, path: str, relaxed: bool) -> list[str]:
    errs: list[str] = []
    if len(searches) > MAX_SEARCH_PATHS:
        errs.append(_invalid(path, searches, f"must not have more than {MAX_SEARCH_PATHS} search paths"))
    if len(" ".join(str(s) for s in searches)) > MAX_SEARCH_LIST_CHARS:
        errs.append(
            _invalid(
                path,
                searches,
                f"must not have more than {MAX_SEARCH_LIST_CHARS} characters (including spaces) in the search list",
            )
        )
    for i, search in enumerate(searches):
        if not isinstance(search, str):
            errs.append(_invalid(f"{path}[{i}]", search, "must be a string"))
            continue
        if relaxed and search == ".":
            continue  # RelaxedDNSSearchValidation accepts a lone "." verbatim
        trimmed = search[:-1] if search.endswith(".") else search  # "it is fine to have a trailing dot"
        errs += [
            _invalid(f"{path}[{i}]", trimmed, m)
            for m in dns1123_subdomain_errors(trimmed, allow_underscore=relaxed)
        ]
    return errs


def validate_dns_config(
    dns_policy: str,
    dns_config: dict | None,
    *,
    relaxed_search: bool = True,
    field_path: str = "spec",
) -> list[str]:
    """The API server's verdict on a pod's DNS fields: ``[]`` when valid, else messages with field paths.

    ``dns_config`` is ``pod.spec.dnsConfig`` in API shape (``nameservers``, ``searches``,
    ``options: [{"name", "value"}]``) or ``None``. ``field_path`` is where the pod spec sits
    (``"spec"`` for a Pod, ``"spec.template.spec"`` for a Deployment...). Rules (``validatePodDNSConfig``):

    * dnsPolicy ``None`` needs a dnsConfig and at least one nameserver (and stops there when missing);
    * at most 3 nameservers, each a valid IP;
    * at most 32 searches, at most 2048 characters joined with spaces, each a DNS-1123 subdomain after
      one trailing dot is trimmed (``relaxed_search``: also ``_`` and a lone ``.``);
    * every option has a non-empty name; values are free-form.
    """
    errs = validate_dns_policy(dns_policy, field_path=field_path)
    path = f"{field_path}.dnsConfig"
    if dns_policy == "None":
        if dns_config is None:
            return [*errs, _required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not dns_config.get("nameservers"):
            return [
                *errs,
                _required(
                    f"{path}.nameservers", "must provide at least one DNS nameserver when `dnsPolicy` is None"
                ),
            ]
    if dns_config is None:
        return errs

    nameservers = list(dns_config.get("nameservers") or [])
    if len(nameservers) > MAX_NAMESERVERS:
        errs.append(
            _invalid(
                f"{path}.nameservers", nameservers, f"must not have more than {MAX_NAMESERVERS} nameservers"
            )
        )
    for i, ns in enumerate(nameservers):
        if not is_valid_ip(ns):
            errs.append(_invalid(f"{path}.nameservers[{i}]", ns, _IP_MSG))

    errs += _validate_searches(list(dns_config.get("searches") or []), f"{path}.searches", relaxed_search)

    for i, option in enumerate(dns_config.get("options") or []):
        name = option.get("name") if isinstance(option, dict) else None
        if not name:
            errs.append(_required(f"{path}.options[{i}]", "must not be empty"))
    return errs
