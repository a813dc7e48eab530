"""reconciler.yaml loading and checking, and the endpoint precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import Endpoint, ProjectConfig, parse_endpoint, resolve_endpoint
from reconciler.errors import ConfigError
from reconciler.manifest.settings import check_project_file, load_project_config


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (a git root) that is also the working directory."""
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "reconciler.yaml"
    path.write_text(text)
    return path


# -- endpoint precedence -------------------------------------------------------------
@pytest.mark.parametrize(
    ("cli", "env", "file", "expected"),
    [
        ("local", "https://env.example", "endpoint: http://file.example:1", Endpoint("local", None, "--endpoint")),
        (None, "https://env.example", "endpoint: http://file.example:1", Endpoint("url", "https://env.example", "RECONCILER_ENDPOINT")),
        (None, "", "endpoint: http://127.0.0.1:9/", Endpoint("url", "http://127.0.0.1:9", "reconciler.yaml")),
        (None, None, "endpoint: local", Endpoint("local", None, "reconciler.yaml")),
        (None, None, "region: us-east-1", Endpoint("aws", None, "reconciler.yaml")),
        (None, None, None, Endpoint("aws", None, "default")),
        ("https://cli.example:8443/base/", "local", None, Endpoint("url", "https://cli.example:8443/base", "--endpoint")),
        ("  ", "LOCAL", "endpoint: aws", Endpoint("local", None, "RECONCILER_ENDPOINT")),
        ("AWS", "local", "endpoint: local", Endpoint("aws", None, "--endpoint")),
    ],
)  # fmt: skip
def test_endpoint_precedence_cli_then_env_then_file_then_aws(
    project: Path, cli: str | None, env: str | None, file: str | None, expected: Endpoint
) -> None:
    if file is not None:
        write(project, file + "\n")
    environment = {} if env is None else {"RECONCILER_ENDPOINT": env}
    assert resolve_endpoint(cli, environment, load_project_config()) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("ftp://host", "must be aws, local or an http(s):// URL"),
        ("localhost:8080", "must be aws, local or an http(s):// URL"),
        ("http://user:hunter2@host", "must not contain credentials"),
        ("http://host/?x=1", "must not have a query or fragment"),
        ("http://host:port", "invalid port"),
    ],
)
def test_bad_endpoints_are_one_line_config_errors(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_endpoint(value, "--endpoint")
    text = str(caught.value)
    assert text.startswith("--endpoint: ") and fragment in text and "\n" not in text
    assert "hunter2" not in text


def test_a_bad_environment_endpoint_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^RECONCILER_ENDPOINT: endpoint 'nowhere'"):
        resolve_endpoint(None, {"RECONCILER_ENDPOINT": "nowhere"}, ProjectConfig())


# -- loading -------------------------------------------------------------------------
def test_every_setting_is_read_and_paths_are_made_absolute(project: Path) -> None:
    write(project, """\
endpoint: https://imaging.example.org
region: eu-west-1
profile: imaging-ops
datastoreId: 2aa75d103f7f45ab977b0e93f00e6fe9
parallelism: 4
state: s3://imaging-state/reconciler/prod
stateKmsKeyId: alias/reconciler-state
cacheDir: ./.reconciler/other-cache
localDb: state/local.sqlite
rateLimits:
  UpdateImageSetMetadata: 0.5
  GetImageSet: 10
serviceQuotas: false
showPhi: true
lockTimeoutSeconds: 60
""")  # fmt: skip
    sub = project / "manifests" / "ct"
    sub.mkdir(parents=True)
    config = load_project_config(sub)  # found from a subfolder
    assert config == ProjectConfig(
        endpoint="https://imaging.example.org",
        region="eu-west-1",
        profile="imaging-ops",
        datastore_id="2aa75d103f7f45ab977b0e93f00e6fe9",
        parallelism=4,
        state="s3://imaging-state/reconciler/prod",
        state_kms_key_id="alias/reconciler-state",
        cache_dir=project / ".reconciler" / "other-cache",
        local_db=project / "state" / "local.sqlite",
        rate_limits={"UpdateImageSetMetadata": 0.5, "GetImageSet": 10.0},
        service_quotas=False,
        show_phi=True,
        lock_timeout_seconds=60.0,
        path=project / "reconciler.yaml",
        root=project,
    )


def test_defaults_without_a_file_hang_off_the_start_folder(project: Path) -> None:
    config = load_project_config()
    assert config.path is None and config.root == project
    assert (config.endpoint, config.parallelism, config.show_phi) == ("aws", 8, False)
    assert config.lock_timeout_seconds == 300
    assert config.state == "local"
    assert config.cache_dir == project / ".reconciler" / "cache"
    assert config.local_db == project / ".reconciler" / "local-healthimaging.sqlite"


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("journalDir: journal\n", "1:1: error: journalDir is no longer a setting"),
        ("journalDir: journal\n", "`reconciler state migrate --from-journal DIR` brings the runs"),
        ("cacheDir: build/cache\n", "1:11: error: cacheDir must lie in .reconciler/"),
        ("cacheDir: .reconciler/../cache\n", "1:11: error: cacheDir must lie in .reconciler/"),
        ("state: s3://UPPER/x\n", "1:8: error: state must be local or s3://bucket/prefix"),
        ("state: s3://bucket/a/../b\n", "1:8: error: state must be local or s3://bucket/prefix"),
        ("state: https://bucket\n", "1:8: error: state must be local or s3://bucket/prefix"),
    ],
)
def test_settings_that_would_let_phi_into_git_or_state_astray_are_refused(
    project: Path, text: str, refused: str
) -> None:
    """State is not a folder of the repository (a pull request can write anything in
    git), and the projection cache (PHI) stays in .reconciler/, which is kept out of it."""
    _, problems = check_project_file(write(project, text))
    shown = [str(p) for p in problems]
    assert len(shown) == 1 and refused in shown[0], shown


def test_the_search_stops_at_the_git_root(tmp_path: Path) -> None:
    write(tmp_path, "region: us-east-1\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert load_project_config(repo).path is None


def test_an_empty_file_or_empty_values_mean_the_defaults(project: Path) -> None:
    write(project, "# nothing yet\n")
    assert load_project_config().parallelism == 8
    write(project, "region:\nparallelism:\n")
    config = load_project_config()
    assert (config.region, config.parallelism) == (None, 8)


@pytest.mark.parametrize(
    ("text", "location", "fragment"),
    [
        ("datastoreID: x\n", "reconciler.yaml:1:1", "unknown setting 'datastoreID'; did you mean datastoreId?"),
        ("region: us-east-1\nparalelism: 4\n", "reconciler.yaml:2:1", "did you mean parallelism?"),
        ("datastore_id: x\n", "reconciler.yaml:1:1", "did you mean datastoreId?"),
        ("colour: blue\n", "reconciler.yaml:1:1", "known: endpoint, region"),
        ("parallelism: eight\n", "reconciler.yaml:1:14", "parallelism must be a whole number from 1 to 64; got 'eight'"),
        ("parallelism: true\n", "reconciler.yaml:1:14", "parallelism must be a whole number"),
        ("showPhi: 'yes'\n", "reconciler.yaml:1:10", "showPhi must be true or false; got 'yes'"),
        ("serviceQuotas: no\n", "reconciler.yaml:1:16", "serviceQuotas must be true or false"),
        ("lockTimeoutSeconds: -1\n", "reconciler.yaml:1:21", "lockTimeoutSeconds must be a number of seconds"),
        ("datastoreId: ABC\n", "reconciler.yaml:1:14", "datastoreId must be 32 lower-case letters and digits"),
        ("region: Mars\n", "reconciler.yaml:1:9", "region must be an AWS region"),
        ("endpoint: ftp://x\n", "reconciler.yaml:1:11", "endpoint must be aws, local or an http(s):// URL"),
        ("endpoint: http://me:secret@h\n", "reconciler.yaml:1:11", "without user:password"),
        ("localDb: ../outside\n", "reconciler.yaml:1:10", "leads outside the project folder"),
        ("cacheDir: /etc\n", "reconciler.yaml:1:11", "(path traversal)"),
        ("localDb: a/../../b.sqlite\n", "reconciler.yaml:1:10", "(path traversal)"),
        ("rateLimits: {UpdateImageSetMetadta: 1}\n", "reconciler.yaml:1:14", "did you mean UpdateImageSetMetadata?"),
        ("rateLimits: {GetImageSet: 0}\n", "reconciler.yaml:1:27", "rateLimits.GetImageSet must be requests per second above 0"),
        ("rateLimits: 5\n", "reconciler.yaml:1:13", "rateLimits must be a mapping of operation name"),
        ("region: us-east-1\nregion: eu-west-1\n", "reconciler.yaml:2:1", "duplicate key 'region': it is already set at line 1"),
        ("1: x\n", "reconciler.yaml:1:1", "unknown setting '1'"),
        ("- a\n- b\n", "reconciler.yaml:1:1", "must be a mapping of settings"),
        ("region: [us-east-1\n", "reconciler.yaml:2:1", "invalid YAML"),
        ("a: 1\n---\nb: 2\n", "reconciler.yaml:3:1", "must hold a single YAML document"),
    ],
)  # fmt: skip
def test_config_errors_are_one_located_line(
    project: Path, text: str, location: str, fragment: str
) -> None:
    write(project, text)
    with pytest.raises(ConfigError) as caught:
        load_project_config()
    message = str(caught.value)
    assert caught.value.location == location
    assert fragment in message
    assert "\n" not in message
    assert "secret" not in message


def test_a_symlink_out_of_the_project_is_path_traversal(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    outside = tmp_path_factory.mktemp("outside")
    (project / "state").symlink_to(outside, target_is_directory=True)
    write(project, "localDb: state/local.sqlite\n")
    with pytest.raises(ConfigError, match=r"path traversal"):
        load_project_config()


def test_non_utf8_and_oversized_files_are_refused(project: Path) -> None:
    (project / "reconciler.yaml").write_bytes(b"region: \xff\n")
    with pytest.raises(ConfigError, match="invalid UTF-8"):
        load_project_config()
    write(project, "# " + "x" * 70_000 + "\n")
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        load_project_config()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("showPhi: yes\n", "showPhi must be true or false; got 'yes'"),  # YAML 1.2: text
        ("region: !!python/name:os.system x\n", "tag"),  # no Python tags, as in manifests
        ("parallelism: " + "[" * 200 + "\n", "nested deeper than"),  # refused in one pass
    ],
)
def test_the_project_file_goes_through_the_manifests_loader(
    project: Path, text: str, fragment: str
) -> None:
    write(project, text)
    with pytest.raises(ConfigError, match=fragment):
        load_project_config()
