"""The library's front door: one :class:`Session` per endpoint, every workflow on it.

::

    from reconciler import Session

    with Session(endpoint="local", project_dir=".") as s:
        plan = s.plan(["manifests"])           # resolve, read, diff, payloads; no writes
        report = s.apply(plan.plan)            # interrupted runs settled first, journaled
        drift = s.drift(["manifests"])         # read-only; drift.in_sync
        s.revert(run_id=report.run_id)         # or image_set=..., to_version=...

Everything a caller must not be able to skip lives here, not in the CLI: settling the
calls and replaces that interrupted runs left open (before anything is applied), the
journal, the drift state of ``drift --since-last-run`` and the bookkeeping of replaced
image sets. The CLI adds only what is a person's: confirmation, progress lines,
colour and wording. Messages meant for the user (a resumed replace, a recovered call,
a manifest warning) go to ``notify``; by default they are logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from types import TracebackType

from reconciler.config import MAX_PARALLELISM, Endpoint, ProjectConfig, resolve_endpoint
from reconciler.engine import planfile
from reconciler.engine.apply import ImageSetOutcome, apply_plan
from reconciler.engine.export import SAMPLE_CHOICE, Export, export_image_set, parse_attribute
from reconciler.engine.export import export as export_manifests
from reconciler.engine.incremental import incremental_targets, load_state, save_state, state_after
from reconciler.engine.journal import LAST, Journal, Run, load_run
from reconciler.engine.origins import change_origins
from reconciler.engine.places import Places
from reconciler.engine.plan import Plan, make_plan
from reconciler.engine.plancheck import OptIns, check_opt_ins, check_pinned
from reconciler.engine.projection import ProjectionCache
from reconciler.engine.recovery import recovering
from reconciler.engine.replace import replacements, resume_interrupted
from reconciler.engine.resolve import Target, Unresolved, resolve
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
from reconciler.errors import ConfigError, ReconcilerError, ValidationFailed
from reconciler.healthimaging import HealthImaging, SearchFilter, VersionInfo
from reconciler.healthimaging.client import region_from_environment
from reconciler.manifest import load_tree
from reconciler.manifest.model import LoadResult, Manifest
from reconciler.manifest.render import lines
from reconciler.manifest.settings import load_project_config
from reconciler.manifest.targeting import Targeting, target
from reconciler.render.structured import dump
from reconciler.scaffold import CI, InitResult, choose_datastore
from reconciler.scaffold import init as scaffold
from reconciler.session.connect import connect
from reconciler.session.results import ApplyResult, DriftResult, PlanResult, RevertResult

LOG = logging.getLogger("reconciler")
DRIFT_STATE_FILE = "drift-state.json"

Progress = Callable[[ImageSetOutcome, int, int], None]
Shard = tuple[int, int]
Targets = tuple[list[Target], list[Unresolved]]
PathsLike = Sequence[str | os.PathLike[str]]


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
    and what relative manifest paths hang off. The connection opens on first use and
    closes with the ``with`` block (or :meth:`close`).
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
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.config: ProjectConfig = load_project_config(self.project_dir)
        self.endpoint = resolve_endpoint(
            endpoint, os.environ if environ is None else environ, self.config
        )
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

    @property
    def places(self) -> Places:
        """Where this project keeps its runs: ``journalDir``, ``cacheDir`` (the journal's
        index) and ``.reconciler/undo/`` (undo values), each from the settings."""
        return Places(self.config.journal_dir, self.config.cache_dir, self.config.undo_dir)

    @property
    def scope(self) -> str:
        """What persisted state describes: the endpoint, its region and the AWS profile
        (which picks the account) — the label. State of one scope never serves another."""
        return self.label

    def _scoped(self, filename: str) -> str:
        """``filename`` made specific to :attr:`scope` (``name-<hash>.ext``)."""
        stem, dot, suffix = filename.rpartition(".")
        token = hashlib.sha256(self.scope.encode()).hexdigest()[:12]
        return f"{stem}-{token}{dot}{suffix}"

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
                connect(self.endpoint, self.config, region=self.region, profile=self.profile)
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
        if shard is not None:  # N shards share the account's quotas: each paces at 1/N
            self.ahi.limiter.share(*shard)
        return make_plan(
            self.ahi,
            loaded.manifests,
            manifest_digest=loaded.digest,
            endpoint=self.label,
            parallelism=self._threads(parallelism),
            shard=shard,
            targets=targets,
            cache=ProjectionCache(self.config.cache_dir / "projections", scope=self.scope),
            replace_primary=replace_primary,
            replaced=replacements(self.places, self.label),
            combine_forced=combine_forced,
            left_out=self._left_out,
        )

    def plan(
        self,
        paths: PathsLike = (),
        *,
        detailed: bool = False,
        shard: Shard | None = None,
        parallelism: int | None = None,
        replace_primary: bool = False,
        combine_forced: bool = False,
    ) -> PlanResult:
        """What apply would change, image set by image set. Reads only.
        ``combine_forced``: changes that need force may share a call with ones that do
        not (by default they go in calls of their own, so force never spreads)."""
        loaded = self.load(paths)
        plan = self._make_plan(
            loaded,
            shard=shard,
            parallelism=parallelism,
            replace_primary=replace_primary,
            combine_forced=combine_forced,
        )
        return PlanResult(plan, detailed)

    def drift(
        self,
        paths: PathsLike = (),
        *,
        since_last_run: bool = False,
        shard: Shard | None = None,
        parallelism: int | None = None,
    ) -> DriftResult:
        """Whether the live metadata still matches the manifests. Reads only (but keeps
        the drift state in the cache folder, so ``since_last_run`` costs O(changes))."""
        loaded = self.load(paths)
        started = dt.datetime.now(dt.UTC)
        state_path = self.config.cache_dir / self._scoped(DRIFT_STATE_FILE)
        previous = load_state(state_path)
        targets = None
        if since_last_run and previous is not None:
            targets = incremental_targets(self.ahi, loaded.manifests, previous, started)
        elif since_last_run:
            self._notify("No earlier drift run recorded: checking everything.")
        if targets is None:
            targets = resolve(self.ahi, loaded.manifests)
        plan = self._make_plan(loaded, shard=shard, parallelism=parallelism, targets=targets)
        if shard is None and not plan.has_problems and not self.targeting.active:
            kept = previous if since_last_run else None
            save_state(state_path, state_after(started, loaded.manifests, targets[0], kept))
        if plan.has_changes:  # where to look: the version that made each drifted value
            plan = dataclasses.replace(plan, origins=change_origins(self.ahi, plan))
        return DriftResult(plan)

    # -- apply -------------------------------------------------------------------------
    def recover(self, manifest_digest: str | None = None) -> None:
        """Settle what interrupted runs left open: finish or roll back halfway replaces,
        then settle interrupted update calls into a journal this session's apply goes on
        with. Done once per session; :meth:`apply` calls it first in any case."""
        if self._recovered:
            return
        self._recovered = True
        self._resume_replaces()
        self._recovery_journal = self._stack.enter_context(
            recovering(
                self.ahi,
                self.places,
                endpoint=self.label,
                manifest_digest=manifest_digest,
                lock_timeout=self.config.lock_timeout_seconds,
                echo=self._notify,
            )
        )

    def _resume_replaces(self) -> None:
        """Finish or roll back every replace an interrupted run (apply or revert) left
        halfway, so no study is left without its primary image set."""
        for resumed in resume_interrupted(
            self.ahi, self.places, self.label, self.config.lock_timeout_seconds
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
        source: Plan | PathsLike = (),
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
    ) -> ApplyResult:
        """Make the live metadata match: ``source`` is a :class:`Plan` (applied as it
        is, pinned to its versions: an image set that moved since is refused as stale)
        or manifest paths (then interrupted runs are settled *before* planning).

        A saved plan (:meth:`load_plan`) is applied only with every opt-in it relies on
        given here too (``replace_primary``, ``allow_force``, ``study_wide``,
        ``combine_forced``), and only when each image set's pinned version is what the
        plan describes (:mod:`reconciler.engine.plancheck`). ``reviewed`` (with manifest
        paths): plan from them and apply only if that is exactly the reviewed plan
        (:mod:`reconciler.engine.reviewed`), else raise saying what differs.

        ``review`` sees the plan before anything is sent and says whether to go ahead
        (False raises :class:`Cancelled`); it is not asked when there is nothing to do.
        """
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
            plan = self._make_plan(
                loaded,
                shard=shard,
                parallelism=parallelism,
                replace_primary=replace_primary,
                combine_forced=combine_forced,
            )
            if reviewed is not None:
                check_reviewed(reviewed, plan)
        if not plan.has_changes:
            if review is not None:
                review(plan)
            return ApplyResult(plan, None)
        if review is not None and not review(plan):
            raise Cancelled("cancelled: nothing was changed")
        journal = self._recovery_journal or Journal.start(
            self.places.journal,
            command="apply",
            endpoint=self.label,
            manifest_digest=plan.manifest_digest,
        )
        self._recovery_journal = None
        with journal:
            report = apply_plan(
                self.ahi,
                plan,
                journal,
                parallelism=self._threads(parallelism),
                lock_timeout=self.config.lock_timeout_seconds,
                progress=progress,
                undo_dir=self.places.undo,
            )
            journal.pacing(self.pacing())
        return ApplyResult(plan, report, self.pacing())

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
        return result.manifests

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
        found = find_image_sets(self.ahi, store, image_sets, study=study,
                                patient_id=patient_id, accession=accession)  # fmt: skip
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

    def init(self, *, ci: str = "none", datastore_id: str | None = None) -> InitResult:
        """Scaffold :attr:`project_dir` as a manifest repository; never overwrites. The
        data store is ``datastore_id``, else the account's only ACTIVE one."""

        def choose() -> str:
            return datastore_id or choose_datastore(list(self.ahi.list_datastores()))

        def sample(store: str) -> str | None:
            found = self.ahi.search(store, [SearchFilter.equal("isPrimary", True)])
            for summary in islice(found, 50):
                manifest, _ = export_image_set(self.ahi, store, summary.image_set_id,
                                               [SAMPLE_CHOICE])  # fmt: skip
                if manifest["spec"]["set"]:
                    manifest["metadata"] = {"name": "example-study-description"}
                    return dump(manifest, "yaml") + "\n"
            return None

        return scaffold(
            self.project_dir, datastore_id=choose, sample=sample, ci=CI(ci),
            local=self.endpoint.kind == "local", region=self.region,
        )  # fmt: skip

    def _datastore(self, given: str | None) -> str:
        store = given or self.config.datastore_id
        if store is None:
            raise ConfigError("--datastore-id is needed (no datastoreId in reconciler.yaml)")
        return store

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
            children = revert_runs_of(self.places, run)
            return tuple(plan_revert_run(self.ahi, run, children, undo_dir=self.places.undo))
        if to_version is None:
            raise ConfigError("an image set needs the version to go back to (--to-version N)")
        assert image_set is not None
        store = self._datastore(datastore_id)
        return (plan_revert_image_set(self.ahi, store, image_set, to_version),)

    def run_to_revert(self, run_id: str) -> Run:
        """The run ``revert --run`` means: an ID (or unique prefix), or ``last``, the
        newest run against this endpoint that changed something."""
        if run_id.strip().lower() == LAST:
            return newest_changing_run(self.places, self.label)
        run = load_run(self.places.journal, run_id, self.places.cache)
        if run.header.endpoint != self.label:  # its IDs name image sets of another service
            raise ConfigError(
                f"run {run.run_id} was against {run.header.endpoint}, not {self.label}: "
                "revert it with that endpoint"
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
    ) -> RevertResult:
        """Put image sets back to recorded versions (a new version equal to the old
        one). Image sets that moved since the run are refused (stale) unless ``force``.
        Journaled like apply, so a revert can itself be reverted."""
        parent = None
        # A revert of a replace is a replace: one an interrupted revert left halfway is
        # finished (or rolled back) first, then found done (or done again) below.
        self._resume_replaces()
        if run_id is not None:
            parent = self.run_to_revert(run_id).run_id
            run_id = parent  # `last` is resolved once: the items and the journal agree
        items = self.revert_items(
            run_id=run_id, image_set=image_set, to_version=to_version, datastore_id=datastore_id
        )
        if all(item.already is not None for item in items):
            return RevertResult(items, None, parent)
        if review is not None and not review(items):
            raise Cancelled("cancelled: nothing was changed")
        with Journal.start(
            self.places.journal, command="revert", endpoint=self.label, parent_run_id=parent
        ) as journal:
            report = apply_revert(
                self.ahi,
                items,
                journal,
                force=force,
                parallelism=self._threads(parallelism),
                lock_timeout=self.config.lock_timeout_seconds,
                progress=progress,
                undo_dir=self.places.undo,
            )
        return RevertResult(items, report, parent)
