"""Refrens: the adapter (`adapter`), app-secret login (`auth`), number lookups (`lookup`),
request mapping, answers and account options."""
