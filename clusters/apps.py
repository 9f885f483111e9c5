from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"
    verbose_name = "Clusters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from .auditlog import connect_signals as connect_audit_signals
        from .incluster import post_migrate as register_in_cluster

        # In-cluster mode (DNSAUDIT_IN_CLUSTER): the cluster dnsaudit runs in is registered after migrate.
        post_migrate.connect(register_in_cluster, sender=self, dispatch_uid="dnsaudit-in-cluster")
        # The audit log records logins, failed logins (lockouts included) and logouts from the auth signals.
        connect_audit_signals()
