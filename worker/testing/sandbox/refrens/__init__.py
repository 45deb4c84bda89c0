"""The Refrens sandbox: its app (`app`), books, errors, listing, request schema and tokens."""
