"""The off-chain workers that move the market along: the relayer (order log -> chain), the
scheduler (gate closure -> matcher -> `submit_clearing`), the settler (readings in ->
`settle_interval`), the indexer (finalized events -> index.db) and the meter-reading ingest.
They use the chain client (chain/), the stores (store/) and the engines (matcher/,
meter_bridge/); the `wattchain` command (wattchain/) starts them."""
