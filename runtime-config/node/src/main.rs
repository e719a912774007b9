//! WattChain node: `wattchain-node --dev --tmp` for one machine, `--chain local` for a network.

// sc-cli and sc-service fix the error types (`sc_cli::Error`, `sc_service::Error`, both large)
// that the node's functions and the runner's closures must return; boxing them would only
// fight those APIs, so clippy's size lint does not fit this crate.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod cli;
mod command;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
	command::run()
}
