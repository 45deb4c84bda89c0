"""``invoice-sync demo``: the real worker on an embedded PostgreSQL against local sandboxes.

``plan`` decides the run (accounts, sample invoices, the dead letters to plant) from the
sandbox profiles, ``samples`` writes the invoices, ``stack`` starts and stops what the run needs,
``config_file`` writes the config it runs with, ``progress`` and ``summary`` show it, and
``command`` ties the steps together.
"""
