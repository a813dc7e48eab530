"""The shipped IAM policies (``examples/iam/``) against what the tool really asks of S3
state: each command runs through a proxy that records every S3 request (method, key,
query, headers), and each request is judged against the role's identity policy and
the state bucket's policy, as IAM judges it (an explicit deny wins; else an allow is
needed; conditions on the request's keys). The plan role does everything plan, drift,
runs and state list do except write; the apply role everything apply, a replace,
revert and unlock do; undo values go only under the state's KMS key, and the plan role
never reads them.

The judge is small and covers what these policies use: actions and resources with
``*``, ``Principal``, and the ``StringLike``, ``StringNotEquals``, ``ArnNotEquals`` and
``Bool`` conditions (a negated operator holds when the key is absent, as in IAM).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ci_support import PREFIX, Repository
from ci_support import repo as repo  # the fixtures
from ci_support import s3_proxy as s3_proxy
from conftest import NM_PATIENT_FIX
from wire_support import CountingProxy, Exchange

from reconciler.emulator.seed import SEED_DATASTORE_ID
from tests.state_support import KMS_KEY, Bucket

IAM = Path(__file__).resolve().parents[2] / "examples" / "iam"
ACCOUNT, REGION = "123456789012", "us-east-1"
PLAN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/reconciler-plan"
APPLY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/reconciler-apply"
KMS_HEADER = "x-amz-server-side-encryption-aws-kms-key-id"


def policy(name: str, bucket: str) -> dict[str, Any]:
    """``examples/iam/NAME``, its placeholders filled in as a user does."""
    text = (IAM / name).read_text()
    for placeholder, value in (
        ("STATE_BUCKET", bucket),
        ("STATE_PREFIX", PREFIX),
        ("STATE_KEY_ID", KMS_KEY.rsplit("/", 1)[1]),
        ("DATASTORE_ID", SEED_DATASTORE_ID),
        ("REGION", REGION),
        ("ACCOUNT", ACCOUNT),
    ):
        text = text.replace(placeholder, value)
    document: dict[str, Any] = json.loads(text)
    return document


# -- the judge ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: dict[str, str]

    def __str__(self) -> str:
        return f"{self.action} {self.resource} {self.context}"


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _holds(conditions: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        for key, wanted in tests.items():
            value = context.get(key)
            patterns = _listed(wanted)
            if operator in ("StringLike", "StringEquals", "Bool"):
                exact = operator != "StringLike"
                if value is None or not any(
                    (value == p) if exact else _like(p, value) for p in patterns
                ):
                    return False
            elif operator in ("StringNotEquals", "ArnNotEquals"):
                if value is not None and value in patterns:
                    return False
            else:
                raise AssertionError(f"the judge does not know {operator}")
    return True


def _applies(statement: dict[str, Any], request: Request, principal: str | None) -> bool:
    if principal is not None:  # a resource policy: whom it speaks of
        named = statement.get("Principal")
        if named != "*" and principal not in _listed(named["AWS"]):
            return False
    actions = _listed(statement["Action"])
    if not any(_like(a, request.action) for a in actions):
        return False
    if not any(_like(r, request.resource) for r in _listed(statement["Resource"])):
        return False
    return _holds(statement.get("Condition", {}), request.context)


def allowed(request: Request, role: str, identity: dict[str, Any], bucket: dict[str, Any]) -> bool:
    """IAM's verdict for ``role`` (same account as the bucket: one allow suffices)."""
    found = [(s, None) for s in identity["Statement"]] + [(s, role) for s in bucket["Statement"]]
    effects = {s["Effect"] for s, principal in found if _applies(s, request, principal)}
    return "Deny" not in effects and "Allow" in effects


# -- the requests on the wire -------------------------------------------------------------------
def requests_of(exchanges: list[Exchange], role: str) -> list[Request]:
    """The S3 requests the proxy saw, as IAM sees them (path style: /bucket/key)."""
    found = []
    for exchange in exchanges:
        method = exchange.operation.split(" ", 1)[0]
        parts = urlsplit(exchange.target)
        bucket, _, key = parts.path.strip("/").partition("/")
        headers = {k.lower(): v for k, v in exchange.headers}
        context = {"aws:SecureTransport": "true", "aws:PrincipalArn": role}
        if KMS_HEADER in headers:
            context[f"s3:{KMS_HEADER}"] = headers[KMS_HEADER]
        if method == "POST" and "delete" in parse_qs(parts.query, keep_blank_values=True):
            # DeleteObjects: IAM asks s3:DeleteObject of each key it names.
            for named in re.findall(r"<Key>([^<]+)</Key>", exchange.body.decode()):
                found.append(Request("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{named}", context))
            continue
        if not key:
            assert method == "GET", exchange
            prefix = parse_qs(parts.query).get("prefix", [""])[0]
            found.append(
                Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", {**context, "s3:prefix": prefix})
            )
            continue
        action = {"GET": "s3:GetObject", "PUT": "s3:PutObject", "DELETE": "s3:DeleteObject"}[method]
        found.append(Request(action, f"arn:aws:s3:::{bucket}/{key}", context))
    return found


def commands(repo: Repository, proxy: CountingProxy, *runs: tuple[str, ...]) -> list[Exchange]:
    proxy.reset()
    for args in runs:
        done = repo.run(*args)
        assert done.exit_code in (0, 2), (args, done.output)
    return proxy.seen()


def test_each_role_may_make_every_s3_request_its_commands_make(
    repo: Repository, state_bucket: Bucket, s3_proxy: CountingProxy
) -> None:
    (repo.root / "manifests" / "nm-patient.yaml").write_text(NM_PATIENT_FIX)
    bucket = policy("state-bucket-policy.json", state_bucket.name)
    read_only = policy("read-only-policy.json", state_bucket.name)
    write = policy("write-policy.json", state_bucket.name)

    applying = commands(
        repo,
        s3_proxy,
        ("apply", "--replace-primary", "--auto-approve"),
        ("revert", "--run", "last", "--auto-approve"),
    )
    lock = {"lock_id": "0" * 32}
    state_bucket.s3.put_object(
        Bucket=state_bucket.name,
        Key=f"{PREFIX}/{repo.scope.name}/locks/all.json",
        Body=json.dumps(lock).encode(),
    )
    applying += commands(repo, s3_proxy, ("state", "unlock", "0" * 32))
    (repo.root / "manifests" / "nm-patient.yaml").unlink()  # plan would say it needs a replace
    planning = commands(
        repo,
        s3_proxy,
        ("plan",),
        ("drift",),
        ("runs",),
        ("state", "list"),
        ("runs", "show", "last"),
    )

    as_apply = requests_of(applying, APPLY_ROLE)
    as_plan = requests_of(planning, PLAN_ROLE)
    assert {r.action for r in as_apply} == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
    }
    refused = [str(r) for r in as_apply if not allowed(r, APPLY_ROLE, write, bucket)]
    assert refused == []
    undo = [r for r in as_apply if "/undo/" in r.resource and r.action == "s3:PutObject"]
    assert undo and all(r.context[f"s3:{KMS_HEADER}"] == KMS_KEY for r in undo)

    writes = [r for r in as_plan if r.action != "s3:GetObject" and r.action != "s3:ListBucket"]
    assert [r.resource.rsplit("/", 2)[-2:] for r in writes] == [["drift", "state.json"]]
    refused = [r for r in as_plan if not allowed(r, PLAN_ROLE, read_only, bucket)]
    assert refused == writes  # drift cannot record its state: a warning, never an error
    assert not [r for r in as_plan if "/undo/" in r.resource]


def test_what_the_policies_refuse(state_bucket: Bucket) -> None:
    """The plan role never writes state nor reads undo values; undo values go only
    under the state's key; nothing over plain HTTP; no other role writes the state."""
    bucket = policy("state-bucket-policy.json", state_bucket.name)
    read_only = policy("read-only-policy.json", state_bucket.name)
    write = policy("write-policy.json", state_bucket.name)
    state = f"arn:aws:s3:::{state_bucket.name}/{PREFIX}/url/x"
    plain = {"aws:SecureTransport": "true"}

    def request(action: str, key: str, **context: str) -> Request:
        return Request(action, f"{state}/{key}", {**plain, **context})

    undo_read = request("s3:GetObject", "undo/r.json", **{"aws:PrincipalArn": PLAN_ROLE})
    everyone_can_read = {
        **read_only,
        "Statement": [
            *read_only["Statement"],
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        ],
    }
    assert not allowed(undo_read, PLAN_ROLE, everyone_can_read, bucket)
    lock = request("s3:PutObject", "locks/all.json", **{"aws:PrincipalArn": PLAN_ROLE})
    assert not allowed(lock, PLAN_ROLE, everyone_can_read, bucket)
    other = "arn:aws:iam::123456789012:role/someone-else"
    assert not allowed(
        request("s3:DeleteObject", "runs/index.json", **{"aws:PrincipalArn": other}),
        other,
        everyone_can_read,
        bucket,
    )
    apply_as = {"aws:PrincipalArn": APPLY_ROLE}
    assert allowed(
        request("s3:PutObject", "runs/index.json", **apply_as), APPLY_ROLE, write, bucket
    )
    unkeyed = request("s3:PutObject", "undo/r.json", **apply_as)
    assert not allowed(unkeyed, APPLY_ROLE, write, bucket)
    other_key = request(
        "s3:PutObject",
        "undo/r.json",
        **apply_as,
        **{f"s3:{KMS_HEADER}": "arn:aws:kms:us-east-1:999999999999:key/x"},
    )
    assert not allowed(other_key, APPLY_ROLE, write, bucket)
    over_http = Request(
        "s3:GetObject", f"{state}/runs/index.json", {"aws:SecureTransport": "false", **apply_as}
    )
    assert not allowed(over_http, APPLY_ROLE, write, bucket)
    [kms] = [s for s in write["Statement"] if s["Sid"] == "ReconcilerUndoValuesUnderTheStateKey"]
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert kms["Resource"] == [KMS_KEY]
    assert not [s for s in read_only["Statement"] if any(a.startswith("kms:") for a in s["Action"])]
