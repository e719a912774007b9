"""WattChain's HTTP API (FastAPI): order entry with owner-signed orders, order books,
clearings, positions, settlements, balances, meters and readings, a live event stream and a
small web page. `api.client` places an order in three lines."""
