"""``manage.py reader-rbac [--allow-exec] [--namespace NS] [--without-token-secret]``.

Prints (multi-document YAML, for ``kubectl apply -f -``) a read-only identity for dnsaudit in the cluster
to audit: a ServiceAccount, a ClusterRole with exactly the permissions a scan uses
(``dnsaudit.core.permissions``, the table the connection test checks too), a ClusterRoleBinding and a
Secret of type ``kubernetes.io/service-account-token``. ``--allow-exec`` adds ``pods/exec`` (get, create)
and nothing else. ``--help`` prints the steps that turn the ServiceAccount into a kubeconfig dnsaudit
accepts.
"""

from __future__ import annotations

import argparse

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dnsaudit.core.permissions import READER_NAMESPACE, kubeconfig_steps, reader_objects

_NS_RE = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def render(namespace: str = READER_NAMESPACE, *, allow_exec: bool = False, token_secret: bool = True) -> str:
    """The YAML the command prints."""
    objs = reader_objects(namespace, allow_exec=allow_exec, token_secret=token_secret)
    return yaml.safe_dump_all(objs, sort_keys=False, explicit_start=True)


class Command(BaseCommand):
    help = (
        "Print the ServiceAccount, read-only ClusterRole (exactly what a scan reads), ClusterRoleBinding and "
        "token Secret that give dnsaudit its own read-only identity in a cluster: "
        "`python manage.py reader-rbac | kubectl apply -f -`."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = "Then make a kubeconfig dnsaudit accepts (a token, the CA and the server):\n\n" + (
            kubeconfig_steps()
        )
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--namespace",
            default=READER_NAMESPACE,
            metavar="NS",
            help=f"namespace of the ServiceAccount and its token Secret (default {READER_NAMESPACE}; must exist)",
        )
        parser.add_argument(
            "--allow-exec",
            action="store_true",
            help="also grant get and create on pods/exec (exec reads: `cat /etc/resolv.conf` in a few pods)",
        )
        parser.add_argument(
            "--without-token-secret",
            action="store_true",
            help="leave out the long-lived token Secret (in-cluster mode uses the pod's own projected token)",
        )

    def handle(self, *args, **options) -> None:
        import re

        ns = options["namespace"]
        if not re.match(_NS_RE, ns):
            raise CommandError(f"--namespace {ns!r} is not a valid namespace name (a DNS-1123 label)")
        self.stdout.write(
            render(ns, allow_exec=options["allow_exec"], token_secret=not options["without_token_secret"]),
            ending="",
        )
