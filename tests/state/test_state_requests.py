"""What plan and a no-op apply ask of the S3 state, counted on the wire by a proxy in
front of the S3 server that the tool knows nothing about: the same requests with 300
earlier runs as with none, and the run index read once per command."""

from __future__ import annotations

from collections import Counter

from ci_support import Repository
from ci_support import repo as repo  # the fixtures
from ci_support import s3_proxy as s3_proxy
from wire_support import CountingProxy

from reconciler.emulator.seed import SEED_DATASTORE_ID
from tests.state_support import Bucket, earlier_runs, s3_state


def requests(proxy: CountingProxy, repo: Repository, *args: str) -> Counter[str]:
    """The S3 requests ``reconciler ARGS…`` made, as method and the key's last part."""
    proxy.reset()
    done = repo.run(*args)
    assert done.exit_code == 0, done.output
    seen: Counter[str] = Counter()
    for exchange in proxy.seen():
        method, _, path = exchange.operation.partition(" ")
        key = path.strip("/").partition("/")[2]  # path style: /bucket/key
        seen[f"{method} {key.rsplit('/', 1)[-1] if key else '(list)'}"] += 1
    return seen


def test_plan_and_a_no_op_apply_ask_the_same_of_s3_state_at_0_and_300_runs(
    repo: Repository, state_bucket: Bucket, s3_proxy: CountingProxy
) -> None:
    applied = repo.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    at_first = {
        what: requests(s3_proxy, repo, *what) for what in (("plan",), ("apply", "--auto-approve"))
    }
    assert at_first[("plan",)]["GET index.json"] == 1
    assert at_first[("apply", "--auto-approve")]["GET index.json"] == 1
    # The locks, listed twice: when taking ours, then to tell live writers' runs apart.
    assert at_first[("apply", "--auto-approve")]["GET (list)"] == 2

    state = s3_state(state_bucket, repo.scope, prefix="team")
    earlier_runs(state, 300, endpoint=repo.local.url, datastore_id=SEED_DATASTORE_ID)
    assert len(repo.state_keys("/runs/")) == 302
    later = {what: requests(s3_proxy, repo, *what) for what in at_first}
    assert later == at_first
