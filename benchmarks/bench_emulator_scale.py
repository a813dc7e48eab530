"""The local HealthImaging at archive scale: search and listing against a static server.

For each N, seeds N image sets (one study each) into a fresh store through the
emulator's own write path, serves it over loopback (quotas off), and measures with a
real boto3 client:

1. SearchImageSets by StudyInstanceUID: median time per call, next to the same client
   calling a static HTTP server that answers every request with the bytes the emulator
   answered (same server stack, same client); target: within 2x at every N;
2. a full listing (SearchImageSets pages of 50 to the end), next to as many pages from
   the static server; the static server's cost is linear in N by construction, so a
   ratio that stays flat as N grows is a listing linear in N;
3. the same listing served in-process (the backend, no HTTP, no boto3): the median
   cost of a page at each N, and of the last quarter of pages against the first (a
   page costs a page: both ~1x).

Calls alternate between the two servers so both see the same machine.

    python benchmarks/bench_emulator_scale.py                     # N = 1,000 10,000 100,000
    python benchmarks/bench_emulator_scale.py --sizes 1000,10000 --searches 200
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench_emulator import make_client  # the same boto3 client as the throughput benchmark

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging

STUDY = "1.2.826.0.1.3680043.10.7"
PAGE = 50


def document(index: int) -> dict[str, Any]:
    """A small document of one study, one series, one instance."""
    series = f"{STUDY}.{index}.1"
    return {
        "SchemaVersion": "1.1",
        "Patient": {"DICOM": {"PatientName": f"BENCH^{index}", "PatientID": f"P{index % 9973}"}},
        "Study": {
            "DICOM": {
                "StudyInstanceUID": f"{STUDY}.{index}",
                "StudyDate": f"20{index % 25:02d}0101",
                "StudyTime": "101500",
                "AccessionNumber": f"A{index}",
                "StudyDescription": "CT CHEST",
            },
            "Series": {
                series: {
                    "DICOM": {"SeriesInstanceUID": series, "Modality": "CT"},
                    "Instances": {f"{series}.1": {"DICOM": {"SOPInstanceUID": f"{series}.1"}}},
                }
            },
        },
    }


def seed(local: LocalHealthImaging, n: int) -> str:
    """N image sets, created as an import creates them, in one transaction."""
    backend = local.backend
    datastore = backend.datastores.create("bench")
    with backend.store.write() as conn:
        backend.datastores.settle(conn)
        for index in range(n):
            image_set_id = f"{index:032x}"
            backend.image_sets.create(
                conn, datastore, image_set_id, document(index), is_primary=True
            )
    return datastore


class Canned:
    """The last answer the emulator gave, replayed byte for byte by the static server."""

    body = b"{}"


@contextmanager
def static_server(canned: Canned) -> Iterator[str]:
    """A ThreadingHTTPServer (the emulator's stack) that answers every POST with
    ``canned.body``: the floor of an HTTP round trip with this client."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = canned.body
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def timed(call: Callable[..., Any], /, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call(**kwargs)
    return time.perf_counter() - started, result


def capture(emulator: Any, canned: Canned) -> None:
    """Keep the raw bytes of each emulator answer for the static server to replay."""

    def keep(http_response: Any, **_: Any) -> None:
        canned.body = http_response.content

    emulator.meta.events.register("after-call.medical-imaging.SearchImageSets", keep)


def by_study(datastore: str, index: int) -> dict[str, Any]:
    """SearchImageSets' arguments for the study of image set ``index``."""
    uid = {"DICOMStudyInstanceUID": f"{STUDY}.{index}"}
    criteria = {"filters": [{"operator": "EQUAL", "values": [uid]}]}
    return {"datastoreId": datastore, "searchCriteria": criteria}


def time_searches(
    emulator: Any, static: Any, datastore: str, *, n: int, searches: int
) -> tuple[list[float], list[float]]:
    """Searches by study for random image sets, each asked of both servers in turn."""
    found = emulator.search_image_sets(**by_study(datastore, 0))["imageSetsMetadataSummaries"]
    assert [s["imageSetId"] for s in found] == [f"{0:032x}"], found
    static.search_image_sets(**by_study(datastore, 0))  # both connections warm
    rng = random.Random(n)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(searches):
        arguments = by_study(datastore, rng.randrange(n))
        times[0].append(timed(emulator.search_image_sets, **arguments)[0])
        times[1].append(timed(static.search_image_sets, **arguments)[0])
    return times


def time_listing(
    emulator: Any, static: Any, datastore: str, *, n: int
) -> tuple[list[float], list[float]]:
    """Every page of the full listing, each followed by a static page replaying it."""
    times: tuple[list[float], list[float]] = ([], [])
    listed, more = 0, {}
    while True:
        took, answer = timed(
            emulator.search_image_sets, datastoreId=datastore, maxResults=PAGE, **more
        )
        times[0].append(took)
        times[1].append(timed(static.search_image_sets, datastoreId=datastore, maxResults=PAGE)[0])
        listed += len(answer["imageSetsMetadataSummaries"])
        if not answer.get("nextToken"):
            assert listed == n, f"the listing has {listed} image sets, not {n}"
            return times
        more = {"nextToken": answer["nextToken"]}


def time_pages_in_process(local: LocalHealthImaging, datastore: str) -> list[float]:
    """The same listing served by the backend without HTTP or boto3: what a page costs
    the emulator itself, at every depth of the listing."""
    times: list[float] = []
    more: dict[str, str] = {}
    while True:
        took, answer = timed(
            local.backend.handle,
            operation="SearchImageSets",
            params={"datastoreId": datastore, "maxResults": PAGE, **more},
        )
        times.append(took)
        if not answer.get("nextToken"):
            return times
        more = {"nextToken": answer["nextToken"]}


def measure(n: int, searches: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-emulator-scale-") as tmp:
        config = EmulatorConfig(
            db_path=Path(tmp) / "scale.sqlite", quotas_enabled=False, lock_hold_seconds=0.0
        )
        with LocalHealthImaging(config) as local:
            seeded, datastore = timed(seed, local=local, n=n)
            canned = Canned()
            emulator = make_client(local.url, threads=1)
            capture(emulator, canned)
            with static_server(canned) as static_url:
                static = make_client(static_url, threads=1)
                search = time_searches(emulator, static, datastore, n=n, searches=searches)
                pages = time_listing(emulator, static, datastore, n=n)
            inside = time_pages_in_process(local, datastore)
    quarter = max(len(inside) // 4, 1)
    return {
        "n": n,
        "seed_s": seeded,
        "search_ms": statistics.median(search[0]) * 1e3,
        "search_static_ms": statistics.median(search[1]) * 1e3,
        "search_ratio": statistics.median(search[0]) / statistics.median(search[1]),
        "pages": len(pages[0]),
        "listing_s": sum(pages[0]),
        "listing_static_s": sum(pages[1]),
        "listing_ratio": sum(pages[0]) / sum(pages[1]),
        "page_inside_ms": statistics.median(inside) * 1e3,
        "deep_ratio": statistics.median(inside[-quarter:]) / statistics.median(inside[:quarter]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="image set counts, comma-separated"
    )
    parser.add_argument("--searches", type=int, default=300, help="searches by study per N")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("$ python " + " ".join(sys.argv))
    print(
        f"SearchImageSets over loopback with boto3, quotas off; static server = same bytes, "
        f"same HTTP stack; medians of {args.searches} searches and of every listing page"
    )
    rows = [measure(n, args.searches) for n in sizes]
    print(
        f"{'image sets':>10}  {'seed':>6}  {'by study':>9}  {'static':>7}  {'ratio':>5}  "
        f"{'pages':>5}  {'listing':>8}  {'static':>7}  {'ratio':>5}  {'in-process page':>15}  "
        f"{'last/first quarter':>18}"
    )
    for row in rows:
        print(
            f"{row['n']:>10,}  {row['seed_s']:>5.1f}s  {row['search_ms']:>7.2f}ms  "
            f"{row['search_static_ms']:>5.2f}ms  {row['search_ratio']:>4.2f}x  "
            f"{row['pages']:>5}  {row['listing_s']:>7.2f}s  {row['listing_static_s']:>6.2f}s  "
            f"{row['listing_ratio']:>4.2f}x  {row['page_inside_ms']:>13.2f}ms  "
            f"{row['deep_ratio']:>17.2f}x"
        )
    worst = max(row["search_ratio"] for row in rows)
    first, last = rows[0], rows[-1]
    print(
        f"search by study: at most {worst:.2f}x a static server (target <= 2x). Full listing: "
        f"{first['listing_ratio']:.2f}x the static server's {first['pages']} pages at "
        f"{first['n']:,}, {last['listing_ratio']:.2f}x its {last['pages']} pages at "
        f"{last['n']:,} (the static server's cost is linear in N by construction); "
        f"in-process, a page costs {last['page_inside_ms'] / first['page_inside_ms']:.2f}x "
        f"at {last['n']:,} what it costs at {first['n']:,}, and the last pages "
        f"{last['deep_ratio']:.2f}x the first (a page costs a page: ~1x)"
    )


if __name__ == "__main__":
    main()
