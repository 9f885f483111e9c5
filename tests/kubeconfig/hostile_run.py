"""Feed every hostile kubeconfig in a directory through dnsaudit's entry points (run under audited.py).

Usage: ``python hostile_run.py KUBECONFIG_DIR SENTINEL_DIR RESULTS_JSON``. Environment: the Django
settings variables (a private sqlite database and var dir, DNSAUDIT_FERNET_KEYS). Writes
``{phase: {file: outcome}}`` to RESULTS_JSON, where outcome is the refusal message or ``"ACCEPTED"``.
The last phase, ``control``, runs a command and reads a file in SENTINEL_DIR on purpose, so the test
can prove its detectors see such things.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    kube_dir, sentinel_dir, results_path = (Path(p) for p in sys.argv[1:4])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dnsaudit.settings")
    import django

    django.setup()
    from django.core.management import CommandError, call_command

    call_command("migrate", verbosity=0)

    from clusters import crypto
    from clusters.models import Cluster
    from clusters.registry import connection_test, import_kubeconfig
    from dnsaudit.core.kubeconfig import KubeconfigError, parse_kubeconfig

    files = sorted(kube_dir.glob("*.yaml"))
    results: dict[str, dict[str, str]] = {}

    def phase(name: str) -> dict[str, str]:
        os.environ["AUDIT_PHASE"] = name
        return results.setdefault(name, {})

    out = phase("parse")
    for f in files:
        try:
            kc = parse_kubeconfig(f.read_bytes())
            for ctx in kc.contexts:
                kc.context(ctx)
            out[f.name] = "ACCEPTED"
        except KubeconfigError as exc:
            out[f.name] = str(exc)

    out = phase("import")
    for f in files:
        try:
            import_kubeconfig(f.read_bytes(), all_contexts=True)
            out[f.name] = "ACCEPTED"
        except ValueError as exc:
            out[f.name] = str(exc)

    out = phase("command")
    for f in files:
        try:
            call_command("add-cluster", "--kubeconfig", str(f), stdout=io.StringIO(), stderr=io.StringIO())
            out[f.name] = "ACCEPTED"
        except CommandError as exc:
            out[f.name] = str(exc)

    # A row holding a hostile kubeconfig (written around the importer, e.g. by a tampered database):
    # the scanner's way in must refuse it too, before any client is built.
    out = phase("connection_test")
    for i, f in enumerate(files):
        text = f.read_text()
        first = parse_kubeconfig(text).default_context()
        cluster = Cluster.objects.create(
            name=f"tampered-{i}",
            context=first,
            server="https://127.0.0.1:1",
            kubeconfig_encrypted=crypto.encrypt(text),
        )
        result = connection_test(cluster, timeout=2)
        out[f.name] = result["error"] or "ACCEPTED"
    out["stored clusters"] = str(Cluster.objects.exclude(name__startswith="tampered-").count())

    out = phase("control")
    subprocess.run(["true"], check=True)
    out["control.txt"] = (sentinel_dir / "control.txt").read_text()

    results_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
