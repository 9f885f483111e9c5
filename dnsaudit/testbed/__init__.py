"""Test equipment, not the product: what the tests, the benchmarks and the demo fleet stand in for.

* ``fakekube/`` — the project's HTTPS Kubernetes test API server (RBAC, pagination, faults, exec like a
  real kubelet) and the demo fleet;
* ``fakedns.py`` — the scripted DNS server (the demo's upstream, the resolver lab);
* ``demoregistry.py`` — the loopback registry mirror holding the demo's synthetic images;
* ``imagebuild.py`` — builds OCI images in Python for tests and benchmarks.

The product (``dnsaudit/core``, ``dnsaudit/boundary``, ``clusters``) never imports it, except the ``demo``
command, which serves the demo fleet with it (a test checks this).
"""
