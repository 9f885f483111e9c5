"""``manage.py audit-manifests``: audit Kubernetes manifests offline (no cluster), for CI.

    manage.py audit-manifests PATH... [--node-resolv-conf FILE] [--cluster-dns IP]
        [--cluster-domain DOMAIN] [--kubelet-version V] [--domain-answer DOMAIN=ANSWER]... [--inspect-images]
        [--format table|json|sarif] [--fail-on affected|at-risk|never] [--write-patches DIR]

``--write-patches DIR`` writes each flagged workload's patch (dnsPolicy None + full dnsConfig) as
``DIR/<namespace>/<kind>-<name>.yaml``, the file names of the bundle's ``patches/``; ``--format json`` carries
the same patch as ``remediation.patch``. A run that finds no workload says so on stderr.

PATHs are YAML/JSON files or folders (searched recursively for *.yaml, *.yml, *.json). Without
``--node-resolv-conf`` the node is assumed to add no search domain (said in every non-safe verdict).
An extra search domain is ``at-risk`` unless ``--domain-answer DOMAIN=NODATA`` (or another failing
answer) says what cluster DNS answers for it, which makes musl workloads ``affected``.
Without ``--inspect-images`` each image's libc is inferred from its reference (``alpine:3.16`` → musl
1.2.3); with it, the registry is read (falling back to the reference when it cannot be reached).

Output: ``--format json`` prints ``{"workloads": [...]}`` in the shared report schema; ``sarif`` prints
SARIF 2.1.0 (one result per affected/at-risk/unknown workload, at its file and document line) for code
scanning; ``table`` (default) is a table plus the reasons, coloured when stdout is a terminal.
Errors for unreadable files or documents go to stderr (file, document number, line); the rest is
still audited.

Exit status:
  0  no workload at or above --fail-on, and every input was read;
  1  some workload at or above --fail-on (default ``affected``; ``at-risk`` also counts at-risk and
     unknown; ``never`` never fails on findings); an exempted workload (``dnsaudit.io/exempt``, not past
     ``dnsaudit.io/exempt-until``) keeps its risk but never counts;
  2  bad usage, a missing path, or some file/document that could not be read (takes precedence:
     a CI gate must not pass on input it could not check).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from django.core.management.base import BaseCommand, CommandError

from dnsaudit.core import manifests
from dnsaudit.core.model import LibcVerdict

EPILOG = """exit status:
  0  no workload at or above --fail-on, and every input was read
  1  some workload at or above --fail-on (default: affected; at-risk also counts at-risk and unknown);
     exempted workloads (annotation dnsaudit.io/exempt) never count
  2  bad usage, a missing path, or a file/document that could not be read (takes precedence)
"""


class Command(BaseCommand):
    help = (
        "Audit Kubernetes manifests for workloads whose musl images will fail DNS lookups (offline, for CI)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object) -> argparse.ArgumentParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = EPILOG
        parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the epilog's lines
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML/JSON files or folders")
        parser.add_argument(
            "--node-resolv-conf", metavar="FILE", help="the node's resolv.conf the kubelet reads"
        )
        parser.add_argument(
            "--cluster-dns",
            default="10.96.0.10",
            metavar="IP",
            help="kubelet clusterDNS (default 10.96.0.10)",
        )
        parser.add_argument(
            "--cluster-domain", default="cluster.local", metavar="DOMAIN", help="default cluster.local"
        )
        parser.add_argument(
            "--kubelet-version", metavar="V", help="e.g. v1.25.0 (changes 'search .' handling)"
        )
        parser.add_argument(
            "--domain-answer",
            action="append",
            default=[],
            metavar="DOMAIN=ANSWER",
            help="what cluster DNS answers for names under an extra search domain, when known: "
            "NXDOMAIN, NODATA, SERVFAIL, REFUSED, NOTIMP, FORMERR or TIMEOUT (repeatable). "
            "Without it such a domain makes workloads at-risk, with a failing answer affected.",
        )
        parser.add_argument("--inspect-images", action="store_true", help="read each image from its registry")
        parser.add_argument("--platform", default="linux/amd64", help="image platform for --inspect-images")
        parser.add_argument("--format", choices=("table", "json", "sarif"), default="table")
        parser.add_argument("--fail-on", choices=("affected", "at-risk", "never"), default="affected")
        parser.add_argument(
            "--write-patches",
            metavar="DIR",
            help="write each flagged workload's patch to DIR/<namespace>/<kind>-<name>.yaml (the bundle's names)",
        )

    def handle(self, *args: object, **opts: object) -> None:
        node_text = None
        if opts.get("node_resolv_conf"):
            try:
                with open(str(opts["node_resolv_conf"]), encoding="utf-8") as fh:
                    node_text = fh.read()
            except OSError as exc:
                raise CommandError(f"cannot read --node-resolv-conf: {exc}", returncode=2) from None
        cluster_dns = str(opts.get("cluster_dns") or "")
        try:
            ipaddress.ip_address(cluster_dns)
        except ValueError:
            raise CommandError(f"--cluster-dns {cluster_dns!r} is not an IP address", returncode=2) from None
        answers: dict[str, str] = {}
        for item in opts.get("domain_answer") or []:  # type: ignore[union-attr]
            try:
                domain, answer = manifests.parse_domain_answer(str(item))
            except ValueError as exc:
                raise CommandError(f"--domain-answer: {exc}", returncode=2) from None
            answers[domain] = answer
        inspect = None
        if opts.get("inspect_images"):
            from dnsaudit.boundary.registry import RegistryClient  # lazy: network code only when asked

            client = RegistryClient()
            platform = str(opts.get("platform") or "linux/amd64")

            def inspect(ref: str) -> LibcVerdict:
                return client.inspect_or_infer(ref, platform)

        options = manifests.Options(
            paths=[str(p) for p in opts["paths"]],  # type: ignore[union-attr]
            node_resolv_conf=node_text,
            cluster_dns=cluster_dns,
            cluster_domain=str(opts.get("cluster_domain") or ""),
            kubelet_version=opts.get("kubelet_version") or None,  # type: ignore[arg-type]
            inspect=inspect,
            domain_answers=answers,
            fmt=str(opts["format"]),
            fail_on=str(opts["fail_on"]),
        )
        result = manifests.audit_paths(options)
        for err in result.errors:
            sys.stderr.write(f"audit-manifests: {err}\n")
        if not result.audits:
            where = ", ".join(str(p) for p in opts["paths"])  # type: ignore[union-attr]
            sys.stderr.write(
                f"audit-manifests: no workloads found in {where} "
                f"({result.files} file(s) read; workload kinds: {', '.join(manifests.WORKLOAD_KINDS)})\n"
            )
        if result.files == 0 and not result.errors:
            sys.stderr.write("audit-manifests: no *.yaml, *.yml or *.json file found\n")
        if opts.get("write_patches"):
            try:
                written = manifests.write_patches(result, str(opts["write_patches"]))
            except OSError as exc:
                raise CommandError(f"--write-patches: {exc}", returncode=2) from None
            sys.stderr.write(
                f"audit-manifests: {len(written)} patch(es) written to {opts['write_patches']}\n"
            )
        if options.fmt == "json":
            sys.stdout.write(manifests.to_json(result))
        elif options.fmt == "sarif":
            sys.stdout.write(manifests.to_sarif(result))
        else:
            manifests.to_table(result, sys.stdout, rich_terminal=sys.stdout.isatty())
        sys.stdout.flush()
        code = manifests.exit_code(result, options.fail_on)
        if code:
            sys.exit(code)
