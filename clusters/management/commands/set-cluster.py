"""``manage.py set-cluster NAME [--allow-exec | --no-allow-exec] [--node-resolv-conf FILE | --clear-node-resolv-conf] [--pool POOL]``.

Change a registered cluster's exec and node-file settings from scripts, then print the resulting settings;
with no option, only print them. The node's ``/etc/resolv.conf`` is not in the Kubernetes API: dnsaudit
reads it inside running pods when exec reads are allowed (``--allow-exec``, off by default), or uses the
file entered here (or on the cluster's settings page) for one pool (``--pool``, as the report names it)
or for every pool (no ``--pool``, shown as ``*``). An entered file is checked as the kubelet parses it;
who entered it (``cli`` from here) and when is recorded, and shown on the settings page.

Exit status: 0 done (the settings are printed); 2 bad usage: unknown cluster, unknown pool, no finished
scan to take pool names from, an unreadable, non-UTF-8, oversized (64 KiB) or unparseable file,
contradicting options. Errors are one line on stderr; nothing is changed then.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from clusters import auditlog
from clusters.models import (
    ALL_POOLS,
    NODE_RESOLV_CONF_MAX_BYTES,
    Cluster,
    NodePoolResult,
    Scan,
    check_node_resolv_conf,
)

#: ``by`` of the records this command writes in ``Cluster.node_resolv_conf_entered``.
CLI_AUTHOR = "cli"


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=2)


class Command(BaseCommand):
    help = (
        "Allow or forbid exec reads for a cluster and enter its nodes' resolv.conf (per pool or for all "
        "pools), then print the cluster's settings. Exit 0 done; 2 bad usage (nothing changed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="the cluster's name in dnsaudit")
        parser.add_argument(
            "--allow-exec",
            action="store_true",
            help=(
                "allow exec reads: dnsaudit runs `cat /etc/resolv.conf` (no shell) in a few running pods per "
                "node pool to learn the nodes' search domains, and in one pod per musl workload to verify the "
                "computed file; needs get and create on pods/exec; nothing is written"
            ),
        )
        parser.add_argument("--no-allow-exec", action="store_true", help="forbid exec reads (the default)")
        parser.add_argument(
            "--node-resolv-conf",
            metavar="FILE",
            help=(
                "enter the nodes' resolv.conf (the file the kubelet reads) from FILE, or - for stdin; "
                f"at most {NODE_RESOLV_CONF_MAX_BYTES} bytes, checked as the kubelet parses it"
            ),
        )
        parser.add_argument(
            "--clear-node-resolv-conf",
            action="store_true",
            help="remove the entered file (of --pool, or the all-pools file) and its record",
        )
        parser.add_argument(
            "--pool",
            metavar="POOL",
            help=(
                "the node pool, as the report names it (a pool of the newest finished scan); without it the "
                "file is for every pool (*); a pool's own file takes precedence"
            ),
        )

    def handle(self, *args, **opts) -> None:
        if opts["allow_exec"] and opts["no_allow_exec"]:
            raise usage_error("choose --allow-exec or --no-allow-exec, not both")
        if opts["node_resolv_conf"] is not None and opts["clear_node_resolv_conf"]:
            raise usage_error("choose --node-resolv-conf or --clear-node-resolv-conf, not both")
        if (
            opts["pool"] is not None
            and opts["node_resolv_conf"] is None
            and not opts["clear_node_resolv_conf"]
        ):
            raise usage_error("--pool goes with --node-resolv-conf FILE or --clear-node-resolv-conf")
        cluster = self._cluster(opts["name"])
        pool = (
            ALL_POOLS
            if opts["pool"] is None
            else self._pool(cluster, opts["pool"], opts["clear_node_resolv_conf"])
        )
        text = None
        if opts["node_resolv_conf"] is not None:
            text = self._read(opts["node_resolv_conf"])
        elif opts["clear_node_resolv_conf"]:
            text = ""

        if opts["allow_exec"] or opts["no_allow_exec"] or text is not None:
            with transaction.atomic():
                cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
                fields = []
                if opts["allow_exec"] or opts["no_allow_exec"]:
                    cluster.allow_exec = bool(opts["allow_exec"])
                    fields.append("allow_exec")
                if text is not None:
                    cluster.enter_node_file(pool, text, by=CLI_AUTHOR)
                    fields += ["node_resolv_conf", "pool_resolv_conf", "node_resolv_conf_entered"]
                cluster.save(update_fields=[*fields, "updated_at"])
            if opts["allow_exec"] or opts["no_allow_exec"]:
                auditlog.record(
                    "cluster.change",
                    via="cli",
                    target=cluster.name,
                    fields=["allow_exec"],
                    allow_exec=cluster.allow_exec,
                )
            if text is not None:
                auditlog.record(
                    "node_file.enter", via="cli", target=cluster.name, pool=pool, cleared=not text
                )
        self._print(cluster)

    # --- validation -------------------------------------------------------------------------------------

    def _cluster(self, name: str) -> Cluster:
        cluster = Cluster.objects.defer("kubeconfig_encrypted").filter(name=name).first()
        if cluster is None:
            known = ", ".join(Cluster.objects.values_list("name", flat=True)) or "none registered"
            raise usage_error(f"no cluster named {name!r} (known: {known})")
        return cluster

    def _pool(self, cluster: Cluster, pool: str, clearing: bool) -> str:
        if pool == ALL_POOLS:
            raise usage_error(f"{ALL_POOLS!r} is not a pool name: omit --pool to set the file for every pool")
        if clearing and pool in (cluster.pool_resolv_conf or {}):
            return pool  # a file entered for a pool the last scan no longer saw can still be removed
        scan = cluster.last_report_scan()
        if scan is None:
            raise usage_error(
                f"cluster {cluster.name} has no finished scan yet, so its pool names are unknown: "
                f"run `manage.py scan {cluster.name} --wait` first, or omit --pool to set the file for every pool"
            )
        names = list(NodePoolResult.objects.filter(scan=scan).values_list("name", flat=True))
        if pool not in names:
            raise usage_error(
                f"cluster {cluster.name} has no node pool {pool!r} in its newest scan (scan {scan.pk}): "
                f"pools are {', '.join(names) or 'none'}; or omit --pool to set the file for every pool"
            )
        return pool

    def _read(self, path: str) -> str:
        limit = NODE_RESOLV_CONF_MAX_BYTES
        try:
            if path == "-":
                raw = sys.stdin.buffer.read(limit + 1)
            else:
                with open(path, "rb") as fh:
                    raw = fh.read(limit + 1)
        except OSError as exc:
            raise usage_error(f"cannot read {path}: {exc.strerror}") from None
        if len(raw) > limit:
            raise usage_error(f"{path} is larger than {limit} bytes: not a node resolv.conf")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise usage_error(f"{path} is not UTF-8 text: not a node resolv.conf") from None
        if not text.strip():
            raise usage_error(f"{path} is empty: use --clear-node-resolv-conf to remove an entered file")
        try:
            return check_node_resolv_conf(text)
        except ValueError as exc:
            raise usage_error(f"{path}: {exc}") from None

    # --- output -----------------------------------------------------------------------------------------

    def _print(self, cluster: Cluster) -> None:
        out = self.stdout.write
        out(f"{'cluster':<14}{cluster.name}")
        out(f"{'allow exec':<14}{'yes' if cluster.allow_exec else 'no'}")
        scan = cluster.last_report_scan()
        sources: dict[str, str] = {}
        if scan is None:
            out(f"{'node files':<14}(no finished scan yet: pool names unknown)")
        else:
            sources = dict(
                NodePoolResult.objects.filter(scan=scan).values_list("name", "node_resolv_conf_source")
            )
            out(f"{'node files':<14}(pools of scan {scan.pk}, {_when(scan)})")
        entered = cluster.node_resolv_conf_entered or {}
        rows = [ALL_POOLS, *sources, *sorted(set(cluster.pool_resolv_conf or {}) - set(sources))]
        width = max(len(p) for p in rows) + 2
        for pool in rows:
            text = cluster.entered_node_file(pool)
            if text:
                line = f"{_entered(entered.get(pool))}: {_search_line(text)}"
            elif pool == ALL_POOLS:
                line = "not entered"
            elif cluster.node_resolv_conf:
                line = "not entered: the all-pools file (*) applies"
            else:
                line = "not entered"
            if pool in sources:
                line += f" (last scan: {sources[pool]})"
            elif pool != ALL_POOLS:
                line += " (not in the last scan)"
            out(f"  {pool:<{width}}{line}")


def _when(scan: Scan) -> str:
    return f"finished {scan.finished_at.isoformat(timespec='seconds')}" if scan.finished_at else scan.status


def _entered(record: object) -> str:
    if not isinstance(record, dict):
        return "entered (who and when not recorded)"
    return f"entered by {record.get('by') or 'unknown'} at {record.get('at') or 'an unknown time'}"


def _search_line(text: str) -> str:
    from dnsaudit.core.kubelet import parse_node_resolv_conf

    try:
        searches = parse_node_resolv_conf(text).searches
    except ValueError as exc:  # a file stored before it was checked
        return f"does not parse: {exc}"
    return "search " + " ".join(searches) if searches else "no search line"
