"""``manage.py inspect-image REF [--platform linux/amd64] [--json]``: which libc an image uses."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from dnsaudit.boundary.registry import (
    INSECURE_ENV,
    RegistryClient,
    RegistryError,
    credentials_from_environment,
    parse_reference,
)
from dnsaudit.core.libc import infer_from_reference
from dnsaudit.core.model import LibcVerdict

HELP = f"""Tell whether an image uses musl (and which version), glibc, or static binaries.

Reads the image from its registry (only the layers needed, from the top). Credentials come from the
Docker convention: REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
Registries on 127.0.0.0/8, ::1 and localhost, and those listed in {INSECURE_ENV} (comma-separated
host[:port]), are reached over plain HTTP.

Exit status: 0 when a verdict is printed. If the registry cannot be reached (connection refused,
timeout, 5xx), the verdict is inferred from the reference alone (confidence "inferred", libc
"unknown" unless the name says e.g. alpine:3.18), a warning goes to stderr, and the exit status is
still 0. Errors the user must fix (image not found, credentials refused, TLS against a plain-HTTP
registry) print one line on stderr and exit 1; bad usage (a bad reference or platform, a missing
argument) exits 2.
"""


def verdict_json(ref: str, v: LibcVerdict) -> dict:
    """The documented JSON shape of one verdict."""
    return {
        "ref": ref,
        "digest": v.digest,
        "platform": v.platform,
        "libc": v.libc,
        "musl_version": v.musl_version,
        "os": {"id": v.os_id, "version": v.os_version},
        "evidence": list(v.evidence),
        "confidence": v.confidence,
    }


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name, subcommand, **kwargs):
        from argparse import RawDescriptionHelpFormatter

        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser) -> None:
        parser.add_argument("ref", help="image reference, e.g. alpine:3.18 or host:5000/team/app@sha256:…")
        parser.add_argument(
            "--platform", default="linux/amd64", help="os/arch[/variant] (default linux/amd64)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--timeout", type=float, default=20.0, help="seconds per registry request")

    def handle(self, *args, **opts) -> None:
        ref: str = opts["ref"]
        platform: str = opts["platform"]
        if len(platform.split("/")) not in (2, 3) or not all(platform.split("/")):
            raise CommandError(f"invalid --platform {platform!r} (expected os/arch[/variant])", returncode=2)
        try:
            parse_reference(ref)
        except ValueError as e:
            raise CommandError(str(e), returncode=2) from None
        client = RegistryClient(credentials=credentials_from_environment(), timeout=opts["timeout"])
        try:
            v = client.inspect(ref, platform)
        except RegistryError as e:
            if not e.transient:
                raise CommandError(str(e)) from None
            sys.stderr.write(f"warning: {e}; verdict inferred from the reference only\n")
            v = infer_from_reference(ref)
            v.platform = platform
            v.evidence.append(f"registry not read: {e}")
        data = verdict_json(ref, v)
        if opts["json"]:
            self.stdout.write(json.dumps(data, indent=2))
            return
        libc = v.libc + (f" {v.musl_version}" if v.musl_version else "")
        lines = [
            ref,
            f"  libc:       {libc} ({v.confidence})",
            f"  os:         {v.os_id or '-'} {v.os_version or ''}".rstrip(),
            f"  platform:   {v.platform}",
            f"  digest:     {v.digest or '-'}",
            "  evidence:",
            *(f"    - {e}" for e in v.evidence),
        ]
        self.stdout.write("\n".join(lines))
