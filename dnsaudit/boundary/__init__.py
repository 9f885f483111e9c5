"""One module per outside system: Kubernetes API, OCI registries, DNS.

Each returns the project's own dataclasses (never client-library objects) and raises one error type
that says whether the failure is transient.
"""
