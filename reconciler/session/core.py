"""The library's front door: one :class:`Session` per endpoint, every workflow on it.

::

    from reconciler import Session

    with Session(endpoint="local", project_dir=".") as s:
        plan = s.plan(["manifests"])           # resolve, read, diff, payloads; no writes
        report = s.apply(plan.plan)            # interrupted runs settled first, journaled
        drift = s.drift(["manifests"])         # read-only; drift.in_sync
        s.revert(run_id=report.run_id)         # or image_set=..., to_version=...

Everything a caller must not be able to skip lives here, not in the CLI: the project's
policies (a plan failing a mandatory rule is never applied), the state lock around
every write, settling the calls and replaces that interrupted runs left open (before
anything is applied), the journal, the audit trail (each outcome recorded as it is
known, :mod:`reconciler.audit`), the drift state of ``drift --since-last-run`` and the
bookkeeping of replaced image sets — all kept in the project's state backend
(:mod:`reconciler.state`: local, or S3 for teams). The CLI
adds only what is a person's: confirmation, progress lines, colour and wording.
Messages meant for the user (a resumed replace, a recovered call, a manifest warning)
go to ``notify``; by default they are logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from reconciler import audit, ci
from reconciler.config import (
    MAX_PARALLELISM,
    Endpoint,
    ProjectConfig,
    parse_state,
    resolve_endpoint,
    resolve_state,
)
from reconciler.engine import planfile
from reconciler.engine.apply import ImageSetOutcome, Sending, apply_plan
from reconciler.engine.export import SAMPLE_CHOICE, Export, export_image_set, parse_attribute
from reconciler.engine.export import export as export_manifests
from reconciler.engine.incremental import (
    DriftState,
    Observation,
    Pair,
    incremental_targets,
    load_state,
    owned_by_plan,
    save_state,
    state_after,
    state_key,
)
from reconciler.engine.journal import LAST, Journal, Run, RunContext, RunHeader, RunStore
from reconciler.engine.journal.legacy import import_journals
from reconciler.engine.origins import change_origins
from reconciler.engine.plan import Pace, Plan, PlanRequest, ReadOptions, make_plan
from reconciler.engine.plancheck import OptIns, check_opt_ins, check_pinned
from reconciler.engine.projection import ProjectionCache
from reconciler.engine.recovery import recovering
from reconciler.engine.replace import replacements, resume_interrupted
from reconciler.engine.resolve import Target, Unresolved
from reconciler.engine.revert import (
    RevertItem,
    apply_revert,
    newest_changing_run,
    plan_revert_image_set,
    plan_revert_run,
    revert_runs_of,
)
from reconciler.engine.reviewed import check_reviewed
from reconciler.engine.show import ImageSetView, find_image_sets
from reconciler.engine.show import show as show_image_set
from reconciler.engine.storesizes import StoreSizes
from reconciler.errors import ConfigError, ReconcilerError, ValidationFailed
from reconciler.healthimaging import HealthImaging, SearchFilter, VersionInfo
from reconciler.healthimaging.client import region_from_environment
from reconciler.healthimaging.sqs import EventQueue
from reconciler.manifest import load_tree
from reconciler.manifest.model import LoadResult, Manifest, Why
from reconciler.manifest.policies import PolicySet, load_policies
from reconciler.manifest.reasons import phi_in_text
from reconciler.manifest.render import lines
from reconciler.manifest.settings import load_project_config
from reconciler.manifest.table import keys_of
from reconciler.manifest.targeting import Targeting, target
from reconciler.policy import Facts, evaluate, refuse_failures
from reconciler.policy.approval import Approval, plan_digest
from reconciler.policy.patients import count_patients
from reconciler.render.structured import dump
from reconciler.scaffold import CI, Extra, InitResult, choose_datastore
from reconciler.scaffold import init as scaffold
from reconciler.session.connect import connect
from reconciler.session.keeping import Keeping
from reconciler.session.results import ApplyResult, DriftResult, PlanResult, RevertResult
from reconciler.session.watch import BatchReport, Watcher, WatchOptions, WatchResult, Workings
from reconciler.state import Holder, State, StateLock, held, lock_name, unlock
from reconciler.state.cachedb import CacheDB
from reconciler.state.migrate import migrate
from reconciler.state.open import open_backend

if TYPE_CHECKING:
    from reconciler.session.rehearsal import RehearsalResult

LOG = logging.getLogger("reconciler")
# A local clock further than this from the service's is worth a warning (runs and drift
# windows are ordered by the service's clock, but people read this machine's).
CLOCK_WARNING = dt.timedelta(minutes=1)

Progress = Callable[[ImageSetOutcome, int, int], None]
Shard = tuple[int, int]
Targets = tuple[list[Target], list[Unresolved]]
PathsLike = Sequence[str | os.PathLike[str]]


def _journal_why(journal: Journal, plan: Plan) -> None:
    """The reason and ticket of every manifest whose changes the run sends."""
    names = sorted({name for item in plan.to_update for name in item.manifests})
    for name in names:
        source = plan.sources.get(name)
        if source is not None and source.why.given:
            journal.why(name, source.why.reason, source.why.ticket)


def check_why(why: Why) -> None:
    """A reason or ticket given to revert, checked for PHI like a manifest's."""
    for what, text in (("reason", why.reason), ("ticket", why.ticket)):
        found = phi_in_text(text) if text is not None else None
        if found is not None:
            raise ConfigError(
                f"the {what} seems to hold PHI ({found}); it goes into the run records and "
                "the audit trail: say why without it"
            )


class Cancelled(ReconcilerError):
    """The caller's review said no: nothing was changed."""


def describe(endpoint: Endpoint, region: str | None, profile: str | None = None) -> str:
    """The label that journals, saved plans and the cache are kept under: the endpoint,
    its region and, where one is named, the AWS profile (which picks the account), so
    runs against one account are never resumed, mapped or reverted against another."""
    if endpoint.kind == "local":
        return "local"
    if endpoint.kind == "url":
        base = endpoint.url or "url"
    else:
        base = f"aws ({region})" if region else "aws"
    return f"{base} [profile {profile}]" if profile else base


class Session:
    """A connection to one HealthImaging endpoint with the project's settings.

    ``endpoint`` is ``"aws"``, ``"local"`` (the embedded local HealthImaging, seeded on
    first use) or a URL; None means ``$RECONCILER_ENDPOINT``, then ``reconciler.yaml``,
    then AWS. ``project_dir`` is where ``reconciler.yaml`` is looked for (and upward)
    and what relative manifest paths hang off; ``config`` replaces what that file says
    (a throwaway copy of the project, as ``reconciler test`` makes). The connection
    opens on first use and closes with the ``with`` block (or :meth:`close`).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        project_dir: str | os.PathLike[str] = ".",
        profile: str | None = None,
        region: str | None = None,
        *,
        notify: Callable[[str], None] | None = None,
        environ: Mapping[str, str] | None = None,
        state: str | None = None,
        config: ProjectConfig | None = None,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.config: ProjectConfig = config or load_project_config(self.project_dir)
        env = os.environ if environ is None else environ
        self.endpoint = resolve_endpoint(endpoint, env, self.config)
        self.state_spec = resolve_state(state, env, self.config)
        # --region, then reconciler.yaml, then AWS_REGION / AWS_DEFAULT_REGION (as the
        # SDKs read them); a profile's region is the client's last resort.
        self.region = region or self.config.region
        if self.region is None and self.endpoint.kind != "local":
            self.region = region_from_environment(environ)
        self.profile = profile
        self.label = describe(self.endpoint, self.region, profile or self.config.profile)
        self._notify = notify or LOG.info
        # Whether messages may quote PHI values (manifest problems): masked unless the
        # caller's policy says otherwise (the CLI: --show-phi, RECONCILER_SHOW_PHI).
        self.show_phi = False
        # Which manifests plan, apply and drift act on (--manifest, -l); all by default.
        self.targeting = Targeting()
        self._left_out: tuple[str, ...] = ()
        self._stack = ExitStack()
        self._ahi: HealthImaging | None = None
        self._recovered = False
        self._recovery_journal: Journal | None = None
        self.keeping = Keeping(
            self.state_spec,
            self.config,
            self.endpoint,
            region=self.region,
            profile=profile or self.config.profile,
            notify=self._notify,
        )
        # How long apply and revert wait for another writer's state lock (--lock-timeout).
        self.lock_timeout = 0.0
        self._generations: dict[str, str] = {}
        self._sending = Sending()
        self._runs: RunStore | None = None
        self._policies: PolicySet | None = None
        self._ci: tuple[str | None, str | None] | None = None  # the job's URL and commit
        # The audit trail of the runs this session writes (each outcome as it is known).
        self.audit = audit.AuditObserver(lambda: self.state, self._who, self._study_of)
        self._watcher: Watcher | None = None
        self._said_unreadable = False

    # -- state ---------------------------------------------------------------------------
    @property
    def state(self) -> State:
        """The project's state in its backend, within this session's scope (the AWS
        account and region, the endpoint URL, or the local HealthImaging's database)."""
        return self.keeping.state

    @property
    def policies(self) -> PolicySet:
        """The project's policy rules (``policies:`` in reconciler.yaml, ``policies/``);
        a badly written rule raises :class:`ConfigError` at its line."""
        if self._policies is None:
            policies, problems = load_policies(self.config.path, self.config.root)
            errors = [p for p in problems if p.severity == "error"]
            if errors:
                raise ConfigError(errors[0].message, location=str(errors[0].location))
            self._policies = policies
        return self._policies

    def _who(self, header: RunHeader) -> audit.Who:
        """Who ran a run, for its audit records: the principal, the user and host its
        journal names, and in CI the job's URL; the commit of the manifests."""
        if self._ci is None:
            self._ci = (ci.job_url(), ci.commit(folder=self.project_dir))
        return audit.Who(self.principal, f"{header.user}@{header.host}", *self._ci)

    def check_policies(self, plan: Plan, approval: Approval | None = None) -> Plan:
        """``plan`` with the findings of the project's rules (approval rules only when
        ``approval`` is given: at apply)."""
        approvals = None if approval is None else approval.approvers
        facts = Facts(patients=lambda p: count_patients(self.ahi, p), approvals=approvals)
        return dataclasses.replace(plan, findings=evaluate(self.policies, plan, facts))

    @property
    def runs(self) -> RunStore:
        """The runs of this scope: journals, their index and undo values."""
        if self._runs is None:
            self._runs = RunStore(self.state)
        return self._runs

    @property
    def principal(self) -> str:
        """The AWS principal ARN of the credentials (STS), or ``unknown``."""
        return self.keeping.principal(self.ahi.endpoint)

    def generations(self, datastore_ids: Sequence[str]) -> dict[str, str]:
        """Data store ID → its ``createdAt`` (GetDatastore): a data store re-created
        under the same ID is another one. "" where the service does not say."""
        for datastore_id in sorted(set(datastore_ids) - self._generations.keys()):
            try:
                self._generations[datastore_id] = self.ahi.get_datastore(datastore_id).generation
            except ReconcilerError as failure:
                LOG.debug("GetDatastore %s: %s", datastore_id, failure)
                self._generations[datastore_id] = ""
        return {d: self._generations[d] for d in set(datastore_ids)}

    def _context(self, datastore_ids: Sequence[str] = ()) -> RunContext:
        """What a run's journal header records of the service, the lock and the data
        stores."""
        lock = self.keeping.lock
        return RunContext(
            service_time=self.ahi.service_clock.now_iso,
            lock_id=lock.lock_id if lock is not None else None,
            datastores=self.generations(datastore_ids),
            observer=self.audit,
        )

    @contextmanager
    def _writing(
        self, operation: str, shard: Shard | None = None, *, connected: bool = True
    ) -> Iterator[StateLock]:
        """Hold the state lock of what ``operation`` writes (everything, or one shard).
        ``connected``: the lock names the principal the service knows us as. Holding
        the whole state's lock, nobody else writes runs: the run index is then read
        once (and again after each of our own writes), not once per look-up."""
        endpoint = self.ahi.endpoint if connected else None
        with self.keeping.locked(
            operation, shard=shard, timeout=self.lock_timeout, endpoint=endpoint
        ) as lock:
            pinned = self.runs.pinned() if lock.holder.name == lock_name(None) else nullcontext()
            with pinned:
                yield lock

    # -- state commands -----------------------------------------------------------------
    def migrate_state(self, to: str) -> int:
        """Copy this scope's state to the backend ``to`` names (``s3://…`` or ``local``),
        holding the lock of both; refused where ``to`` holds state of the scope already.
        The number of objects copied."""
        spec = parse_state(to, "--to")
        destination = State(
            open_backend(
                spec,
                project=self.config.root,
                profile=self.profile or self.config.profile,
                region=self.region,
                kms_key_id=self.config.state_kms_key_id,
            ),
            self.state.scope,
        )
        with (
            self._writing("migrate", connected=False) as held,
            StateLock.acquire(
                destination,
                name=lock_name(None),
                operation="migrate",
                principal=held.holder.principal,
                user=held.holder.user,
                host=held.holder.host,
                job_url=held.holder.job_url,
                timeout=self.lock_timeout,
                notify=self._notify,
            ),
        ):
            return migrate(self.state, destination, notify=self._notify)

    def import_journals(self, folder: str | os.PathLike[str]) -> tuple[int, list[str]]:
        """Bring runs recorded before state backends (a journal folder) into the state:
        the number brought, and a line per journal left out."""
        with self._writing("migrate", connected=False):
            return import_journals(self._here(folder), self.runs)

    def unlock(self, lock_id: str) -> Holder:
        """Remove the state lock whose ID is ``lock_id`` (a killed run's); who held it."""
        return unlock(self.state, lock_id)

    def locks(self) -> list[Holder]:
        """The state locks held now."""
        return held(self.state)

    def _cache_scope(self, datastore_ids: Sequence[str]) -> str:
        """What the projection cache's keys include: the target and the data stores'
        generations (a re-created local HealthImaging never answers from an old cache)."""
        try:
            where = self.keeping.scope().name
        except ReconcilerError:
            where = self.label
        stores = ",".join(f"{d}@{g}" for d, g in sorted(self.generations(datastore_ids).items()))
        return f"{where}|{stores}"

    def _check_clock(self) -> None:
        skew = self.ahi.service_clock.skew
        if skew is not None and abs(skew) > CLOCK_WARNING:
            ahead = "behind" if skew > dt.timedelta(0) else "ahead of"
            self._notify(
                f"Warning: this machine's clock is {abs(skew).total_seconds():.0f} s {ahead} "
                "the service's; runs and drift windows follow the service's clock, but check "
                "this machine's time (NTP)."
            )

    # -- lifetime ----------------------------------------------------------------------
    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.__exit__(kind, error, traceback)

    def close(self) -> None:
        self._stack.close()

    @property
    def ahi(self) -> HealthImaging:
        """The typed client (connected, and the local service started, on first use)."""
        if self._ahi is None:
            self._ahi = self._stack.enter_context(
                connect(
                    self.endpoint,
                    self.config,
                    region=self.region,
                    profile=self.profile,
                    rates=self.keeping.rates,
                )
            )
        return self._ahi

    def _threads(self, parallelism: int | None) -> int:
        """``parallelism`` (else the config's), within the one bound of every front end."""
        chosen = parallelism or self.config.parallelism
        if not 1 <= chosen <= MAX_PARALLELISM:
            raise ConfigError(f"parallelism must be from 1 to {MAX_PARALLELISM}, not {chosen}")
        return chosen

    def _here(self, path: str | os.PathLike[str]) -> Path:
        """``path`` relative to the project folder (kept as given when that is the
        working directory, so messages name files as the user wrote them)."""
        given = Path(path)
        if given.is_absolute() or self.project_dir == Path.cwd().resolve():
            return given
        return self.project_dir / given

    # -- manifests ---------------------------------------------------------------------
    def load(self, paths: PathsLike = ()) -> LoadResult:
        """Load and validate manifests (default: ``manifests/`` of the project). Every
        problem goes to ``notify``; any error raises :class:`ValidationFailed`."""
        chosen = [self._here(p) for p in paths]
        if not chosen:
            default = self._here("manifests")
            if not default.exists():
                raise ConfigError("no PATHS given and no manifests/ folder here")
            chosen = [default]
        result = load_tree(chosen)
        for line in lines(result, show_phi=self.show_phi):
            self._notify(line)
        if not result.ok:
            raise ValidationFailed(
                f"{len(result.errors)} manifest errors: fix them (reconciler validate) and "
                "run again"
            )
        # The whole tree is validated (conflicts with left-out manifests included);
        # only then does targeting narrow it, and the plan names what it left out.
        result, self._left_out = target(result, self.targeting)
        return result

    # -- read-only workflows -----------------------------------------------------------
    def _make_plan(
        self,
        loaded: LoadResult,
        *,
        shard: Shard | None,
        parallelism: int | None,
        replace_primary: bool = False,
        targets: Targets | None = None,
        combine_forced: bool = False,
    ) -> Plan:
        ahi = self.ahi  # what the endpoint lacks (a region, say) is said before the state's
        if shard is not None:  # N shards share the account's quotas: each paces at 1/N
            ahi.limiter.share(*shard)
        stores = [datastore for datastore, _ in keys_of(loaded.manifests)]
        cache = self._projection_cache(stores)
        request = PlanRequest(
            manifests=loaded.manifests,
            manifest_digest=loaded.digest,
            endpoint=self.label,
            shard=shard,
            targets=targets,
            left_out=self._left_out,
            replace_primary=replace_primary,
            combine_forced=combine_forced,
        )
        reading = ReadOptions(
            cache=cache,
            replaced=self._replacements(),
            sizes=self._sizes.known(),
        )
        try:
            return make_plan(
                ahi, request, reading=reading, pace=Pace(parallelism=self._threads(parallelism))
            )
        finally:
            cache.close()  # commits what is pending

    @property
    def _sizes(self) -> StoreSizes:
        """The data store sizes hint: read by every plan, kept by apply only (a pull
        request's plan and drift run read-only and write no state)."""
        return StoreSizes(lambda: self.state)

    def _projection_cache(self, datastore_ids: Sequence[str]) -> ProjectionCache:
        return ProjectionCache(
            CacheDB(self.config.cache_dir, self.config.root),
            scope=self._cache_scope(datastore_ids),
            warn=self._notify,
        )

    def _replacements(self) -> dict[str, str]:
        """Old image set ID → the one that replaced it, from the state; {} (said once)
        where the state cannot be read: plan and drift never need it to work."""
        try:
            return replacements(self.runs)
        except ReconcilerError as failure:
            self._unreadable(failure, "image sets replaced by earlier runs are not mapped")
            return {}

    def _unreadable(self, failure: ReconcilerError, consequence: str) -> None:
        """Say once per session that the state cannot be read, and what that costs."""
        if not self._said_unreadable:
            self._said_unreadable = True
            self._notify(f"Warning: the state cannot be read ({failure}); {consequence}.")

    def plan(
        self,
        paths: PathsLike = (),
        *,
        detailed: bool = False,
        shard: Shard | None = None,
        parallelism: int | None = None,
        replace_primary: bool = False,
        combine_forced: bool = False,
        refresh: bool = False,
    ) -> PlanResult:
        """What apply would change, image set by image set. Reads only (the state too:
        a pull request's plan writes nothing). ``combine_forced``: changes that need
        force may share a call with ones that do not (by default they go in calls of
        their own, so force never spreads). Warm where an apply or drift observed the
        image sets before: only what changed since is read (:meth:`observe`);
        ``refresh`` reads everything."""
        loaded = self.load(paths)
        plan, _ = self._warm_plan(
            loaded,
            shard=shard,
            parallelism=parallelism,
            refresh=refresh,
            record=False,
            replace_primary=replace_primary,
            combine_forced=combine_forced,
        )
        return PlanResult(self.check_policies(plan), detailed)

    def _warm_plan(
        self,
        loaded: LoadResult,
        *,
        shard: Shard | None,
        parallelism: int | None,
        refresh: bool,
        record: bool,
        replace_primary: bool = False,
        combine_forced: bool = False,
    ) -> tuple[Plan, Observation]:
        """The plan of ``loaded``, warm where the last observation allows
        (:meth:`observe`) and saying what it read; ``record`` (apply, drift): keep this
        observation for the next plan."""
        observation = self.observe(loaded, shard=shard, refresh=refresh)
        plan = self._make_plan(
            loaded,
            shard=shard,
            parallelism=parallelism,
            replace_primary=replace_primary,
            targets=observation.targets,
            combine_forced=combine_forced,
        )
        if record:
            self._record(loaded, plan, observation)
        return observation.shown(plan), observation

    def drift(
        self,
        paths: PathsLike = (),
        *,
        since_last_run: bool = False,
        refresh: bool = False,
        shard: Shard | None = None,
        parallelism: int | None = None,
        origins: bool = True,
    ) -> DriftResult:
        """Whether the live metadata still matches the manifests. Reads the service only,
        and O(changes) where an earlier apply or drift observed the image sets
        (:meth:`observe`; ``refresh`` reads everything); records this observation in the
        state where it can be written, so drift nobody fixed is never forgotten (with
        read-only access, the next run reads everything). ``since_last_run``: say so
        when there is no earlier observation (warm is the default). ``origins``: name
        the version that made each drifted value (its image set's version history: one
        ListImageSetVersions and up to 20 metadata reads per drifted image set)."""
        loaded = self.load(paths)
        plan, observation = self._warm_plan(
            loaded, shard=shard, parallelism=parallelism, refresh=refresh, record=True
        )
        if since_last_run and observation.previous is None and not refresh:
            self._notify("No earlier drift run recorded: everything was checked.")
        if origins and plan.has_changes:  # where to look: the version that made each value
            plan = dataclasses.replace(plan, origins=change_origins(self.ahi, plan))
        return DriftResult(plan, observation.coverage(plan))

    def observe(self, loaded: LoadResult, *, shard: Shard | None, refresh: bool) -> Observation:
        """What a plan reads: where the state holds an observation of these data stores
        (made by an apply or a drift, of the same shard), only the image sets the
        service says changed since it began (SearchImageSets on ``updatedAt``, the
        service's clock), those not in sync then, and those of new or edited manifests
        (:mod:`reconciler.engine.incremental`); else (``refresh``, no observation, a
        re-created data store) everything, as a cold plan resolves it."""
        stores = sorted({datastore for datastore, _ in keys_of(loaded.manifests)})
        generations = self.generations(stores)  # also the first answer: the service's time
        began = self.ahi.service_clock.first
        self._check_clock()
        previous = None if refresh else self._drift_state(generations, state_key(shard))
        if previous is None:
            return Observation(None, began, generations, shard)
        found = incremental_targets(self.ahi, loaded.manifests, previous)
        return Observation(previous, began, generations, shard, found)

    def _record(self, loaded: LoadResult, plan: Plan, observation: Observation) -> None:
        """Keep what ``plan`` observed for the next warm plan: not for a targeted plan
        (--manifest, -l), which saw part of the tree."""
        if self.targeting.active or observation.began is None:
            return
        open_now = {(p.datastore_id, p.image_set_id) for p in (*plan.to_update, *plan.blocked)}
        if observation.found is not None:
            owned: Mapping[str, Iterable[Pair]] = observation.found.gone(plan, observation.shard)
        else:
            owned = owned_by_plan(
                (item.datastore_id, item.image_set_id, item.manifests) for item in plan.image_sets
            )
        recorded = state_after(
            observation.began,
            loaded.manifests,
            owned,
            open_now=open_now,
            generations=observation.generations,
        )
        self._save_drift_state(recorded, state_key(observation.shard))

    def watch(
        self,
        queue: str,
        paths: PathsLike = (),
        *,
        options: WatchOptions | None = None,
        report: Callable[[BatchReport], None] | None = None,
    ) -> WatchResult:
        """Drift checked as HealthImaging announces changes, from the SQS queue its
        EventBridge events are routed to (``queue``: ``sqs://…`` or its https URL), until
        :meth:`stop_watching`; one ``report`` per checked batch. Reads only; the
        checkpoint and what was notified are kept in the state
        (:mod:`reconciler.session.watch`)."""
        if self.targeting.active:
            raise ConfigError("--watch must see every manifest: not with --manifest or -l")
        events = EventQueue(queue, region=self.region, profile=self.profile or self.config.profile)
        self._stack.callback(events.close)
        workings = Workings(
            ahi=self.ahi,
            state=self.state,
            endpoint=self.label,
            roots=tuple(self._here(p) for p in paths) or (self._here("manifests"),),
            load=lambda: self.load(paths),
            plan=lambda loaded, targets: self._make_plan(
                loaded, shard=None, parallelism=None, targets=(targets, [])
            ),
            generations=self.generations,
            cache=self._projection_cache,
            warn=self._notify,
        )
        self._watcher = Watcher(
            workings, events, options or WatchOptions(), report or (lambda batch: None)
        )
        return self._watcher.run()

    def stop_watching(self) -> bool:
        """Stop :meth:`watch` after the batch in flight (from a signal handler or another
        thread); whether one is in flight."""
        return self._watcher.stop() if self._watcher is not None else False

    def _drift_state(self, generations: Mapping[str, str], key: str) -> DriftState | None:
        try:
            return load_state(self.state, generations, key)
        except ReconcilerError as failure:
            self._unreadable(failure, "everything is read, as if nothing was observed before")
            return None

    def _save_drift_state(self, recorded: DriftState, key: str) -> None:
        try:
            save_state(self.state, recorded, key)
        except ReconcilerError as failure:
            self._notify(
                f"Warning: this observation was not saved ({failure}); the next plan or "
                "drift reads what it cannot answer from an earlier one."
            )

    # -- apply -------------------------------------------------------------------------
    def recover(self, manifest_digest: str | None = None) -> None:
        """Settle what interrupted runs left open: finish or roll back halfway replaces,
        then settle interrupted update calls into a journal this session's apply goes on
        with. Done once per session; :meth:`apply` calls it first in any case."""
        if self._recovered:
            return
        self._recovered = True
        with self._writing("apply"):
            self._resume_replaces()
            self._recovery_journal = self._stack.enter_context(
                recovering(
                    self.ahi,
                    self.runs,
                    endpoint=self.label,
                    manifest_digest=manifest_digest,
                    lock_timeout=self.config.lock_timeout_seconds,
                    echo=self._notify,
                    context=self._context(),
                )
            )

    def _resume_replaces(self) -> None:
        """Finish or roll back every replace an interrupted run (apply or revert) left
        halfway, so no study is left without its primary image set."""
        for resumed in resume_interrupted(
            self.ahi,
            self.runs,
            endpoint=self.label,
            lock_timeout=self.config.lock_timeout_seconds,
            context=self._context(),
        ):
            self._notify(f"Resumed the replace of image set {resumed.old_id}: {resumed.message}")

    def load_plan(self, path: str | os.PathLike[str]) -> Plan:
        """A saved plan (``plan --out``), refused when it was made for another endpoint."""
        saved = planfile.load(Path(path))
        if saved.endpoint != self.label:
            raise ConfigError(f"{path} was planned against {saved.endpoint}, not {self.label}")
        return saved

    def apply(
        self,
        source: Plan | PlanResult | PathsLike = (),
        *,
        review: Callable[[Plan], bool] | None = None,
        progress: Progress | None = None,
        shard: Shard | None = None,
        parallelism: int | None = None,
        replace_primary: bool = False,
        combine_forced: bool = False,
        allow_force: bool = False,
        study_wide: bool = False,
        reviewed: Plan | None = None,
        approval: Approval | None = None,
        refresh: bool = False,
    ) -> ApplyResult:
        """Make the live metadata match: ``source`` is a :class:`Plan` or the
        :class:`PlanResult` of :meth:`plan` (applied as it is, pinned to its versions:
        an image set that moved since is refused as stale) or manifest paths (then
        interrupted runs are settled *before* planning).

        A saved plan (:meth:`load_plan`) is applied only with every opt-in it relies on
        given here too (``replace_primary``, ``allow_force``, ``study_wide``,
        ``combine_forced``), and only when each image set's pinned version is what the
        plan describes (:mod:`reconciler.engine.plancheck`). ``reviewed`` (with manifest
        paths): plan from them and apply only if that is exactly the reviewed plan
        (:mod:`reconciler.engine.reviewed`), else raise saying what differs.

        Whatever its source, the plan is checked against the project's policies first:
        one failing a mandatory rule raises :class:`~reconciler.policy.PolicyFailed`
        before anything is sent (each finding goes to ``notify``). ``approval``: who
        approved the plan and what it means, recorded with the plan's digest in the
        audit trail (a ``requireApprovals`` rule counts its approvers).

        ``review`` sees the plan before anything is sent and says whether to go ahead
        (False raises :class:`Cancelled`); it is not asked when there is nothing to do.
        """
        if isinstance(source, PlanResult):  # session.apply(session.plan(...)) reads as meant
            source = source.plan
        with self._writing("apply", shard):
            if isinstance(source, Plan):
                plan = source
                if plan.saved_from is not None:
                    given = OptIns(replace_primary, allow_force, study_wide, combine_forced)
                    check_opt_ins(plan, given)
                self.recover(plan.manifest_digest)
                if plan.saved_from is not None:
                    check_pinned(self.ahi, plan.to_update)
            else:
                loaded = self.load(source)
                self.recover(loaded.digest)
                plan, _ = self._warm_plan(
                    loaded,
                    shard=shard,
                    parallelism=parallelism,
                    refresh=refresh,
                    record=True,
                    replace_primary=replace_primary,
                    combine_forced=combine_forced,
                )
                if reviewed is not None:
                    check_reviewed(reviewed, plan)
            if plan.saved_from is None:  # a saved plan is input: its sizes no hint
                self._sizes.learnt(plan.resolution)
            plan = self.check_policies(plan, approval or Approval(()))
            refuse_failures(plan.findings, self._notify)
            if not plan.has_changes:
                if review is not None:
                    review(plan)
                return ApplyResult(plan, None)
            if review is not None and not review(plan):
                raise Cancelled("cancelled: nothing was changed")
            journal = self._recovery_journal or Journal.start(
                self.runs,
                command="apply",
                endpoint=self.label,
                manifest_digest=plan.manifest_digest,
                plan_digest=plan_digest(plan),
                context=self._context([p.datastore_id for p in plan.to_update]),
            )
            self._recovery_journal = None
            known = audit.apply_about(plan, approval, plan_digest(plan))
            with journal, self.audit.expecting(known):
                _journal_why(journal, plan)
                report = apply_plan(
                    self.ahi,
                    plan,
                    journal,
                    parallelism=self._threads(parallelism),
                    lock_timeout=self.config.lock_timeout_seconds,
                    progress=progress,
                    runs=self.runs,
                    sending=self._sending,
                )
                journal.pacing(self.pacing())
            return ApplyResult(plan, report, self.pacing())

    def stop_sending(self) -> int:
        """Stop a running :meth:`apply` (from a signal handler or another thread): no
        call not yet sent will be, calls waiting for their slot give up at once, and
        the calls already sent are seen through and journaled before ``apply``
        returns. Returns how many image sets that still waits for."""
        waiting = self.ahi.limiter.stop() if self._ahi is not None else 0
        return max(0, self._sending.count - waiting)

    def pacing(self) -> dict[str, dict[str, float | int | str | None]]:
        """Per operation this session used: the rate its pacer started from and reached
        (requests per second, for the whole account), and the 429s it got."""
        return {op: lane.as_dict() for op, lane in self.ahi.limiter.report().items()}

    def history(self, image_set: str, *, datastore_id: str | None = None) -> list[VersionInfo]:
        """The versions of ``image_set``, newest first."""
        store = self._datastore(datastore_id)
        versions = self.ahi.list_versions(store, image_set)
        return sorted(versions, key=lambda v: -int(v.version_id))

    # -- seeing what is live (show, export) ------------------------------------------------
    def _owning_manifests(self, paths: PathsLike | None) -> list[Manifest]:
        """The manifests show names as owners: ``paths``, else ``manifests/`` if there.
        Manifests that do not validate own nothing (said once through ``notify``)."""
        chosen = [self._here(p) for p in paths or ()]
        if not chosen and self._here("manifests").is_dir():
            chosen = [self._here("manifests")]
        if not chosen:
            return []
        result = load_tree(chosen)
        if not result.ok:
            self._notify("The manifests do not validate, so no owner is shown (validate them).")
            return []
        return list(result.manifests)

    def show(
        self,
        image_sets: Sequence[str] = (),
        *,
        study: str | None = None,
        patient_id: str | None = None,
        accession: str | None = None,
        version_id: str | None = None,
        datastore_id: str | None = None,
        manifests: PathsLike | None = None,
    ) -> list[ImageSetView]:
        """The live image sets named (or found by study, patient ID, accession), each
        summarised with the manifest owning each managed attribute. Reads only."""
        store = self._datastore(datastore_id)
        found = find_image_sets(
            self.ahi, store, image_sets, study=study, patient_id=patient_id, accession=accession
        )
        if version_id is not None and len(found) != 1:
            raise ConfigError("--version-id needs exactly one image set")
        owning = self._owning_manifests(manifests)
        return [
            show_image_set(self.ahi, store, image_set, version_id=version_id, manifests=owning)
            for image_set in found
        ]

    def export(
        self,
        image_sets: Sequence[str] = (),
        *,
        study: str | None = None,
        attributes: Sequence[str] = (),
        datastore_id: str | None = None,
    ) -> Export:
        """Manifests stating the live values of the chosen attributes (``terraform
        import``); PHI values only when :attr:`show_phi`. Reads only."""
        store = self._datastore(datastore_id)
        choices = [parse_attribute(a) for a in attributes]
        found = find_image_sets(self.ahi, store, image_sets, study=study)
        return export_manifests(self.ahi, store, found, choices, show_phi=self.show_phi)

    def init(
        self,
        *,
        ci: str = "none",
        datastore_id: str | None = None,
        state: str | None = None,
        extras: Sequence[str] = (),
    ) -> InitResult:
        """Scaffold :attr:`project_dir` as a manifest repository; never overwrites. The
        data store is ``datastore_id``, else the account's only ACTIVE one; ``extras``
        (``iam``, ``cron``, ``kubernetes``) writes those examples under ``ops/``."""

        def choose() -> str:
            return datastore_id or choose_datastore(list(self.ahi.list_datastores()))

        def sample(store: str) -> str | None:
            found = self.ahi.search(store, [SearchFilter.equal("isPrimary", True)])
            for summary in islice(found, 50):
                manifest, _ = export_image_set(
                    self.ahi, store, summary.image_set_id, [SAMPLE_CHOICE]
                )
                if manifest["spec"]["set"]:
                    manifest["metadata"] = {"name": "example-study-description"}
                    return dump(manifest, "yaml") + "\n"
            return None

        kind = self.endpoint.kind
        return scaffold(
            self.project_dir,
            datastore_id=choose,
            sample=sample,
            ci=CI(ci),
            endpoint="local" if kind == "local" else self.endpoint.url if kind == "url" else None,
            region=self.region,
            state=str(parse_state(state, "--state")) if state is not None else None,
            extras=tuple(Extra(extra) for extra in extras),
        )

    def _datastore(self, given: str | None) -> str:
        store = given or self.config.datastore_id
        if store is None:
            raise ConfigError("--datastore-id is needed (no datastoreId in reconciler.yaml)")
        return store

    def rehearse(
        self, paths: PathsLike = (), *, replace_primary: bool = False, combine_forced: bool = False
    ) -> RehearsalResult:
        """``reconciler test``: apply, revert and apply again on a throwaway local copy of
        the targeted image sets' managed attributes (:mod:`reconciler.session.rehearsal`).
        Reads only, here."""
        from reconciler.session.rehearsal import rehearse

        return rehearse(self, paths, replace_primary=replace_primary, combine_forced=combine_forced)

    # -- revert ------------------------------------------------------------------------
    def revert_items(
        self,
        *,
        run_id: str | None = None,
        image_set: str | None = None,
        to_version: str | None = None,
        datastore_id: str | None = None,
    ) -> tuple[RevertItem, ...]:
        """What a revert would do: every image set run ``run_id`` changed (``last``: the
        newest run that changed something), or ``image_set`` back to ``to_version``.
        What an earlier, interrupted revert of the run already put back is marked
        ``already`` (not sent again)."""
        if (run_id is None) == (image_set is None):
            raise ConfigError("give either a run ID or an image set and a version")
        if run_id is not None:
            run = self.run_to_revert(run_id)
            children = revert_runs_of(self.runs, run)
            return tuple(
                plan_revert_run(
                    self.ahi, run, children, runs=self.runs, parallelism=self._threads(None)
                )
            )
        if to_version is None:
            raise ConfigError("an image set needs the version to go back to (--to-version N)")
        assert image_set is not None
        store = self._datastore(datastore_id)
        return (plan_revert_image_set(self.ahi, store, image_set, to_version),)

    def run_to_revert(self, run_id: str) -> Run:
        """The run ``revert --run`` means: an ID (or unique prefix), or ``last``, the
        newest run of this scope (by the service's clock) that changed something. A run
        against a data store that was re-created since is refused: its records name
        image sets of another data store."""
        if run_id.strip().lower() == LAST:
            run = newest_changing_run(self.runs)
        else:
            run = self.runs.load(run_id)
        recorded = run.header.datastores or {}
        now = self.generations(list(recorded))
        for datastore_id, generation in sorted(recorded.items()):
            if generation and now.get(datastore_id) and now[datastore_id] != generation:
                raise ConfigError(
                    f"run {run.run_id} was against data store {datastore_id} as created at "
                    f"{generation}; it was re-created since (at {now[datastore_id]}), so the "
                    "run's records name image sets of another data store: nothing to revert"
                )
        return run

    def revert(
        self,
        *,
        run_id: str | None = None,
        image_set: str | None = None,
        to_version: str | None = None,
        datastore_id: str | None = None,
        force: bool = False,
        review: Callable[[Sequence[RevertItem]], bool] | None = None,
        progress: Progress | None = None,
        parallelism: int | None = None,
        why: Why | None = None,
    ) -> RevertResult:
        """Put image sets back to recorded versions (a new version equal to the old
        one). Image sets that moved since the run are refused (stale) unless ``force``.
        Journaled like apply, so a revert can itself be reverted. ``why``: the reason
        and ticket of the revert, journaled and audited (checked for PHI first)."""
        why = why or Why()
        check_why(why)
        with self._writing("revert"):
            parent = None
            # A revert of a replace is a replace: one an interrupted revert left halfway
            # is finished (or rolled back) first, then found done (or done again) below.
            self._resume_replaces()
            reverted = None
            if run_id is not None:
                reverted = self.run_to_revert(run_id)
                parent = run_id = reverted.run_id  # `last` resolved once: items and journal
            items = self.revert_items(
                run_id=run_id,
                image_set=image_set,
                to_version=to_version,
                datastore_id=datastore_id,
            )
            if all(item.already is not None for item in items):
                return RevertResult(items, None, parent)
            if review is not None and not review(items):
                raise Cancelled("cancelled: nothing was changed")
            with (
                Journal.start(
                    self.runs,
                    command="revert",
                    endpoint=self.label,
                    parent_run_id=parent,
                    context=self._context([item.datastore_id for item in items]),
                ) as journal,
                self.audit.expecting(self.audit.revert_about(items, why, reverted)),
            ):
                if why.given:
                    journal.why(None, why.reason, why.ticket)
                report = apply_revert(
                    self.ahi,
                    items,
                    journal,
                    force=force,
                    parallelism=self._threads(parallelism),
                    lock_timeout=self.config.lock_timeout_seconds,
                    progress=progress,
                    runs=self.runs,
                )
            return RevertResult(items, report, parent)

    def _study_of(self, datastore_id: str, image_set_id: str, version: str | None) -> str | None:
        """The StudyInstanceUID of that version (None: the latest), or None when it
        cannot be read: for the audit records of outcomes no plan described."""
        try:
            version = version or self.ahi.get_image_set(datastore_id, image_set_id).version_id
            doc = self.ahi.get_metadata(datastore_id, image_set_id, version)
        except ReconcilerError:
            return None
        uid = (doc.get("Study") or {}).get("DICOM", {}).get("StudyInstanceUID")
        return uid if isinstance(uid, str) else None
