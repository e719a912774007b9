"""WattChain's off-chain side: the one wrapper around the node (chain), the stores (store,
orderlog), the workers that move the market along (relayer, scheduler, settlement, indexer,
ingest), the clearing house's report, and the `wattchain` command line (cli, demo)."""
