"""The canonical invoice → Billit's bodies (invoice, customer), and /account → facts; no I/O."""

from __future__ import annotations

import asyncio
import copy
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from worker.config import load_settings
from worker.engine.runtimes import check_accounts
from worker.errors import ConfigError, ProviderError
from worker.invoice import Customer, parse_invoice
from worker.outcome import DeadLetter, Reason
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billit.account import AccountCache, AccountFacts, read_account
from worker.providers.billit.adapter import SPEC, Billit
from worker.providers.billit.customers import (
    cache_key,
    customer_body,
    customer_type,
    matches,
    normal_vat,
    search_keys,
)
from worker.providers.billit.mapping import (
    build_request,
    gross_total,
    is_paid,
    key_of_tag,
    net_price,
    refuse_unmapped,
    refuse_unsupported,
    tag_for,
)
from worker.providers.billit.options import BillitOptions
from worker.providers.registry import PROVIDERS

TODAY = date(2026, 7, 2)
OPTIONS = BillitOptions(invoice_type_id=1)
FACTS = AccountFacts(
    vats={Decimal(24): 11, Decimal(13): 12, Decimal(6): 13, Decimal(0): 14},
    payment_methods=(5, 6),
    biller_id=3,
    country="GR",
    refusal=None,
)
ACCOUNT_BODY: dict[str, Any] = {
    "data": {
        "id": 1,
        "isBlocked": False,
        "isSuspended": False,
        "relations": {
            "biller": {"id": 3, "name": "Biller", "country": "gr"},
            "paymentMethods": [{"id": 5, "name": "Cash"}, {"id": 6}, {"name": "no id"}],
            "vats": [
                {"id": 11, "name": "24%", "value": 24},
                {"id": 12, "name": "13%", "value": "13.00"},
                {"id": 99, "name": "24% again", "value": 24},
                {"id": 13, "name": "6%", "value": 6.0},
                {"id": 14, "name": "0%", "value": 0},
                {"id": 15, "name": "broken", "value": "n/a"},
            ],
            "settings": {},
            "subscription": {"status": "active", "endsAt": "2027-01-01"},
        },
    }
}


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "issue_date": "2026-07-01",
        "customer": {"name": "Acme AE", "tax_id": "EL123456789"},
        "lines": [{"name": "Consulting", "quantity": 1, "unit_price": 124, "tax_rate": 24}],
    }
    base.update(copy.deepcopy(changes))
    return base


def body_for(payload: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "facts": FACTS,
        "options": OPTIONS,
        "customer_id": 42,
        "tag": "invoice-sync:k",
        "today": TODAY,
    }
    args.update(kwargs)
    return build_request(parse_invoice(payload), **args)


# --- the invoice body -----------------------------------------------------------------------


def test_minimal_invoice_body() -> None:
    assert body_for(doc()) == {
        "invoiceDate": "2026-07-01",
        "invoiceTypeId": 1,
        "customerId": 42,
        "billerId": 3,
        "products": [{"details": "Consulting", "vatId": 11, "price": 100, "quantity": 1}],
        "tags": ["invoice-sync:k"],
        "sendMail": False,
    }


def test_every_field() -> None:
    payload = doc(
        due_date="2026-07-31",
        lines=[
            {
                "name": "Design",
                "description": "Logo, two rounds",
                "quantity": "1.5",
                "unit_price": 80,
                "tax_rate": 13,
                "price_includes_tax": False,
                "discount": "12.5",
                "discount_type": "percent",
                "hsn": "998391",
                "product_id": "P-1",
            },
            {"name": "Tea", "quantity": 3, "unit_price": "5.30", "discount": "1.06"},
        ],
        charges=[{"name": "Courier", "amount": "4.50", "tax_rate": 24}],
        amount_paid="146.58",
        notes="dropped",
    )
    body = body_for(payload, options=BillitOptions(invoice_type_id=1, measurement_unit=2))
    assert body["dateExpires"] == "2026-07-31"
    assert body["products"] == [
        {
            "details": "Design\nLogo, two rounds",
            "vatId": 12,
            "price": 80,
            "quantity": 1.5,
            "discount": 12.5,
            "measurementUnit": 2,
        },
        # No rate is 0%: the amount discount comes off the price.
        {"details": "Tea", "vatId": 14, "price": 4.24, "quantity": 3, "measurementUnit": 2},
        {"details": "Courier", "vatId": 11, "price": 4.5, "quantity": 1, "measurementUnit": 2},
    ]
    # 1.5 x 80 x 0.875 x 1.13 = 118.65; 3 x 4.24 = 12.72; 4.50 x 1.24 = 5.58.
    assert gross_total(parse_invoice(payload)) == Decimal("136.95")
    assert (body["isPaid"], body["paymentMethod"]) == (True, [5])
    assert "notes" not in str(body)
    assert "998391" not in str(body)


def test_no_issue_date_is_today_and_no_customer_has_no_customer_id() -> None:
    payload = doc(customer=None, cash_sale=True)
    del payload["issue_date"]
    body = body_for(payload, customer_id=None)
    assert body["invoiceDate"] == "2026-07-02"
    assert "customerId" not in body


def test_partial_payment_leaves_the_invoice_unpaid() -> None:
    assert "isPaid" not in body_for(doc(amount_paid="123.98"))
    assert body_for(doc(amount_paid="123.99"))["isPaid"] is True  # a cent of rounding
    assert body_for(doc(amount_paid=500))["isPaid"] is True
    assert "isPaid" not in body_for(doc(amount_paid=0))
    assert not is_paid(parse_invoice(doc()))


def test_payment_method_option_and_no_methods() -> None:
    options = BillitOptions(invoice_type_id=1, payment_method_id="card")
    assert body_for(doc(amount_paid=124), options=options)["paymentMethod"] == ["card"]
    bare = AccountFacts(
        vats=FACTS.vats, payment_methods=(), biller_id=None, country="GR", refusal=None
    )
    body = body_for(doc(amount_paid=124), facts=bare)
    assert body["isPaid"] is True
    assert "paymentMethod" not in body
    assert "billerId" not in body


def test_provider_options_are_merged_last() -> None:
    body = body_for(doc(provider_options={"invoiceTypeId": 7, "sendMail": True, "x": 1}))
    assert (body["invoiceTypeId"], body["sendMail"], body["x"]) == (7, True, 1)


def test_invoice_types_by_canonical_type() -> None:
    options = BillitOptions(invoice_type_id=1, invoice_type_ids={"credit_note": 2})
    assert body_for(doc(type="credit_note"), options=options)["invoiceTypeId"] == 2
    refusal = refuse_unsupported(parse_invoice(doc(type="quotation")), options)
    assert refusal is not None
    assert refusal.reason is Reason.INVALID_PAYLOAD
    assert "'quotation'" in refusal.error


@pytest.mark.parametrize(
    ("changes", "options", "words"),
    [
        ({"currency": "USD"}, OPTIONS, "bills in EUR"),
        ({"discount": 5}, OPTIONS, "invoice-level discount"),
        ({}, BillitOptions(), "no Billit invoiceTypeId"),
    ],
)
def test_refused_before_sending(
    changes: dict[str, Any], options: BillitOptions, words: str
) -> None:
    refusal = refuse_unsupported(parse_invoice(doc(**changes)), options)
    assert isinstance(refusal, DeadLetter)
    assert refusal.reason is Reason.INVALID_PAYLOAD
    assert words in refusal.error


def test_accepted_currencies() -> None:
    for currency in (None, "EUR"):
        assert refuse_unsupported(parse_invoice(doc(currency=currency)), OPTIONS) is None
    inr = BillitOptions(invoice_type_id=1, currency="INR")
    assert refuse_unsupported(parse_invoice(doc(currency="INR")), inr) is None


def test_a_rate_without_a_vat_is_rejected_naming_the_known_ones() -> None:
    payload = doc(charges=[{"name": "Fee", "amount": 1, "tax_rate": 17}])
    refusal = refuse_unmapped(parse_invoice(payload), FACTS)
    assert isinstance(refusal, DeadLetter)
    assert refusal.reason is Reason.REJECTED
    assert refusal.error == (
        "Billit has no vat for tax rate 17% in this account (its vats: 0%, 6%, 13%, 24%)"
    )
    assert refuse_unmapped(parse_invoice(doc()), FACTS) is None


def test_net_price() -> None:
    assert net_price(Decimal(124), Decimal(24), includes_tax=True) == Decimal(100)
    assert net_price(Decimal(100), Decimal(24), includes_tax=True) == Decimal("80.6452")
    assert net_price(Decimal(100), Decimal(24), includes_tax=False) == Decimal(100)
    assert net_price(Decimal(100), Decimal(0), includes_tax=True) == Decimal(100)


# --- tags -----------------------------------------------------------------------------------


def test_tags_carry_short_keys_and_hash_long_ones() -> None:
    assert tag_for("order-77") == "invoice-sync:order-77"
    assert key_of_tag("invoice-sync:order-77") == "order-77"
    long_key = "k" * 65
    hashed = tag_for(long_key)
    assert hashed.startswith("invoice-sync:sha256:")
    assert len(hashed) == len("invoice-sync:sha256:") + 40
    assert tag_for(long_key) == hashed
    assert tag_for("with space") != tag_for("with-space")
    assert tag_for("sha256:abc").startswith("invoice-sync:sha256:")
    assert key_of_tag(hashed) is None
    assert key_of_tag("someone-else") is None


# --- customers ------------------------------------------------------------------------------


def customer(**fields: Any) -> Customer:
    return Customer.model_validate({"name": "Acme", **fields})


def test_search_keys_in_order_and_normalised() -> None:
    full = customer(tax_id="EL 123.456.789", email=" ap@acme.example", phone="+30 210-1234567")
    assert search_keys(full) == [
        ("tax_id", "123456789"),
        ("email", "ap@acme.example"),
        ("phone", "2101234567"),
    ]
    assert search_keys(customer()) == []


@pytest.mark.parametrize(
    ("found", "kind", "value", "expected"),
    [
        ({"vatId": "EL123456789"}, "tax_id", "123456789", True),
        ({"vatId": "1234567890"}, "tax_id", "123456789", False),
        ({"vatId": None}, "tax_id", "123456789", False),
        ({"email": "AP@Acme.Example "}, "email", "ap@acme.example", True),
        ({"email": "xap@acme.example"}, "email", "ap@acme.example", False),
        ({"phone": "210 1234567"}, "phone", "2101234567", True),
        ({"mobile": "+306912345678"}, "phone", "6912345678", True),
        ({"phone": "2101234568"}, "phone", "2101234567", False),
    ],
)
def test_search_results_must_match_exactly(
    found: dict[str, Any], kind: str, value: str, expected: bool
) -> None:
    assert matches(found, kind, value) is expected


def test_normal_vat() -> None:
    assert normal_vat("EL 123 456 789") == normal_vat("123456789") == "123456789"
    assert normal_vat("de811111111") == "811111111"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 4),
        ({"tax_id": "123"}, 1),
        ({"tax_id": "123", "address": {"country": "GR"}}, 1),
        ({"tax_id": "123", "address": {"country": "FR"}}, 2),
        ({"tax_id": "123", "address": {"country": "US"}}, 3),
        ({"address": {"country": "FR"}}, 4),
    ],
)
def test_customer_type(fields: dict[str, Any], expected: int) -> None:
    assert customer_type(customer(**fields), "GR") == expected


def test_customer_body() -> None:
    full = customer(
        tax_id="FR12345678901",
        email="a@b.fr",
        phone="+33 1 23 45 67 89",
        address={"street": "1 rue X", "city": "Paris", "postal_code": "75001", "country": "FR"},
    )
    assert customer_body(full, "GR") == {
        "isCompany": True,
        "company": "Acme",
        "customerType": 2,
        "country": "FR",
        "vatId": "FR12345678901",
        "streetAddress": "1 rue X",
        "postalCode": "75001",
        "city": "Paris",
        "phone": "+33 1 23 45 67 89",
        "email": "a@b.fr",
    }
    mobile = customer_body(customer(phone="+30 691 234 5678"), "GR")
    assert mobile == {
        "isCompany": False,
        "company": "Acme",
        "customerType": 4,
        "country": "GR",
        "mobile": "+30 691 234 5678",
    }


def test_cache_key_for_customers_without_identifiers() -> None:
    one = customer(address={"city": "Athens", "street": "Ermou 1"})
    assert cache_key(one, "GR") == "name:acme|gr|athens|ermou 1"
    assert cache_key(customer(), "GR") != cache_key(one, "GR")


# --- /account -------------------------------------------------------------------------------


def test_account_facts() -> None:
    facts = read_account(ACCOUNT_BODY, today=TODAY)
    assert facts.vats == {Decimal(24): 11, Decimal(13): 12, Decimal(6): 13, Decimal(0): 14}
    assert facts.vat_id(Decimal("24.00")) == 11
    assert facts.payment_methods == (5, 6)
    assert (facts.biller_id, facts.country, facts.refusal) == (3, "GR", None)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"isBlocked": True}, "the Billit account is blocked"),
        ({"isSuspended": True}, "the Billit account is suspended"),
        ({"subscription": {"status": "expired"}}, "the Billit subscription has expired"),
        ({"subscription": {"isActive": False}}, "the Billit subscription has expired"),
        (
            {"subscription": {"endsAt": "2026-07-01T00:00:00Z"}},
            "the Billit subscription has expired",
        ),
        ({"subscription": {"endsAt": "2026-07-02"}}, None),
        ({"subscription": {"endsAt": "soon"}}, None),
    ],
)
def test_account_refusals(change: dict[str, Any], refusal: str | None) -> None:
    body = copy.deepcopy(ACCOUNT_BODY)
    relations = body["data"]["relations"]
    for key, value in change.items():
        (relations if key == "subscription" else body["data"])[key] = value
    assert read_account(body, today=TODAY).refusal == refusal


def test_account_without_data_or_country() -> None:
    with pytest.raises(ValueError, match="data"):
        read_account({"msg": "hello"}, today=TODAY)
    facts = read_account({"data": {}}, today=TODAY)
    assert (facts.vats, facts.payment_methods, facts.country) == ({}, (), "GR")


class Fetcher:
    """A scripted /account fetch: waits for ``gate``, then answers or fails."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self) -> AccountFacts:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("account fetch failed")
        return FACTS


async def test_account_cache_shares_one_fetch_and_its_failure() -> None:
    fetch, now = Fetcher(), [0.0]
    cache = AccountCache(fetch, ttl=60, clock=lambda: now[0])
    fetch.fail = True
    waiting = [asyncio.ensure_future(cache.facts()) for _ in range(3)]
    await asyncio.sleep(0)
    fetch.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert fetch.calls == 1  # one failure for all three, not one timeout each in turn
    fetch.fail = False
    together = await asyncio.gather(*(cache.facts() for _ in range(3)))
    assert together == [(FACTS, True)] * 3
    assert await cache.facts() == (FACTS, False)
    assert (fetch.calls, cache.fetches) == (2, 2)
    now[0] = 61.0
    assert await cache.facts() == (FACTS, True)
    cache.invalidate(FACTS)
    assert await cache.facts() == (FACTS, True)
    assert fetch.calls == 4


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    fetch = Fetcher()
    cache = AccountCache(fetch, ttl=60)
    first = asyncio.ensure_future(cache.facts())
    second = asyncio.ensure_future(cache.facts())
    await asyncio.sleep(0)
    first.cancel()
    fetch.gate.set()
    assert await second == (FACTS, True)
    assert first.cancelled()
    assert fetch.calls == 1


# --- options and registration ---------------------------------------------------------------


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
