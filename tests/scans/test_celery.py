"""The real worker: ``celery -A dnsaudit worker`` started with the exact command line of docker-compose.yml's
``worker`` service, against the pytest-django test database (PostgreSQL) and a real Redis.

Also: Redis restarted during a scan (the task finishes exactly once), a worker killed with SIGKILL
mid-scan (the reaper marks the scan failed and the next scan runs on a fresh worker), and celery beat's
``dispatch_periodic_scans`` queueing a due cluster once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from kombu import pools as kombu_pools

from clusters.models import Scan
from clusters.scan import reap_dead_scans, request_scan
from clusters.tasks import dispatch_periodic_scans
from dnsaudit.celery import app as celery_app
from tests.scans.helpers import register
from tests.support import free_port, need

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def compose_command(service: str) -> list[str]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return list(doc["services"][service]["command"])


def database_url() -> str:
    """The pytest-django test database (``test_<name>``) as a URL for another process."""
    d = connection.settings_dict
    auth = quote(d["USER"] or "") + (":" + quote(d["PASSWORD"]) if d.get("PASSWORD") else "")
    return f"postgres://{auth}@{d['HOST']}:{d['PORT']}/{d['NAME']}"


class OwnRedis:
    """A redis-server of our own (AOF on, so queued and unacked messages survive a restart)."""

    def __init__(self, tmp: Path) -> None:
        self.binary = os.environ.get("DNSAUDIT_TEST_REDIS_SERVER", "")
        need(
            bool(self.binary) and Path(self.binary).exists(),
            "DNSAUDIT_TEST_REDIS_SERVER not set (use `make test`)",
        )
        self.port = free_port()
        self.dir = tmp
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes", "--save", "",
             "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes the AOF and exits
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def own_redis(tmp_path, redis_url):
    (tmp_path / "redis").mkdir()
    r = OwnRedis(tmp_path / "redis")
    yield r
    r.stop()


def use_broker(settings, url: str) -> None:
    """Point this process's Celery app at ``url`` (the app may have cached a producer pool already)."""
    settings.CELERY_BROKER_URL = url
    celery_app.conf.broker_url = url
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None
    # kombu keeps a global producer pool per connection URL; one bound to a pool closed above (an
    # earlier test on the same URL) would answer "Acquire on closed pool".
    kombu_pools.reset()


class Workers:
    """Starts ``celery -A dnsaudit worker`` (compose's command line) in its own process group."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, broker: str, **env: str) -> tuple[subprocess.Popen, Path]:
        cmd = compose_command("worker")
        assert cmd[:4] == ["celery", "-A", "dnsaudit", "worker"]
        cmd[0] = str(VENV_BIN / "celery")
        environ = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL",)}
        environ.update(
            DATABASE_URL=database_url(),
            REDIS_URL=broker,
            DJANGO_SETTINGS_MODULE="dnsaudit.settings",
            DNSAUDIT_FERNET_KEYS=",".join(django_settings.DNSAUDIT_FERNET_KEYS),
            DNSAUDIT_VAR_DIR=str(self.tmp / "var"),
            HTTPS_PROXY=os.environ.get("HTTPS_PROXY", ""),
            NO_PROXY="127.0.0.1,localhost,::1",
            DB_CONN_MAX_AGE="0",
            PYTHONUNBUFFERED="1",
            **env,
        )
        log = self.tmp / f"worker-{len(self.procs)}.log"
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=environ,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((proc, log))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if " ready." in log.read_text(errors="replace"):
                return proc, log
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the worker did not start:\n{log.read_text(errors='replace')[-3000:]}")

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Kill the worker and its pool processes at once (as ``docker kill`` does to the container)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                self.kill(proc, signal.SIGTERM)
        for proc, _ in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftover pool children


@pytest.fixture
def workers(transactional_db, tmp_path):
    w = Workers(tmp_path)
    yield w
    w.stop_all()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def finished(scan_id: int) -> Scan | None:
    s = Scan.objects.get(pk=scan_id)
    return s if s.status not in Scan.ACTIVE else None


def no_duplicate_rows(scan: Scan) -> None:
    keys = Counter(scan.workloads.values_list("namespace", "kind", "name"))
    assert keys and max(keys.values()) == 1
    assert sum(keys.values()) == scan.workloads_total


@pytest.mark.celery
def test_the_compose_worker_runs_a_queued_scan(workers, fakekube_fleet, upstream_dns, redis_url, settings):
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, upstream_dns(spec))
    use_broker(settings, redis_url)
    workers.start(redis_url)
    scan, created = request_scan(cluster)  # on commit (autocommit here): the run_scan task is sent
    assert created
    done = wait_for(lambda: finished(scan.pk), 60, "the worker to finish the scan")
    assert done.status == Scan.SUCCEEDED, done.error
    assert done.worker.startswith("celery@"), done.worker
    assert done.attempts == 1
    assert done.workloads_total == 6
    no_duplicate_rows(done)


@pytest.mark.celery
def test_redis_restart_during_a_scan_finishes_the_scan_exactly_once(
    workers, own_redis, fakekube_fleet, upstream_dns, settings
):
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, upstream_dns(spec))
    use_broker(settings, own_redis.url)
    # A short visibility timeout: an unacked message is redelivered soon after the restart, which is
    # exactly the duplicate delivery the scan row must absorb.
    _proc, worker_log = workers.start(own_redis.url, DNSAUDIT_VISIBILITY_TIMEOUT="3")
    fake.faults.delay(r"/api/v1/pods", 4.0, times=1)  # keep the scan mid-way while Redis restarts
    scan, _ = request_scan(cluster)
    wait_for(
        lambda: Scan.objects.filter(pk=scan.pk, status=Scan.RUNNING, stage="workloads").exists(),
        30,
        "the scan to be listing workloads",
    )
    own_redis.restart()
    done = wait_for(lambda: finished(scan.pk), 60, "the scan to finish after the Redis restart")
    assert done.status == Scan.SUCCEEDED, done.error
    log = worker_log.read_text(errors="replace")
    assert "Connection to broker lost" in log and log.count("Connected to redis://") >= 2, log[-2000:]
    # A redelivery of the same message (what Redis does with an unacked message after the visibility
    # timeout) is absorbed by the scan row: the claim refuses a finished scan.
    from clusters.tasks import run_scan

    run_scan.delay(scan.pk)
    wait_for(
        lambda: worker_log.read_text(errors="replace").count("succeeded in") >= 2,
        30,
        "the duplicate delivery",
    )
    assert "succeeded in" in worker_log.read_text(errors="replace").split("received")[-1]
    done.refresh_from_db()
    assert done.status == Scan.SUCCEEDED and done.attempts == 1
    assert Scan.objects.filter(cluster=cluster).count() == 1
    no_duplicate_rows(done)
    # The worker is still serving after the restart: a second scan runs too.
    fake.faults.clear()
    nxt, created = request_scan(cluster)
    assert created
    again = wait_for(lambda: finished(nxt.pk), 60, "a scan after the Redis restart")
    assert again.status == Scan.SUCCEEDED


@pytest.mark.celery
def test_sigkilled_worker_is_reaped_and_the_next_scan_runs_on_a_fresh_worker(
    workers, own_redis, fakekube_fleet, upstream_dns, settings
):
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, upstream_dns(spec))
    use_broker(settings, own_redis.url)
    first_worker, _ = workers.start(own_redis.url, DNSAUDIT_VISIBILITY_TIMEOUT="3")
    fake.faults.delay(r"/api/v1/pods", 8.0, times=1)
    doomed, _ = request_scan(cluster)
    wait_for(
        lambda: Scan.objects.filter(pk=doomed.pk, status=Scan.RUNNING, stage="workloads").exists(),
        30,
        "the scan to be running",
    )
    workers.kill(first_worker, signal.SIGKILL)
    doomed.refresh_from_db()
    assert doomed.status == Scan.RUNNING  # nobody will ever finish it...

    settings.DNSAUDIT_SCAN_STALE_AFTER = 1
    time.sleep(1.5)
    assert reap_dead_scans() == 1  # ...until the reaper declares it dead
    doomed.refresh_from_db()
    assert doomed.status == Scan.FAILED and "stopped reporting" in doomed.error
    assert cluster.active_scan() is None

    fake.faults.clear()
    workers.start(own_redis.url, DNSAUDIT_VISIBILITY_TIMEOUT="3")
    nxt, created = request_scan(cluster)
    assert created
    done = wait_for(lambda: finished(nxt.pk), 60, "the next scan on the fresh worker")
    assert done.status == Scan.SUCCEEDED, done.error
    no_duplicate_rows(done)
    time.sleep(4)  # the dead scan's unacked message comes back: it must not revive the scan
    doomed.refresh_from_db()
    assert doomed.status == Scan.FAILED
    assert cluster.last_report_scan().pk == nxt.pk


@pytest.mark.django_db
def test_beat_dispatch_queues_a_due_cluster_once(fakekube_fleet):
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, scan_interval_minutes=30)
    manual_only = register(fake, spec, name="manual-only")
    assert dispatch_periodic_scans() == 1
    assert dispatch_periodic_scans() == 0  # already queued: not again
    scans = list(Scan.objects.all())
    assert len(scans) == 1 and scans[0].cluster == cluster and scans[0].trigger == "schedule"
    assert not manual_only.scans.exists()
    # Once it has run, the cluster is due again only after its interval.
    Scan.objects.filter(pk=scans[0].pk).update(status=Scan.SUCCEEDED, finished_at=timezone.now())
    assert dispatch_periodic_scans() == 0
    Scan.objects.filter(pk=scans[0].pk).update(created_at=timezone.now() - timedelta(minutes=31))
    assert dispatch_periodic_scans() == 1
    assert cluster.scans.count() == 2


@pytest.mark.celery
def test_the_soft_time_limit_of_a_real_worker_ends_the_scan_cleanly(
    workers, fakekube_fleet, upstream_dns, redis_url, settings
):
    """The soft time limit stops a scan stuck on a slow API server in a real worker: the scan fails with
    what happened at its next checkpoint, nothing becomes a report, the worker survives and the next
    scan runs. (The scan checks its own deadline; Celery's signal-based soft limit did not fire in
    the prefork pool here, so it is only the backstop.)"""
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, upstream_dns(spec))
    use_broker(settings, redis_url)
    workers.start(redis_url, DNSAUDIT_SCAN_SOFT_TIME_LIMIT="3", DNSAUDIT_SCAN_TIME_LIMIT="60")
    fake.faults.delay(r"/api/v1/pods", 10.0, times=1)
    scan, _ = request_scan(cluster)
    done = wait_for(lambda: finished(scan.pk), 60, "the soft time limit to end the scan")
    assert done.status == Scan.FAILED
    assert "time limit" in done.error, done.error
    assert done.duration < 20  # stopped at the first checkpoint after the limit, not at the end
    assert cluster.last_report_scan() is None  # nothing half-written became a report

    fake.faults.clear()
    again, created = request_scan(cluster)
    assert created
    after = wait_for(lambda: finished(again.pk), 60, "the next scan on the same worker")
    assert after.status == Scan.SUCCEEDED, after.error
