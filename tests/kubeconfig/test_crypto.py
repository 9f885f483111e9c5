"""clusters.crypto and manage.py rotate-keys: MultiFernet at rest, the dev key file, rotation."""

from __future__ import annotations

import logging
import stat
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from clusters import crypto
from clusters.models import Cluster
from clusters.registry import import_kubeconfig, load_context

from .factory import TOKEN, doc, dump


def test_encrypt_decrypt_round_trips_and_hides_the_text(fernet_keys):
    token = crypto.encrypt("hello " + TOKEN)
    assert TOKEN not in token
    assert crypto.decrypt(token) == "hello " + TOKEN
    # Independently decryptable with the configured key: it really is Fernet under that key.
    assert Fernet(fernet_keys[0]).decrypt(token.encode()).decode() == "hello " + TOKEN


def test_newest_key_encrypts_and_old_keys_still_decrypt(settings, fernet_keys):
    old = fernet_keys[0]
    token_old = crypto.encrypt("secret")
    new = crypto.generate_key()
    settings.DNSAUDIT_FERNET_KEYS = [new, old]
    assert crypto.decrypt(token_old) == "secret"
    token_new = crypto.encrypt("secret")
    assert Fernet(new).decrypt(token_new.encode()) == b"secret"
    rotated = crypto.rotate(token_old)
    assert Fernet(new).decrypt(rotated.encode()) == b"secret"
    settings.DNSAUDIT_FERNET_KEYS = [new]
    assert crypto.decrypt(rotated) == "secret"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token_old)


def test_bad_key_in_settings_is_refused_without_echoing_it(settings):
    settings.DNSAUDIT_FERNET_KEYS = ["not-a-key-SECRETISH"]
    with pytest.raises(ImproperlyConfigured, match="entry 1 is not a Fernet key") as info:
        crypto.encrypt("x")
    assert "SECRETISH" not in str(info.value)


def test_without_keys_a_dev_key_file_is_created_once_with_mode_0600(settings, tmp_path, caplog):
    settings.DNSAUDIT_FERNET_KEYS = []
    settings.PRODUCTION = False
    settings.VAR_DIR = tmp_path / "var"
    with caplog.at_level(logging.INFO, logger="clusters.crypto"):
        token = crypto.encrypt("x")
    key_file = tmp_path / "var" / "fernet.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Fernet(key_file.read_text().strip()).decrypt(token.encode()) == b"x"
    assert "fernet.key" in caplog.text and "DNSAUDIT_FERNET_KEYS" in caplog.text
    before = key_file.read_text()
    assert crypto.decrypt(crypto.encrypt("y")) == "y"
    assert key_file.read_text() == before


def test_production_without_keys_refuses(settings, tmp_path):
    settings.DNSAUDIT_FERNET_KEYS = []
    settings.PRODUCTION = True
    settings.VAR_DIR = tmp_path
    with pytest.raises(ImproperlyConfigured, match="required in production"):
        crypto.encrypt("x")
    assert not (tmp_path / "fernet.key").exists()


@pytest.mark.django_db
def test_rotate_keys_reencrypts_every_cluster_with_the_newest_key(settings, fernet_keys):
    old = fernet_keys[0]
    import_kubeconfig(dump(doc()), name="a")
    import_kubeconfig(dump(doc()), name="b")
    new = crypto.generate_key()
    settings.DNSAUDIT_FERNET_KEYS = [new, old]
    out = StringIO()
    call_command("rotate-keys", stdout=out)
    assert "re-encrypted 2" in out.getvalue()
    settings.DNSAUDIT_FERNET_KEYS = [new]  # the old key is gone: every row must still load
    for cluster in Cluster.objects.all():
        assert load_context(cluster).token == TOKEN
        assert Fernet(new).decrypt(cluster.kubeconfig_encrypted.encode())


@pytest.mark.django_db
def test_rotate_keys_without_the_old_key_changes_nothing(settings, fernet_keys):
    import_kubeconfig(dump(doc()), name="a")
    before = Cluster.objects.get().kubeconfig_encrypted
    settings.DNSAUDIT_FERNET_KEYS = [crypto.generate_key()]
    with pytest.raises(CommandError, match="nothing rotated: cluster a"):
        call_command("rotate-keys")
    assert Cluster.objects.get().kubeconfig_encrypted == before


@pytest.mark.django_db
def test_rotate_keys_reencrypts_the_clusters_notification_urls_too(settings, fernet_keys):
    old = fernet_keys[0]
    import_kubeconfig(dump(doc()), name="a")
    import_kubeconfig(dump(doc()), name="b")  # no URLs of its own: stays empty
    url = "json://hooks.example/dnsaudit?token=s3cret"
    Cluster.objects.filter(name="a").update(notify_urls_encrypted=crypto.encrypt(url))
    new = crypto.generate_key()
    settings.DNSAUDIT_FERNET_KEYS = [new, old]
    call_command("rotate-keys", stdout=StringIO())
    settings.DNSAUDIT_FERNET_KEYS = [new]  # the old key is gone: the URLs must still decrypt
    assert crypto.decrypt(Cluster.objects.get(name="a").notify_urls_encrypted) == url
    assert Cluster.objects.get(name="b").notify_urls_encrypted == ""
