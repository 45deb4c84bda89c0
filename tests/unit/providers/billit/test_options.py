"""Billit's registration, its options, and accounts in the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import load_settings
from worker.engine.runtimes import check_accounts
from worker.errors import ConfigError, ProviderError
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billit.adapter import SPEC, Billit
from worker.providers.billit.options import BillitOptions
from worker.providers.registry import PROVIDERS


def test_registered_and_options_validated() -> None:
    assert PROVIDERS["billit"] is SPEC
    timeouts = HttpTimeouts(connect=1, total=5)
    adapter = SPEC.factory(
        Credentials(base_url="https://api.billit.io/v1/", token="t"),
        {"invoice_type_id": 4, "account_refresh": "10m"},
        timeouts,
    )
    assert isinstance(adapter, Billit)
    assert "api.billit.io'" in repr(adapter)
    assert "/v1" not in repr(adapter)
    with pytest.raises(ValueError, match="extra"):
        BillitOptions.model_validate({"invoice_type": 4})
    with pytest.raises(ValueError, match="reconcile_per_page"):
        BillitOptions.model_validate({"reconcile_per_page": 251})
    with pytest.raises(ProviderError):
        Billit(Credentials(base_url="https://api.billit.io", token=None), timeouts)
    assert BillitOptions.model_validate({"account_refresh": "10m"}).account_refresh == 600


def test_config_accepts_billit_accounts(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[accounts.athens]\nprovider = "billit"\nbase_url = "https://api.billit.io/v1"\n'
        'token = "t"\ninvoice_type_id = 4\n'
    )
    assert load_settings(path).accounts["athens"].options == {"invoice_type_id": 4}
    path.write_text(path.read_text() + "invoice_typo = 1\n")
    with pytest.raises(ConfigError, match="invoice_typo"):
        check_accounts(load_settings(path))


def test_the_example_config_documents_a_billit_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLCLAP_TOKEN", "x")
    monkeypatch.setenv("BILLIT_TOKEN", "y")
    monkeypatch.setenv("REFRENS_APP_SECRET", "z")
    example = Path(__file__).parents[4] / "config" / "invoice-sync.example.toml"
    account = load_settings(example).accounts["shop-billit"]
    assert account.provider == "billit"
    assert BillitOptions.model_validate(account.options).invoice_type_id == 1
