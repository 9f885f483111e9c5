"""``manage.py rotate-keys``: re-encrypt every stored kubeconfig, and every cluster's notification URLs, with
the newest DNSAUDIT_FERNET_KEYS key.

Rotation: put the new key first in DNSAUDIT_FERNET_KEYS (keep the old one after it), restart, run this
command, then drop the old key. All rows are rotated in one transaction: if any row cannot be decrypted
(its key is gone), nothing changes and the command says which cluster.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from clusters import auditlog, crypto
from clusters.models import Cluster


class Command(BaseCommand):
    help = "Re-encrypt every stored kubeconfig with the newest key in DNSAUDIT_FERNET_KEYS."

    def handle(self, *args, **options) -> None:
        count = 0
        with transaction.atomic():
            for pk, name, token, notify in Cluster.objects.select_for_update().values_list(
                "pk", "name", "kubeconfig_encrypted", "notify_urls_encrypted"
            ):
                try:
                    rotated = crypto.rotate(token)
                    # The cluster's own notification URLs hold secrets too (webhook tokens, SMTP passwords).
                    rotated_notify = crypto.rotate(notify) if notify else ""
                except crypto.DecryptionError as exc:
                    raise CommandError(f"nothing rotated: cluster {name}: {exc}") from None
                Cluster.objects.filter(pk=pk).update(
                    kubeconfig_encrypted=rotated, notify_urls_encrypted=rotated_notify
                )
                count += 1
        auditlog.record("keys.rotate", via="cli", clusters=count)
        self.stdout.write(
            self.style.SUCCESS(f"re-encrypted {count} stored kubeconfig(s) with the newest key")
        )
