"""Operator mistakes in the configuration: ``check-config`` and ``run`` both stop with exit code
2 and exactly one line on stderr naming the key, never a traceback, never the secret."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.processes import cli
from worker.cli.main import main

pytestmark = pytest.mark.e2e

SECRET = "cfg-secret-9f8e7d"
GOOD = f"""
database_url = "postgresql://postgres:{SECRET}@127.0.0.1:1/nowhere"
[worker]
lease = "30s"
[accounts.shop]
provider = "billclap"
base_url = "http://127.0.0.1:9"
token = "{SECRET}"
rate_limit = "10/second"
"""


@dataclass(frozen=True)
class Mistake:
    name: str
    key: str
    """What the one line must name."""
    replace: tuple[str, str] = ("", "")
    """(old, new) applied to ``GOOD``; ``new`` is appended when ``old`` is empty."""
    env: dict[str, str] = field(default_factory=dict)
    file: str | None = "config.toml"
    """None: the config file does not exist."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Files written beside the config (``config.toml`` itself, to replace it); ``{dir}`` in
    the config stands for their directory."""

    def text(self) -> str:
        old, new = self.replace
        return GOOD + new if not old else GOOD.replace(old, new)


MISTAKES = [
    Mistake("unknown key", "worker.batch_sise", ('lease = "30s"', "batch_sise = 5")),
    Mistake("unknown section", "telemetry", ("", "[telemetry]\nx = 1\n")),
    Mistake("bad duration", "worker.lease", ('lease = "30s"', 'lease = "5 fortnights"')),
    Mistake("negative duration", "worker.lease", ('lease = "30s"', 'lease = "-5s"')),
    Mistake("wrong type", "worker.lease", ('lease = "30s"', "lease = [1]")),
    Mistake("boolean duration", "worker.lease", ('lease = "30s"', "lease = true")),
    Mistake("infinite duration", "worker.lease", ('lease = "30s"', "lease = inf")),
    Mistake("NaN duration", "worker.lease", ('lease = "30s"', "lease = nan")),
    *(
        Mistake(f"lease {value}", "worker.lease", ('lease = "30s"', f"lease = {value}"))
        for value in ('"99999999999999999999d"', "0", '"500ms"', '"8d"')
    ),
    Mistake("zero poll_interval", "worker.poll_interval", ('lease = "30s"', "poll_interval = 0")),
    Mistake(
        "zero flush_interval", "worker.flush_interval", ('lease = "30s"', "flush_interval = 0")
    ),
    Mistake(
        "huge attempt_retention",
        "worker.attempt_retention",
        ('lease = "30s"', 'attempt_retention = "99999999d"'),
    ),
    Mistake("huge max_age", "worker.max_age", ('lease = "30s"', 'max_age = "99999999d"')),
    Mistake(
        "huge max_retry_delay",
        "worker.max_retry_delay",
        env={"INVOICE_SYNC_WORKER__MAX_RETRY_DELAY": "99999999999d"},
    ),
    Mistake(
        "huge request_timeout", "http.request_timeout", ("", '[http]\nrequest_timeout = "9999d"\n')
    ),
    Mistake("tiny session_ttl", "console.session_ttl", ("", '[console]\nsession_ttl = "1s"\n')),
    Mistake(
        "number as rate limit",
        "accounts.shop.rate_limit",
        ('rate_limit = "10/second"', "rate_limit = 60"),
    ),
    Mistake(
        "bad rate limit",
        "accounts.shop.rate_limit",
        ('rate_limit = "10/second"', 'rate_limit = "fast"'),
    ),
    Mistake("zero concurrency", "accounts.shop.concurrency", ("", "concurrency = 0\n")),
    Mistake("missing token", "token", (f'token = "{SECRET}"', "")),
    Mistake(
        "two token sources",
        "token_env",
        (f'token = "{SECRET}"', f'token = "{SECRET}"\ntoken_env = "X"'),
    ),
    Mistake(
        "token_env unset",
        "INVOICE_SYNC_TEST_UNSET_TOKEN",
        (f'token = "{SECRET}"', 'token_env = "INVOICE_SYNC_TEST_UNSET_TOKEN"'),
    ),
    Mistake(
        "token_file unreadable",
        "token_file",
        (f'token = "{SECRET}"', 'token_file = "/nonexistent/token"'),
    ),
    Mistake(
        "unknown provider",
        "accounts.shop.provider",
        ('provider = "billclap"', 'provider = "billklap"'),
    ),
    Mistake("unknown provider option", "accounts.shop", ("", "url_kee = 'x'\n")),
    Mistake("bad database_url", "database_url", ("postgresql://postgres", "postgresq://postgres")),
    Mistake("bad database_url port", "database_url", ("127.0.0.1:1", "127.0.0.1:port")),
    Mistake(
        "bad database_url in env",
        "database_url",
        env={"INVOICE_SYNC_DATABASE_URL": f"mysql://root:{SECRET}@db/x"},
    ),
    Mistake(
        "bad env override", "worker.max_attempts", env={"INVOICE_SYNC_WORKER__MAX_ATTEMPTS": "many"}
    ),
    Mistake("TOML syntax error", "not valid TOML", ("[worker]", "[worker")),
    Mistake("missing config file", "config file", file=None),
    *(
        Mistake(f"base_url {url}", "accounts.shop.base_url", ("http://127.0.0.1:9", url))
        for url in (
            "file:///etc/passwd",
            "ftp://api.billclap.com",
            "not a url",
            "",
            f"https://user:{SECRET}@api.billclap.com",
            "http://api.billclap.com",
        )
    ),
    Mistake(
        "two-line token_file",
        "accounts.shop.token_file",
        (f'token = "{SECRET}"', 'token_file = "{dir}/token"'),
        files={"token": f"{SECRET}\n{SECRET}\n".encode()},
    ),
    Mistake(
        "token_file not UTF-8",
        "accounts.shop.token_file",
        (f'token = "{SECRET}"', 'token_file = "{dir}/token"'),
        files={"token": b"\xff" + SECRET.encode()},
    ),
    Mistake("config not UTF-8", "not UTF-8", files={"config.toml": GOOD.encode() + b"#\xe9\n"}),
    Mistake(
        "malformed JSON in env", "INVOICE_SYNC_ACCOUNTS", env={"INVOICE_SYNC_ACCOUNTS": "{bad"}
    ),
    Mistake("sslmode bogus", "sslmode", ("/nowhere", "/nowhere?sslmode=bogus")),
    Mistake("percent-encoded NUL in database_url", "database_url", ("/nowhere", "/nowhere%00")),
    Mistake(
        "percent-encoded line break in database_url password",
        "database_url",
        (f":{SECRET}@", f":{SECRET}%0A@"),
    ),
    Mistake(
        "percent-encoded NUL in database_url in env",
        "database_url",
        env={"INVOICE_SYNC_DATABASE_URL": f"postgresql://u:{SECRET}@127.0.0.1:5432/db%00"},
    ),
    Mistake(
        "database_url_file missing",
        "database_url_file",
        (
            f'database_url = "postgresql://postgres:{SECRET}@127.0.0.1:1/nowhere"',
            'database_url_file = "/nonexistent/database-url"',
        ),
    ),
    Mistake("empty account name", "accounts", ("[accounts.shop]", '[accounts.""]')),
    Mistake("long account name", "accounts", ("[accounts.shop]", f"[accounts.{'s' * 101}]")),
    Mistake("newline in account name", "accounts", ("[accounts.shop]", '[accounts."a\\nb"]')),
]


def problems_with(
    mistake: Mistake, command: str, code: int | None, stdout: str, stderr: str
) -> list[str]:
    """What is wrong with how ``command`` met ``mistake`` (nothing, when it is all right)."""
    lines = stderr.splitlines()
    said = stderr + stdout
    problems = [
        f"exit {code}" if code != 2 else "",
        f"{len(lines)} lines on stderr" if len(lines) != 1 else "",
        f"does not name {mistake.key!r}" if lines and mistake.key not in lines[0] else "",
        "a traceback" if "Traceback" in said else "",
        "the secret" if SECRET in said else "",
        f"output on stdout: {stdout[:200]!r}" if stdout else "",
    ]
    found = [p for p in problems if p]
    return [f"{command} / {mistake.name}: {', '.join(found)}: {said[-600:]!r}"] if found else []


def config_file(mistake: Mistake, directory: Path) -> Path:
    path = directory / "config.toml"
    if mistake.file is not None:
        path.write_text(mistake.text().replace("{dir}", str(directory)))
    for name, content in mistake.files.items():
        (directory / name).write_bytes(content)
    return path


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_each_config_mistake_is_one_line_naming_the_key_and_exit_2(
    mistake: Mistake,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI's ``main`` in-process, for every mistake (a Python start-up each would take
    minutes on a loaded CI machine); an exception escaping ``main`` is the traceback."""
    for name, value in mistake.env.items():
        monkeypatch.setenv(name, value)
    path = config_file(mistake, tmp_path)
    code = main(["--config", str(path), command])
    out = capsys.readouterr()
    assert problems_with(mistake, command, code, out.out, out.err) == []


SAMPLE = {
    "base_url not a url": "check-config",
    "two-line token_file": "check-config",
    "config not UTF-8": "run",
    "database_url_file missing": "check-config",
    "TOML syntax error": "run",
    "token_env unset": "run",
    "bad database_url": "run",
    "missing config file": "check-config",
    "wrong type": "check-config",
}


def test_the_real_cli_stops_the_same_way(tmp_path: Path) -> None:
    """A sample through ``python -m worker``, concurrently: the same one line, exit 2."""

    def run(mistake: Mistake) -> list[str]:
        directory = tmp_path / mistake.name.replace(" ", "_")
        directory.mkdir()
        command = SAMPLE[mistake.name]
        result = cli(command, config=config_file(mistake, directory), env=mistake.env)
        return problems_with(mistake, command, result.returncode, result.stdout, result.stderr)

    sample = [m for m in MISTAKES if m.name in SAMPLE]
    assert len(sample) == len(SAMPLE)
    with ThreadPoolExecutor(max_workers=len(sample)) as pool:
        problems = [p for found in pool.map(run, sample) for p in found]
    assert problems == []


def test_the_good_config_passes_so_each_mistake_is_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    result = cli("check-config", config=path)
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout


def test_the_database_url_can_come_from_a_file(dsn: str, tmp_path: Path) -> None:
    """``database_url_file`` (here ``INVOICE_SYNC_DATABASE_URL_FILE``, as a pod or a systemd
    unit passes it) reaches the database, and its content never prints."""
    url_file = tmp_path / "database-url"
    url_file.write_text(dsn + "\n")
    url_file.chmod(0o600)
    result = cli("migrate", env={"INVOICE_SYNC_DATABASE_URL_FILE": str(url_file)})
    assert result.returncode == 0, result.stderr
    assert "nothing to apply" in result.stdout
