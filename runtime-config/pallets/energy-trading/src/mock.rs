//! A test runtime: system, timestamp, balances and the market, with sr25519 accounts so that
//! off-chain signatures are real.

use crate as pallet_energy_trading;
use crate::{EnergySource, MarketParams, Mechanism};
use frame_support::{
	derive_impl, parameter_types,
	traits::{ConstU128, ConstU64},
};
use sp_core::{sr25519, Pair};
use sp_runtime::{traits::IdentityLookup, AccountId32, BuildStorage};

type Block = frame_system::mocking::MockBlock<Test>;

#[frame_support::runtime]
mod runtime {
	#[runtime::runtime]
	#[runtime::derive(
		RuntimeCall,
		RuntimeEvent,
		RuntimeError,
		RuntimeOrigin,
		RuntimeFreezeReason,
		RuntimeHoldReason,
		RuntimeSlashReason,
		RuntimeLockId,
		RuntimeTask,
		RuntimeViewFunction
	)]
	pub struct Test;

	#[runtime::pallet_index(0)]
	pub type System = frame_system;
	#[runtime::pallet_index(1)]
	pub type Timestamp = pallet_timestamp;
	#[runtime::pallet_index(2)]
	pub type Balances = pallet_balances;
	#[runtime::pallet_index(3)]
	pub type Market = pallet_energy_trading;
}

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountId = AccountId32;
	type Lookup = IdentityLookup<AccountId32>;
	type AccountData = pallet_balances::AccountData<u128>;
	// Priced storage, as in the runtime: weights that count keys are tested with keys costing.
	type DbWeight = frame_support::weights::constants::RocksDbWeight;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type Balance = u128;
	// The runtime's: 1 hid a payment below it to an account that does not exist.
	type ExistentialDeposit = ConstU128<EXISTENTIAL_DEPOSIT>;
	type AccountStore = System;
	type RuntimeHoldReason = RuntimeHoldReason;
}

impl pallet_timestamp::Config for Test {
	type Moment = u64;
	type OnTimestampSet = ();
	type MinimumPeriod = ConstU64<1>;
	type WeightInfo = ();
}

parameter_types! {
	pub const MaxOrdersPerInterval: u32 = 64;
	pub const MaxTradersPerInterval: u32 = 16;
	pub const BookPageSize: u32 = 16;
	pub const MaxRelayBatch: u32 = 8;
	pub const MaxMatchesPerPage: u32 = 128;
	pub const MaxClearingPages: u32 = 4;
	pub const SubmissionPatience: u64 = 3;
	pub const MaxZones: u32 = 4;
	pub const MaxMeteredPerInterval: u32 = 8;
	pub const MaxIntervalsAhead: u64 = 10;
	pub const RetainIntervals: u64 = 3;
	pub const ClearingHouseId: frame_support::PalletId = frame_support::PalletId(*b"wc/clrhs");
	pub const ClearingDeposit: u128 = CLEARING_DEPOSIT;
}

impl pallet_energy_trading::Config for Test {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Time = Timestamp;
	type OperatorOrigin = frame_system::EnsureRoot<AccountId32>;
	type ClearingDeposit = ClearingDeposit;
	type MaxOrdersPerInterval = MaxOrdersPerInterval;
	type MaxTradersPerInterval = MaxTradersPerInterval;
	type BookPageSize = BookPageSize;
	type MaxRelayBatch = MaxRelayBatch;
	type MaxMatchesPerPage = MaxMatchesPerPage;
	type MaxClearingPages = MaxClearingPages;
	type SubmissionPatience = SubmissionPatience;
	type MaxZones = MaxZones;
	type MaxMeteredPerInterval = MaxMeteredPerInterval;
	type MaxIntervalsAhead = MaxIntervalsAhead;
	type RetainIntervals = RetainIntervals;
	type ClearingHouseId = ClearingHouseId;
	type WeightInfo = ();
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = SetTimestamp;
}

#[cfg(feature = "runtime-benchmarks")]
pub struct SetTimestamp;
#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper for SetTimestamp {
	fn set_now(ms: u64) {
		pallet_timestamp::Now::<Test>::put(ms);
	}
}

/// One-second intervals whose gate closes half a second ahead.
pub const INTERVAL_MS: u64 = 1_000;
/// What an invalid clearing costs its submitter.
pub const CLEARING_DEPOSIT: u128 = 50_000;
/// The test meters' rated power: 100 MW, since the test intervals last a second (27.7 kWh each).
pub const RATED_W: u32 = 100_000_000;
pub const GATE_MS: u64 = 500;
pub const TARIFF: u64 = 90;
pub const FEED_IN: u64 = 25;
pub const START_BALANCE: u128 = 1_000_000_000_000;
pub const EXISTENTIAL_DEPOSIT: u128 = 1_000;

pub fn pair(seed: &str) -> sr25519::Pair {
	sr25519::Pair::from_string(&format!("//{seed}"), None).expect("static seed")
}
pub fn account(seed: &str) -> AccountId32 {
	AccountId32::from(pair(seed).public().0)
}
/// The market operator and clearing submitter.
pub fn operator() -> AccountId32 {
	account("Alice")
}
pub fn distributor() -> AccountId32 {
	account("Ferdie")
}
/// A prosumer and a consumer in zone 0, and another pair in zone 1.
pub fn seller() -> AccountId32 {
	account("Bob")
}
pub fn buyer() -> AccountId32 {
	account("Charlie")
}
pub fn seller1() -> AccountId32 {
	account("Dave")
}
pub fn buyer1() -> AccountId32 {
	account("Eve")
}
pub fn meter_pair() -> sr25519::Pair {
	pair("Meter1")
}

pub fn params() -> MarketParams {
	MarketParams {
		interval_ms: INTERVAL_MS,
		gate_closure_ms: GATE_MS,
		min_price_ticks: 1,
		max_price_ticks: 1_000,
		max_quantity_wh: 1_000_000,
		utility_tariff_ticks: TARIFF,
		feed_in_ticks: FEED_IN,
		reading_window_ms: INTERVAL_MS,
		mechanism: Mechanism::Uniform,
	}
}

pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut storage = frame_system::GenesisConfig::<Test>::default()
		.build_storage()
		.expect("system genesis");
	pallet_balances::GenesisConfig::<Test> {
		balances: ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie", "Relayer"]
			.iter()
			.map(|s| (account(s), START_BALANCE))
			.collect(),
		..Default::default()
	}
	.assimilate_storage(&mut storage)
	.expect("balances genesis");
	pallet_energy_trading::GenesisConfig::<Test> {
		operator: Some(operator()),
		distributor: Some(distributor()),
		params: params(),
		participants: vec![(seller(), 0), (buyer(), 0), (seller1(), 1), (buyer1(), 1)],
		clearing_submitters: vec![operator()],
		lines: vec![(0, 1, 1_000, 5)],
		meters: vec![
			(meter_pair().public().0, seller(), 0, EnergySource::Solar, RATED_W),
			([0x51; 32], seller1(), 1, EnergySource::Solar, RATED_W),
		],
	}
	.assimilate_storage(&mut storage)
	.expect("market genesis");
	let mut ext = sp_io::TestExternalities::new(storage);
	ext.execute_with(|| {
		System::set_block_number(1);
		Timestamp::set_timestamp(100);
	});
	ext
}

/// Runs a test and then checks the pallet's invariants.
pub fn run(test: impl FnOnce()) {
	new_test_ext().execute_with(|| {
		test();
		Market::do_try_state().expect("invariants hold");
	});
}

/// The test runtime with a keystore, for benchmarks that sign.
#[cfg(feature = "runtime-benchmarks")]
pub fn new_bench_ext() -> sp_io::TestExternalities {
	let mut ext = new_test_ext();
	ext.register_extension(sp_keystore::KeystoreExt::new(
		sp_keystore::testing::MemoryKeystore::new(),
	));
	ext
}
