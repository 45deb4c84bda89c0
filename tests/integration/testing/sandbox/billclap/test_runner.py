"""Starting a sandbox: known providers only, and the CLI arguments that become its options."""

from __future__ import annotations

import argparse

import pytest

from worker.cli.tool_arguments import configure_sandbox
from worker.testing.sandbox.server import options_from_args, start_sandbox


async def test_unknown_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="no sandbox"):
        await start_sandbox("nope")


def test_cli_arguments_become_options_and_faults() -> None:
    parser = argparse.ArgumentParser()
    configure_sandbox(parser)
    args = parser.parse_args(
        [
            "--provider",
            "billclap",
            "--token",
            "T1",
            "--token",
            "T2",
            "--credits",
            "9",
            "--option",
            "api_plan=false",
            "--option",
            "prefix=WEB-",
            "--stall-rate",
            "0.1",
            "--seed",
            "3",
        ]
    )
    assert (args.host, args.port) == ("127.0.0.1", 0)
    assert options_from_args(args) == {
        "tokens": ["T1", "T2"],
        "credits": 9,
        "api_plan": False,
        "prefix": "WEB-",
    }
    assert (args.stall_rate, args.seed, args.latency) == (0.1, 3, None)
