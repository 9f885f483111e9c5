"""The scan tests' environment (in-process scans, loopback only, a scripted upstream DNS) for the tests that
export a real scan of the demo fleet."""

from tests.scans.conftest import _scan_environment, upstream_dns  # noqa: F401
