"""``reconciler emulator``: run the local HealthImaging."""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.emulator.config import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, EmulatorConfig
from reconciler.emulator.exceptions import ServiceError
from reconciler.emulator.quota_profiles import DEFAULT_PROFILE, PROFILES, parse_override
from reconciler.errors import ConfigError, ReconcilerError

if TYPE_CHECKING:
    from reconciler.emulator.event_queue import LocalEventQueue
    from reconciler.emulator.moto_server import MotoServer
    from reconciler.emulator.s3 import LocalS3
    from reconciler.emulator.server import LocalHealthImaging

    Sidecar = TypeVar("Sidecar", bound=MotoServer)
    F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = Path(".reconciler") / "local-healthimaging.sqlite"

db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DB,
    show_default=True,
    help="SQLite file holding the data (created if missing).",
)


def sidecar_port_option(flag: str, of: str) -> Callable[[F], F]:
    """The port option of a server that a flag starts beside the local HealthImaging."""
    return click.option(
        flag,
        type=click.IntRange(0, 65535),
        default=0,
        show_default=True,
        help=f"Port of {of} (0 picks a free one).",
    )


@click.group()
def emulator() -> None:
    """The local HealthImaging: a wire-compatible AWS HealthImaging on SQLite.

    Point boto3 or the AWS CLI at it with only the endpoint changed (and host-prefix
    injection off, see `serve --help`). No AWS account and no network needed.
    """


@emulator.command()
@db_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Loopback by default; anything else exposes patient data.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--seed",
    is_flag=True,
    help="Import pydicom's sample DICOM files into a fixed data store first.",
)
@click.option(
    "--lock-hold",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds an update/copy/delete keeps an image set LOCKED.",
)
@click.option(
    "--quota-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Multiply the service's default request quotas (e.g. 100 for fast runs).",
)
@click.option(
    "--quota-profile",
    type=click.Choice(sorted(PROFILES)),
    default=DEFAULT_PROFILE,
    show_default=True,
    help="Request quotas as AWS has published them: fast-updates (the newest: updates "
    "10/s burst 40), standard (updates 0.25/s burst 1), early-import (imports 0.25/s "
    "burst 1).",
)
@click.option(
    "--quota",
    "quota_overrides",
    multiple=True,
    metavar="OP=RATE/BURST",
    help="Override one operation's quota, e.g. UpdateImageSetMetadata=10/40 (repeatable).",
)
@click.option("--no-quotas", is_flag=True, help="Do not throttle at all.")
@click.option(
    "--no-service-quotas",
    is_flag=True,
    help="List no quotas in AWS Service Quotas' ListServiceQuotas (served on this port "
    "too), like an account whose quotas cannot be read: clients must find the rate.",
)
@click.option("--read-only", is_flag=True, help="Refuse every write operation (AccessDenied).")
@click.option("--no-auth", is_flag=True, help="Accept requests without a SigV4 signature.")
@click.option(
    "--import-root",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    default=Path("."),
    show_default=True,
    help="The only folder StartDICOMImportJob may read from and write into.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(0.1, 3600),
    metavar="SECONDS",
    default=30.0,
    show_default=True,
    help="Seconds a client has to send a whole request (and to read the answer).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 4096),
    metavar="N",
    default=256,
    show_default=True,
    help="Connections served at once; more are answered 503 and closed.",
)
@click.option(
    "--allow-host",
    "allowed_hosts",
    metavar="NAME",
    multiple=True,
    help="A Host name to answer to besides IP addresses and localhost (e.g. a container's "
    "service name); repeatable. Any other name is refused (DNS rebinding).",
)
@click.option(
    "--admin-key",
    metavar="KEY:SECRET",
    envvar="RECONCILER_EMULATOR_ADMIN_KEY",
    default=f"{DEFAULT_ACCESS_KEY}:{DEFAULT_SECRET_KEY}",
    help="The key admin calls (/_emulator/) must be signed with [env var: "
    "RECONCILER_EMULATOR_ADMIN_KEY; default: the --local key pair].",
)
@click.option(
    "--s3",
    "with_s3",
    is_flag=True,
    help="Serve S3 beside it (moto's; pip install 'healthimaging-reconciler[s3]') on a "
    "second port, printed as 'S3 on URL': imports then take s3:// URIs and write their "
    "reports there.",
)
@sidecar_port_option("--s3-port", "the S3 that --s3 starts")
@click.option(
    "--events",
    "with_events",
    is_flag=True,
    help="Send the service's EventBridge events (Image Set Updated, Import Job Completed, "
    "...) to an SQS queue served beside it (moto's; pip install "
    "'healthimaging-reconciler[events]'), printed as 'Events (SQS) on QUEUE_URL'.",
)
@sidecar_port_option("--events-port", "the SQS that --events starts")
def serve(db: Path, host: str, port: int, seed: bool, lock_hold: float, quota_scale: float,
          quota_profile: str, quota_overrides: tuple[str, ...], no_quotas: bool,
          no_service_quotas: bool, read_only: bool, no_auth: bool, import_root: Path,
          request_timeout: float,
          max_connections: int, allowed_hosts: tuple[str, ...],
          admin_key: str, with_s3: bool, s3_port: int, with_events: bool,
          events_port: int) -> None:  # fmt: skip
    """Serve the local HealthImaging over HTTP until Ctrl-C.

    \b
    Talk to it with boto3:
      boto3.client("medical-imaging", endpoint_url="http://127.0.0.1:8080",
                   config=botocore.config.Config(inject_host_prefix=False))
    or the AWS CLI:
      AWS_DISABLE_HOST_PREFIX_INJECTION=true aws medical-imaging list-datastores \\
          --endpoint-url http://127.0.0.1:8080
    It answers AWS Service Quotas for medical-imaging too (the quotas it enforces):
      aws service-quotas list-service-quotas --service-code medical-imaging \\
          --endpoint-url http://127.0.0.1:8080
    Any credentials work for the service's operations (they must be signed; those
    signatures are not checked). Admin calls (/_emulator/) must be signed with
    --admin-key, and a request whose Host is not this server's or that comes from a web
    page of another origin is refused.
    """
    access_key, _, secret = admin_key.partition(":")
    if not access_key or not secret:
        raise ConfigError("--admin-key must be KEY:SECRET (an access key and its secret)")
    try:
        overrides = dict(parse_override(text) for text in quota_overrides)
    except ServiceError as error:
        raise click.BadParameter(error.message, param_hint="--quota") from None
    sidecars: list[MotoServer] = []
    try:
        local_s3 = _start_s3(host, s3_port, sidecars) if with_s3 else None
        queue = _start_events_queue(host, events_port, sidecars) if with_events else None
        config = EmulatorConfig(
            db_path=db, host=host, port=port, lock_hold_seconds=lock_hold,
            quotas_enabled=not no_quotas, quota_scale=quota_scale,
            quota_profile=quota_profile, quota_overrides=overrides,
            service_quotas=not no_service_quotas, require_auth=not no_auth,
            read_only=read_only, credentials={access_key: secret},
            import_root=import_root, request_timeout_seconds=request_timeout,
            max_connections=max_connections, allowed_hosts=allowed_hosts,
            s3_endpoint=local_s3.url if local_s3 else None,
            events_queue_url=queue.queue_url if queue else None,
        )  # fmt: skip
        _serve(_start(config, seed), host, db, local_s3)
    finally:
        for sidecar in sidecars:
            sidecar.stop()


def _serve(local: LocalHealthImaging, host: str, db: Path, local_s3: LocalS3 | None) -> None:
    """Say where it listens, then serve until Ctrl-C. Everything slow (the codec's
    import) happens before the startup line: a Ctrl-C sent as soon as that line is
    printed must find the server ready to stop cleanly."""
    from reconciler.emulator import htj2k

    codec = htj2k.available()
    _stop_on_signals()
    try:
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"Warning: listening on {host}, not loopback.", err=True)
        if not codec:
            click.echo(f"GetImageFrame needs the HTJ2K codec: {htj2k.INSTALL_HINT}", err=True)
        click.echo(f"Local HealthImaging on {local.url} (db {db}); Ctrl-C stops.", err=True)
        if local_s3 is not None:
            click.echo(f"S3 on {local_s3.url}", err=True)
        if local.events_queue_url:
            click.echo(f"Events (SQS) on {local.events_queue_url}", err=True)
        local.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)
    except OSError as failure:
        raise ReconcilerError(f"the local HealthImaging stopped: {failure}") from None


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM (docker stop, kubectl delete, systemd) stop the server
    cleanly, also when it was started with SIGINT ignored, as a script's background job
    (``reconciler emulator serve &``) inherits it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def _start_s3(host: str, port: int, started: list[MotoServer]) -> LocalS3:
    from reconciler.emulator import s3

    return _start_sidecar(
        lambda: s3.LocalS3(host, port),
        what=f"S3 on {host}:{port}",
        needs=f"--s3 needs moto's S3 server: {s3.INSTALL_HINT}",
        started=started,
    )


def _start_events_queue(host: str, port: int, started: list[MotoServer]) -> LocalEventQueue:
    from reconciler.emulator import event_queue

    return _start_sidecar(
        lambda: event_queue.LocalEventQueue(host, port),
        what=f"the events queue on {host}:{port}",
        needs=f"--events needs moto's SQS server: {event_queue.INSTALL_HINT}",
        started=started,
    )


def _start_sidecar(
    make: Callable[[], Sidecar], *, what: str, needs: str, started: list[MotoServer]
) -> Sidecar:
    """Start moto's server beside the local HealthImaging (added to ``started``, to be
    stopped with it); moto missing or a port in use is one line."""
    from reconciler.emulator import moto_server

    if not moto_server.available():
        raise ConfigError(needs)
    sidecar = make()
    try:
        sidecar.start()
    except OSError as failure:
        raise ReconcilerError(f"cannot start {what}: {failure}") from None
    started.append(sidecar)
    return sidecar


def _start(config: EmulatorConfig, seed: bool) -> LocalHealthImaging:
    """Open the database, seed it if asked and bind the port; a failure is one line."""
    from reconciler.emulator.seed import seed as run_seed
    from reconciler.emulator.server import LocalHealthImaging

    where = f"{config.host}:{config.port}"
    try:
        if config.import_root is not None and not config.import_root.is_dir():
            raise ConfigError(f"--import-root {config.import_root} is not a folder")
        local = LocalHealthImaging(config)
    except (OSError, sqlite3.Error) as failure:
        raise ReconcilerError(f"cannot open {config.db_path}: {_reason(failure)}") from None
    try:
        if seed:
            result = run_seed(local.backend)
            verb = "Seeded" if result.created else "Already seeded:"
            click.echo(f"{verb} data store {result.datastore_id} ({result.image_sets} image sets)",
                       err=True)  # fmt: skip
        local.bind()
    except (OSError, sqlite3.Error, ValueError) as failure:
        local.stop()
        raise ReconcilerError(f"cannot serve on {where}: {_reason(failure)}") from None
    return local


def _reason(failure: Exception) -> str:
    """``[Errno 98] Address already in use`` -> ``address already in use``."""
    text = failure.strerror if isinstance(failure, OSError) and failure.strerror else failure
    return str(text)[:1].lower() + str(text)[1:]


@emulator.command("seed")
@db_option
def seed_command(db: Path) -> None:  # fmt: skip
    """Import pydicom's sample DICOM files into a fixed data store and list the result.

    The data store and image set IDs are the same on every machine, so manifests and
    docs can name them. Patient names and IDs are not printed.
    """
    from reconciler.emulator.backend import Backend
    from reconciler.emulator.seed import seed

    try:
        backend = Backend(EmulatorConfig(db_path=db, lock_hold_seconds=0.0, quotas_enabled=False))
    except (OSError, sqlite3.Error) as failure:
        raise ReconcilerError(f"cannot open {db}: {_reason(failure)}") from None
    try:
        result = seed(backend)
        verb = "Seeded" if result.created else "Already seeded:"
        click.echo(f"{verb} data store {result.datastore_id} in {db}")
        if result.created:
            click.echo(
                f"  {result.files_imported} files imported, {result.files_failed} skipped "
                "(duplicates and deliberately broken samples)"
            )
        token: str | None = None
        click.echo(
            f"{'IMAGE SET':32}  {'PRIMARY':7}  {'SERIES':>6}  {'INST':>4}  STUDY INSTANCE UID"
        )
        while True:
            params: dict[str, object] = {"datastoreId": result.datastore_id, "searchCriteria": {
                "sort": {"sortField": "createdAt", "sortOrder": "ASC"}}}  # fmt: skip
            if token:
                params["nextToken"] = token
            page = backend.handle("SearchImageSets", params)
            for summary in page["imageSetsMetadataSummaries"]:
                tags = summary["DICOMTags"]
                click.echo(
                    f"{summary['imageSetId']:32}  {'yes' if summary['isPrimary'] else 'no':7}  "
                    f"{tags.get('DICOMNumberOfStudyRelatedSeries', 0):>6}  "
                    f"{tags.get('DICOMNumberOfStudyRelatedInstances', 0):>4}  "
                    f"{tags.get('DICOMStudyInstanceUID', '')}"
                )
            token = page.get("nextToken")
            if not token:
                break
    finally:
        backend.close()
