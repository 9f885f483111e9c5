"""``manage.py add-cluster --kubeconfig FILE [--context NAME | --all-contexts] [--name NAME] [--allow-exec]``.

Registers clusters from a kubeconfig with the same checks as the dashboard (see clusters.registry).
A valid kubeconfig is stored even when the cluster cannot be reached right now (a warning says how
to test again); bad input prints one line on stderr, exits 1 and stores nothing. Output shows the
sanitized summary only, never a secret.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import auditlog
from clusters.registry import connection_test, import_kubeconfig


class Command(BaseCommand):
    help = "Register clusters from a kubeconfig (commands, auth plugins and file paths are refused)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--kubeconfig", required=True, metavar="FILE", help="kubeconfig file, or - for stdin"
        )
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--context", metavar="NAME", help="context to import (default: current-context)")
        which.add_argument(
            "--all-contexts", action="store_true", help="import every context as its own cluster"
        )
        parser.add_argument(
            "--name", metavar="NAME", help="dnsaudit's name for the cluster (with --all-contexts: a prefix)"
        )
        parser.add_argument("--notes", default="", help="free text shown on the cluster page")
        parser.add_argument(
            "--allow-exec",
            action="store_true",
            help=(
                "allow exec reads (default off): `cat /etc/resolv.conf` in a few running pods per node pool "
                "(the nodes' search domains) and in one pod per musl workload (verification); needs get and "
                "create on pods/exec, writes nothing. With --all-contexts: every context. "
                "Change later with `set-cluster NAME --allow-exec|--no-allow-exec`."
            ),
        )
        parser.add_argument("--skip-test", action="store_true", help="do not try to connect after storing")

    def handle(self, *args, **options) -> None:
        data = self._read(options["kubeconfig"])
        try:
            result = import_kubeconfig(
                data,
                context=options["context"],
                all_contexts=options["all_contexts"],
                name=options["name"],
                notes=options["notes"],
                allow_exec=options["allow_exec"],
            )
        except ValueError as exc:  # KubeconfigError / RegistryError: user-facing and secret-free
            raise CommandError(f"nothing stored: {exc}") from None

        for added in result.clusters:
            auditlog.record(
                "cluster.add",
                via="cli",
                target=added.name,
                context=added.context,
                allow_exec=added.allow_exec,
            )
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        for cluster in result.clusters:
            s = cluster.summary
            self.stdout.write(self.style.SUCCESS(f"stored cluster {cluster.name}"))
            rows = [
                ("context", s.get("context")),
                ("server", s.get("server")),
                ("cluster", s.get("cluster")),
                ("user", s.get("user") or "(none)"),
                ("auth", s.get("auth_kind")),
                ("ca sha256", s.get("ca_fingerprint_sha256") or "(none: system trust store)"),
                ("allow exec", "yes" if cluster.allow_exec else "no"),
            ]
            if s.get("client_cert_subject"):
                rows.append(
                    ("client cert", f"{s['client_cert_subject']} (expires {s['client_cert_not_after']})")
                )
            if s.get("insecure_skip_tls_verify"):
                rows.append(("tls", "NOT VERIFIED (insecure-skip-tls-verify)"))
            for label, value in rows:
                self.stdout.write(f"  {label:<12} {value}")
            if options["skip_test"]:
                continue
            test = connection_test(cluster)
            if test["reachable"]:
                version = test["server_version"]
                if isinstance(version, dict):
                    version = version.get("gitVersion") or version
                self.stdout.write(f"  {'reachable':<12} yes (Kubernetes {version})")
                for check in test["checks"]:
                    self.stdout.write(f"  {'permission':<12} {_check_line(check)}")
            if test["reachable"] and test["error"]:
                self.stderr.write(
                    self.style.WARNING(f"warning: {cluster.name}: permission check failed: {test['error']}")
                )
            elif not test["reachable"]:
                self.stderr.write(
                    self.style.WARNING(
                        f"warning: {cluster.name} stored; cluster not reachable now: {test['error']}; "
                        "run the connection test from the cluster page or `manage.py add-cluster` again"
                    )
                )

    def _read(self, path: str) -> bytes:
        # Read at most one byte past the limit: enough to refuse an oversized file without slurping it.
        limit = settings.DNSAUDIT_KUBECONFIG_MAX_BYTES + 1
        try:
            if path == "-":
                return sys.stdin.buffer.read(limit)
            with open(path, "rb") as fh:
                return fh.read(limit)
        except OSError as exc:
            raise CommandError(f"nothing stored: cannot read {path}: {exc.strerror}") from None


def _check_line(check: object) -> str:
    """``ok      pods: list pods (all namespaces)`` or ``MISSING ...`` with what the audit loses."""
    if not isinstance(check, dict):
        return str(check)
    allowed = check.get("allowed")
    line = f"{'ok' if allowed else 'MISSING':<8}{check.get('fact', '')}: {check.get('permission', '')}"
    if not allowed and check.get("loss"):
        line += f" ({check['loss']})"
    return line
