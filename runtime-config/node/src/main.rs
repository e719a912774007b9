//! WattChain node: `wattchain-node --dev --tmp` for one machine, `--chain local` for a network.

mod chain_spec;
mod cli;
mod command;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
	command::run()
}
