"""Front-end assets: htmx vendored and pinned (no CDN), the stylesheet and copy script served locally."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.contrib.staticfiles import finders
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def test_pages_load_only_local_scripts_and_styles(client_as, report):
    body = client_as("viewer").get(reverse("clusters:report", args=[report.cluster.name])).content.decode()
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', body)
    assert sources, "the page should load its stylesheet and scripts"
    assert all(s.startswith("/static/") for s in sources), sources
    assert "/static/vendor/htmx-2.0.4.min.js" in sources


def test_vendored_htmx_matches_the_pinned_checksum():
    path = Path(finders.find("vendor/htmx-2.0.4.min.js"))
    readme = (ROOT / "static" / "vendor" / "README.md").read_text()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest in readme
    assert b'version:"2.0.4"' in path.read_bytes()


def test_stylesheet_has_visible_focus_styles():
    css = Path(finders.find("css/dnsaudit.css")).read_text()
    assert ":focus-visible" in css and "outline" in css
