"""Settings of a local HealthImaging, fixed at start or changed while it runs."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from reconciler.emulator import choices, quota_profiles
from reconciler.emulator.exceptions import ValidationException

# Not secrets: the key pair admin calls are signed with unless configured otherwise
# (the same pair the CLI's --local client signs with).
DEFAULT_ACCESS_KEY = "reconciler-local"
DEFAULT_SECRET_KEY = "reconciler-local-not-a-secret"


@dataclass
class OperationFaults:
    """Faults injected into one operation (or ``*`` for every operation)."""

    error_rate: float = 0.0  # fraction of requests answered with error_status
    error_status: int = 500  # 500 InternalServerException or 429 ThrottlingException
    latency_seconds: float = 0.0  # added before the request is handled
    lock_hold_seconds: float | None = None  # overrides the global hold for this write


@dataclass
class Faults:
    operations: dict[str, OperationFaults] = field(default_factory=dict)
    # The next N updates fail asynchronously (ACTIVE / UPDATE_FAILED with this message).
    fail_updates: int = 0
    fail_message: str = "Update failed: injected fault"
    seed: int = 0


@dataclass
class EmulatorConfig:
    db_path: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port
    lock_hold_seconds: float = 0.2  # how long an update/copy/delete keeps the set LOCKED
    payload_quota_bytes: int = choices.DEFAULT_PAYLOAD_QUOTA_BYTES
    max_metadata_bytes: int = choices.MAX_METADATA_BYTES
    quotas_enabled: bool = True
    quota_scale: float = 1.0  # multiplies every rate and burst
    # Published quotas by name (quota_profiles.PROFILES), and operations set apart from
    # it: {"UpdateImageSetMetadata": (10.0, 40)}.
    quota_profile: str = quota_profiles.DEFAULT_PROFILE
    quota_overrides: dict[str, tuple[float, int]] = field(default_factory=dict)
    # Whether Service Quotas lists the quotas enforced (servicequotas.py).
    service_quotas: bool = True
    require_auth: bool = True
    read_only: bool = False
    faults: Faults = field(default_factory=Faults)
    # The trust boundary (docs/local-healthimaging.md, docs/reliability.md): admin calls
    # must be signed by one of these keys (access key -> secret); imports read and write
    # only below import_root (None: the current folder at start); a request must arrive
    # whole within request_timeout_seconds, and its answer leave within as long; at
    # most max_connections are served at once (more are answered 503 and closed).
    credentials: Mapping[str, str] = field(
        default_factory=lambda: {DEFAULT_ACCESS_KEY: DEFAULT_SECRET_KEY}
    )
    import_root: Path | None = None
    # The local S3 (s3.LocalS3's URL) that s3:// import URIs name; None: s3:// is refused.
    s3_endpoint: str | None = None
    # The SQS queue (event_queue.LocalEventQueue's URL) the service's EventBridge events
    # are sent to, as an EventBridge rule with an SQS target would; None: no events.
    events_queue_url: str | None = None
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides addresses and localhost
    request_timeout_seconds: float = 30.0
    max_connections: int = 256


# Settings that may change while the emulator runs (admin endpoint, Python API).
RUNTIME_SETTINGS = (
    "lock_hold_seconds",
    "payload_quota_bytes",
    "max_metadata_bytes",
    "quotas_enabled",
    "quota_scale",
    "quota_profile",
    "quota_overrides",
    "service_quotas",
    "require_auth",
    "read_only",
)


class RuntimeSettings:
    """The live, thread-safe view of an :class:`EmulatorConfig`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._random = random.Random(config.faults.seed)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON object of changes: settings by name, plus ``faults``."""
        with self._lock:
            for key, value in changes.items():
                if key == "faults":
                    self.config.faults = _faults_from(value, self.config.faults)
                    self._random = random.Random(self.config.faults.seed)
                elif key == "quota_profile":
                    if not isinstance(value, str):
                        raise ValidationException("quota_profile must be a profile's name")
                    quota_profiles.profile(value)  # refuses an unknown name
                    self.config.quota_profile = value
                elif key == "quota_overrides":
                    if not isinstance(value, dict):
                        raise ValidationException("quota_overrides must be an object")
                    self.config.quota_overrides = {
                        name: quota_profiles.check_override(name, spec)
                        for name, spec in value.items()
                    }
                elif key in RUNTIME_SETTINGS:
                    setattr(self.config, key, _coerce(key, getattr(self.config, key), value))
                else:
                    raise ValidationException(f"unknown emulator setting {key!r}")

    def operation_faults(self, operation: str) -> OperationFaults:
        ops = self.config.faults.operations
        return ops.get(operation) or ops.get("*") or OperationFaults()

    def lock_hold(self, operation: str) -> float:
        """How long a write by ``operation`` keeps its image set LOCKED."""
        hold = self.operation_faults(operation).lock_hold_seconds
        return self.config.lock_hold_seconds if hold is None else hold

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate

    def take_update_failure(self) -> str | None:
        """The message of an injected update failure, if one is due."""
        with self._lock:
            if self.config.faults.fail_updates <= 0:
                return None
            self.config.faults.fail_updates -= 1
            return self.config.faults.fail_message

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = {name: getattr(self.config, name) for name in RUNTIME_SETTINGS}
            data["faults"] = asdict(self.config.faults)
            data["quotas"] = self.quotas()
            return data

    def quotas(self) -> dict[str, tuple[float, int]]:
        """The quotas in force per operation (before quota_scale)."""
        return quota_profiles.resolve(self.config.quota_profile, self.config.quota_overrides)


def _coerce(key: str, current: Any, value: Any) -> Any:
    """``value`` as the type of the setting; bool("false") is True, so no casts."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValidationException(f"{key} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationException(f"{key} must be a number")
    return type(current)(value)


def _faults_from(value: Any, current: Faults) -> Faults:
    if not isinstance(value, dict):
        raise ValidationException("faults must be an object")
    known = {f.name for f in fields(Faults)}
    unknown = set(value) - known
    if unknown:
        raise ValidationException(f"unknown fault setting {sorted(unknown)[0]!r}")
    ops = dict(current.operations)
    for name, spec in (value.get("operations") or {}).items():
        if not isinstance(spec, dict):
            raise ValidationException(f"faults.operations.{name} must be an object")
        try:
            ops[name] = OperationFaults(**spec)
        except TypeError as error:
            raise ValidationException(f"faults.operations.{name}: {error}") from None
    return Faults(
        operations=ops,
        fail_updates=int(value.get("fail_updates", current.fail_updates)),
        fail_message=str(value.get("fail_message", current.fail_message)),
        seed=int(value.get("seed", current.seed)),
    )
