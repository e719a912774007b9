//! WattChain's runtime: the chain's state transition function, compiled to wasm for the node.
//!
//! Money is the native balance, in thousandths of a price tick (demo: 1 tick = R$0.01, so the
//! token shows as BRL with 5 decimals); a trade of `q` Wh at `p` ticks/kWh costs `p * q` units.

#![cfg_attr(not(feature = "std"), no_std)]
// `construct_runtime`'s expansion is large.
#![recursion_limit = "256"]

#[cfg(feature = "std")]
include!(concat!(env!("OUT_DIR"), "/wasm_binary.rs"));

extern crate alloc;

use alloc::vec::Vec;

pub mod apis;
pub mod genesis;
pub mod weights;

use frame_support::dispatch::DispatchClass;
use frame_support::{
	derive_impl, parameter_types,
	traits::{ConstBool, ConstU128, ConstU32, ConstU64, ConstU8, VariantCountOf},
	weights::{constants::WEIGHT_REF_TIME_PER_SECOND, ConstantMultiplier, Weight},
};
use frame_system::limits::{BlockLength, BlockWeights};
use pallet_transaction_payment::{ConstFeeMultiplier, FungibleAdapter, Multiplier};
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_runtime::{
	generic, impl_opaque_keys,
	traits::{BlakeTwo256, IdentifyAccount, One, Verify},
	MultiAddress, MultiSignature, Perbill,
};
use sp_version::RuntimeVersion;

pub use pallet_energy_trading;

pub type BlockNumber = u32;
pub type Signature = MultiSignature;
pub type AccountId = <<Signature as Verify>::Signer as IdentifyAccount>::AccountId;
pub type Balance = u128;
pub type Nonce = u32;
pub type Hash = sp_core::H256;
pub type Address = MultiAddress<AccountId, ()>;
pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
pub type Block = generic::Block<Header, UncheckedExtrinsic>;

/// The transaction extensions, kept to those substrate-interface 1.8.1 can sign.
pub type TxExtension = (
	frame_system::CheckNonZeroSender<Runtime>,
	frame_system::CheckSpecVersion<Runtime>,
	frame_system::CheckTxVersion<Runtime>,
	frame_system::CheckGenesis<Runtime>,
	frame_system::CheckEra<Runtime>,
	frame_system::CheckNonce<Runtime>,
	frame_system::CheckWeight<Runtime>,
	pallet_transaction_payment::ChargeTransactionPayment<Runtime>,
);
pub type UncheckedExtrinsic =
	generic::UncheckedExtrinsic<Address, RuntimeCall, Signature, TxExtension>;
pub type SignedPayload = generic::SignedPayload<RuntimeCall, TxExtension>;
pub type Executive = frame_executive::Executive<
	Runtime,
	Block,
	frame_system::ChainContext<Runtime>,
	Runtime,
	AllPalletsWithSystem,
>;

/// What the node needs to know of blocks without knowing the runtime's types.
pub mod opaque {
	use super::*;
	pub use sp_runtime::OpaqueExtrinsic as UncheckedExtrinsic;
	pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
	pub type Block = generic::Block<Header, UncheckedExtrinsic>;
	pub type BlockId = generic::BlockId<Block>;

	impl_opaque_keys! {
		pub struct SessionKeys {
			pub aura: super::Aura,
			pub grandpa: super::Grandpa,
		}
	}
}

#[sp_version::runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
	spec_name: alloc::borrow::Cow::Borrowed("wattchain"),
	impl_name: alloc::borrow::Cow::Borrowed("wattchain"),
	authoring_version: 1,
	spec_version: 100,
	impl_version: 1,
	apis: apis::RUNTIME_API_VERSIONS,
	transaction_version: 1,
	system_version: 1,
};

/// Two-second slots: fast enough for interactive trading on a dev chain, slow enough for a
/// busy two-core machine to author every block.
pub const MILLI_SECS_PER_BLOCK: u64 = 2000;
pub const SLOT_DURATION: u64 = MILLI_SECS_PER_BLOCK;

/// Balance units: 1 tick = 1_000 units; 1 BRL = 100 ticks.
pub const UNITS_PER_TICK: Balance = 1_000;
pub const UNITS_PER_BRL: Balance = 100 * UNITS_PER_TICK;
pub const EXISTENTIAL_DEPOSIT: Balance = UNITS_PER_TICK;

const NORMAL_DISPATCH_RATIO: Perbill = Perbill::from_percent(75);

parameter_types! {
	pub const BlockHashCount: BlockNumber = 2400;
	pub const Version: RuntimeVersion = VERSION;
	/// One second of compute per two-second block. Weights are conservative (p95 storage
	/// figures doubled, worst-case benchmarks): on the 2-core reference machine, blocks of
	/// 0.44-0.54 s of weight (1,280 relayed orders; a clearing of 9,977 matches) took 200-260 ms
	/// to author on the `dev`-profile node, so a full block leaves most of the slot for import,
	/// networking and the workers beside the node.
	pub RuntimeBlockWeights: BlockWeights = BlockWeights::with_sensible_defaults(
		Weight::from_parts(WEIGHT_REF_TIME_PER_SECOND, u64::MAX),
		NORMAL_DISPATCH_RATIO,
	);
	pub RuntimeBlockLength: BlockLength = BlockLength::builder()
		.max_length(5 * 1024 * 1024)
		.modify_max_length_for_class(DispatchClass::Normal, |max| *max = NORMAL_DISPATCH_RATIO * *max)
		.build();
	pub const SS58Prefix: u8 = 42;
	pub FeeMultiplier: Multiplier = Multiplier::one();
}

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
	pub struct Runtime;

	#[runtime::pallet_index(0)]
	pub type System = frame_system;
	#[runtime::pallet_index(1)]
	pub type Timestamp = pallet_timestamp;
	#[runtime::pallet_index(2)]
	pub type Aura = pallet_aura;
	#[runtime::pallet_index(3)]
	pub type Grandpa = pallet_grandpa;
	#[runtime::pallet_index(4)]
	pub type Balances = pallet_balances;
	#[runtime::pallet_index(5)]
	pub type TransactionPayment = pallet_transaction_payment;
	#[runtime::pallet_index(6)]
	pub type Sudo = pallet_sudo;
	#[runtime::pallet_index(7)]
	pub type Multisig = pallet_multisig;
	#[runtime::pallet_index(10)]
	pub type EnergyTrading = pallet_energy_trading;
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
	type Block = Block;
	type BlockWeights = RuntimeBlockWeights;
	type BlockLength = RuntimeBlockLength;
	type AccountId = AccountId;
	type Nonce = Nonce;
	type Hash = Hash;
	type BlockHashCount = BlockHashCount;
	// Measured on this node's database (ParityDB), not RocksDB's reference constants.
	type DbWeight = weights::paritydb_weights::constants::ParityDbWeight;
	type Version = Version;
	type AccountData = pallet_balances::AccountData<Balance>;
	type SS58Prefix = SS58Prefix;
	type MaxConsumers = ConstU32<16>;
}

impl pallet_aura::Config for Runtime {
	type AuthorityId = AuraId;
	type DisabledValidators = ();
	type MaxAuthorities = ConstU32<32>;
	type AllowMultipleBlocksPerSlot = ConstBool<false>;
	type SlotDuration = pallet_aura::MinimumPeriodTimesTwo<Runtime>;
}

impl pallet_grandpa::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type WeightInfo = ();
	type MaxAuthorities = ConstU32<32>;
	type MaxNominators = ConstU32<0>;
	type MaxSetIdSessionEntries = ConstU64<0>;
	type KeyOwnerProof = sp_core::Void;
	type EquivocationReportSystem = ();
}

impl pallet_timestamp::Config for Runtime {
	/// Unix milliseconds; the market's intervals are defined on it.
	type Moment = u64;
	type OnTimestampSet = Aura;
	type MinimumPeriod = ConstU64<{ SLOT_DURATION / 2 }>;
	type WeightInfo = ();
}

impl pallet_balances::Config for Runtime {
	type MaxLocks = ConstU32<50>;
	type MaxReserves = ();
	type ReserveIdentifier = [u8; 8];
	type Balance = Balance;
	type RuntimeEvent = RuntimeEvent;
	type DustRemoval = ();
	type ExistentialDeposit = ConstU128<EXISTENTIAL_DEPOSIT>;
	type AccountStore = System;
	type WeightInfo = pallet_balances::weights::SubstrateWeight<Runtime>;
	type FreezeIdentifier = RuntimeFreezeReason;
	type MaxFreezes = VariantCountOf<RuntimeFreezeReason>;
	type RuntimeHoldReason = RuntimeHoldReason;
	type RuntimeFreezeReason = RuntimeFreezeReason;
	type DoneSlashHandler = ();
}

/// A transaction's fee is its weight in microseconds, in balance units: about a tenth of a
/// tick for an order, so fees never dominate a household's trade.
pub struct WeightToFee;
impl frame_support::weights::WeightToFee for WeightToFee {
	type Balance = Balance;
	fn weight_to_fee(weight: &Weight) -> Balance {
		(weight.ref_time() / 1_000_000) as Balance
	}
}

impl pallet_transaction_payment::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type OnChargeTransaction = FungibleAdapter<Balances, ()>;
	type OperationalFeeMultiplier = ConstU8<5>;
	type WeightToFee = WeightToFee;
	type LengthToFee = ConstantMultiplier<Balance, ConstU128<1>>;
	type FeeMultiplierUpdate = ConstFeeMultiplier<FeeMultiplier>;
	type WeightInfo = pallet_transaction_payment::weights::SubstrateWeight<Runtime>;
}

impl pallet_sudo::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type WeightInfo = pallet_sudo::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	/// What opening a multisig operation reserves until it executes or is cancelled.
	pub const MultisigDepositBase: Balance = 10 * UNITS_PER_BRL;
	pub const MultisigDepositFactor: Balance = UNITS_PER_BRL;
}

/// The governance council of a non-dev chain acts through a multisig account (see genesis.rs),
/// which holds the sudo key: operator changes and runtime upgrades take its threshold.
impl pallet_multisig::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type Currency = Balances;
	type DepositBase = MultisigDepositBase;
	type DepositFactor = MultisigDepositFactor;
	type MaxSignatories = ConstU32<16>;
	type WeightInfo = pallet_multisig::weights::SubstrateWeight<Runtime>;
	type BlockNumberProvider = System;
}

parameter_types! {
	/// A city's interval: 100,000 orders were placed, cleared in 10 pages and settled within
	/// the dev chain's next interval (README). A clearing's trades are read from its pages,
	/// not its block's events, so its size does not meet the 15 MB a node's RPC answers.
	pub const MaxOrdersPerInterval: u32 = 200_000;
	/// The call that applies a clearing pays each trader once, about 0.12 ms each with its
	/// storage: 2,000 of them and a full book's matches take 0.56 s of the 0.65 s a call may
	/// (`integrity_test`; 3,000 would take 0.68 s). A city's households trade through
	/// aggregators with many orders each; applying in pages would lift this
	/// (docs/paged-clearing.md).
	pub const MaxTradersPerInterval: u32 = 2_000;
	/// 18 KB pages: a placement appends to one and a cancel rewrites one, while a clearing
	/// reads 40 of them for a book of 10,000.
	pub const BookPageSize: u32 = 256;
	pub const MaxRelayBatch: u32 = 256;
	/// A page of a clearing is 400 KB of matches: nine fit the 3.75 MB a block gives normal
	/// calls.
	pub const MaxMatchesPerPage: u32 = 10_000;
	/// 320,000 matches a clearing, more than a book of `MaxOrdersPerInterval` orders needs.
	pub const MaxClearingPages: u32 = 32;
	/// A registered clearing may go five blocks (10 s) without a page.
	pub const SubmissionPatience: BlockNumber = 5;
	pub const MaxZones: u32 = 64;
	pub const MaxMeteredPerInterval: u32 = 10_000;
	/// A week of fifteen-minute intervals.
	pub const MaxIntervalsAhead: u64 = 7 * 96;
	/// An interval's data stays on chain a week of fifteen-minute intervals after it is done
	/// with; the indexer keeps the history.
	pub const RetainIntervals: u64 = 7 * 96;
	pub const ClearingHouseId: frame_support::PalletId = frame_support::PalletId(*b"wc/clrhs");
	/// What an invalid clearing costs its submitter: R$ 1,000, about a year of its fees.
	pub const ClearingDeposit: Balance = 1_000 * UNITS_PER_BRL;
}

impl pallet_energy_trading::Config for Runtime {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Time = Timestamp;
	type OperatorOrigin = frame_system::EnsureRoot<AccountId>;
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
	type WeightInfo = weights::pallet_energy_trading::WeightInfo<Runtime>;
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = BenchmarkClock;
}

/// Benchmarks of the market set the clock through this.
#[cfg(feature = "runtime-benchmarks")]
pub struct BenchmarkClock;
#[cfg(feature = "runtime-benchmarks")]
impl pallet_energy_trading::BenchmarkHelper for BenchmarkClock {
	fn set_now(ms: u64) {
		pallet_timestamp::Now::<Runtime>::put(ms);
	}
}

#[cfg(feature = "runtime-benchmarks")]
mod benches {
	frame_benchmarking::define_benchmarks!(
		[frame_system, SystemBench::<Runtime>]
		[pallet_balances, Balances]
		[pallet_timestamp, Timestamp]
		[pallet_energy_trading, EnergyTrading]
	);
}
