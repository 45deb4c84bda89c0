"""The types of the command line's values: text (every argument without a type of its own),
a file's name, a filter's value. Each refuses what would otherwise fail later and worse, with
argparse's one line naming the argument (exit 2).

Imported while the parser is built, so it imports ``argparse`` alone.
"""

from __future__ import annotations

import argparse

UNDECODABLE = (0xD800, 0xDFFF)
"""The lone surrogates Python gives a command line's bytes that are not UTF-8
(``surrogateescape``): text no database, provider or terminal can take."""


def text_argument(value: str) -> str:
    """Every argument's type (``Parser`` registers it for those without one): ``value`` as it
    is, unless it holds bytes that are not UTF-8, which argparse then reports as one line
    naming the argument, never a database error later."""
    for position, char in enumerate(value):
        if UNDECODABLE[0] <= ord(char) <= UNDECODABLE[1]:
            raise argparse.ArgumentTypeError(f"not UTF-8 text (character {position + 1})")
    return value


def path_argument(value: str) -> str:
    """A file's name, as it is: unlike other text, a name need not be UTF-8 (the file system
    takes any bytes, and ``open`` gives them back as they were)."""
    return value


def filter_argument(value: str) -> str:
    """A filter's value: text, and not empty (an empty filter would select everything)."""
    if not text_argument(value).strip():
        raise argparse.ArgumentTypeError("empty; leave the filter out to select everything")
    return value
