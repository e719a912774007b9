//! The chains this node knows by name; anything else is read as a chain-spec JSON file.

use sc_service::ChainType;
use serde_json::json;
use wattchain_runtime::WASM_BINARY;

pub type ChainSpec = sc_service::GenericChainSpec;

fn properties() -> sc_service::Properties {
	// Balances are thousandths of a centavo tick: 1 BRL = 100_000 units.
	let props = json!({ "tokenSymbol": "BRL", "tokenDecimals": 5, "ss58Format": 42 });
	props.as_object().cloned().unwrap_or_default()
}

fn wasm() -> Result<&'static [u8], String> {
	WASM_BINARY.ok_or_else(|| "the runtime wasm was not built (SKIP_WASM_BUILD?)".to_string())
}

pub fn development() -> Result<ChainSpec, String> {
	Ok(ChainSpec::builder(wasm()?, None)
		.with_name("WattChain Development")
		.with_id("wattchain_dev")
		.with_chain_type(ChainType::Development)
		.with_genesis_config_preset_name(sp_genesis_builder::DEV_RUNTIME_PRESET)
		.with_properties(properties())
		.build())
}

pub fn local_testnet() -> Result<ChainSpec, String> {
	Ok(ChainSpec::builder(wasm()?, None)
		.with_name("WattChain Local Testnet")
		.with_id("wattchain_local")
		.with_chain_type(ChainType::Local)
		.with_genesis_config_preset_name(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET)
		.with_properties(properties())
		.build())
}
