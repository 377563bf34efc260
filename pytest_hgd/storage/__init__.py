"""What outlives a run: the reply cache and the ledger, each written atomically."""
