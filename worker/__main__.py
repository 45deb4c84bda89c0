"""`python -m worker` is the same as the `invoice-sync` console script."""

from worker.cli import main

raise SystemExit(main())
