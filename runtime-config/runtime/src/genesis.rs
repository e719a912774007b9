//! Genesis presets: `development` (one validator, sudo, short market intervals) and
//! `local_testnet` (Alice and Bob validating under Aura + GRANDPA, no sudo).
//!
//! Roles on both, each its own key: Alice is the market operator, One the clearing submitter
//! and Ferdie the distributor. Participants and meters are registered by the operator at run time.

use crate::{
	AccountId, BalancesConfig, EnergyTradingConfig, RuntimeGenesisConfig, SudoConfig, UNITS_PER_BRL,
};
use alloc::{vec, vec::Vec};
use frame_support::build_struct_json_patch;
use pallet_energy_trading::MarketParams;
use serde_json::Value;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_consensus_grandpa::AuthorityId as GrandpaId;
use sp_genesis_builder::{self, PresetId};
use sp_keyring::{Ed25519Keyring, Sr25519Keyring};

/// Every well-known dev account starts with ten million BRL.
const ENDOWMENT: u128 = 10_000_000 * UNITS_PER_BRL;

fn market_genesis(
	authorities: Vec<(AuraId, GrandpaId)>,
	sudo: Option<AccountId>,
	params: MarketParams,
) -> Value {
	let endowed: Vec<(AccountId, u128)> =
		Sr25519Keyring::iter().map(|k| (k.to_account_id(), ENDOWMENT)).collect();
	build_struct_json_patch!(RuntimeGenesisConfig {
		balances: BalancesConfig { balances: endowed },
		aura: pallet_aura::GenesisConfig {
			authorities: authorities.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
		},
		grandpa: pallet_grandpa::GenesisConfig {
			authorities: authorities.iter().map(|x| (x.1.clone(), 1)).collect::<Vec<_>>(),
		},
		sudo: SudoConfig { key: sudo },
		energy_trading: EnergyTradingConfig {
			operator: Some(Sr25519Keyring::Alice.to_account_id()),
			distributor: Some(Sr25519Keyring::Ferdie.to_account_id()),
			params,
			// A key of its own: the hot key that signs clearings every interval is not the one
			// that can register participants and accredit meters.
			clearing_submitters: vec![Sr25519Keyring::One.to_account_id()],
		},
	})
}

fn authority(aura: Sr25519Keyring, grandpa: Ed25519Keyring) -> (AuraId, GrandpaId) {
	(aura.public().into(), grandpa.public().into())
}

/// One validator; twenty-second market intervals so a demo shows several in a few minutes.
pub fn development() -> Value {
	market_genesis(
		vec![authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice)],
		Some(Sr25519Keyring::Alice.to_account_id()),
		MarketParams {
			interval_ms: 20_000,
			gate_closure_ms: 10_000,
			reading_window_ms: 20_000,
			..MarketParams::default()
		},
	)
}

/// Two validators and real fifteen-minute intervals; no sudo.
pub fn local_testnet() -> Value {
	market_genesis(
		vec![
			authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
			authority(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
		],
		None,
		MarketParams::default(),
	)
}

pub fn preset(id: &PresetId) -> Option<Vec<u8>> {
	let patch = match id.as_ref() {
		sp_genesis_builder::DEV_RUNTIME_PRESET => development(),
		sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => local_testnet(),
		_ => return None,
	};
	Some(
		serde_json::to_string(&patch)
			.expect("serialization to json is expected to work. qed.")
			.into_bytes(),
	)
}

pub fn preset_names() -> Vec<PresetId> {
	vec![
		PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
		PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
	]
}
