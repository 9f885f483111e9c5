"""A Celery worker for the benchmarks: ``celery -A dnsaudit worker ...`` with the registry guard installed.

    python bench/worker.py --concurrency 2   (any ``celery worker`` options)

The guard (``bench/guard.py``) is installed before the worker forks its children, so every scan they run
is kept off the network and its image-cache misses are logged to ``$BENCH_MISS_LOG``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dnsaudit.settings")
    import django

    django.setup()
    import guard

    guard.install()
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", "-A", "dnsaudit", "worker", *sys.argv[1:]]
    sys.exit(celery_main())
