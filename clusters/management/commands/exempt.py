"""``manage.py exempt NAME [--namespace NS] [--workload KIND/NAME] [--image REF] --reason TEXT [--expires YYYY-MM-DD]``.

Exempt workloads of a cluster: every workload (no scope option), a namespace's, one workload
(``KIND/NAME``, in every namespace unless ``--namespace``) or those running an image reference (a bare
repository matches every tag of it); the options combine (all must match). An exemption never changes a
verdict: the workloads keep their risk and are shown apart, with the reason. It applies to the current
report at once and to later scans, through its ``--expires`` day included.

Prints the new exemption's id on stdout (``ID=$(manage.py exempt …)``), and on stderr what it covers.
Exit status: 0 created; 2 bad usage (unknown cluster, no or empty reason, a reason over 500 characters or
with a control character, a date that is not YYYY-MM-DD or is in the past, a malformed namespace,
workload or image). Errors are one line on stderr; nothing is stored then.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import auditlog, exemptions
from clusters.models import Cluster

#: ``created_by`` of the exemptions this command creates.
CLI_AUTHOR = "cli"


class Command(BaseCommand):
    help = (
        "Exempt a cluster's workloads (all, a namespace, KIND/NAME or an image) with a reason and an optional "
        "expiry; prints the exemption's id. Exit 0 created; 2 bad usage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="the cluster's name in dnsaudit")
        parser.add_argument("--namespace", metavar="NS", default="", help="only this namespace")
        parser.add_argument(
            "--workload", metavar="KIND/NAME", default="", help="only this workload (e.g. Deployment/web)"
        )
        parser.add_argument(
            "--image",
            metavar="REF",
            default="",
            help="only workloads running this image (a bare name: any tag)",
        )
        parser.add_argument("--reason", metavar="TEXT", required=True, help="why (required, one line)")
        parser.add_argument(
            "--expires", metavar="YYYY-MM-DD", default="", help="the last day it applies (default: no expiry)"
        )

    def handle(self, *args, **opts) -> None:
        cluster = Cluster.objects.defer("kubeconfig_encrypted").filter(name=opts["name"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named {opts['name']!r}", returncode=2)
        try:
            e, applied = exemptions.create(
                cluster,
                reason=opts["reason"],
                by=CLI_AUTHOR,
                namespace=opts["namespace"],
                workload=opts["workload"],
                image=opts["image"],
                expires=opts["expires"],
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        auditlog.record(
            "exemption.create",
            via="cli",
            target=cluster.name,
            id=e.pk,
            namespace=e.namespace,
            workload=e.workload,
            image=e.image,
            expires=e.expires.isoformat() if e.expires else None,
            reason=e.reason,
        )
        self.stdout.write(str(e.pk))
        scope = " ".join(
            part
            for part in (
                f"namespace {e.namespace}" if e.namespace else "",
                f"workload {e.workload}" if e.workload else "",
                f"image {e.image}" if e.image else "",
            )
            if part
        )
        until = f" until {e.expires.isoformat()}" if e.expires else ""
        self.stderr.write(
            f"exemption {e.pk} of cluster {cluster.name} ({scope or 'every workload'}){until}: "
            f"{applied} workload{'s' if applied != 1 else ''} of the current report exempted"
        )
