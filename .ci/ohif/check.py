"""OHIF, in headless Chromium, shows what `reconciler apply` just changed.

1. A seeded local HealthImaging (in this process), and `reconciler apply` (the CLI) of
   a manifest that changes the NM study's StudyDescription.
2. A loopback server that serves the OHIF viewer (the @ohif/app npm package's built
   dist/) and, under /dicomweb/, HealthImaging's DICOMweb: each request signed with
   SigV4 (botocore) and passed to the local HealthImaging, as a proxy in front of AHI
   would (a browser cannot sign; the local HealthImaging refuses other origins).
3. Chromium opens the study in OHIF's viewer; the rendered page must show the new
   StudyDescription, and OHIF must have read the study's WADO-RS series metadata.

Usage: python .ci/ohif/check.py OHIF_DIST_DIR [CHROMIUM [SCREENSHOT.png]]
(exit 0 when it holds; with SCREENSHOT, also a picture of the viewer).
"""

from __future__ import annotations

import hashlib
import http.client
import mimetypes
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.emulator.server import LocalHealthImaging

NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
CHANGED = "NM BONE SCAN RECONCILED"
MANIFEST = f"""\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata: {{name: nm-description}}
spec:
  selector: {{studyInstanceUID: "{NM_STUDY}"}}
  set:
    Study: {{StudyDescription: "{CHANGED}"}}
"""
APP_CONFIG = """\
window.config = {
  routerBasename: null, extensions: [], modes: [], showStudyList: true,
  defaultDataSourceName: 'local-healthimaging',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'local-healthimaging',
    configuration: {
      friendlyName: 'Local HealthImaging', name: 'local-healthimaging',
      wadoUriRoot: '/dicomweb', qidoRoot: '/dicomweb', wadoRoot: '/dicomweb',
      qidoSupportsIncludeField: false, imageRendering: 'wadors',
      thumbnailRendering: 'wadors', enableStudyLazyLoad: true,
      supportsFuzzyMatching: false, supportsWildcard: true, staticWado: false,
      singlepart: 'bulkdata,video', acceptHeader: ['*/*'],
      omitQuotationForMultipartRequest: true,
    },
  }],
};
"""


def run_apply(url: str, folder: Path) -> None:
    (folder / "manifests").mkdir()
    (folder / "manifests" / "nm.yaml").write_text(MANIFEST)
    (folder / ".git").mkdir()
    (folder / "reconciler.yaml").write_text(
        f"endpoint: {url}\ndatastoreId: {SEED_DATASTORE_ID}\n"
        "rateLimits: {UpdateImageSetMetadata: 100}\n"
    )
    subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve"], cwd=folder, check=True
    )


def viewer_server(
    dist: Path, upstream: str, seen: list[tuple[str, int, bytes]]
) -> ThreadingHTTPServer:
    target = urlsplit(upstream)
    signer = SigV4Auth(Credentials("local", "local"), "medical-imaging", "us-east-1")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/dicomweb/"):
                self._dicomweb()
            elif path == "/app-config.js":
                self._answer(200, "text/javascript", APP_CONFIG.encode())
            else:
                file = (dist / path.lstrip("/")).resolve()
                if not file.is_file() or not file.is_relative_to(dist):
                    file = dist / "index.html"  # the viewer's own routes (/viewer, ...)
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                self._answer(200, kind, file.read_bytes())

        def _dicomweb(self) -> None:
            path = f"/datastore/{SEED_DATASTORE_ID}" + self.path[len("/dicomweb") :]
            headers = {
                "Host": target.netloc,
                "Accept": self.headers.get("Accept", "*/*"),
                "X-Amz-Content-SHA256": hashlib.sha256(b"").hexdigest(),
            }
            request = AWSRequest("GET", f"{upstream}{path}", headers=headers)
            signer.add_auth(request)
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            conn.request("GET", path, headers=dict(request.headers.items()))
            response = conn.getresponse()
            body = response.read()
            seen.append((path, response.status, body))
            self._answer(response.status, response.getheader("Content-Type", ""), body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    dist = Path(sys.argv[1]).resolve()
    chromium = sys.argv[2] if len(sys.argv) > 2 else "chromium"
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        config = EmulatorConfig(db_path=folder / "ahi.sqlite", quotas_enabled=False)
        with LocalHealthImaging(config) as local:
            seed(local.backend)
            run_apply(local.url, folder)
            seen: list[tuple[str, int, bytes]] = []
            server = viewer_server(dist, local.url, seen)
            page = (
                f"http://127.0.0.1:{server.server_address[1]}/viewer?StudyInstanceUIDs={NM_STUDY}"
            )
            browser = [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",
                "--user-data-dir=" + str(folder / "chromium"),
                "--virtual-time-budget=60000",
                "--window-size=1400,900",
            ]
            shown = subprocess.run(
                [*browser, "--dump-dom", page], capture_output=True, text=True, timeout=300
            )
            if len(sys.argv) > 3:
                picture = f"--screenshot={Path(sys.argv[3]).resolve()}"
                subprocess.run([*browser, picture, page], capture_output=True, timeout=300)
            server.shutdown()
    metadata = [body for path, status, body in seen if path.endswith("/metadata") and status == 200]
    print(f"OHIF made {len(seen)} DICOMweb requests; {len(metadata)} WADO-RS metadata answers")
    for path, status, _ in seen:
        print(f"  {status} {path}")
    ok_metadata = any(CHANGED.encode() in body for body in metadata)
    ok_page = CHANGED in shown.stdout
    print(f"WADO-RS metadata carried {CHANGED!r}: {ok_metadata}")
    print(f"OHIF's page shows {CHANGED!r}: {ok_page}")
    if not ok_page:
        print(shown.stdout[-3000:], shown.stderr[-3000:], sep="\n")
    return 0 if ok_metadata and ok_page else 1


if __name__ == "__main__":
    sys.exit(main())
