"""Artifact builders: one pure function per artifact, from the model to plain data.

No I/O here, and no grpc, kubernetes or HTTP imports (enforced by ``.importlinter``).
"""
