"""The Django admin pages of stored results: shared contents and secrets are never listed or shown."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from clusters import crypto
from clusters.models import Cluster
from tests.web import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = User.objects.create_superuser("root-admin", "root@example.test", "a-long-password-1")
    client.force_login(user)
    return client


def test_a_workload_row_links_its_content_instead_of_listing_every_content(superuser_client):
    scan = factories.make_scan(factories.make_cluster("adm"))
    row = factories.make_workload(scan, name="cart")
    other = factories.make_workload(scan, name="a-secretly-large-other-workload")
    body = superuser_client.get(f"/admin/clusters/workloadresult/{row.pk}/change/").content.decode()
    assert 'name="content"' in body and "<select" not in body.split('name="content"')[0][-200:]
    assert f'value="{other.content_id}"' not in body  # no <option> per stored content
    # The exemption columns are set by the exemption rules (audit-logged), not edited here.
    assert 'name="exemption"' not in body and 'name="exempt_until"' not in body


def test_the_cluster_page_never_shows_the_encrypted_notification_urls(superuser_client):
    cluster = factories.make_cluster("adm2")
    secret = crypto.encrypt("json://hooks.example/x?token=s3cret")
    Cluster.objects.filter(pk=cluster.pk).update(notify_urls_encrypted=secret)
    body = superuser_client.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert secret not in body and "notify_urls_encrypted" not in body
