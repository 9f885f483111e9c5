from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from . import health


@login_not_required
def favicon(request):
    """Clients that ask for /favicon.ico by themselves (the pages link the SVG icon) get it, not a 404."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("health", health.health, name="health"),
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("", include("clusters.urls")),
]
if settings.DNSAUDIT_OIDC_ENABLED:  # single sign-on (dnsaudit/oidc.py): its URLs exist only when configured
    urlpatterns.insert(-1, path("oidc/", include("dnsaudit.oidc")))
