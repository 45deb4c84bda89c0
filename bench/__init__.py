"""The benchmark harness for invoice-sync (issue 7): ``python -m bench``; see bench/README.md."""
