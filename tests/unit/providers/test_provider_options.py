"""provider_options may add fields a provider takes, never touch one the adapter writes: a
numberless invoice sent while its retry counts as safe creates a second tax document."""

from __future__ import annotations

from typing import Any

import pytest

from tests import factories
from worker.invoice import parse_invoice
from worker.outcome import DeadLetter, Reason
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billclap.adapter import BillClap
from worker.providers.billclap.mapping import build_request as billclap_request
from worker.providers.billclap.mapping import refuse_unsupported as billclap_refusal
from worker.providers.billit.mapping import refuse_unsupported as billit_refusal
from worker.providers.billit.options import BillitOptions
from worker.providers.refrens.adapter import Refrens
from worker.providers.refrens.mapping import build_request as refrens_request
from worker.providers.refrens.mapping import refuse_unsupported as refrens_refusal
from worker.providers.refrens.options import RefrensOptions

TIMEOUTS = HttpTimeouts(connect=1, total=1)
INDIAN_CUSTOMER = {
    "name": "Acme Traders",
    "phone": "+919876543210",
    "address": {"city": "Bengaluru", "state": "Karnataka", "country": "IN"},
}


def billclap_doc(options: dict[str, Any], number: str | None = "WEB-1") -> dict[str, Any]:
    return factories.invoice(number, provider_options=options)


def refrens_doc(options: dict[str, Any], number: str | None = "WEB-1") -> dict[str, Any]:
    return factories.invoice(number, customer=INDIAN_CUSTOMER, provider_options=options)


def billit_doc(options: dict[str, Any]) -> dict[str, Any]:
    return factories.invoice("WEB-1", currency="EUR", provider_options=options)


def refused_as_invalid(refusal: DeadLetter | None, field: str) -> bool:
    return (
        isinstance(refusal, DeadLetter)
        and refusal.reason is Reason.INVALID_PAYLOAD
        and refusal.error.startswith(f"provider_options.{field}:")
    )


# --- BillClap ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"invoice_number": None}, "invoice_number"),
        ({"invoice_number": "OTHER-7"}, "invoice_number"),
        ({"product_details": []}, "product_details"),
        ({"additional_charges": [{"chargeName": "x", "chargeValue": 9}]}, "additional_charges"),
        ({"receive_amount": 0}, "receive_amount"),
        ({"additional_discount": 5}, "additional_discount"),
        ({"due_date": "2030-01-01"}, "due_date"),
        ({"type": "QUOTATION"}, "type"),
        ({"party_detail": None}, "party_detail"),
        ({"party_detail": {"party_id": 42}}, "party_detail.party_id"),
        ({"party_detail": {"party_name": "Someone Else"}}, "party_detail.party_name"),
        ({"party_detail": {"cash_sale": True}}, "party_detail.cash_sale"),
        ({"Invoice_Number": None}, "Invoice_Number"),
        ({"party_detail": {"Party_ID": 42}}, "party_detail.Party_ID"),
    ],
)
def test_billclap_refuses_options_naming_a_field_it_writes(
    options: dict[str, Any], field: str
) -> None:
    assert refused_as_invalid(billclap_refusal(parse_invoice(billclap_doc(options))), field)


def test_billclap_takes_fields_it_does_not_write() -> None:
    options = {"bank_id": 3, "autoRoundOffChecked": True, "party_detail": {"state": "Kerala"}}
    invoice = parse_invoice(billclap_doc(options))
    assert billclap_refusal(invoice) is None
    body = billclap_request(invoice)
    assert body["bank_id"] == 3
    assert body["autoRoundOffChecked"] is True
    assert body["party_detail"]["state"] == "Kerala"  # the customer had none: added
    assert body["invoice_number"] == "WEB-1"


def test_billclap_retry_is_safe_only_when_the_sent_body_has_a_number() -> None:
    adapter = BillClap(Credentials(base_url="http://x", token="t"), TIMEOUTS)
    assert adapter.retry_is_safe(parse_invoice(billclap_doc({})))
    assert not adapter.retry_is_safe(parse_invoice(billclap_doc({}, number=None)))
    # The canonical invoice has a number; the request would not have.
    assert not adapter.retry_is_safe(parse_invoice(billclap_doc({"invoice_number": None})))


# --- Refrens ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"invoiceNumber": None}, "invoiceNumber"),
        ({"invoiceNumber": "OTHER-7"}, "invoiceNumber"),
        ({"items": []}, "items"),
        ({"invoiceDate": "2020-01-01"}, "invoiceDate"),
        ({"dueDate": "2030-01-01"}, "dueDate"),
        ({"currency": "USD"}, "currency"),
        ({"billedTo": None}, "billedTo"),
        ({"billedTo": {"name": "Someone Else"}}, "billedTo.name"),
        ({"billedTo": {"gstState": 7}}, "billedTo.gstState"),
        ({"billedTo": {"phone": "+911234567890"}}, "billedTo.phone"),
        ({"invoiceType": None}, "invoiceType"),
        # Another spelling of an owned key: a provider that reads keys without case would take
        # it for the field the adapter wrote.
        ({"InvoiceNumber": "OTHER-7"}, "InvoiceNumber"),
        ({"Items": []}, "Items"),
        ({"CURRENCY": "USD"}, "CURRENCY"),
        ({"billedTo": {"Name": "Someone Else"}}, "billedTo.Name"),
    ],
)
def test_refrens_refuses_options_naming_a_field_it_writes(
    options: dict[str, Any], field: str
) -> None:
    assert refused_as_invalid(refrens_refusal(parse_invoice(refrens_doc(options))), field)


def test_refrens_takes_fields_it_does_not_write() -> None:
    options = {
        "email": {"to": {"name": "AP", "email": "ap@acme.example"}},
        "invoiceType": "BOS",
        "billedTo": {"panNumber": "ABCDE1234F"},
    }
    invoice = parse_invoice(refrens_doc(options))
    assert refrens_refusal(invoice) is None
    body = refrens_request(invoice)
    assert body["email"] == options["email"]
    assert body["invoiceType"] == "BOS"
    assert body["billedTo"]["panNumber"] == "ABCDE1234F"
    assert body["invoiceNumber"] == "WEB-1"


def test_refrens_retry_is_safe_only_when_the_sent_body_has_a_number() -> None:
    options = RefrensOptions.model_validate({"url_key": "acme"})
    adapter = Refrens(Credentials(base_url="http://x", token="t"), options, TIMEOUTS)
    assert adapter.retry_is_safe(parse_invoice(refrens_doc({})))
    assert not adapter.retry_is_safe(parse_invoice(refrens_doc({}, number=None)))
    assert not adapter.retry_is_safe(parse_invoice(refrens_doc({"invoiceNumber": None})))


# --- Billit -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"tags": ["web-shop"]}, "tags"),
        ({"tags": None}, "tags"),
        ({"customerId": 5}, "customerId"),
        ({"billerId": 5}, "billerId"),
        ({"products": []}, "products"),
        ({"invoiceDate": "2020-01-01"}, "invoiceDate"),
        ({"dateExpires": "2030-01-01"}, "dateExpires"),
        ({"isPaid": True}, "isPaid"),
        ({"paymentMethod": [3]}, "paymentMethod"),
        ({"invoiceTypeId": None}, "invoiceTypeId"),
        ({"invoiceTypeId": True}, "invoiceTypeId"),
        ({"sendMail": "yes"}, "sendMail"),
    ],
)
def test_billit_refuses_options_naming_a_field_it_writes(
    options: dict[str, Any], field: str
) -> None:
    refusal = billit_refusal(parse_invoice(billit_doc(options)), BillitOptions(invoice_type_id=1))
    assert refused_as_invalid(refusal, field)


@pytest.mark.parametrize(
    "options",
    [{"invoiceTypeId": 3}, {"invoiceTypeId": "3"}, {"sendMail": True}, {"mydataInvoiceType": "1"}],
)
def test_billit_takes_defaults_and_fields_it_does_not_write(options: dict[str, Any]) -> None:
    refusal = billit_refusal(parse_invoice(billit_doc(options)), BillitOptions(invoice_type_id=1))
    assert refusal is None
