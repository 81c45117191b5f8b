"""Settings come from FERRY_* env vars over an optional TOML file; bad values name the setting."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from services.restore.service import RestoreOptions, restore_options
from services.transfer.transferring import TransferOptions, transfer_options
from shared.contracts.errors import PermanentError
from shared.runtime.logs import JsonFormatter, request_context
from shared.runtime.repositories import repository_s3, repository_url
from shared.runtime.settings import load, load_settings


def test_env_vars_map_onto_sections_and_fields() -> None:
    settings = load_settings(
        {
            "FERRY_NATS_URL": "nats://bus:4222",
            "FERRY_NATS_TOKEN": "s3cr3t-token",
            "FERRY_S3_ENDPOINT": "http://s3:8333",
            "FERRY_HTTP_PORT": "9090",
            "FERRY_LOG_FORMAT": "text",
            "UNRELATED": "x",
        }
    )
    assert settings.nats.url == "nats://bus:4222"
    assert settings.nats.token == "s3cr3t-token"
    assert settings.s3.endpoint == "http://s3:8333"
    assert settings.http_port == 9090
    assert settings.log_format == "text"


def test_env_vars_override_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "ferry.toml"
    config.write_text(
        'http_port = 7000\nrepository = "s3://east/apps"\n[nats]\nurl = "nats://a:4222"\n[repositories]\nwest = "s3://west/apps"\n'
    )
    settings = load_settings({"FERRY_CONFIG": str(config), "FERRY_NATS_URL": "nats://b:4222"})
    assert settings.http_port == 7000
    assert settings.nats.url == "nats://b:4222"
    assert settings.repositories == {"west": "s3://west/apps"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        pytest.param("concurency = 7\n", "concurency", id="a misspelt setting"),
        pytest.param("[s3]\nendpont = 'http://s3'\n", "s3.endpont", id="a misspelt setting in a section"),
    ],
)
def test_a_typo_in_the_settings_file_is_refused_naming_it(tmp_path: Path, text: str, named: str) -> None:
    config = tmp_path / "ferry.toml"
    config.write_text(text)
    with pytest.raises(PermanentError, match=f"unknown setting.*{named}"):
        load_settings({"FERRY_CONFIG": str(config)})


def test_one_env_var_names_a_repository_per_region() -> None:
    settings = load_settings({"FERRY_REPOSITORIES": "east=s3://ferry-east/apps, west=s3://ferry-west/apps"})
    assert settings.repositories == {"east": "s3://ferry-east/apps", "west": "s3://ferry-west/apps"}


@pytest.mark.parametrize(
    ("env", "words"),
    [
        pytest.param({"FERRY_HTTP_PORT": "eighty"}, "http_port", id="a port that is not a number"),
        pytest.param({"FERRY_LOG_FORMAT": "xml"}, "log_format", id="an unknown log format"),
        pytest.param(
            {"FERRY_REPOSITORIES": "east=s3://a/x,west"},
            "FERRY_REPOSITORIES.*'west'",
            id="a region without a URL",
        ),
        pytest.param(
            {"FERRY_CONFIG": "/nonexistent/ferry.toml"}, "FERRY_CONFIG", id="a settings file that is missing"
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(env: dict[str, str], words: str) -> None:
    with pytest.raises(PermanentError, match=words):
        load_settings(env)


def test_log_lines_carry_the_request_id_and_never_a_secret() -> None:
    settings = load_settings(
        {"FERRY_NATS_PASSWORD": "hunter2-password", "FERRY_S3_SECRET_KEY": "AKIA-very-secret"}
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("snapshot", settings.secrets()))
    logger = logging.getLogger("ferry.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with request_context("migrate-1", "snapshot"):
            logger.warning("connecting with %s and %s", "hunter2-password", "AKIA-very-secret")
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert '"request_id": "migrate-1"' in line and '"step": "snapshot"' in line
    assert "hunter2" not in line and "AKIA" not in line
    assert line.count("***") == 2


def test_a_region_on_another_cloud_has_its_own_endpoint_and_credentials(tmp_path: Path) -> None:
    config = tmp_path / "ferry.toml"
    config.write_text(
        '[s3]\nendpoint = "http://east-s3:8333"\naccess_key = "east-key"\nsecret_key = "east-secret-value"\n'
        '[repositories]\neast = "s3://ferry-east/apps"\n'
        '[repositories.west]\nurl = "s3://ferry-west/apps"\nendpoint = "https://s3.eu-west-1.amazonaws.com"\n'
        'region = "eu-west-1"\naccess_key = "west-key"\nsecret_key = "west-secret-value"\npath_style = false\n'
    )
    settings = load_settings({"FERRY_CONFIG": str(config)})
    east, west = repository_s3(settings, "east"), repository_s3(settings, "west")
    assert (repository_url(settings, "west"), west.endpoint, west.region) == (
        "s3://ferry-west/apps", "https://s3.eu-west-1.amazonaws.com", "eu-west-1"
    )  # fmt: skip
    assert (west.access_key, west.secret_key, west.path_style) == ("west-key", "west-secret-value", False)
    assert (east.endpoint, east.access_key, east.path_style) == ("http://east-s3:8333", "east-key", True)
    assert "west-secret-value" in settings.secrets()  # redacted from every log line


def test_the_repositories_env_var_takes_a_json_object_too() -> None:
    settings = load_settings(
        {
            "FERRY_REPOSITORIES": '{"east": "s3://a/x", "west": {"url": "s3://b/x", "endpoint": "http://w:8333"}}'
        }
    )
    assert repository_url(settings, "east") == "s3://a/x"
    assert repository_s3(settings, "west").endpoint == "http://w:8333"


def test_an_unknown_field_of_a_repository_table_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "ferry.toml"
    config.write_text('[repositories.west]\nurl = "s3://b/x"\nendpont = "http://w"\n')
    with pytest.raises(PermanentError, match="endpont"):
        load_settings({"FERRY_CONFIG": str(config)})


class Tuning(msgspec.Struct, frozen=True, kw_only=True):
    threads: int = 4
    verify: bool = True
    timeout: float = 600.0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, Tuning(), id="no variable keeps every default"),
        pytest.param(
            {"FERRY_X_THREADS": "8", "FERRY_X_VERIFY": "false", "FERRY_X_TIMEOUT": "1.5"},
            Tuning(threads=8, verify=False, timeout=1.5),
            id="text is converted to each field's type",
        ),
        pytest.param(
            {"FERRY_X_UNKNOWN": "1", "FERRY_THREADS": "2"}, Tuning(), id="other names are another reader's"
        ),
    ],
)
def test_one_loader_reads_any_struct_from_prefixed_env_vars(env: dict[str, str], expected: Tuning) -> None:
    assert load(Tuning, env, "FERRY_X_") == expected


@pytest.mark.parametrize(
    ("read", "env", "words"),
    [
        pytest.param(
            lambda env: load(Tuning, env, "FERRY_X_", what="x setting"),
            {"FERRY_X_THREADS": "many"},
            "invalid x setting FERRY_X_THREADS: Expected `int`",
            id="a struct of a service's own",
        ),
        pytest.param(
            transfer_options,
            {"FERRY_TRANSFER_VERIFY": "maybe"},
            "invalid transfer setting FERRY_TRANSFER_VERIFY",
            id="the transfer's options",
        ),
        pytest.param(
            restore_options,
            {"FERRY_RESTORE_MOVER_TIMEOUT": "soon"},
            "invalid restore setting FERRY_RESTORE_MOVER_TIMEOUT",
            id="the restore's options",
        ),
        pytest.param(
            load_settings,
            {"FERRY_NATS_CONNECT_TIMEOUT": "x"},
            "invalid setting FERRY_NATS_CONNECT_TIMEOUT",
            id="a setting in a section",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    read: Callable[[dict[str, str]], object], env: dict[str, str], words: str
) -> None:
    with pytest.raises(PermanentError, match=words):
        read(env)


def test_the_services_options_keep_their_names_and_defaults() -> None:
    assert transfer_options({}) == TransferOptions(limit_kib=0, threads=4, verify=True)
    assert restore_options({}) == RestoreOptions(timeout=600.0, mover_timeout=3600.0)
    env = {"FERRY_TRANSFER_LIMIT_KIB": "512", "FERRY_TRANSFER_THREADS": "2", "FERRY_RESTORE_TIMEOUT": "5"}
    assert transfer_options(env) == TransferOptions(limit_kib=512, threads=2)
    assert restore_options(env) == RestoreOptions(timeout=5.0)
