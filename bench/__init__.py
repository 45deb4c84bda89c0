"""The benchmark harness for invoice-sync: ``python -m bench``; see bench/README.md."""
