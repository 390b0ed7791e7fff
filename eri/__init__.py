"""ERI platform: settings, logging, CLI, database, crypto and ledger that the rooms stand on."""
