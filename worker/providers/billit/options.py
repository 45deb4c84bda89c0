"""Billit's keys in ``[accounts.NAME]`` beyond the common ones (``provider``, ``base_url``, ...).

``base_url`` may be given with or without the API version: ``https://api.billit.io`` and
``https://api.billit.io/v1`` (the form Billit's documents write) both work, because the adapter
strips a trailing ``/v1`` and adds it to every path itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from worker.config import Duration

BillitId = int | str


class BillitOptions(BaseModel):
    """Account options for Billit; unknown keys are refused so typos fail at start-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    invoice_type_id: BillitId | None = None
    """The default ``invoiceTypeId`` (the document type and its numbering series) for canonical
    ``type = "invoice"``. An invoice's ``provider_options.invoiceTypeId`` wins over it."""
    invoice_type_ids: dict[str, BillitId] = Field(default_factory=dict)
    """``invoiceTypeId`` per other canonical ``type`` (e.g. ``{credit_note = 7}``); a type with
    no id here or in the invoice's ``provider_options`` is refused before sending."""
    payment_method_id: BillitId | None = None
    """The ``paymentMethod`` for paid invoices; default: the first method ``/account`` lists."""
    measurement_unit: BillitId | None = None
    """``measurementUnit`` for every product row; omitted (Billit's default) when unset."""
    send_mail: bool = False
    """``sendMail``: False by default so that syncing never e-mails customers by surprise."""
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    """The account's currency. Billit's create body has no currency field, so an invoice in
    another currency is refused rather than issued in this one."""
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    """The business's country, for a customer's ``customerType`` (domestic, EU, outside the
    EU); default: the biller's country from ``/account``, else GR (Billit is Greek)."""
    account_refresh: Duration = 3600.0
    """How long the ``/account`` answer (vat ids, payment methods, biller) is trusted."""
    reconcile_pages: int = Field(default=8, ge=1, le=40)
    """After an unknown outcome: at most this many pages of the newest invoices are scanned
    for our tag (the scan stops sooner once it reaches invoices older than the first attempt;
    reaching this bound first parks the row as ``ambiguous``)."""
    reconcile_per_page: int = Field(default=250, ge=1, le=250)
    """Invoices per page in that scan (Billit allows at most 250)."""
    reconcile_details: int | None = Field(default=None, ge=1, le=100_000)
    """At most this many candidate invoices are read one by one (for their tags) by one scan.
    Default: as many as the account's ``rate_limit`` allows before the attempt must send (its
    lease less the request timeout); invoices whose tags are known cost nothing."""
