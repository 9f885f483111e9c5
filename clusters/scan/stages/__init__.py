"""The scan's stages, one module each; ``clusters.scan.pipeline`` calls them in order.

A stage may use ``clusters.scan.progress`` (progress, retries, problems) but never the lifecycle.
"""
