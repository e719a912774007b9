//! Genesis presets: `development` (one validator, Alice's sudo key, short market intervals) and
//! `local_testnet` (Alice and Bob validating under Aura + GRANDPA, governed by a council).
//!
//! Roles on both, each its own key: Alice is the market operator, One the clearing submitter
//! and Ferdie the distributor. Participants are registered by the operator and meters
//! accredited by the distributor at run time.
//!
//! Governance (`OperatorOrigin` = Root: operator changes, runtime upgrades, recovering a lost
//! operator key): on `local_testnet` the sudo key is the multisig account of a council of the
//! market operator (Alice), the regulator (Charlie) and the distributor (Ferdie), two of three
//! to act (`council()`); no single key can.

use crate::{
	AccountId, BalancesConfig, EnergyTradingConfig, Runtime, RuntimeGenesisConfig, SudoConfig,
	UNITS_PER_BRL,
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

/// The governance council's members, sorted as the multisig pallet sorts signatories, and how
/// many of them must approve.
pub fn council() -> (Vec<AccountId>, u16) {
	let mut members: Vec<AccountId> =
		[Sr25519Keyring::Alice, Sr25519Keyring::Charlie, Sr25519Keyring::Ferdie]
			.iter()
			.map(|k| k.to_account_id())
			.collect();
	members.sort();
	(members, 2)
}

/// Two validators and real fifteen-minute intervals; the council's multisig holds the sudo key.
pub fn local_testnet() -> Value {
	let (members, threshold) = council();
	let governance = pallet_multisig::Pallet::<Runtime>::multi_account_id(&members, threshold);
	market_genesis(
		vec![
			authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
			authority(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
		],
		Some(governance),
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
