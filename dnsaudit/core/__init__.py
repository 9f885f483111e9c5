"""The audit core: plain functions over plain data.

Nothing in this package imports Django, Celery, the Kubernetes client, dnspython or any network
module. Boundary modules (``dnsaudit.boundary``) fetch facts and hand them over as the dataclasses in
``dnsaudit.core.model``; the core decides.
"""
