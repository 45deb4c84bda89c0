"""The config the demo writes is an ordinary config: it loads through ``load_settings``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from worker.config import load_settings
from worker.demo.config_file import write_config
from worker.demo.plan import build_plan
from worker.testing.sandbox import PROFILES


def test_the_written_config_loads_back_with_every_account(tmp_path: Path) -> None:
    plan = build_plan(PROFILES, invoices=100, seed=1, run="r", today=date(2026, 7, 1))
    urls = [(a, f"http://127.0.0.1:{9000 + i}") for i, a in enumerate(plan.accounts)]
    path = tmp_path / "demo.toml"
    url = 'postgresql://postgres:@/invoice_sync_demo?host=/tmp/a "dir"'
    token_file = tmp_path / "console-admin-token"
    token_file.write_text("a-demo-console-admin-token\n")
    settings = write_config(
        path,
        database_url=url,
        accounts=urls,
        header="line one\n\nline two",
        console={"listen": "127.0.0.1:9465", "admin_token_file": str(token_file)},
    )
    assert path.read_text().startswith("# line one\n#\n# line two\n")
    again = load_settings(path)
    assert again.database_dsn() == url
    assert again.console.listen_on() == ("127.0.0.1", 9465)
    assert again.console.admin_token_file == token_file
    assert sorted(again.accounts) == sorted(a.name for a in plan.accounts)
    for account, base_url in urls:
        loaded = settings.accounts[account.name]
        assert loaded.provider == account.profile.provider
        assert loaded.base_url == base_url
        token = loaded.resolve_token()
        assert token is not None
        assert token.get_secret_value() == account.profile.token
