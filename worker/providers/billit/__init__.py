"""Billit: the adapter (`adapter`), its HTTP client, account facts, customers, request
mapping, answers, options, and the tag scan that settles unknown outcomes (`index`,
`reconcile`)."""
