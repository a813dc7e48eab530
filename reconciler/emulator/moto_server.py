"""moto's server beside the local HealthImaging: S3 (``--s3``) and SQS (``--events``).

moto, an optional extra, emulates AWS services in memory and its server answers every
service it knows on one port; the local HealthImaging starts one per purpose on a
loopback port of its own. What it holds lasts as long as the process.
"""

from __future__ import annotations

import importlib.util
import logging
import socket


def available() -> bool:
    """Whether moto's server (the optional extra) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("moto", "flask"))


class MotoServer:
    """moto's server in a thread, on loopback; ``start()`` returns its URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, needs: str) -> None:
        if not available():
            raise RuntimeError(needs)
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._address = (host, port)
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.url = ""

    def start(self) -> str:
        """Start serving; a port already in use raises OSError (moto's thread would
        otherwise fail where nobody sees it)."""
        host, port = self._address
        if port:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                probe.bind((host, port))
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        self._server.stop()
