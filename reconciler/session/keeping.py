"""A session's state: which backend, which scope, who we are, and the lock.

The scope is what identifies the target, never a name a person chose: the AWS account
(from STS ``GetCallerIdentity``) and region; the URL of a URL endpoint; the database of
the embedded local HealthImaging. The state of one scope never serves another.
"""

from __future__ import annotations

import getpass
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reconciler import ci
from reconciler.config import Endpoint, ProjectConfig, StateSpec, display_path
from reconciler.errors import ConfigError
from reconciler.healthimaging.client import resolved_region
from reconciler.healthimaging.identity import Identity, caller_identity
from reconciler.state import Scope, State, StateError, StateLock, lock_name
from reconciler.state.open import open_backend

LOG = logging.getLogger("reconciler")
RATES_KEY = "rates.json"


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _host() -> str:
    try:
        return socket.gethostname() or "unknown"
    except OSError:
        return "unknown"


class Keeping:
    """The state of one session (see the module docstring); opened on first use."""

    def __init__(
        self,
        spec: StateSpec,
        config: ProjectConfig,
        endpoint: Endpoint,
        *,
        region: str | None,
        profile: str | None,
        notify: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self.config = config
        self.endpoint = endpoint
        self.region = region
        self.profile = profile
        self.notify = notify
        self._state: State | None = None
        self._identity: dict[str, Identity | None] = {}
        self.lock: StateLock | None = None

    # -- where ------------------------------------------------------------------------
    @property
    def state(self) -> State:
        if self._state is None:
            backend = open_backend(
                self.spec,
                project=self.config.root,
                profile=self.profile,
                region=self.region,
                kms_key_id=self.config.state_kms_key_id,
            )
            self._state = State(backend, self.scope())
        return self._state

    def scope(self) -> Scope:
        if self.endpoint.kind == "local":
            database = self.config.local_db
            shown = (
                database.relative_to(self.config.root).as_posix()
                if database.is_relative_to(self.config.root)
                else display_path(database)
            )
            return Scope.local(shown)
        if self.endpoint.kind == "url":
            assert self.endpoint.url is not None
            return Scope.url(self.endpoint.url)
        who = self.identity(self.endpoint)
        region = resolved_region(self.region, self.profile)
        if who is None or region is None:
            raise ConfigError(
                "cannot tell which AWS account and region the credentials are for (STS "
                "GetCallerIdentity failed, or no region is set): state is kept per account "
                "and region; check the credentials (aws sts get-caller-identity) and --region"
            )
        return Scope.aws(who.partition, who.account, region)

    # -- who ----------------------------------------------------------------------------
    def identity(self, endpoint: Endpoint) -> Identity | None:
        """Who the credentials are at ``endpoint`` (the running one, for local)."""
        key = str(endpoint.url or endpoint.kind)
        if key not in self._identity:
            self._identity[key] = caller_identity(endpoint, self.region, self.profile)
        return self._identity[key]

    def principal(self, endpoint: Endpoint | None) -> str:
        """The principal's ARN, or ``unknown`` when STS cannot say."""
        who = self.identity(endpoint or self.endpoint)
        return who.arn if who is not None else "unknown"

    # -- the lock -------------------------------------------------------------------------
    @contextmanager
    def locked(
        self,
        operation: str,
        *,
        shard: tuple[int, int] | None,
        timeout: float,
        endpoint: Endpoint | None,
    ) -> Iterator[StateLock]:
        """Hold the lock of what ``operation`` writes (all, or one shard) for the
        block; a lock this session holds already is held on, not taken again."""
        if self.lock is not None:
            yield self.lock
            return
        lock = StateLock.acquire(
            self.state,
            name=lock_name(shard),
            operation=operation,
            principal=self.principal(endpoint),
            user=_user(),
            host=_host(),
            job_url=ci.job_url(),
            timeout=timeout,
            notify=self.notify,
        )
        self.lock = lock
        try:
            yield lock
        finally:
            self.lock = None
            lock.release()

    @property
    def rates(self) -> RatesInState:
        return RatesInState(self)


class RatesInState:
    """The rates the runs reached, remembered in the state (``rates.json``): a hint,
    so a failure to read or write it is logged, never raised (the next run only
    starts slower; a pull request's plan job has read-only access to state)."""

    def __init__(self, keeping: Keeping) -> None:
        self._keeping = keeping

    def load(self) -> Any:
        try:
            return self._keeping.state.read_json(RATES_KEY)
        except (StateError, ConfigError) as failure:
            LOG.debug("no remembered rates: %s", failure)
            return None

    def save(self, document: Any) -> None:
        try:
            self._keeping.state.write_json(RATES_KEY, document)
        except (StateError, ConfigError) as failure:
            LOG.debug("could not remember the rates reached: %s", failure)
