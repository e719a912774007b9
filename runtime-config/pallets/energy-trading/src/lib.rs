//! # Energy-trading pallet
//!
//! ## Overview
//!
//! WattChain's market on chain. Prosumers offer surplus kWh and consumers bid for it, one
//! market interval at a time. After gate closure an authorized submitter posts the interval's
//! clearing, and this pallet re-checks it instead of trusting it: every match must refer to open
//! orders of that interval, respect their limits and quantities, cover the grid fee and meet the
//! mechanism's price conditions. Accredited meters then publish signed cumulative registers;
//! validated export mints energy tokens (1 token = 1 kWh, held in Wh), and settlement sets the
//! metered energy against the contracted positions at the utility's regulated rates and hands
//! the tokens to the buyers the energy was delivered to.
//!
//! ## Terminology
//!
//! - **Interval**: interval `k` covers unix ms `[k * interval_ms, (k + 1) * interval_ms)`.
//! - **Gate closure**: orders for `k` close `gate_closure_ms` before `k` starts.
//! - **Tick**: the price unit, per kWh. A payment is `price_ticks * quantity_wh` balance units.
//! - **Distributor**: the grid company; it receives grid fees and acts as the utility in
//!   settlement (it sells shortfalls at its tariff and buys unsold surplus at the feed-in rate).
//!
//! ## Calls
//!
//! - Permissionless (any signed account): `place_order`, `cancel_order`, `place_orders_relayed`,
//!   `cancel_orders_relayed` (each relayed item carries its owner's sr25519 signature),
//!   `submit_reading` (carries the meter's signature), `transfer_energy`.
//! - Permissionless after a deadline: `void_interval`, which voids an interval that no valid
//!   clearing reached by its end and releases every hold of its book (see `voiding.rs`), and
//!   `settle_interval`, once the interval's traders' meters have reported or their reading
//!   deadline has passed (see `settlement.rs`).
//! - Permissioned (clearing submitters): `submit_clearing`.
//! - Privileged (`OperatorOrigin` or the distributor's account): `accredit_meter`,
//!   `revoke_meter`. The distributor owns the metering and pays for what meters export, so the
//!   market operator cannot accredit meters of its own and mint.
//! - Privileged (`OperatorOrigin` or the market-operator account): `register_participant`,
//!   `set_line`, `remove_line`, `set_clearing_submitter`, `set_market_params`,
//!   `set_market_operator`.
//! - Governance only (`OperatorOrigin`): `set_distributor`.
//!
//! ## Layout
//!
//! `lib.rs` declares what the `pallet` macro needs (config, storage, events, errors, hooks and
//! the calls, which only check the origin and delegate). The logic lives by concern in
//! `roles.rs` (operator and submitter rights, the operator's settings: participants, meters, the
//! grid, parameters), `orders.rs` (placing and cancelling), `clearing.rs` (checking a clearing
//! against the book and the grid, and applying it), `voiding.rs` (an interval left without a
//! clearing), `metering.rs` (readings and energy tokens), `settlement.rs` and `pruning.rs`
//! (`on_idle` removes intervals done with long ago); `common.rs` holds the clock, each
//! interval's parameters, prices and signature checks they share, `invariants.rs` the checks
//! `try_state` runs. See also `README.md`.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

pub mod types;
pub mod weights;

mod clearing;
mod common;
#[cfg(any(feature = "try-runtime", test))]
mod invariants;
mod metering;
mod orders;
mod pruning;
mod roles;
mod settlement;
mod voiding;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use types::*;
pub use weights::WeightInfo;

/// Participants one `settle_interval` call settles at most: what its benchmark covers.
pub const MAX_SETTLE_PAGE: u32 = 1_000;

/// Lines the grid can have (`Grid`).
pub const MAX_LINES: u32 = 256;

/// Earlier grids kept for intervals whose gates have closed (`EarlierGridStarts`): only those
/// that can still be cleared need theirs, the intervals from now to the first open gate.
pub const MAX_GRID_SETS: u32 = 16;

/// A grid's lines, sorted by their zones.
pub type GridLines = frame_support::BoundedVec<Line, frame_support::traits::ConstU32<MAX_LINES>>;

/// Earlier parameter sets kept for intervals not yet pruned (`EarlierParams`): the operator can
/// change the parameters this many times within `RetainIntervals`.
pub const MAX_PARAM_SETS: u32 = 32;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::{Inspect, InspectHold, Mutate, MutateHold},
			Time,
		},
	};
	use frame_system::pallet_prelude::*;

	pub type BalanceOf<T> =
		<<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;

	/// The layout of this pallet's storage. Version 1 is the layout of the first chain that
	/// runs: 0.2.0 changed the layout of release 0.1 without a migration and starts a new chain
	/// (CHANGELOG). From there on, a change of layout bumps it and ships a migration.
	const STORAGE_VERSION: StorageVersion = StorageVersion::new(1);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config<RuntimeEvent: From<Event<Self>>> {
		/// The payment currency; bids hold their maximum cost in it.
		type Currency: Mutate<Self::AccountId>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
			+ InspectHold<Self::AccountId>;
		/// The runtime's hold reasons, which include this pallet's.
		type RuntimeHoldReason: From<HoldReason>;
		/// Unix time in milliseconds.
		type Time: Time<Moment = u64>;
		/// Who may accredit meters, register participants and set fees and parameters,
		/// besides the market-operator and distributor accounts in storage (governance).
		type OperatorOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// What a clearing submitter stakes on each clearing, held from its registration:
		/// burned when the clearing fails the pallet's checks or is abandoned, released when it
		/// is applied (see `clearing.rs`).
		#[pallet::constant]
		type ClearingDeposit: Get<BalanceOf<Self>>;
		/// Orders one interval can hold.
		#[pallet::constant]
		type MaxOrdersPerInterval: Get<u32>;
		/// Participants with orders in one interval. The call that applies a clearing pays each
		/// once, so this bounds its weight: `integrity_test` proves that a clearing of a full
		/// book among this many traders fits a block, so no interval is too big to clear.
		#[pallet::constant]
		type MaxTradersPerInterval: Get<u32>;
		/// Orders in one page of a book (`BookPages`).
		#[pallet::constant]
		type BookPageSize: Get<u32>;
		/// Orders or cancellations in one relayed batch.
		#[pallet::constant]
		type MaxRelayBatch: Get<u32>;
		/// Matches in one page of a clearing.
		#[pallet::constant]
		type MaxMatchesPerPage: Get<u32>;
		/// Pages in one clearing.
		#[pallet::constant]
		type MaxClearingPages: Get<u32>;
		/// Blocks a registered clearing may go without a page before another submitter may
		/// take its interval (its deposit is then burned).
		#[pallet::constant]
		type SubmissionPatience: Get<BlockNumberFor<Self>>;
		/// Zone prices in one clearing.
		#[pallet::constant]
		type MaxZones: Get<u32>;
		/// Participants with metered energy in one interval (bounds settlement).
		#[pallet::constant]
		type MaxMeteredPerInterval: Get<u32>;
		/// How many intervals ahead an order may be placed.
		#[pallet::constant]
		type MaxIntervalsAhead: Get<u64>;
		/// How many intervals an interval's data is kept once it is done with (settled, or
		/// nothing to settle) before `on_idle` prunes it; the indexer keeps the history.
		#[pallet::constant]
		type RetainIntervals: Get<u64>;
		/// The clearing house's account: buyers pay into it at clearing, and it pays sellers
		/// once their delivery is metered (see `settlement.rs`).
		#[pallet::constant]
		type ClearingHouseId: Get<frame_support::PalletId>;
		/// Weights from this pallet's benchmarks.
		type WeightInfo: WeightInfo;
		/// Lets benchmarks set the clock, since intervals are defined on it.
		#[cfg(feature = "runtime-benchmarks")]
		type BenchmarkHelper: BenchmarkHelper;
	}

	/// What benchmarks need from the runtime.
	#[cfg(feature = "runtime-benchmarks")]
	pub trait BenchmarkHelper {
		fn set_now(ms: u64);
	}

	/// Why this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// A bid's maximum cost, until its interval is cleared or it is cancelled.
		BidReserve,
		/// A clearing submitter's deposit, from its registration until the clearing is applied
		/// or rejected.
		ClearingDeposit,
	}

	// Storage. Each item says what it maps and which calls write it; genesis may seed the
	// operator's items (operator, distributor, parameters, participants, meters, fees, submitters).

	/// The account that acts as market operator besides `OperatorOrigin`: a single account id.
	/// Written by genesis and `set_market_operator`.
	#[pallet::storage]
	pub type MarketOperator<T: Config> = StorageValue<_, T::AccountId, OptionQuery>;

	/// The distributor's account: receives grid fees and acts as the utility in settlement.
	/// Written by genesis and `set_distributor`.
	#[pallet::storage]
	pub type Distributor<T: Config> = StorageValue<_, T::AccountId, OptionQuery>;

	/// The market's parameters (interval length, gate closure, price and quantity bounds,
	/// utility tariff, feed-in rate, reading window, mechanism) for intervals from `ParamsFrom`
	/// on: the latest set. Written by genesis and `set_market_params`. An interval's own are
	/// `Pallet::params_for(interval)`.
	#[pallet::storage]
	pub type Params<T: Config> = StorageValue<_, MarketParams, ValueQuery>;

	/// The first interval `Params` governs: the first whose gate was still open when they were
	/// set. Written by `set_market_params`.
	#[pallet::storage]
	pub type ParamsFrom<T: Config> = StorageValue<_, IntervalId, ValueQuery>;

	/// The parameters of intervals before `ParamsFrom`: `(first interval, parameters)` in
	/// ascending order, each governing up to the next. So a change never reaches an interval
	/// whose gate has closed. Appended to by `set_market_params`; `on_idle` drops a set once
	/// every interval it governs is pruned.
	#[pallet::storage]
	pub type EarlierParams<T: Config> = StorageValue<
		_,
		BoundedVec<(IntervalId, MarketParams), ConstU32<MAX_PARAM_SETS>>,
		ValueQuery,
	>;

	/// Registered participants: account id to its `Participant` record (the zone it trades in).
	/// Written by genesis and `register_participant`.
	#[pallet::storage]
	pub type Participants<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, Participant, OptionQuery>;

	/// Each meter key's accreditation epoch: 0 until first accredited, then one more on every
	/// `accredit_meter` (genesis meters start at 1). Never reset, not even by `revoke_meter`, so
	/// a reading signed under an earlier accreditation can never count again.
	#[pallet::storage]
	pub type MeterEpochs<T: Config> = StorageMap<_, Blake2_128Concat, MeterKey, u32, ValueQuery>;

	/// Accredited meters: the meter's sr25519 public key to its `Meter` (owner, zone, source,
	/// rated power and the registers of its last accepted reading). Written by genesis,
	/// `accredit_meter` and `revoke_meter` (which removes it); `submit_reading` updates `last`.
	#[pallet::storage]
	pub type Meters<T: Config> =
		StorageMap<_, Blake2_128Concat, MeterKey, Meter<T::AccountId>, OptionQuery>;

	/// How many accredited meters each owner has of each source: what a renewable offer's
	/// claim is checked against. Kept with `Meters` by genesis, `accredit_meter` and
	/// `revoke_meter`.
	#[pallet::storage]
	pub type MeterSources<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Twox64Concat,
		EnergySource,
		u32,
		ValueQuery,
	>;

	/// The grid: its lines between zones, at most one per pair (`Line.a < Line.b`), sorted.
	/// Energy crosses zones only over a line, up to its capacity, paying its fee. One value, so
	/// that a clearing reads the whole grid at once. The latest grid, which governs the
	/// intervals from `GridFrom` on; an interval whose gate closed before a change keeps the
	/// grid it closed under (`EarlierGrids`). Written by genesis, `set_line` and `remove_line`.
	#[pallet::storage]
	pub type Grid<T: Config> = StorageValue<_, GridLines, ValueQuery>;

	/// The first interval `Grid` governs: the first whose gate was open at the last change.
	#[pallet::storage]
	pub type GridFrom<T: Config> = StorageValue<_, IntervalId, ValueQuery>;

	/// The first intervals of the earlier grids still kept, ascending; each governs the
	/// intervals up to the next start (or `GridFrom`). Written by `set_line` and
	/// `remove_line`, which drop the grids of intervals that can no longer be cleared.
	#[pallet::storage]
	pub type EarlierGridStarts<T: Config> =
		StorageValue<_, BoundedVec<IntervalId, ConstU32<MAX_GRID_SETS>>, ValueQuery>;

	/// The earlier grids by their first interval (see `EarlierGridStarts`).
	#[pallet::storage]
	pub type EarlierGrids<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, GridLines, OptionQuery>;

	/// Accounts allowed to submit clearings: account id to `()` (present means
	/// allowed). Written by genesis and `set_clearing_submitter`.
	#[pallet::storage]
	pub type ClearingSubmitters<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, (), OptionQuery>;

	/// Orders ever placed. The interval length is frozen once it is above 0 (interval ids are
	/// derived from it). Written by `place_order` and `place_orders_relayed`.
	#[pallet::storage]
	pub type OrdersPlaced<T: Config> = StorageValue<_, u64, ValueQuery>;

	/// `(owner, client order id)` to order id: what makes a resubmission idempotent. Written by
	/// `place_order` and `place_orders_relayed`.
	#[pallet::storage]
	pub type ClientOrders<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Twox64Concat,
		u64,
		OrderId,
		OptionQuery,
	>;

	/// How many orders each interval's book holds (cancelled ones included), at most
	/// `MaxOrdersPerInterval`. Written by `place_order` and `place_orders_relayed`.
	#[pallet::storage]
	pub type BookLen<T: Config> = StorageMap<_, Twox64Concat, IntervalId, u32, ValueQuery>;

	/// Each interval's book in pages of `BookPageSize` orders, in placement order: `(interval,
	/// page)` to its `Order`s (owner, spec and status). The order in slot `s` is entry
	/// `s % BookPageSize` of page `s / BookPageSize`, and its id packs the interval and the slot
	/// (`order_id`). So a placement appends to one page, and reading a book of 10,000 orders
	/// is 40 reads (of 256), not one per order. Appended to by `place_order` and
	/// `place_orders_relayed`; the cancellations set an entry's status. A clearing or a voiding
	/// writes no order: what became of an open order is its interval's record (`Clearings`,
	/// `ClearingMatches`, `Voided`). Gates close, so a closed interval's book is its frozen
	/// snapshot.
	#[pallet::storage]
	pub type BookPages<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		IntervalId,
		Twox64Concat,
		u32,
		BoundedVec<Order<T::AccountId>, T::BookPageSize>,
		ValueQuery,
	>;

	/// The side each participant trades in an interval, and how many of its orders there are
	/// not cancelled: `(interval, account)` to `(side, count)`. A participant is a buyer or a
	/// seller in an interval, never both, so it can never trade with itself. Written by
	/// `place_order` / `place_orders_relayed` and the cancellations (removed at 0).
	#[pallet::storage]
	pub type TraderSides<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		IntervalId,
		Blake2_128Concat,
		T::AccountId,
		(Side, u32),
		OptionQuery,
	>;

	/// How many participants have orders (not cancelled) in an interval: its `TraderSides`
	/// entries, at most `MaxTradersPerInterval`.
	#[pallet::storage]
	pub type IntervalTraders<T: Config> = StorageMap<_, Twox64Concat, IntervalId, u32, ValueQuery>;

	/// Accepted clearings: interval id to its `ClearingSummary` (mechanism, volume, match count,
	/// pages, submitter, block). Written once per interval by the clearing's last page.
	#[pallet::storage]
	pub type Clearings<T: Config> = StorageMap<
		_,
		Twox64Concat,
		IntervalId,
		ClearingSummary<T::AccountId, BlockNumberFor<T>>,
		OptionQuery,
	>;

	/// The clearing registered for an interval and being sent in pages: interval id to its
	/// `PendingClearing` (claim and progress). Written by `register_clearing` and each page;
	/// removed when the clearing is applied, rejected, taken over or voided.
	#[pallet::storage]
	pub type PendingClearings<T: Config> = StorageMap<
		_,
		Twox64Concat,
		IntervalId,
		PendingClearing<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>,
		OptionQuery,
	>;

	/// Clearings registered per interval so far: each registration's `attempt`.
	#[pallet::storage]
	pub type ClearingAttempts<T: Config> = StorageMap<_, Twox64Concat, IntervalId, u32, ValueQuery>;

	/// How much of each order the verified pages of a registered clearing fill: (interval, book
	/// page) to the attempt they belong to and one quantity (Wh) per order of the page. Fills
	/// of an earlier attempt count as none. Written by the clearing pages, pruned with the book.
	#[pallet::storage]
	pub type Fills<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		IntervalId,
		Twox64Concat,
		u32,
		(u32, BoundedVec<u64, T::BookPageSize>),
		OptionQuery,
	>;

	/// The matches of a registered or accepted clearing, by page: (interval, page) to its
	/// `Match`es. Written by each verified page; removed when the clearing is rejected.
	#[pallet::storage]
	pub type ClearingPages<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		IntervalId,
		Twox64Concat,
		u32,
		BoundedVec<Match, T::MaxMatchesPerPage>,
		ValueQuery,
	>;

	/// The prices of each accepted (or registered) clearing: interval id to its zone prices (one
	/// for a uniform clearing, one per zone for a zonal one, none for pay-as-bid). Written by
	/// `register_clearing`; removed when the clearing is rejected.
	#[pallet::storage]
	pub type ClearingPrices<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, BoundedVec<ZonePrice, T::MaxZones>, ValueQuery>;

	/// Energy tokens per account, in Wh (1000 = 1 token = 1 kWh): what the account bought and
	/// was delivered, as measured. Credited by `settle_interval` from the interval's
	/// `EnergyPools` and moved by `transfer_energy`.
	#[pallet::storage]
	pub type EnergyBalance<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, u64, ValueQuery>;

	/// Energy tokens in existence, in Wh: the sum of `EnergyBalance` and of the intervals'
	/// `EnergyPools` (`held_wh`). Raised by `submit_reading` (export minted), lowered by
	/// `settle_interval` (what no buyer took is retired).
	#[pallet::storage]
	pub type EnergyIssuance<T: Config> = StorageValue<_, u64, ValueQuery>;

	/// Each interval's energy tokens between its readings and its settlement: interval id to
	/// its `EnergyPool`. Written by `submit_reading`; `settle_interval` hands its tokens to the
	/// buyers, retires the rest and removes it.
	#[pallet::storage]
	pub type EnergyPools<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, EnergyPool, OptionQuery>;

	/// Validated metered energy: `(interval, owner)` to the import and export of all the owner's
	/// meters in that interval. Written by `submit_reading`; `settle_interval` reads it.
	#[pallet::storage]
	pub type Metered<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		IntervalId,
		Blake2_128Concat,
		T::AccountId,
		MeteredEnergy,
		OptionQuery,
	>;

	/// How many owners have an entry in `Metered` for an interval: interval id to the count, at
	/// most `MaxMeteredPerInterval` (it bounds settlement). Written by `submit_reading`.
	#[pallet::storage]
	pub type MeteredCount<T: Config> = StorageMap<_, Twox64Concat, IntervalId, u32, ValueQuery>;

	/// Settlement lines: `(interval, participant)` to its `SettlementLine` (contracted, metered,
	/// imbalance and the amount paid or received). Written by `settle_interval`.
	#[pallet::storage]
	pub type Settlements<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		IntervalId,
		Blake2_128Concat,
		T::AccountId,
		SettlementLine,
		OptionQuery,
	>;

	/// Intervals being voided: interval id to how many orders of its book (`BookPages`, in
	/// order) are voided so far. Written by `void_interval`, removed when the last is done.
	#[pallet::storage]
	pub type Voiding<T: Config> = StorageMap<_, Twox64Concat, IntervalId, u32, OptionQuery>;

	/// Voided intervals: interval id to the block that finished voiding it. No clearing is
	/// accepted for it any more; it settles as if nothing had traded. Written by `void_interval`.
	#[pallet::storage]
	pub type Voided<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, BlockNumberFor<T>, OptionQuery>;

	/// Where pruning stands: the next interval to prune and how many of its orders are pruned
	/// already. Calls about an earlier interval fail with `IntervalPruned`. Written by
	/// `on_idle` (set on its first run to the interval `RetainIntervals` before the current one).
	#[pallet::storage]
	pub type PruneCursor<T: Config> = StorageValue<_, (IntervalId, u32), OptionQuery>;

	/// Settled intervals: interval id to the block that settled it. Written by `settle_interval`.
	#[pallet::storage]
	pub type Settled<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, BlockNumberFor<T>, OptionQuery>;

	/// Each trader's position in a cleared interval: `(interval, account)` to its contracted
	/// energy netted over its matches and how many of its meters have reported. Written by
	/// `submit_clearing`; `submit_reading` counts reports; `settle_interval` reads it.
	#[pallet::storage]
	pub type Positions<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		IntervalId,
		Blake2_128Concat,
		T::AccountId,
		Position,
		OptionQuery,
	>;

	/// Traders of an interval whose meters have not all reported yet: interval id to the count.
	/// Settlement waits while it is above 0, until the reading deadline. Written by
	/// `submit_clearing` and `submit_reading`.
	#[pallet::storage]
	pub type Outstanding<T: Config> = StorageMap<_, Twox64Concat, IntervalId, u32, ValueQuery>;

	/// Settlements under way: interval id to where the next page starts and the totals so far.
	/// Written by `settle_interval`, removed by the call that settles the last participant.
	#[pallet::storage]
	pub type SettlementProgress<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, SettleProgress, OptionQuery>;

	/// Energy an account's next complete settlement must take in, Wh of net import: what
	/// estimates settled beyond what was measured (negative) and what readings measured after
	/// their interval's settlement began (their sign). Written by `settle_interval` and
	/// `submit_reading`; see `settlement.rs`.
	#[pallet::storage]
	pub type TrueUp<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, i64, ValueQuery>;

	/// Settlement payments that could not be made: `(debtor, creditor)` to the amount owed.
	/// Written by `settle_interval` instead of failing the settlement for everyone.
	#[pallet::storage]
	pub type Debts<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Blake2_128Concat,
		T::AccountId,
		BalanceOf<T>,
		ValueQuery,
	>;

	#[pallet::genesis_config]
	#[derive(frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		pub operator: Option<T::AccountId>,
		pub distributor: Option<T::AccountId>,
		pub params: MarketParams,
		pub participants: alloc::vec::Vec<(T::AccountId, ZoneId)>,
		pub clearing_submitters: alloc::vec::Vec<T::AccountId>,
		/// The grid's lines: `(zone, zone, capacity Wh per interval, fee ticks per kWh)`.
		pub lines: alloc::vec::Vec<(ZoneId, ZoneId, u64, u64)>,
		/// `(meter key, owner, zone, source, rated power W)`.
		pub meters: alloc::vec::Vec<(MeterKey, T::AccountId, ZoneId, EnergySource, u32)>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			if let Some(op) = &self.operator {
				MarketOperator::<T>::put(op);
			}
			if let Some(d) = &self.distributor {
				Distributor::<T>::put(d);
			}
			assert!(self.params.interval_ms > 0, "interval_ms must be positive");
			Params::<T>::put(self.params);
			for (who, zone) in &self.participants {
				Participants::<T>::insert(who, Participant { zone: *zone });
			}
			for who in &self.clearing_submitters {
				ClearingSubmitters::<T>::insert(who, ());
			}
			let mut grid = GridLines::default();
			for (a, b, capacity_wh, fee_ticks) in &self.lines {
				assert!(a != b, "a genesis line joins two different zones");
				let line = Line {
					a: *a.min(b),
					b: *a.max(b),
					capacity_wh: *capacity_wh,
					fee_ticks: *fee_ticks,
				};
				Pallet::<T>::put_line(&mut grid, line).expect("at most MAX_LINES genesis lines");
			}
			Grid::<T>::put(grid);
			// The clearing house exists from the start, so that no payment into it is ever
			// below the existential deposit of a new account.
			let house = Pallet::<T>::clearing_house();
			if T::Currency::balance(&house) < T::Currency::minimum_balance() {
				let _ = T::Currency::mint_into(&house, T::Currency::minimum_balance());
			}
			for (key, owner, zone, source, rated_power_w) in &self.meters {
				assert!(*rated_power_w > 0, "a genesis meter needs its rated power");
				MeterEpochs::<T>::insert(key, 1);
				MeterSources::<T>::mutate(owner, source, |n| *n += 1);
				Meters::<T>::insert(
					key,
					Meter {
						owner: owner.clone(),
						zone: *zone,
						source: *source,
						rated_power_w: *rated_power_w,
						last: None,
					},
				);
			}
		}
	}

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// The market-operator account changed.
		MarketOperatorSet { who: T::AccountId },
		/// A participant may now trade in `zone`.
		ParticipantRegistered { who: T::AccountId, zone: ZoneId },
		/// A meter's key is accredited; its readings count from now on.
		/// Readings must carry `epoch`; those signed under an earlier accreditation never count.
		MeterAccredited {
			meter: MeterKey,
			owner: T::AccountId,
			zone: ZoneId,
			source: EnergySource,
			rated_power_w: u32,
			epoch: u32,
		},
		/// A meter's key no longer counts (swap, fault, fraud).
		MeterRevoked { meter: MeterKey },
		/// A line of the grid was added or changed, for the intervals from `from_interval` on
		/// (the first whose gate was still open).
		LineSet { line: Line, from_interval: IntervalId },
		/// A line of the grid was removed: its zones no longer trade with each other from
		/// `from_interval` on.
		LineRemoved { a: ZoneId, b: ZoneId, from_interval: IntervalId },
		/// The distributor account changed.
		DistributorSet { who: T::AccountId },
		/// An account may (or may no longer) submit clearings.
		ClearingSubmitterSet { who: T::AccountId, allowed: bool },
		/// Market parameters changed, for intervals from `from_interval` on (the first whose
		/// gate was still open); earlier intervals keep theirs.
		MarketParamsSet { params: MarketParams, from_interval: IntervalId },
		/// An order is in the book of its interval.
		OrderPlaced {
			order_id: OrderId,
			owner: T::AccountId,
			client_order_id: u64,
			interval: IntervalId,
			side: Side,
			quantity_wh: u64,
			price_ticks: u64,
			zone: ZoneId,
			source: EnergySource,
			renewable_only: bool,
		},
		/// An order left the book before gate closure; its hold is released.
		OrderCancelled { order_id: OrderId, owner: T::AccountId, client_order_id: u64 },
		/// A clearing is registered, to be sent in `pages` pages.
		ClearingRegistered {
			interval: IntervalId,
			submitter: T::AccountId,
			mechanism: Mechanism,
			volume_wh: u64,
			matches: u32,
			pages: u32,
		},
		/// Page `page` of a registered clearing passed its checks.
		ClearingPageVerified { interval: IntervalId, page: u32, matches: u32 },
		/// A clearing failed the pallet's checks in page `page` (`error` says which), or was
		/// abandoned (`SubmissionExpired`, `ClearingDeadlinePassed`): nothing of it applies,
		/// and its submitter's deposit (`slashed`) is burned. The interval stays open to a
		/// valid clearing until its end.
		ClearingRejected {
			interval: IntervalId,
			submitter: T::AccountId,
			page: u32,
			error: DispatchError,
			slashed: BalanceOf<T>,
		},
		/// A clearing passed every check and was paid out. Its trades are its matches, in
		/// `ClearingPages` (`pages` of them), not one event each: a city's clearing has 100,000,
		/// more than a block's events can carry over RPC.
		ClearingAccepted {
			interval: IntervalId,
			submitter: T::AccountId,
			mechanism: Mechanism,
			volume_wh: u64,
			matches: u32,
			pages: u32,
			zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
			grid_fees_paid: BalanceOf<T>,
		},
		/// A meter's first reading: the registers later readings are measured from.
		MeterBaselineSet {
			meter: MeterKey,
			interval: IntervalId,
			counter: u64,
			import_wh: u64,
			export_wh: u64,
		},
		/// A validated reading: energy imported and exported since the previous one.
		ReadingAccepted {
			meter: MeterKey,
			owner: T::AccountId,
			interval: IntervalId,
			counter: u64,
			import_wh: u64,
			export_wh: u64,
		},
		/// Energy tokens minted for `who`'s validated export in `interval` (Wh). They stay in
		/// the interval's pool until its settlement hands them to buyers.
		EnergyMinted { interval: IntervalId, who: T::AccountId, amount_wh: u64 },
		/// A buyer's tokens for energy it bought in `interval` and was delivered, as measured
		/// (Wh), from the interval's pool.
		EnergyDelivered { interval: IntervalId, who: T::AccountId, amount_wh: u64 },
		/// Tokens of `interval` no buyer took, retired at its settlement, right after its
		/// `IntervalSettled` (Wh): export paid at feed-in, consumed on site, or traded on an
		/// estimate.
		EnergyRetired { interval: IntervalId, amount_wh: u64 },
		/// Energy tokens moved between accounts (Wh).
		EnergyTransferred { from: T::AccountId, to: T::AccountId, amount_wh: u64 },
		/// No valid clearing was applied by the interval's deadline (its end), so its book is
		/// being voided: `done` of its `total` orders so far, with `released` of bid holds given
		/// back by this step.
		IntervalVoiding { interval: IntervalId, done: u32, total: u32, released: BalanceOf<T> },
		/// The interval is void: none of its `orders` traded, and every bid's hold is released.
		IntervalVoided { interval: IntervalId, orders: u32 },
		/// One participant's imbalance settled against the utility (`line.estimated`: some of
		/// its readings were missing at the deadline).
		ParticipantSettled { interval: IntervalId, who: T::AccountId, line: SettlementLine },
		/// A payment of the market (a settlement payment, or the grid fees of a clearing) could
		/// not be made; `debtor` owes it to `creditor`, and the rest went on.
		SettlementDebt {
			interval: IntervalId,
			debtor: T::AccountId,
			creditor: T::AccountId,
			amount: BalanceOf<T>,
		},
		/// An interval is settled; `estimated` of its `participants` had readings missing.
		IntervalSettled {
			interval: IntervalId,
			participants: u32,
			estimated: u32,
			shortfall_wh: u64,
			surplus_wh: u64,
		},
		/// A reading for an interval whose settlement had begun: its energy goes to the
		/// owner's next settlement (`TrueUp`) instead.
		ReadingTruedUp { meter: MeterKey, owner: T::AccountId, interval: IntervalId, net_wh: i64 },
		/// A relayed order was not placed, for `error`; the rest of its batch was unaffected.
		RelayedOrderRefused { owner: T::AccountId, client_order_id: u64, error: DispatchError },
		/// A relayed cancellation was not applied, for `error`; the rest of its batch was
		/// unaffected.
		RelayedCancelRefused { owner: T::AccountId, client_order_id: u64, error: DispatchError },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The caller is not a registered participant.
		NotRegistered,
		/// The order's zone is not its owner's zone.
		WrongZone,
		/// Quantity is zero.
		ZeroQuantity,
		/// Quantity is above the market's maximum.
		QuantityTooLarge,
		/// Price is outside the market's bounds.
		PriceOutOfBounds,
		/// The interval's gate has closed: no more orders or cancellations.
		GateClosed,
		/// The interval is further ahead than orders may be placed.
		IntervalTooFarAhead,
		/// Offers state a source and never a renewable-only constraint.
		InvalidEnergyConstraint,
		/// This client order id was used for a different order.
		ClientOrderIdReused,
		/// The interval's book is full.
		IntervalFull,
		/// The interval has `MaxTradersPerInterval` participants with orders: a new one may
		/// place orders in a later interval (or through an aggregator that already trades).
		TooManyTraders,
		/// The owner has orders on the other side of this interval: a participant buys or sells
		/// in an interval, never both, so that it cannot trade with itself.
		SelfTrade,
		/// Not enough free balance to hold the bid's maximum cost.
		InsufficientBalance,
		/// An off-chain signature does not verify for its owner or meter.
		BadSignature,
		/// The account id is not an sr25519 public key.
		UnsupportedAccount,
		/// No order with that id (for that owner).
		UnknownOrder,
		/// Only clearing submitters may do this.
		NotClearingSubmitter,
		/// The interval's gate has not closed yet.
		GateNotClosed,
		/// The interval was cleared already.
		AlreadyCleared,
		/// A match names an order that is not in this interval's book.
		OrderNotInInterval,
		/// A match names an offer as its bid or a bid as its offer.
		WrongSide,
		/// A match names a cancelled order.
		OrderCancelled,
		/// A match has zero quantity.
		ZeroQuantityMatch,
		/// Matches fill an order beyond its quantity.
		Overfilled,
		/// A buyer would pay more than its bid limit.
		BidLimitExceeded,
		/// A seller would get less than its offer limit.
		OfferLimitViolated,
		/// The price difference does not cover the grid fee between the zones.
		GridFeeNotCovered,
		/// A renewable-only bid is matched with a non-renewable offer.
		EnergyTypeMismatch,
		/// The declared volume is not the sum of the matches: energy in != energy out.
		UnbalancedEnergy,
		/// Zone prices are missing, duplicated or too many for the mechanism.
		BadZonePrices,
		/// A match's prices are not the ones the mechanism prescribes.
		PriceNotPerMechanism,
		/// Gains from trade are left or price priority is broken: an unfilled bid and an unfilled
		/// offer could trade with each other, a bid or offer was passed over for a worse one, or
		/// a renewable offer went to a bid a grid-mix offer could serve (see `clearing.rs`).
		NotEquilibrium,
		/// A zonal clearing has no price for a zone that has orders in the book.
		ZoneWithoutPrice,
		/// No distributor is set, but the clearing or settlement pays one.
		NoDistributor,
		/// The meter is not accredited.
		UnknownMeter,
		/// The meter is accredited already.
		MeterAlreadyAccredited,
		/// The submitter cannot cover the clearing deposit (`ClearingDeposit`) that an invalid
		/// clearing would cost it.
		DepositNotCovered,
		/// A meter is accredited with its rated power (above 0 W): without it, nothing bounds
		/// the energy its readings claim.
		RatedPowerRequired,
		/// The reading was signed under an earlier accreditation of its meter (its epoch is not
		/// the meter's current one): an old reading replayed after a re-accreditation.
		StaleAccreditation,
		/// The reading's counter was used already (a replay).
		ReadingReplayed,
		/// The reading's counter skips one or more readings.
		CounterGap,
		/// A cumulative register is lower than in the previous reading.
		RegisterBackwards,
		/// The reading's interval is not after the meter's last reading.
		IntervalNotAfterLast,
		/// The interval has not ended yet.
		IntervalNotEnded,
		/// The energy in a reading is more than the meter's rated power allows.
		ImplausibleReading,
		/// Too many participants metered in one interval.
		TooManyMetered,
		/// The interval is neither cleared nor voided, so it cannot be settled.
		NotCleared,
		/// The interval is settled already.
		AlreadySettled,
		/// Not enough energy tokens.
		InsufficientEnergy,
		/// An energy transfer of nothing, or to oneself, would only write state for free.
		EmptyTransfer,
		/// The interval's clearing deadline (its end) has passed: it can only be voided.
		ClearingDeadlinePassed,
		/// The interval's clearing deadline has not passed yet, so it cannot be voided.
		DeadlineNotPassed,
		/// The interval is voided already.
		AlreadyVoided,
		/// `max_orders` is 0 while orders of the interval remain to be voided.
		NothingToVoid,
		/// The interval's data is pruned (it was done with `RetainIntervals` intervals ago).
		IntervalPruned,
		/// A line joins two different zones.
		SameZone,
		/// The grid has `MAX_LINES` lines already.
		TooManyLines,
		/// No line joins these zones.
		UnknownLine,
		/// A match moves energy between two zones that no line joins.
		NoLine,
		/// The net flow of the matches over a line is more than its capacity.
		LineOverloaded,
		/// Two zones' prices differ by more than the fee of the line between them, which only a
		/// line at capacity allows (the congestion rent).
		SpreadWithoutCongestion,
		/// Market parameters are inconsistent (zero interval, min price above max, ...).
		BadParams,
		/// The parameters changed `MAX_PARAM_SETS` times within the intervals not yet pruned.
		TooManyParamChanges,
		/// The grid changed `MAX_GRID_SETS` times within the intervals whose gates have closed
		/// and that can still be cleared.
		TooManyGridChanges,
		/// The clearing's mechanism is not the one the interval's parameters fix.
		WrongMechanism,
		/// A renewable-only bid in an interval cleared at one uniform price, which cannot keep
		/// renewable energy apart: it needs the zonal or pay-as-bid mechanism.
		RenewableOnlyUnderUniform,
		/// Settlement waits for readings of the interval's traders until its reading deadline.
		ReadingsOutstanding,
		/// `max_participants` is 0.
		NothingToSettle,
		/// An arithmetic overflow.
		Overflow,
		/// An offer claims a renewable source that no accredited meter of its owner measures.
		SourceNotMetered,
		/// A declared upper bound (orders in the book, matches, metered participants) is below
		/// the real count, so the call was priced too low.
		WitnessTooSmall,
		/// Another submitter's clearing of this interval is registered and not yet expired.
		ClearingInProgress,
		/// No clearing of this interval is registered (or it was rejected).
		ClearingNotRegistered,
		/// Only the submitter that registered the clearing may send its pages.
		NotRegistrant,
		/// A clearing's page is not the next one expected: pages go in order from 0, once each.
		PageOutOfOrder,
		/// A clearing has no page, more pages than `MaxClearingPages`, or a page beyond its
		/// claim.
		BadPageCount,
		/// The pages' matches are more, or in the end fewer, than the registration claimed.
		MatchCountMismatch,
		/// A registered clearing went `SubmissionPatience` blocks without a page.
		SubmissionExpired,
	}

	// The calls check the origin and delegate; the logic is in the module of its concern.
	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Register `who` as a participant trading in `zone` (operator).
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::register_participant())]
		pub fn register_participant(
			origin: OriginFor<T>,
			who: T::AccountId,
			zone: ZoneId,
		) -> DispatchResult {
			Self::ensure_operator(origin)?;
			Self::do_register_participant(who, zone)
		}

		/// Accredit a meter's sr25519 key for `owner` (distributor): `rated_power_w`, above 0,
		/// bounds the energy its readings may claim.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::accredit_meter())]
		pub fn accredit_meter(
			origin: OriginFor<T>,
			meter: MeterKey,
			owner: T::AccountId,
			zone: ZoneId,
			source: EnergySource,
			rated_power_w: u32,
		) -> DispatchResult {
			Self::ensure_meter_authority(origin)?;
			Self::do_accredit_meter(meter, owner, zone, source, rated_power_w)
		}

		/// Withdraw a meter's accreditation (distributor).
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::revoke_meter())]
		pub fn revoke_meter(origin: OriginFor<T>, meter: MeterKey) -> DispatchResult {
			Self::ensure_meter_authority(origin)?;
			Self::do_revoke_meter(meter)
		}

		/// Add or change the line between zones `a` and `b` (operator): it carries up to
		/// `capacity_wh` net per interval either way, for `fee_ticks` per kWh. From the first
		/// interval whose gate is still open: closed intervals keep the grid they closed under.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::set_line())]
		pub fn set_line(
			origin: OriginFor<T>,
			a: ZoneId,
			b: ZoneId,
			capacity_wh: u64,
			fee_ticks: u64,
		) -> DispatchResult {
			Self::ensure_operator(origin)?;
			Self::do_set_line(a, b, capacity_wh, fee_ticks)
		}

		/// Remove the line between zones `a` and `b` (operator).
		#[pallet::call_index(8)]
		#[pallet::weight(T::WeightInfo::set_line())]
		pub fn remove_line(origin: OriginFor<T>, a: ZoneId, b: ZoneId) -> DispatchResult {
			Self::ensure_operator(origin)?;
			Self::do_remove_line(a, b)
		}

		/// Set the distributor account (governance only: the distributor accredits meters, so
		/// an operator that could name itself distributor could accredit meters of its own).
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::set_distributor())]
		pub fn set_distributor(origin: OriginFor<T>, who: T::AccountId) -> DispatchResult {
			T::OperatorOrigin::ensure_origin(origin)?;
			Self::do_set_distributor(who)
		}

		/// Allow or disallow `who` to submit clearings (operator).
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::set_clearing_submitter())]
		pub fn set_clearing_submitter(
			origin: OriginFor<T>,
			who: T::AccountId,
			allowed: bool,
		) -> DispatchResult {
			Self::ensure_operator(origin)?;
			Self::do_set_clearing_submitter(who, allowed)
		}

		/// Set the market parameters (operator), for intervals whose gate is still open: an
		/// interval's parameters are fixed when its gate closes. The interval length cannot
		/// change once orders exist, because interval ids are derived from it.
		#[pallet::call_index(6)]
		// A change of interval length (only before any order) also drops the earlier grids.
		#[pallet::weight(T::WeightInfo::set_market_params()
			.saturating_add(T::DbWeight::get().writes(MAX_GRID_SETS as u64 + 2)))]
		pub fn set_market_params(origin: OriginFor<T>, params: MarketParams) -> DispatchResult {
			Self::ensure_operator(origin)?;
			Self::do_set_market_params(params)
		}

		/// Hand the market-operator role to another account (operator).
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::set_market_operator())]
		pub fn set_market_operator(origin: OriginFor<T>, who: T::AccountId) -> DispatchResult {
			Self::ensure_operator(origin)?;
			Self::do_set_market_operator(who)
		}

		/// Place an order as its owner. A bid holds `quantity_wh * price_ticks` until its
		/// interval clears. Resubmitting the same client order id with the same content is a no-op.
		#[pallet::call_index(10)]
		#[pallet::weight(T::WeightInfo::place_order())]
		pub fn place_order(origin: OriginFor<T>, spec: OrderSpec) -> DispatchResult {
			let owner = ensure_signed(origin)?;
			Self::do_place_order(owner, spec)
		}

		/// Place orders signed off-chain by their owners. Any account may relay. Each order is
		/// placed or refused on its own (a refused one gets `RelayedOrderRefused`, naming the
		/// error); orders already on chain (same owner, id and content) are skipped.
		#[pallet::call_index(11)]
		#[pallet::weight(Pallet::<T>::place_orders_relayed_weight(orders))]
		pub fn place_orders_relayed(
			origin: OriginFor<T>,
			orders: BoundedVec<SignedOrder<T::AccountId>, T::MaxRelayBatch>,
		) -> DispatchResult {
			ensure_signed(origin)?;
			Self::do_place_orders_relayed(orders.into_inner());
			Ok(())
		}

		/// Cancel one of the caller's orders before its gate closes; a bid's hold is released.
		#[pallet::call_index(12)]
		#[pallet::weight(T::WeightInfo::cancel_order())]
		pub fn cancel_order(origin: OriginFor<T>, client_order_id: u64) -> DispatchResult {
			let owner = ensure_signed(origin)?;
			Self::do_cancel(owner, client_order_id)
		}

		/// Cancellations signed off-chain by the orders' owners, each applied or refused on its
		/// own (`RelayedCancelRefused`). Cancelling an order that is cancelled already is a
		/// no-op, so a relayer may retry safely.
		#[pallet::call_index(13)]
		#[pallet::weight(T::WeightInfo::cancel_orders_relayed(cancels.len() as u32))]
		pub fn cancel_orders_relayed(
			origin: OriginFor<T>,
			cancels: BoundedVec<SignedCancel<T::AccountId>, T::MaxRelayBatch>,
		) -> DispatchResult {
			ensure_signed(origin)?;
			Self::do_cancel_orders_relayed(cancels.into_inner());
			Ok(())
		}

		/// Submit the whole clearing of `interval` in one call (clearing submitters): a
		/// registration and its only page (see `register_clearing`). It is checked in full and
		/// either applied whole, paying sellers and the distributor from the buyers' holds and
		/// releasing every remaining hold of the interval, or rejected with the first failed check.
		/// `book` is an upper bound of the interval's book (its orders, cancelled ones included,
		/// and the accounts with open orders): the call is priced by it and its matches before it
		/// runs (`Pallet::submit_clearing_weight`), and refunded to the real shape.
		#[pallet::call_index(20)]
		#[pallet::weight(Pallet::<T>::submit_clearing_weight(*book, matches.len() as u32))]
		pub fn submit_clearing(
			origin: OriginFor<T>,
			interval: IntervalId,
			mechanism: Mechanism,
			volume_wh: u64,
			zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
			matches: BoundedVec<Match, T::MaxMatchesPerPage>,
			book: BookShape,
		) -> DispatchResultWithPostInfo {
			let submitter = Self::ensure_clearing_submitter(origin)?;
			let shape = Self::do_submit_clearing(
				submitter,
				interval,
				mechanism,
				volume_wh,
				zone_prices,
				&matches,
				book,
			)?;
			Ok(Some(Self::submit_clearing_weight(shape, matches.len() as u32)).into())
		}

		/// Register a clearing of `interval` to be sent in `pages` pages (clearing submitters),
		/// claiming its mechanism, zone prices, volume and match count, and holding the
		/// submitter's deposit until the clearing is applied (released) or rejected (burned).
		/// One registration per interval is live; one that has sent no page for
		/// `SubmissionPatience` blocks may be taken over.
		#[pallet::call_index(23)]
		#[pallet::weight(T::WeightInfo::register_clearing())]
		pub fn register_clearing(
			origin: OriginFor<T>,
			interval: IntervalId,
			mechanism: Mechanism,
			volume_wh: u64,
			zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
			matches: u32,
			pages: u32,
		) -> DispatchResult {
			let submitter = Self::ensure_clearing_submitter(origin)?;
			Self::do_register_clearing(
				submitter,
				interval,
				mechanism,
				volume_wh,
				zone_prices,
				matches,
				pages,
			)
		}

		/// Send page `page` of the clearing registered for `interval` (its registrant; pages
		/// in order from 0). The page is verified on arrival; the last one, which carries
		/// `finish` (an upper bound of the book and of the clearing's matches, which price it),
		/// also checks the whole clearing and applies it. A page that fails a check rejects the
		/// clearing: `ClearingRejected` names the page and the check.
		#[pallet::call_index(24)]
		#[pallet::weight(Pallet::<T>::clearing_page_weight(matches, finish.as_ref()))]
		pub fn submit_clearing_page(
			origin: OriginFor<T>,
			interval: IntervalId,
			page: u32,
			matches: BoundedVec<Match, T::MaxMatchesPerPage>,
			finish: Option<ClearingWitness>,
		) -> DispatchResultWithPostInfo {
			// A submitter whose right was withdrawn sends no more pages, even of its own.
			let submitter = Self::ensure_clearing_submitter(origin)?;
			let shape = Self::do_clearing_page(submitter, interval, page, &matches, finish)?;
			// The last page is priced by its witness; refunded to the book it read.
			let used = match (shape, finish) {
				(Some(shape), Some(w)) => Some(Self::submit_clearing_weight(shape, w.matches)),
				_ => None,
			};
			Ok(used.into())
		}

		/// Submit a meter's signed reading for an interval that has ended. The first reading of
		/// a meter sets its baseline; later ones must continue its counter and registers.
		/// Exported energy mints energy tokens into the interval's pool, which its settlement
		/// hands to the buyers it was delivered to (see `metering.rs`).
		#[pallet::call_index(30)]
		#[pallet::weight(T::WeightInfo::submit_reading())]
		pub fn submit_reading(
			origin: OriginFor<T>,
			reading: MeterReading,
			signature: RawSignature,
		) -> DispatchResult {
			ensure_signed(origin)?;
			Self::do_reading(reading, signature)
		}

		/// Move energy tokens (Wh) to another account, e.g. to retire certificates.
		#[pallet::call_index(31)]
		#[pallet::weight(T::WeightInfo::transfer_energy())]
		pub fn transfer_energy(
			origin: OriginFor<T>,
			to: T::AccountId,
			amount_wh: u64,
		) -> DispatchResult {
			let from = ensure_signed(origin)?;
			Self::do_transfer_energy(from, to, amount_wh)
		}

		/// Void `interval`, which no valid clearing reached by its deadline (its end), releasing
		/// the holds of its bids; anyone may call it, so no funds depend on a submitter. Up to
		/// `max_orders` orders of the book are voided per call, from where the last call stopped;
		/// the call that voids the last one marks the interval voided. `book_orders` is an upper
		/// bound of the orders in its book (it prices the call, like `submit_clearing`'s).
		#[pallet::call_index(21)]
		#[pallet::weight(T::WeightInfo::void_interval(
			(*book_orders).min(T::MaxOrdersPerInterval::get()),
			(*max_orders).min(T::MaxOrdersPerInterval::get()),
		).saturating_add(T::WeightInfo::register_clearing()))]
		pub fn void_interval(
			origin: OriginFor<T>,
			interval: IntervalId,
			max_orders: u32,
			book_orders: u32,
		) -> DispatchResultWithPostInfo {
			ensure_signed(origin)?;
			let (book, voided, rejected) =
				Self::do_void_interval(interval, max_orders, book_orders)?;
			// Rejecting a registration left incomplete costs what replacing one does.
			let rejecting =
				if rejected { T::WeightInfo::register_clearing() } else { Weight::zero() };
			Ok(Some(T::WeightInfo::void_interval(book, voided).saturating_add(rejecting)).into())
		}

		/// Settle the next `max_participants` participants of a cleared or voided interval
		/// against their metered energy. Each one's imbalance (metered minus contracted) is
		/// bought from the distributor at the utility tariff (shortfall) or paid by it at the
		/// feed-in rate (surplus). Anyone may call it once the interval's traders' meters have
		/// all reported, or from its reading deadline on (see `settlement.rs`).
		#[pallet::call_index(40)]
		#[pallet::weight(T::WeightInfo::settle_interval((*max_participants).min(MAX_SETTLE_PAGE)))]
		pub fn settle_interval(
			origin: OriginFor<T>,
			interval: IntervalId,
			max_participants: u32,
		) -> DispatchResultWithPostInfo {
			ensure_signed(origin)?;
			let settled = Self::do_settle(interval, max_participants.min(MAX_SETTLE_PAGE))?;
			Ok(Some(T::WeightInfo::settle_interval(settled)).into())
		}
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn on_idle(_n: BlockNumberFor<T>, remaining: Weight) -> Weight {
			Self::prune(remaining)
		}

		/// The configured maxima fit the block: a full relayed batch, a void of one order of a
		/// full book (so voiding always progresses), a page of settlement with one participant
		/// (so settlement always progresses), a page of pruning, and the call that applies a
		/// clearing of a full book among the most traders an interval may have (so no interval
		/// is too big to clear).
		fn integrity_test() {
			use frame_support::dispatch::DispatchClass;
			let block = <T as frame_system::Config>::BlockWeights::get();
			let max = block.get(DispatchClass::Normal).max_extrinsic.unwrap_or(block.max_block);
			let full = T::MaxOrdersPerInterval::get();
			assert!(full <= 1 << SLOT_BITS, "order ids cannot number a full book");
			assert!(T::BookPageSize::get() > 0, "a book page holds at least one order");
			// A matcher's clearing fills an order completely with each match but the last, so
			// a full book needs fewer matches than it has orders.
			let pages = T::MaxClearingPages::get();
			assert!(
				pages.saturating_mul(T::MaxMatchesPerPage::get()) >= full,
				"a full book's clearing does not fit in MaxClearingPages pages"
			);
			let length = <T as frame_system::Config>::BlockLength::get();
			let page_bytes = T::MaxMatchesPerPage::get() as usize * Match::max_encoded_len();
			assert!(
				page_bytes <= *length.max.get(DispatchClass::Normal) as usize,
				"a full clearing page is longer than a block allows"
			);
			let page = T::MaxMatchesPerPage::get();
			for (what, weight) in [
				(
					"a full clearing page before the last, naming a full book",
					T::WeightInfo::submit_clearing_page(
						page,
						full.div_ceil(T::BookPageSize::get()),
					),
				),
				("a clearing's registration", T::WeightInfo::register_clearing()),
				(
					"applying a clearing of a full book among MaxTradersPerInterval traders",
					Pallet::<T>::submit_clearing_weight(
						BookShape { orders: full, traders: T::MaxTradersPerInterval::get() },
						full,
					),
				),
				(
					"a full relayed batch of one order per trader",
					T::WeightInfo::place_orders_relayed(T::MaxRelayBatch::get(), 0),
				),
				(
					"voiding one order of a full book",
					T::WeightInfo::void_interval(full, 1)
						.saturating_add(T::WeightInfo::register_clearing()),
				),
				("settling one participant", T::WeightInfo::settle_interval(1)),
				("placing an order in an almost full book", T::WeightInfo::place_order()),
			] {
				assert!(
					weight.all_lte(max),
					"{what} does not fit in a block: {weight:?} > {max:?}"
				);
			}
			let prune = T::WeightInfo::prune_tail().saturating_add(T::WeightInfo::prune_orders(1));
			assert!(prune.all_lte(block.max_block), "a page of pruning does not fit in a block");
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}
}
