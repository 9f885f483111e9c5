"""``manage.py exemptions NAME [--json]``: a cluster's exemptions, entered in dnsaudit and by annotation.

Lists every dnsaudit exemption (newest first) with its status — ``active``, ``expired`` (past its last
day) or ``removed`` — its scope, expiry, who created (and removed) it and when, and how many workloads
of the current report it exempts; then the current report's workloads exempted by annotation
(``dnsaudit.io/exempt``), active or expired. ``--json`` prints ``{"cluster", "exemptions": [{"id",
"cluster", "namespace", "workload", "image", "reason", "expires", "status", "created_by", "created_at",
"removed_by", "removed_at", "workloads"}], "annotations": [{"namespace", "kind", "name", "risk", "reason",
"expires", "status"}]}``. Exit status: 0; 2 unknown cluster.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import exemptions
from clusters.models import Cluster


def _one_line(text: str, n: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


class Command(BaseCommand):
    help = "List a cluster's exemptions (active, expired, removed) and its annotation exemptions. Exit 0; 2 bad usage."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="the cluster's name in dnsaudit")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **opts) -> None:
        cluster = Cluster.objects.defer("kubeconfig_encrypted").filter(name=opts["name"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named {opts['name']!r}", returncode=2)
        items = exemptions.listing(cluster)
        annotations = [
            {
                "namespace": a["row"].namespace,
                "kind": a["row"].kind,
                "name": a["row"].name,
                "risk": a["row"].risk,
                "reason": a["reason"],
                "expires": a["expires"],
                "status": a["status"],
            }
            for a in exemptions.annotation_rows(cluster)
        ]
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    {"cluster": cluster.name, "exemptions": items, "annotations": annotations}, indent=2
                )
            )
            return
        if not items and not annotations:
            self.stdout.write(f"no exemption for cluster {cluster.name}")
            return
        if items:
            self.stdout.write("ID  STATUS   SCOPE  EXPIRES  WORKLOADS  BY  REASON")
            for e in items:
                scope = " ".join(
                    p
                    for p in (
                        f"ns={e['namespace']}" if e["namespace"] else "",
                        f"workload={e['workload']}" if e["workload"] else "",
                        f"image={e['image']}" if e["image"] else "",
                    )
                    if p
                )
                by = e["created_by"] + (f" (removed by {e['removed_by']})" if e["removed_by"] else "")
                self.stdout.write(
                    f"{e['id']}  {e['status']}  {scope or '*'}  {e['expires'] or '-'}  {e['workloads']}  "
                    f"{by}  {_one_line(e['reason'])}"
                )
        if annotations:
            self.stdout.write("\nexempted by annotation (dnsaudit.io/exempt) in the current report:")
            for a in annotations:
                self.stdout.write(
                    f"{a['namespace']}/{a['kind']}/{a['name']}  {a['status']}  {a['expires'] or '-'}  "
                    f"{_one_line(a['reason'])}"
                )
