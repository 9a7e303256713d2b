"""The request and connection limits' settings: read strictly, range-checked, and applied to granian."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest
from click.testing import CliRunner

from flexearn.api import listener
from flexearn.cli import main
from flexearn.config import Settings

# Each limit set in its range and away from its default.
LIMITS = {
    "FLEXEARN_MAX_BODY_BYTES": "1024",
    "FLEXEARN_HEADER_TIMEOUT": "2.5",
    "FLEXEARN_BODY_TIMEOUT": "0.1",
    "FLEXEARN_MAX_CONNECTIONS": "1000000",
}


def test_the_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.max_body_bytes, settings.header_timeout, settings.body_timeout) == (65536, 10.0, 10.0)
    assert settings.max_connections == 10000


def test_values_in_range_are_read() -> None:
    settings = Settings.from_env(LIMITS)
    assert (settings.max_body_bytes, settings.header_timeout, settings.body_timeout) == (1024, 2.5, 0.1)
    assert settings.max_connections == 1_000_000


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("FLEXEARN_MAX_BODY_BYTES", "1023"),  # below the range
        ("FLEXEARN_MAX_BODY_BYTES", "67108865"),  # above it
        ("FLEXEARN_MAX_BODY_BYTES", "64k"),
        ("FLEXEARN_MAX_BODY_BYTES", "٦٥٥٣٦"),  # digits, but not ASCII ones
        ("FLEXEARN_MAX_BODY_BYTES", "65_536"),
        ("FLEXEARN_MAX_BODY_BYTES", " 65536"),
        ("FLEXEARN_HEADER_TIMEOUT", "0.5"),
        ("FLEXEARN_HEADER_TIMEOUT", "nan"),
        ("FLEXEARN_HEADER_TIMEOUT", "inf"),
        ("FLEXEARN_BODY_TIMEOUT", "0"),
        ("FLEXEARN_BODY_TIMEOUT", "-1"),
        ("FLEXEARN_BODY_TIMEOUT", "1e1"),
        ("FLEXEARN_MAX_CONNECTIONS", "15"),
        ("FLEXEARN_MAX_CONNECTIONS", "1.5"),
    ],
)
def test_malformed_or_out_of_range_values_are_refused(name: str, text: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: text})


def test_serve_refuses_a_bad_limit_before_starting() -> None:
    result = CliRunner().invoke(main, ["serve"], env={"FLEXEARN_MAX_BODY_BYTES": "10"})
    assert result.exit_code == 2
    assert "FLEXEARN_MAX_BODY_BYTES: 1024 to 67108864, not 10" in result.output


def test_granian_gets_http1_the_header_timeout_and_the_connection_permits() -> None:
    options = listener.server_options(Settings.from_env({"FLEXEARN_HEADER_TIMEOUT": "2.5"}))
    assert options["http"] == "1"
    assert options["http1_settings"].header_read_timeout == 2500  # milliseconds
    assert options["http1_settings"].max_buffer_size == listener.MAX_HEAD_BYTES
    assert options["backlog"] == listener.BACKLOG


def test_connections_per_worker_fit_the_open_files_limit() -> None:
    settings = Settings.from_env({"FLEXEARN_MAX_CONNECTIONS": "50000"})
    assert listener.connections_per_worker(settings, 1 << 20) == 50000
    assert listener.connections_per_worker(settings, 4096) == 4096 - listener.RESERVED_FILES
    assert listener.connections_per_worker(settings, 100) == 16


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard open-files limit leaves nothing to raise")
    script = (
        "import resource\n"
        "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from flexearn.api.listener import raise_open_files_limit\n"
        "raised = raise_open_files_limit()\n"
        "assert raised == resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 256, raised\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_the_settings_handed_to_worker_processes_read_back_as_they_were() -> None:
    given = Settings.from_env(
        {
            **LIMITS,
            "FLEXEARN_DATABASE_URL": "postgresql://flexearn@db/flexearn",
            "FLEXEARN_POLL_SECONDS": "0.25",
            "FLEXEARN_DEMO": "yes",
            "FLEXEARN_LOG_LEVEL": "debug",
            "FLEXEARN_API_TIMEOUT": "2",
            "FLEXEARN_SETTLEMENT_RANGES": "8",
            "FLEXEARN_RATE_LIMIT_SCALE": "100",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics",
        }
    )
    assert (given.demo, given.log_level, given.metrics_dir) == (True, "DEBUG", "/tmp/metrics")
    assert (given.rate_limit_scale, given.max_body_bytes) == (100, 1024)
    assert Settings.from_env(given.to_env()) == given
    assert Settings.from_env(Settings().to_env()) == Settings()


def test_defaults_fill_in_only_what_the_environment_does_not_set() -> None:
    quiet = {"FLEXEARN_LOG_LEVEL": "WARNING"}
    assert Settings.from_env({}, defaults=quiet).log_level == "WARNING"
    assert Settings.from_env({"FLEXEARN_LOG_LEVEL": "debug"}, defaults=quiet).log_level == "DEBUG"
