"""Indian GST state codes: the two digits that open a GSTIN and name a place of supply.

Refrens wants ``billedTo.gstState`` (e.g. "29" for Karnataka) for every Indian customer. The
canonical invoice carries a GSTIN (``customer.tax_id``), whose first two digits are that code,
and a state name; this module turns either into the code. Codes are the GST Council's list
(the 2020 merger of Dadra and Nagar Haveli with Daman and Diu made 26 the code for both and
retired 25; Andhra Pradesh moved from 28 to 37 in 2017), kept as a literal.
"""

from __future__ import annotations

import re

STATE_CODES: dict[str, str] = {
    "01": "Jammu and Kashmir",
    "02": "Himachal Pradesh",
    "03": "Punjab",
    "04": "Chandigarh",
    "05": "Uttarakhand",
    "06": "Haryana",
    "07": "Delhi",
    "08": "Rajasthan",
    "09": "Uttar Pradesh",
    "10": "Bihar",
    "11": "Sikkim",
    "12": "Arunachal Pradesh",
    "13": "Nagaland",
    "14": "Manipur",
    "15": "Mizoram",
    "16": "Tripura",
    "17": "Meghalaya",
    "18": "Assam",
    "19": "West Bengal",
    "20": "Jharkhand",
    "21": "Odisha",
    "22": "Chhattisgarh",
    "23": "Madhya Pradesh",
    "24": "Gujarat",
    "25": "Daman and Diu",
    "26": "Dadra and Nagar Haveli and Daman and Diu",
    "27": "Maharashtra",
    "28": "Andhra Pradesh (before 2017)",
    "29": "Karnataka",
    "30": "Goa",
    "31": "Lakshadweep",
    "32": "Kerala",
    "33": "Tamil Nadu",
    "34": "Puducherry",
    "35": "Andaman and Nicobar Islands",
    "36": "Telangana",
    "37": "Andhra Pradesh",
    "38": "Ladakh",
    "97": "Other Territory",
}

# Names as producers write them, normalised (see _key), for the current code of each state.
_ALIASES = {
    "orissa": "21",
    "pondicherry": "34",
    "uttaranchal": "05",
    "nctofdelhi": "07",
    "newdelhi": "07",
    "andamanandnicobar": "35",
    "dadraandnagarhaveli": "26",
    "damananddiu": "26",
    "jammuandkashmirut": "01",
}
GSTIN = re.compile(r"^(\d{2})[A-Z]{5}\d{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.casefold().replace("&", "and"))


_BY_NAME = {
    **{_key(name): code for code, name in STATE_CODES.items() if code not in {"25", "28"}},
    **_ALIASES,
}


def code_from_gstin(gstin: str | None) -> str | None:
    """The state code a well-formed GSTIN starts with, or None."""
    if gstin is None:
        return None
    match = GSTIN.match(gstin.strip().upper())
    if match is None or match.group(1) not in STATE_CODES:
        return None
    return match.group(1)


def code_from_name(name: str | None) -> str | None:
    """The current state code for a state's name ("Karnataka", "Tamil Nadu", "Orissa"), or
    None when the name is not an Indian state or union territory."""
    if not name:
        return None
    return _BY_NAME.get(_key(name))
