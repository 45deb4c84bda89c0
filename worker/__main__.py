"""`python -m worker` is the same as the `invoice-sync` console script."""

from worker.cli.main import main

raise SystemExit(main())
