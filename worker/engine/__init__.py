"""`invoice-sync run`: the daemon and everything it runs: the claim loop, attempts, the
outcome flusher, account holds and rate limits, background chores, metrics and health."""
