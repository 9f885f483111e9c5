"""``/health``: is the web process up and can it reach its database (and broker, when configured)."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse


@login_not_required
def health(request):
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means unhealthy; report its class, not secrets
        checks["database"] = f"error: {type(exc).__name__}"
    checks["tasks"] = "celery" if settings.CELERY_BROKER_URL else "in-process"
    ok = checks["database"] == "ok"
    return JsonResponse({"status": "ok" if ok else "error", "checks": checks}, status=200 if ok else 503)
