"""Forms of the dashboard: add a cluster, its scan settings, API tokens."""

from __future__ import annotations

import re

from django import forms
from django.conf import settings

from .models import ALL_POOLS, Cluster, check_node_resolv_conf

ALLOW_EXEC_HELP = (
    "dnsaudit runs `cat /etc/resolv.conf` (no shell) in a few running pods per node pool to learn the "
    "nodes' search domains, and in one pod per musl workload to verify the computed file. Needs get and "
    "create on pods/exec; nothing is written. Off: only the files entered below are used."
)

_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.:-]+)(:\d{1,5})?$")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def split_lines(text: str) -> list[str]:
    """Entries separated by newlines, commas or spaces, blanks dropped, order kept, duplicates removed."""
    seen: list[str] = []
    for item in re.split(r"[\s,]+", text or ""):
        if item and item not in seen:
            seen.append(item)
    return seen


class AddClusterForm(forms.Form):
    """A kubeconfig from an upload or pasted text; the context chooser appears when there are several."""

    kubeconfig_file = forms.FileField(required=False, label="Upload a kubeconfig file")
    kubeconfig_text = forms.CharField(
        required=False,
        label="…or paste it",
        widget=forms.Textarea(
            attrs={"rows": 10, "spellcheck": "false", "autocomplete": "off", "class": "mono"}
        ),
    )
    name = forms.CharField(
        required=False,
        max_length=63,
        help_text="dnsaudit's key for the cluster; default: the context name. With several contexts it becomes a prefix.",
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict:
        data = super().clean()
        upload = data.get("kubeconfig_file")
        limit = settings.DNSAUDIT_KUBECONFIG_MAX_BYTES
        if upload:
            if upload.size > limit:
                raise forms.ValidationError(f"the file is larger than {limit} bytes")
            raw = upload.read()
            try:
                data["kubeconfig"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError("the file is not UTF-8 text (a kubeconfig is YAML)") from None
        elif (data.get("kubeconfig_text") or "").strip():
            data["kubeconfig"] = data["kubeconfig_text"]
        else:
            raise forms.ValidationError("upload a kubeconfig file or paste one")
        if len(data["kubeconfig"].encode()) > limit:
            raise forms.ValidationError(f"the kubeconfig is larger than {limit} bytes")
        return data


class BlindTextarea(forms.Textarea):
    """A textarea that never renders a value: what was saved (or just typed) is not sent back."""

    def format_value(self, value):
        return None


class ClusterSettingsForm(forms.ModelForm):
    """Scan settings. List fields are edited as text (one entry per line); per-pool resolv.conf fields are
    added for each pool the last scan saw (and each pool already configured).

    Entered node files are checked as the kubelet parses them (:func:`clusters.models.check_node_resolv_conf`);
    saving records who entered each changed file and when (``Cluster.node_resolv_conf_entered``, ``by`` =
    ``entered_by``), and a cleared textarea removes the file and its record.
    """

    probe_nameservers_text = forms.CharField(
        required=False,
        label="Probe nameservers",
        help_text=(
            "host or host:port the worker can reach (usually the nodes' upstream resolver), one per line; "
            "empty = no probes, so unprobed search domains stay at-risk rather than confirmed affected"
        ),
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono"}),
    )
    probe_names_text = forms.CharField(
        required=False,
        label="Probe names",
        help_text="names looked up under every search domain, one per line",
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono"}),
    )
    cluster_dns_text = forms.CharField(
        required=False,
        label="Assumed clusterDNS",
        help_text="used when the kubelet configuration cannot be read (nodes/proxy); one IP per line",
        widget=forms.Textarea(attrs={"rows": 1, "class": "mono"}),
    )
    notify_urls = forms.CharField(
        required=False,
        label="Notification URLs of this cluster",
        help_text="",  # set in __init__: what is stored now
        widget=BlindTextarea(
            attrs={"rows": 2, "class": "mono", "spellcheck": "false", "autocomplete": "off"}
        ),
    )
    notify_urls_clear = forms.BooleanField(
        required=False, label="Clear this cluster's notification URLs (DNSAUDIT_NOTIFY_URLS applies again)"
    )

    class Meta:
        model = Cluster
        fields = ["scan_interval_minutes", "allow_exec", "cluster_domain", "node_resolv_conf", "notes"]
        labels = {
            "scan_interval_minutes": "Scan every (minutes)",
            "allow_exec": "Allow exec reads",
            "node_resolv_conf": "Nodes' resolv.conf (all pools)",
        }
        help_texts = {
            "allow_exec": ALLOW_EXEC_HELP,
            "node_resolv_conf": (
                "the file the kubelet reads on every node (usually /etc/resolv.conf or "
                "/run/systemd/resolve/resolv.conf); a pool's own file below takes precedence"
            ),
        }
        widgets = {
            "node_resolv_conf": forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
            "notes": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(
        self,
        *args,
        pool_names: list[str] | None = None,
        pool_sources: dict[str, str] | None = None,
        entered_by: str = "",
        **kwargs,
    ) -> None:
        """``pool_names``: the pools of the last scan; ``pool_sources``: where that scan got each pool's
        node file (observed, entered, inferred, unknown); ``entered_by``: the user saving the form."""
        super().__init__(*args, **kwargs)
        cluster: Cluster = self.instance
        self.entered_by = entered_by
        self._stored_all_pools = cluster.node_resolv_conf or ""  # the form overwrites the instance's
        self.fields["probe_nameservers_text"].initial = "\n".join(cluster.probe_nameservers or [])
        self.fields["probe_names_text"].initial = "\n".join(cluster.probe_names or [])
        self.fields["cluster_dns_text"].initial = "\n".join(cluster.cluster_dns or [])
        self.notify_change = ""  # "set" or "cleared" once saved
        self.fields["notify_urls"].help_text = _notify_help(cluster)
        entered = cluster.node_resolv_conf_entered or {}
        self.fields["node_resolv_conf"].help_text += _entered_note(entered.get(ALL_POOLS))
        names = list(dict.fromkeys([*(pool_names or []), *sorted((cluster.pool_resolv_conf or {}).keys())]))
        self.pool_fields: list[tuple[str, str]] = []
        for i, pool in enumerate(names):
            key = f"pool_{i}"
            self.fields[key] = forms.CharField(
                required=False,
                label=f"resolv.conf of pool {pool}",
                initial=(cluster.pool_resolv_conf or {}).get(pool, ""),
                help_text=_pool_help(entered.get(pool), (pool_sources or {}).get(pool)),
                widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
            )
            self.pool_fields.append((key, pool))

    def _node_file(self, text: str | None) -> str:
        text = text or ""
        if not text.strip():
            return ""
        try:
            return check_node_resolv_conf(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_node_resolv_conf(self) -> str:
        return self._node_file(self.cleaned_data.get("node_resolv_conf"))

    def clean(self) -> dict:
        data = super().clean()
        for key, _pool in self.pool_fields:
            try:
                data[key] = self._node_file(data.get(key))
            except forms.ValidationError as exc:
                self.add_error(key, exc)
        return data

    def clean_notify_urls(self) -> list[str]:
        from .notify import check_urls, split_urls

        try:
            return check_urls(split_urls(self.cleaned_data.get("notify_urls") or ""))
        except ValueError as exc:  # names the URL by position and scheme only
            raise forms.ValidationError(str(exc)) from None

    def clean_notify_urls_clear(self) -> bool:
        clear = bool(self.cleaned_data.get("notify_urls_clear"))
        if clear and self.data.get(self.add_prefix("notify_urls"), "").strip():
            raise forms.ValidationError("either replace the notification URLs or clear them, not both")
        return clear

    def clean_probe_nameservers_text(self) -> list[str]:
        items = split_lines(self.cleaned_data["probe_nameservers_text"])
        bad = [i for i in items if not _HOSTPORT.match(i)]
        if bad:
            raise forms.ValidationError(f"not a host or host:port: {', '.join(bad)}")
        return items

    def clean_probe_names_text(self) -> list[str]:
        items = split_lines(self.cleaned_data["probe_names_text"])
        bad = [i for i in items if not _DNS_NAME.match(i)]
        if bad:
            raise forms.ValidationError(f"not a DNS name: {', '.join(bad)}")
        if len(items) > 20:
            raise forms.ValidationError("at most 20 probe names")
        return items

    def clean_cluster_dns_text(self) -> list[str]:
        import ipaddress

        items = split_lines(self.cleaned_data["cluster_dns_text"])
        for item in items:
            try:
                ipaddress.ip_address(item)
            except ValueError:
                raise forms.ValidationError(f"not an IP address: {item}") from None
        return items

    def save(self, commit: bool = True) -> Cluster:
        cluster: Cluster = super().save(commit=False)
        cluster.probe_nameservers = self.cleaned_data["probe_nameservers_text"]
        cluster.probe_names = self.cleaned_data["probe_names_text"]
        cluster.cluster_dns = self.cleaned_data["cluster_dns_text"]
        by = self.entered_by or "unknown"
        # The instance already carries the new all-pools text (construct_instance): compare with the old one.
        cluster.node_resolv_conf = self._stored_all_pools
        cluster.enter_node_file(ALL_POOLS, self.cleaned_data.get("node_resolv_conf") or "", by=by)
        for key, pool in self.pool_fields:
            cluster.enter_node_file(pool, self.cleaned_data.get(key) or "", by=by)
        # A record whose file is no longer stored goes too.
        cluster.node_resolv_conf_entered = {
            pool: record
            for pool, record in (cluster.node_resolv_conf_entered or {}).items()
            if cluster.entered_node_file(pool)
        }
        if self.cleaned_data.get("notify_urls_clear") and cluster.notify_urls_encrypted:
            cluster.notify_urls_encrypted = ""
            self.notify_change = "cleared"
        elif self.cleaned_data.get("notify_urls"):
            from .notify import store_cluster_urls

            store_cluster_urls(cluster, ",".join(self.cleaned_data["notify_urls"]))
            self.notify_change = "set"
        if commit:
            cluster.save()
        return cluster


def _notify_help(cluster: Cluster) -> str:
    """What the notification field says: whether the cluster has URLs of its own (never which)."""
    from .notify import cluster_url_count

    count = cluster_url_count(cluster)
    default = len(getattr(settings, "DNSAUDIT_NOTIFY_URLS", []) or [])
    fallback = f"DNSAUDIT_NOTIFY_URLS ({default} URL{'s' if default != 1 else ''})" if default else "nothing"
    if count is None:
        state = "set, but they cannot be decrypted with the configured keys: replace or clear them"
    elif count:
        state = f"set ({count} URL{'s' if count != 1 else ''}); they are never shown again"
    else:
        state = f"not set: {fallback} applies"
    return (
        f"apprise URLs (json://, mailto://, slack://, msteams://…), comma-separated or one per line; they "
        f"replace DNSAUDIT_NOTIFY_URLS for this cluster. Empty keeps what is stored. Now: {state}."
    )


def _pool_help(record: dict | None, source: str | None) -> str:
    parts = [_entered_note(record)[2:]] if record else []
    if source:
        parts.append(f"last scan: {source}")
    return "; ".join(parts)


def _entered_note(record: dict | None) -> str:
    """``"; entered by alice at 2026-12-01T10:00:00+00:00"`` for a record of ``node_resolv_conf_entered``."""
    if not isinstance(record, dict):
        return ""
    return f"; entered by {record.get('by') or 'unknown'} at {record.get('at') or 'an unknown time'}"


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="what uses it, e.g. 'grafana' or 'ci'")
