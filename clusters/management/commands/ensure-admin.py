"""Create the first admin login when there is none (used by ``make run``).

The username comes from ``DNSAUDIT_ADMIN_USER`` (default ``admin``) and the password from
``DNSAUDIT_ADMIN_PASSWORD``; without it a random password is generated and printed once.
``createsuperuser --noinput`` with the ``DJANGO_SUPERUSER_*`` variables works as well.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the first admin login if no superuser exists (prints a generated password once)."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("admin login: already exists (reset with `manage.py changepassword`)")
            return
        username = os.environ.get("DNSAUDIT_ADMIN_USER", "admin")
        if User.objects.filter(username=username).exists():
            raise CommandError(
                f"a user named {username!r} exists but is not a superuser: set DNSAUDIT_ADMIN_USER to another "
                "name, or promote it with `manage.py shell` / the admin"
            )
        password = os.environ.get("DNSAUDIT_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if os.environ.get("DNSAUDIT_ADMIN_PASSWORD"):
            self.stdout.write(f"admin login created: {username} (password from DNSAUDIT_ADMIN_PASSWORD)")
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"admin login created: user {username!r}, password {password!r} — shown once, write it down"
                )
            )
