"""Dashboard views, one module per responsibility.

fleet (overview), report (cluster report and workloads table), workload (workload page), scans (rescan and
progress), exports (downloads), manage (cluster management), account (API tokens), api (JSON API),
metrics (Prometheus).
"""
