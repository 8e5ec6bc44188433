"""The scaler's server certificate, reloaded when its files change. Does I/O (files).

cert-manager renews a Certificate by rewriting its Secret, and the kubelet swaps the mounted
files in place. gRPC asks :meth:`TLS.fetch` for the certificate before every new
connection's handshake; a change of the files (their inode, size or mtime) loads them
again, so a rotated certificate is served without a restart. A pair that does not load (a
key that does not match its certificate, a file caught half-written) is refused with a
warning and the current certificate is kept.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc

log = logging.getLogger("ofobserve.scaler")

Signature = tuple[tuple[int, int, int], ...]


@dataclass
class TLS:
    """PEM files: certificate, key, and the CA that client certificates must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    _signature: Signature = field(default=(), init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.cert, self.key, *((self.client_ca,) if self.client_ca else ()))

    def _stat(self) -> Signature:
        stats = [os.stat(path) for path in self.paths]
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def load(self) -> grpc.ServerCertificateConfiguration:
        """Read and check the files; ``OSError`` or ``ssl.SSLError`` when they do not load."""
        signature = self._stat()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca:
            context.load_verify_locations(self.client_ca)
        ca = self.client_ca.read_bytes() if self.client_ca else None
        pair = (self.key.read_bytes(), self.cert.read_bytes())
        self._signature = signature
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed, else ``None`` (keep the current)."""
        with self._lock:
            try:
                if self._stat() == self._signature:
                    return None
                config = self.load()
            except OSError as exc:  # ssl.SSLError included
                log.warning("TLS files changed but do not load, keeping the current: %s", exc)
                return None
            log.info("TLS certificate reloaded from %s", self.cert)
            return config

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.load(), self.fetch, require_client_authentication=self.client_ca is not None
        )
