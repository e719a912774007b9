//! Weights of the energy-trading pallet's calls: the `WeightInfo` trait, and default figures for
//! mocks and runtimes that have not benchmarked the pallet yet.
//!
//! WattChain's runtime does not use these defaults: it uses the figures `make weights` measured
//! from `benchmarking.rs` (`runtime/src/weights/pallet_energy_trading.rs`). The defaults are set
//! by hand from each call's storage reads and writes, with the same shape (which calls scale
//! with which argument).

#![allow(unused_parens, unused_imports)]

use core::marker::PhantomData;
use frame_support::{
	traits::Get,
	weights::{constants::RocksDbWeight, Weight},
};

pub trait WeightInfo {
	fn register_participant() -> Weight;
	fn accredit_meter() -> Weight;
	fn revoke_meter() -> Weight;
	fn set_line() -> Weight;
	fn set_distributor() -> Weight;
	fn set_clearing_submitter() -> Weight;
	fn set_market_params() -> Weight;
	fn set_market_operator() -> Weight;
	fn place_order() -> Weight;
	fn place_orders_relayed(t: u32, e: u32) -> Weight;
	fn cancel_order() -> Weight;
	fn cancel_orders_relayed(n: u32) -> Weight;
	fn submit_clearing(o: u32, p: u32, e: u32) -> Weight;
	fn register_clearing() -> Weight;
	fn submit_clearing_page(m: u32, b: u32) -> Weight;
	fn submit_reading() -> Weight;
	fn transfer_energy() -> Weight;
	fn settle_interval(p: u32) -> Weight;
	fn void_interval(o: u32, n: u32) -> Weight;
	fn prune_orders(n: u32) -> Weight;
	fn prune_tail() -> Weight;
}

/// Weights for the runtime, priced with the runtime's database weights.
pub struct SubstrateWeight<T>(PhantomData<T>);

// One sr25519 verification costs about 50 µs in wasm; a storage item read or written is
// priced by the database weight.
const SIG_VERIFY_PS: u64 = 60_000_000;
const BASE_PS: u64 = 15_000_000;

macro_rules! weights {
	($db:ty) => {
		fn register_participant() -> Weight {
			Weight::from_parts(BASE_PS, 1_600).saturating_add(<$db>::get().reads_writes(2, 1))
		}
		fn accredit_meter() -> Weight {
			Weight::from_parts(BASE_PS, 3_600).saturating_add(<$db>::get().reads_writes(2, 1))
		}
		fn revoke_meter() -> Weight {
			Weight::from_parts(BASE_PS, 3_600).saturating_add(<$db>::get().reads_writes(2, 1))
		}
		fn set_line() -> Weight {
			Weight::from_parts(BASE_PS, 1_500).saturating_add(<$db>::get().reads_writes(1, 1))
		}
		fn set_distributor() -> Weight {
			Weight::from_parts(BASE_PS, 1_500).saturating_add(<$db>::get().reads_writes(1, 1))
		}
		fn set_clearing_submitter() -> Weight {
			Weight::from_parts(BASE_PS, 1_500).saturating_add(<$db>::get().reads_writes(1, 1))
		}
		fn set_market_params() -> Weight {
			Weight::from_parts(BASE_PS, 1_500).saturating_add(<$db>::get().reads_writes(3, 1))
		}
		fn set_market_operator() -> Weight {
			Weight::from_parts(BASE_PS, 1_500).saturating_add(<$db>::get().reads_writes(1, 1))
		}
		fn place_order() -> Weight {
			Weight::from_parts(4 * BASE_PS, 40_000).saturating_add(<$db>::get().reads_writes(7, 6))
		}
		fn place_orders_relayed(t: u32, e: u32) -> Weight {
			Weight::from_parts(BASE_PS, 3_000)
				.saturating_add(<$db>::get().reads_writes(1, 0))
				.saturating_add(
					Weight::from_parts(4 * BASE_PS + SIG_VERIFY_PS, 40_000)
						.saturating_add(<$db>::get().reads_writes(7, 6))
						.saturating_mul(t as u64),
				)
				.saturating_add(
					Weight::from_parts(2 * BASE_PS + SIG_VERIFY_PS, 10_000)
						.saturating_add(<$db>::get().reads_writes(1, 2))
						.saturating_mul(e as u64),
				)
		}
		fn cancel_order() -> Weight {
			Weight::from_parts(3 * BASE_PS, 8_000).saturating_add(<$db>::get().reads_writes(5, 3))
		}
		fn cancel_orders_relayed(n: u32) -> Weight {
			Weight::from_parts(BASE_PS, 3_000)
				.saturating_add(
					Weight::from_parts(3 * BASE_PS + SIG_VERIFY_PS, 8_000).saturating_mul(n as u64),
				)
				.saturating_add(<$db>::get().reads_writes(1, 0))
				.saturating_add(<$db>::get().reads_writes(5, 3).saturating_mul(n as u64))
		}
		fn submit_clearing(o: u32, p: u32, e: u32) -> Weight {
			Weight::from_parts(5 * BASE_PS, 10_000)
				.saturating_add(Weight::from_parts(BASE_PS / 2, 300).saturating_mul(o as u64))
				.saturating_add(Weight::from_parts(6 * BASE_PS, 8_000).saturating_mul(p as u64))
				.saturating_add(Weight::from_parts(3 * BASE_PS, 800).saturating_mul(e as u64))
				.saturating_add(<$db>::get().reads_writes(8, 5))
				.saturating_add(<$db>::get().reads_writes(1, 0).saturating_mul(o as u64))
				.saturating_add(<$db>::get().reads_writes(8, 6).saturating_mul(p as u64))
				.saturating_add(<$db>::get().reads_writes(2, 0).saturating_mul(e as u64))
		}
		fn register_clearing() -> Weight {
			Weight::from_parts(3 * BASE_PS, 8_000)
				.saturating_add(<$db>::get().reads_writes(8, 6))
				.saturating_add(<$db>::get().writes(32))
		}
		fn submit_clearing_page(m: u32, b: u32) -> Weight {
			Weight::from_parts(3 * BASE_PS, 10_000)
				.saturating_add(Weight::from_parts(BASE_PS / 2, 300).saturating_mul(m as u64))
				.saturating_add(Weight::from_parts(BASE_PS, 20_000).saturating_mul(b as u64))
				.saturating_add(<$db>::get().reads_writes(5, 3))
				.saturating_add(<$db>::get().reads_writes(2, 1).saturating_mul(b as u64))
		}
		fn submit_reading() -> Weight {
			Weight::from_parts(2 * BASE_PS + SIG_VERIFY_PS, 8_000)
				.saturating_add(<$db>::get().reads_writes(6, 5))
		}
		fn transfer_energy() -> Weight {
			Weight::from_parts(BASE_PS, 5_000).saturating_add(<$db>::get().reads_writes(2, 2))
		}
		fn settle_interval(p: u32) -> Weight {
			Weight::from_parts(5 * BASE_PS, 10_000)
				.saturating_add(Weight::from_parts(3 * BASE_PS, 8_000).saturating_mul(p as u64))
				.saturating_add(<$db>::get().reads_writes(8, 3))
				.saturating_add(<$db>::get().reads_writes(6, 5).saturating_mul(p as u64))
		}
		fn void_interval(o: u32, n: u32) -> Weight {
			Weight::from_parts(3 * BASE_PS, 10_000)
				.saturating_add(Weight::from_parts(BASE_PS / 100, 8).saturating_mul(o as u64))
				.saturating_add(Weight::from_parts(2 * BASE_PS, 8_000).saturating_mul(n as u64))
				.saturating_add(<$db>::get().reads_writes(6, 2))
				.saturating_add(<$db>::get().reads_writes(3, 2).saturating_mul(n as u64))
		}
		fn prune_orders(n: u32) -> Weight {
			Weight::from_parts(BASE_PS, 3_000)
				.saturating_add(Weight::from_parts(BASE_PS / 2, 2_600).saturating_mul(n as u64))
				.saturating_add(<$db>::get().reads(1))
				.saturating_add(<$db>::get().reads_writes(1, 2).saturating_mul(n as u64))
		}
		fn prune_tail() -> Weight {
			Weight::from_parts(5 * BASE_PS, 20_000)
				.saturating_add(Weight::from_parts(BASE_PS / 4, 2_600).saturating_mul(512))
				.saturating_add(<$db>::get().reads_writes(8, 8))
				.saturating_add(<$db>::get().reads_writes(1, 1).saturating_mul(512))
		}
	};
}

impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
	weights!(T::DbWeight);
}

// For tests and mocks.
impl WeightInfo for () {
	weights!(RocksDbWeight);
}
