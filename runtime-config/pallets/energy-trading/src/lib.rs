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
//! metered energy against the contracted positions at the utility's regulated rates.
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
//! - Permissionless (signed): `place_order`, `cancel_order`, `place_orders_relayed`,
//!   `cancel_orders_relayed` (each relayed item carries its owner's sr25519 signature),
//!   `submit_reading` (carries the meter's signature), `transfer_energy`.
//! - Clearing submitters: `submit_clearing`, `settle_interval`.
//! - Market operator: `register_participant`, `accredit_meter`, `revoke_meter`, `set_grid_fee`,
//!   `set_distributor`, `set_clearing_submitter`, `set_market_params`, `set_market_operator`.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

pub mod types;
pub mod weights;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use types::*;
pub use weights::WeightInfo;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use alloc::collections::{btree_map::BTreeMap, btree_set::BTreeSet};
	use frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::{Inspect, InspectHold, Mutate, MutateHold},
			tokens::{Fortitude, Precision, Preservation, Restriction},
			Time,
		},
	};
	use frame_system::pallet_prelude::*;
	use sp_core::sr25519;
	use sp_runtime::{
		traits::{Saturating, Zero},
		SaturatedConversion,
	};

	pub type BalanceOf<T> = <<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;

	#[pallet::pallet]
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
		/// besides the market-operator account in storage.
		type OperatorOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Orders one interval can hold.
		#[pallet::constant]
		type MaxOrdersPerInterval: Get<u32>;
		/// Orders or cancellations in one relayed batch.
		#[pallet::constant]
		type MaxRelayBatch: Get<u32>;
		/// Matches in one clearing.
		#[pallet::constant]
		type MaxMatches: Get<u32>;
		/// Zone prices in one clearing.
		#[pallet::constant]
		type MaxZones: Get<u32>;
		/// Participants with metered energy in one interval (bounds settlement).
		#[pallet::constant]
		type MaxMeteredPerInterval: Get<u32>;
		/// How many intervals ahead an order may be placed.
		#[pallet::constant]
		type MaxIntervalsAhead: Get<u64>;
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
	}

	/// The account that acts as market operator (besides `OperatorOrigin`).
	#[pallet::storage]
	pub type MarketOperator<T: Config> = StorageValue<_, T::AccountId, OptionQuery>;

	/// The distributor: receives grid fees, acts as the utility in settlement.
	#[pallet::storage]
	pub type Distributor<T: Config> = StorageValue<_, T::AccountId, OptionQuery>;

	#[pallet::storage]
	pub type Params<T: Config> = StorageValue<_, MarketParams, ValueQuery>;

	#[pallet::storage]
	pub type Participants<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, Participant, OptionQuery>;

	#[pallet::storage]
	pub type Meters<T: Config> = StorageMap<_, Blake2_128Concat, MeterKey, Meter<T::AccountId>, OptionQuery>;

	/// Grid fee in ticks per kWh for energy flowing from the first zone to the second.
	#[pallet::storage]
	pub type GridFees<T: Config> =
		StorageDoubleMap<_, Twox64Concat, ZoneId, Twox64Concat, ZoneId, u64, ValueQuery>;

	#[pallet::storage]
	pub type ClearingSubmitters<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, (), OptionQuery>;

	#[pallet::storage]
	pub type NextOrderId<T: Config> = StorageValue<_, OrderId, ValueQuery>;

	#[pallet::storage]
	pub type Orders<T: Config> = StorageMap<_, Twox64Concat, OrderId, Order<T::AccountId>, OptionQuery>;

	/// `(owner, client order id)` to order id: what makes a resubmission idempotent.
	#[pallet::storage]
	pub type ClientOrders<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, u64, OrderId, OptionQuery>;

	/// The orders of each interval, in placement order.
	#[pallet::storage]
	pub type IntervalOrders<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, BoundedVec<OrderId, T::MaxOrdersPerInterval>, ValueQuery>;

	#[pallet::storage]
	pub type Clearings<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, ClearingSummary<T::AccountId, BlockNumberFor<T>>, OptionQuery>;

	#[pallet::storage]
	pub type ClearingMatches<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, BoundedVec<Match, T::MaxMatches>, ValueQuery>;

	#[pallet::storage]
	pub type ClearingPrices<T: Config> =
		StorageMap<_, Twox64Concat, IntervalId, BoundedVec<ZonePrice, T::MaxZones>, ValueQuery>;

	/// Energy tokens per account, in Wh (1000 = 1 token = 1 kWh).
	#[pallet::storage]
	pub type EnergyBalance<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, u64, ValueQuery>;

	#[pallet::storage]
	pub type EnergyIssuance<T: Config> = StorageValue<_, u64, ValueQuery>;

	/// Validated metered energy per interval and owner.
	#[pallet::storage]
	pub type Metered<T: Config> =
		StorageDoubleMap<_, Twox64Concat, IntervalId, Blake2_128Concat, T::AccountId, MeteredEnergy, OptionQuery>;

	#[pallet::storage]
	pub type MeteredCount<T: Config> = StorageMap<_, Twox64Concat, IntervalId, u32, ValueQuery>;

	#[pallet::storage]
	pub type Settlements<T: Config> =
		StorageDoubleMap<_, Twox64Concat, IntervalId, Blake2_128Concat, T::AccountId, SettlementLine, OptionQuery>;

	/// Intervals settled, with the block that settled them.
	#[pallet::storage]
	pub type Settled<T: Config> = StorageMap<_, Twox64Concat, IntervalId, BlockNumberFor<T>, OptionQuery>;

	#[pallet::genesis_config]
	#[derive(frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		pub operator: Option<T::AccountId>,
		pub distributor: Option<T::AccountId>,
		pub params: MarketParams,
		pub participants: alloc::vec::Vec<(T::AccountId, ZoneId)>,
		pub clearing_submitters: alloc::vec::Vec<T::AccountId>,
		/// `(from zone, to zone, ticks per kWh)`.
		pub grid_fees: alloc::vec::Vec<(ZoneId, ZoneId, u64)>,
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
			for (from, to, fee) in &self.grid_fees {
				assert!(from != to, "grid fees are for pairs of different zones");
				GridFees::<T>::insert(from, to, fee);
			}
			for (key, owner, zone, source, rated_power_w) in &self.meters {
				Meters::<T>::insert(
					key,
					Meter { owner: owner.clone(), zone: *zone, source: *source, rated_power_w: *rated_power_w, last: None },
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
		MeterAccredited { meter: MeterKey, owner: T::AccountId, zone: ZoneId, source: EnergySource },
		/// A meter's key no longer counts (swap, fault, fraud).
		MeterRevoked { meter: MeterKey },
		/// The grid fee from one zone to another changed.
		GridFeeSet { from: ZoneId, to: ZoneId, fee_ticks: u64 },
		/// The distributor account changed.
		DistributorSet { who: T::AccountId },
		/// An account may (or may no longer) submit clearings and settlements.
		ClearingSubmitterSet { who: T::AccountId, allowed: bool },
		/// Market parameters changed.
		MarketParamsSet { params: MarketParams },
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
		},
		/// An order left the book before gate closure; its hold is released.
		OrderCancelled { order_id: OrderId, owner: T::AccountId, client_order_id: u64 },
		/// One trade of an accepted clearing.
		Traded {
			interval: IntervalId,
			bid: OrderId,
			offer: OrderId,
			buyer: T::AccountId,
			seller: T::AccountId,
			quantity_wh: u64,
			buyer_price: u64,
			seller_price: u64,
		},
		/// A clearing passed every check and was paid out.
		ClearingAccepted {
			interval: IntervalId,
			mechanism: Mechanism,
			volume_wh: u64,
			matches: u32,
			zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
			grid_fees_paid: BalanceOf<T>,
		},
		/// A meter's first reading: the registers later readings are measured from.
		MeterBaselineSet { meter: MeterKey, interval: IntervalId, counter: u64, import_wh: u64, export_wh: u64 },
		/// A validated reading: energy imported and exported since the previous one.
		ReadingAccepted {
			meter: MeterKey,
			owner: T::AccountId,
			interval: IntervalId,
			counter: u64,
			import_wh: u64,
			export_wh: u64,
		},
		/// Energy tokens minted for validated export (Wh).
		EnergyMinted { who: T::AccountId, amount_wh: u64 },
		/// Energy tokens moved between accounts (Wh).
		EnergyTransferred { from: T::AccountId, to: T::AccountId, amount_wh: u64 },
		/// One participant's imbalance settled against the utility.
		ParticipantSettled { interval: IntervalId, who: T::AccountId, line: SettlementLine },
		/// An interval is settled.
		IntervalSettled { interval: IntervalId, participants: u32, shortfall_wh: u64, surplus_wh: u64 },
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
		/// Not enough free balance to hold the bid's maximum cost.
		InsufficientBalance,
		/// An off-chain signature does not verify for its owner or meter.
		BadSignature,
		/// The account id is not an sr25519 public key.
		UnsupportedAccount,
		/// No order with that id (for that owner).
		UnknownOrder,
		/// The order is not open (cleared already).
		OrderNotOpen,
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
		/// A match names a cancelled or already cleared order.
		OrderCancelledOrCleared,
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
		/// An unfilled bid above the price coexists with an unfilled offer below it.
		NotEquilibrium,
		/// No distributor is set, but the clearing or settlement pays one.
		NoDistributor,
		/// The meter is not accredited.
		UnknownMeter,
		/// The meter is accredited already.
		MeterAlreadyAccredited,
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
		/// The interval is not cleared, so it cannot be settled.
		NotCleared,
		/// The interval is settled already.
		AlreadySettled,
		/// Not enough energy tokens.
		InsufficientEnergy,
		/// A grid fee is for two different zones.
		SameZone,
		/// Market parameters are inconsistent (zero interval, min price above max, ...).
		BadParams,
		/// A settlement payment failed (the payer lacks funds).
		SettlementPaymentFailed,
		/// An arithmetic overflow.
		Overflow,
		/// A declared upper bound (orders in the book, matches, metered participants) is below
		/// the real count, so the call was priced too low.
		WitnessTooSmall,
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Register `who` as a participant trading in `zone` (operator).
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::register_participant())]
		pub fn register_participant(origin: OriginFor<T>, who: T::AccountId, zone: ZoneId) -> DispatchResult {
			Self::ensure_operator(origin)?;
			Participants::<T>::insert(&who, Participant { zone });
			Self::deposit_event(Event::ParticipantRegistered { who, zone });
			Ok(())
		}

		/// Accredit a meter's sr25519 key for `owner` (operator).
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
			Self::ensure_operator(origin)?;
			ensure!(!Meters::<T>::contains_key(meter), Error::<T>::MeterAlreadyAccredited);
			Meters::<T>::insert(meter, Meter { owner: owner.clone(), zone, source, rated_power_w, last: None });
			Self::deposit_event(Event::MeterAccredited { meter, owner, zone, source });
			Ok(())
		}

		/// Withdraw a meter's accreditation (operator).
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::revoke_meter())]
		pub fn revoke_meter(origin: OriginFor<T>, meter: MeterKey) -> DispatchResult {
			Self::ensure_operator(origin)?;
			ensure!(Meters::<T>::take(meter).is_some(), Error::<T>::UnknownMeter);
			Self::deposit_event(Event::MeterRevoked { meter });
			Ok(())
		}

		/// Set the grid fee for energy from zone `from` to zone `to` (operator).
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::set_grid_fee())]
		pub fn set_grid_fee(origin: OriginFor<T>, from: ZoneId, to: ZoneId, fee_ticks: u64) -> DispatchResult {
			Self::ensure_operator(origin)?;
			ensure!(from != to, Error::<T>::SameZone);
			GridFees::<T>::insert(from, to, fee_ticks);
			Self::deposit_event(Event::GridFeeSet { from, to, fee_ticks });
			Ok(())
		}

		/// Set the distributor account (operator).
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::set_distributor())]
		pub fn set_distributor(origin: OriginFor<T>, who: T::AccountId) -> DispatchResult {
			Self::ensure_operator(origin)?;
			Distributor::<T>::put(&who);
			Self::deposit_event(Event::DistributorSet { who });
			Ok(())
		}

		/// Allow or disallow `who` to submit clearings and settlements (operator).
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::set_clearing_submitter())]
		pub fn set_clearing_submitter(origin: OriginFor<T>, who: T::AccountId, allowed: bool) -> DispatchResult {
			Self::ensure_operator(origin)?;
			if allowed {
				ClearingSubmitters::<T>::insert(&who, ());
			} else {
				ClearingSubmitters::<T>::remove(&who);
			}
			Self::deposit_event(Event::ClearingSubmitterSet { who, allowed });
			Ok(())
		}

		/// Set the market parameters (operator). The interval length cannot change once
		/// orders exist, because interval ids are derived from it.
		#[pallet::call_index(6)]
		#[pallet::weight(T::WeightInfo::set_market_params())]
		pub fn set_market_params(origin: OriginFor<T>, params: MarketParams) -> DispatchResult {
			Self::ensure_operator(origin)?;
			ensure!(
				params.interval_ms > 0 &&
					params.min_price_ticks <= params.max_price_ticks &&
					params.max_quantity_wh > 0,
				Error::<T>::BadParams
			);
			let old = Params::<T>::get();
			ensure!(
				params.interval_ms == old.interval_ms || NextOrderId::<T>::get() == 0,
				Error::<T>::BadParams
			);
			Params::<T>::put(params);
			Self::deposit_event(Event::MarketParamsSet { params });
			Ok(())
		}

		/// Hand the market-operator role to another account (operator).
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::set_distributor())]
		pub fn set_market_operator(origin: OriginFor<T>, who: T::AccountId) -> DispatchResult {
			Self::ensure_operator(origin)?;
			MarketOperator::<T>::put(&who);
			Self::deposit_event(Event::MarketOperatorSet { who });
			Ok(())
		}

		/// Place an order as its owner. A bid holds `quantity_wh * price_ticks` until its
		/// interval clears. Resubmitting the same client order id with the same content is a no-op.
		#[pallet::call_index(10)]
		#[pallet::weight(T::WeightInfo::place_order())]
		pub fn place_order(origin: OriginFor<T>, spec: OrderSpec) -> DispatchResult {
			let owner = ensure_signed(origin)?;
			Self::do_place_order(owner, spec)
		}

		/// Place orders signed off-chain by their owners. Any account may relay; the batch is
		/// all-or-nothing, and orders already on chain (same owner, id and content) are skipped.
		#[pallet::call_index(11)]
		#[pallet::weight(T::WeightInfo::place_orders_relayed(orders.len() as u32))]
		pub fn place_orders_relayed(
			origin: OriginFor<T>,
			orders: BoundedVec<SignedOrder<T::AccountId>, T::MaxRelayBatch>,
		) -> DispatchResult {
			ensure_signed(origin)?;
			let genesis = Self::genesis_bytes();
			for signed in orders {
				let owner_raw = Self::account_bytes(&signed.owner)?;
				let msg = order_message(&genesis, &owner_raw, &signed.spec);
				Self::verify_sr25519(&signed.signature, &msg, &owner_raw)?;
				Self::do_place_order(signed.owner, signed.spec)?;
			}
			Ok(())
		}

		/// Cancel one of the caller's orders before its gate closes; a bid's hold is released.
		#[pallet::call_index(12)]
		#[pallet::weight(T::WeightInfo::cancel_order())]
		pub fn cancel_order(origin: OriginFor<T>, client_order_id: u64) -> DispatchResult {
			let owner = ensure_signed(origin)?;
			Self::do_cancel(owner, client_order_id)
		}

		/// Cancellations signed off-chain by the orders' owners; all-or-nothing. Cancelling an
		/// order that is cancelled already is a no-op, so a relayer may retry safely.
		#[pallet::call_index(13)]
		#[pallet::weight(T::WeightInfo::cancel_orders_relayed(cancels.len() as u32))]
		pub fn cancel_orders_relayed(
			origin: OriginFor<T>,
			cancels: BoundedVec<SignedCancel<T::AccountId>, T::MaxRelayBatch>,
		) -> DispatchResult {
			ensure_signed(origin)?;
			let genesis = Self::genesis_bytes();
			for c in cancels {
				let owner_raw = Self::account_bytes(&c.owner)?;
				let msg = cancel_message(&genesis, &owner_raw, c.client_order_id);
				Self::verify_sr25519(&c.signature, &msg, &owner_raw)?;
				Self::do_cancel(c.owner, c.client_order_id)?;
			}
			Ok(())
		}

		/// Submit the clearing of `interval` (clearing submitters). It is checked in full and
		/// either applied whole, paying sellers and the distributor from the buyers' holds and
		/// releasing every remaining hold of the interval, or rejected with the first failed check.
		/// `book_orders` is an upper bound of the orders in the interval's book (cancelled ones
		/// included): the call is priced by it before it runs, and refunded to the real count.
		#[pallet::call_index(20)]
		#[pallet::weight(T::WeightInfo::submit_clearing(
			(*book_orders).min(T::MaxOrdersPerInterval::get()),
			matches.len() as u32,
		))]
		pub fn submit_clearing(
			origin: OriginFor<T>,
			interval: IntervalId,
			mechanism: Mechanism,
			volume_wh: u64,
			zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
			matches: BoundedVec<Match, T::MaxMatches>,
			book_orders: u32,
		) -> DispatchResultWithPostInfo {
			let submitter = ensure_signed(origin)?;
			ensure!(ClearingSubmitters::<T>::contains_key(&submitter), Error::<T>::NotClearingSubmitter);
			ensure!(
				IntervalOrders::<T>::decode_len(interval).unwrap_or(0) as u32 <= book_orders,
				Error::<T>::WitnessTooSmall
			);
			let orders_in_book = Self::do_clearing(submitter, interval, mechanism, volume_wh, zone_prices, &matches)?;
			Ok(Some(T::WeightInfo::submit_clearing(orders_in_book, matches.len() as u32)).into())
		}

		/// Submit a meter's signed reading for an interval that has ended. The first reading of
		/// a meter sets its baseline; later ones must continue its counter and registers.
		/// Exported energy mints energy tokens to the meter's owner.
		#[pallet::call_index(30)]
		#[pallet::weight(T::WeightInfo::submit_reading())]
		pub fn submit_reading(origin: OriginFor<T>, reading: MeterReading, signature: RawSignature) -> DispatchResult {
			ensure_signed(origin)?;
			Self::do_reading(reading, signature)
		}

		/// Move energy tokens (Wh) to another account, e.g. to retire certificates.
		#[pallet::call_index(31)]
		#[pallet::weight(T::WeightInfo::transfer_energy())]
		pub fn transfer_energy(origin: OriginFor<T>, to: T::AccountId, amount_wh: u64) -> DispatchResult {
			let from = ensure_signed(origin)?;
			EnergyBalance::<T>::try_mutate(&from, |b| -> DispatchResult {
				*b = b.checked_sub(amount_wh).ok_or(Error::<T>::InsufficientEnergy)?;
				Ok(())
			})?;
			EnergyBalance::<T>::try_mutate(&to, |b| -> DispatchResult {
				*b = b.checked_add(amount_wh).ok_or(Error::<T>::Overflow)?;
				Ok(())
			})?;
			Self::deposit_event(Event::EnergyTransferred { from, to, amount_wh });
			Ok(())
		}

		/// Settle a cleared interval against its metered energy (clearing submitters). Each
		/// participant's imbalance (metered minus contracted) is bought from the distributor at
		/// the utility tariff (shortfall) or paid by it at the feed-in rate (surplus).
		/// `matches` and `metered` are upper bounds of the interval's matches and metered
		/// participants, which price the call before it runs.
		#[pallet::call_index(40)]
		#[pallet::weight(T::WeightInfo::settle_interval(
			(*matches).min(T::MaxMatches::get()),
			(*metered).min(T::MaxMeteredPerInterval::get()),
		))]
		pub fn settle_interval(
			origin: OriginFor<T>,
			interval: IntervalId,
			matches: u32,
			metered: u32,
		) -> DispatchResultWithPostInfo {
			let submitter = ensure_signed(origin)?;
			ensure!(ClearingSubmitters::<T>::contains_key(&submitter), Error::<T>::NotClearingSubmitter);
			ensure!(
				ClearingMatches::<T>::decode_len(interval).unwrap_or(0) as u32 <= matches &&
					MeteredCount::<T>::get(interval) <= metered,
				Error::<T>::WitnessTooSmall
			);
			let (matches, metered) = Self::do_settle(interval)?;
			Ok(Some(T::WeightInfo::settle_interval(matches, metered)).into())
		}
	}

	impl<T: Config> Pallet<T> {
		fn ensure_operator(origin: OriginFor<T>) -> DispatchResult {
			if T::OperatorOrigin::try_origin(origin.clone()).is_ok() {
				return Ok(());
			}
			let who = ensure_signed(origin)?;
			ensure!(MarketOperator::<T>::get().as_ref() == Some(&who), DispatchError::BadOrigin);
			Ok(())
		}

		pub fn now_ms() -> u64 {
			T::Time::now()
		}

		fn genesis_bytes() -> alloc::vec::Vec<u8> {
			frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero()).encode()
		}

		fn account_bytes(who: &T::AccountId) -> Result<[u8; 32], DispatchError> {
			who.encode().try_into().map_err(|_| Error::<T>::UnsupportedAccount.into())
		}

		fn verify_sr25519(signature: &RawSignature, msg: &[u8], public: &[u8; 32]) -> DispatchResult {
			let sig = sr25519::Signature::from_raw(*signature);
			let key = sr25519::Public::from_raw(*public);
			ensure!(sp_io::crypto::sr25519_verify(&sig, msg, &key), Error::<T>::BadSignature);
			Ok(())
		}

		/// Money for `quantity_wh` at `price_ticks` per kWh, in balance units (1/1000 tick).
		fn cost(price_ticks: u64, quantity_wh: u64) -> BalanceOf<T> {
			((price_ticks as u128) * (quantity_wh as u128)).saturated_into()
		}

		pub(crate) fn do_place_order(owner: T::AccountId, spec: OrderSpec) -> DispatchResult {
			if let Some(existing) = ClientOrders::<T>::get(&owner, spec.client_order_id) {
				let order = Orders::<T>::get(existing).ok_or(Error::<T>::UnknownOrder)?;
				ensure!(order.spec == spec, Error::<T>::ClientOrderIdReused);
				return Ok(());
			}
			let participant = Participants::<T>::get(&owner).ok_or(Error::<T>::NotRegistered)?;
			ensure!(participant.zone == spec.zone, Error::<T>::WrongZone);
			let params = Params::<T>::get();
			ensure!(spec.quantity_wh > 0, Error::<T>::ZeroQuantity);
			ensure!(spec.quantity_wh <= params.max_quantity_wh, Error::<T>::QuantityTooLarge);
			ensure!(
				spec.price_ticks >= params.min_price_ticks && spec.price_ticks <= params.max_price_ticks,
				Error::<T>::PriceOutOfBounds
			);
			ensure!(!(spec.side == Side::Offer && spec.renewable_only), Error::<T>::InvalidEnergyConstraint);
			let now = Self::now_ms();
			ensure!(now < params.gate_closure(spec.interval), Error::<T>::GateClosed);
			let current = params.interval_at(now);
			ensure!(
				spec.interval <= current.saturating_add(T::MaxIntervalsAhead::get()),
				Error::<T>::IntervalTooFarAhead
			);
			let order_id = NextOrderId::<T>::get();
			IntervalOrders::<T>::try_mutate(spec.interval, |ids| ids.try_push(order_id))
				.map_err(|_| Error::<T>::IntervalFull)?;
			if spec.side == Side::Bid {
				T::Currency::hold(&HoldReason::BidReserve.into(), &owner, Self::cost(spec.price_ticks, spec.quantity_wh))
					.map_err(|_| Error::<T>::InsufficientBalance)?;
			}
			NextOrderId::<T>::put(order_id.checked_add(1).ok_or(Error::<T>::Overflow)?);
			ClientOrders::<T>::insert(&owner, spec.client_order_id, order_id);
			Orders::<T>::insert(order_id, Order { owner: owner.clone(), spec, status: OrderStatus::Open });
			Self::deposit_event(Event::OrderPlaced {
				order_id,
				owner,
				client_order_id: spec.client_order_id,
				interval: spec.interval,
				side: spec.side,
				quantity_wh: spec.quantity_wh,
				price_ticks: spec.price_ticks,
				zone: spec.zone,
			});
			Ok(())
		}

		fn do_cancel(owner: T::AccountId, client_order_id: u64) -> DispatchResult {
			let order_id = ClientOrders::<T>::get(&owner, client_order_id).ok_or(Error::<T>::UnknownOrder)?;
			let mut order = Orders::<T>::get(order_id).ok_or(Error::<T>::UnknownOrder)?;
			match order.status {
				OrderStatus::Cancelled => return Ok(()),
				OrderStatus::Cleared { .. } => return Err(Error::<T>::OrderNotOpen.into()),
				OrderStatus::Open => {},
			}
			let params = Params::<T>::get();
			ensure!(Self::now_ms() < params.gate_closure(order.spec.interval), Error::<T>::GateClosed);
			if order.spec.side == Side::Bid {
				T::Currency::release(
					&HoldReason::BidReserve.into(),
					&owner,
					Self::cost(order.spec.price_ticks, order.spec.quantity_wh),
					Precision::Exact,
				)?;
			}
			order.status = OrderStatus::Cancelled;
			Orders::<T>::insert(order_id, order);
			Self::deposit_event(Event::OrderCancelled { order_id, owner, client_order_id });
			Ok(())
		}

		/// Checks a clearing against the interval's book and applies it. Returns the number of
		/// orders in the book (for the weight).
		fn do_clearing(
			submitter: T::AccountId,
			interval: IntervalId,
			mechanism: Mechanism,
			volume_wh: u64,
			zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
			matches: &[Match],
		) -> Result<u32, DispatchError> {
			let params = Params::<T>::get();
			ensure!(!Clearings::<T>::contains_key(interval), Error::<T>::AlreadyCleared);
			ensure!(Self::now_ms() >= params.gate_closure(interval), Error::<T>::GateNotClosed);

			let ids = IntervalOrders::<T>::get(interval);
			let mut book: BTreeMap<OrderId, (Order<T::AccountId>, u64)> = BTreeMap::new();
			for id in ids.iter() {
				if let Some(order) = Orders::<T>::get(id) {
					book.insert(*id, (order, 0));
				}
			}

			let prices = Self::check_zone_prices(mechanism, &zone_prices, matches.is_empty())?;
			let mut total: u64 = 0;
			for m in matches {
				ensure!(m.quantity_wh > 0, Error::<T>::ZeroQuantityMatch);
				let (bid_zone, bid_limit, renewable_only) = {
					let (bid, filled) = book.get_mut(&m.bid).ok_or(Error::<T>::OrderNotInInterval)?;
					ensure!(bid.spec.side == Side::Bid, Error::<T>::WrongSide);
					ensure!(bid.status == OrderStatus::Open, Error::<T>::OrderCancelledOrCleared);
					*filled = filled.checked_add(m.quantity_wh).ok_or(Error::<T>::Overflow)?;
					ensure!(*filled <= bid.spec.quantity_wh, Error::<T>::Overfilled);
					(bid.spec.zone, bid.spec.price_ticks, bid.spec.renewable_only)
				};
				let (offer_zone, offer_limit, source) = {
					let (offer, filled) = book.get_mut(&m.offer).ok_or(Error::<T>::OrderNotInInterval)?;
					ensure!(offer.spec.side == Side::Offer, Error::<T>::WrongSide);
					ensure!(offer.status == OrderStatus::Open, Error::<T>::OrderCancelledOrCleared);
					*filled = filled.checked_add(m.quantity_wh).ok_or(Error::<T>::Overflow)?;
					ensure!(*filled <= offer.spec.quantity_wh, Error::<T>::Overfilled);
					(offer.spec.zone, offer.spec.price_ticks, offer.spec.source)
				};
				ensure!(m.buyer_price <= bid_limit, Error::<T>::BidLimitExceeded);
				ensure!(m.seller_price >= offer_limit, Error::<T>::OfferLimitViolated);
				let fee = if offer_zone == bid_zone { 0 } else { GridFees::<T>::get(offer_zone, bid_zone) };
				ensure!(
					m.buyer_price >= m.seller_price && m.buyer_price - m.seller_price >= fee,
					Error::<T>::GridFeeNotCovered
				);
				ensure!(!renewable_only || source.is_renewable(), Error::<T>::EnergyTypeMismatch);
				let prescribed = match mechanism {
					Mechanism::Uniform => {
						let p = prices.get(&None).copied().ok_or(Error::<T>::BadZonePrices)?;
						m.buyer_price == p && m.seller_price == p
					},
					Mechanism::PayAsBid => m.buyer_price == bid_limit && m.seller_price == bid_limit - fee,
					Mechanism::Zonal => {
						let pb = prices.get(&Some(bid_zone)).ok_or(Error::<T>::BadZonePrices)?;
						let ps = prices.get(&Some(offer_zone)).ok_or(Error::<T>::BadZonePrices)?;
						m.buyer_price == *pb && m.seller_price == *ps
					},
				};
				ensure!(prescribed, Error::<T>::PriceNotPerMechanism);
				total = total.checked_add(m.quantity_wh).ok_or(Error::<T>::Overflow)?;
			}
			ensure!(total == volume_wh, Error::<T>::UnbalancedEnergy);
			Self::check_equilibrium(mechanism, &prices, &book)?;

			// Every check passed: pay out, then release what is left of each bid's hold.
			let reason: T::RuntimeHoldReason = HoldReason::BidReserve.into();
			let mut fees_paid: BalanceOf<T> = Zero::zero();
			let mut paid_by_bid: BTreeMap<OrderId, BalanceOf<T>> = BTreeMap::new();
			let distributor = Distributor::<T>::get();
			for m in matches {
				let (bid, _) = book.get(&m.bid).ok_or(Error::<T>::OrderNotInInterval)?;
				let (offer, _) = book.get(&m.offer).ok_or(Error::<T>::OrderNotInInterval)?;
				let to_seller = Self::cost(m.seller_price, m.quantity_wh);
				let to_grid = Self::cost(m.buyer_price - m.seller_price, m.quantity_wh);
				if !to_seller.is_zero() {
					T::Currency::transfer_on_hold(
						&reason,
						&bid.owner,
						&offer.owner,
						to_seller,
						Precision::Exact,
						Restriction::Free,
						Fortitude::Polite,
					)?;
				}
				if !to_grid.is_zero() {
					let grid = distributor.as_ref().ok_or(Error::<T>::NoDistributor)?;
					T::Currency::transfer_on_hold(
						&reason,
						&bid.owner,
						grid,
						to_grid,
						Precision::Exact,
						Restriction::Free,
						Fortitude::Polite,
					)?;
					fees_paid = fees_paid.saturating_add(to_grid);
				}
				let paid = paid_by_bid.entry(m.bid).or_insert_with(Zero::zero);
				*paid = paid.saturating_add(to_seller.saturating_add(to_grid));
				Self::deposit_event(Event::Traded {
					interval,
					bid: m.bid,
					offer: m.offer,
					buyer: bid.owner.clone(),
					seller: offer.owner.clone(),
					quantity_wh: m.quantity_wh,
					buyer_price: m.buyer_price,
					seller_price: m.seller_price,
				});
			}
			for (id, (mut order, filled)) in book {
				if order.status != OrderStatus::Open {
					continue;
				}
				if order.spec.side == Side::Bid {
					let held = Self::cost(order.spec.price_ticks, order.spec.quantity_wh);
					let paid = paid_by_bid.get(&id).copied().unwrap_or_else(Zero::zero);
					let rest = held.saturating_sub(paid);
					if !rest.is_zero() {
						T::Currency::release(&reason, &order.owner, rest, Precision::Exact)?;
					}
				}
				order.status = OrderStatus::Cleared { filled_wh: filled };
				Orders::<T>::insert(id, order);
			}

			let match_count = matches.len() as u32;
			let bounded: BoundedVec<Match, T::MaxMatches> =
				matches.to_vec().try_into().map_err(|_| Error::<T>::Overflow)?;
			ClearingMatches::<T>::insert(interval, bounded);
			ClearingPrices::<T>::insert(interval, zone_prices.clone());
			Clearings::<T>::insert(
				interval,
				ClearingSummary {
					mechanism,
					volume_wh,
					match_count,
					submitter,
					block: frame_system::Pallet::<T>::block_number(),
				},
			);
			Self::deposit_event(Event::ClearingAccepted {
				interval,
				mechanism,
				volume_wh,
				matches: match_count,
				zone_prices,
				grid_fees_paid: fees_paid,
			});
			Ok(ids.len() as u32)
		}

		/// Zone prices as a map: `None` is the single uniform price, `Some(zone)` a zonal one.
		fn check_zone_prices(
			mechanism: Mechanism,
			zone_prices: &[ZonePrice],
			no_matches: bool,
		) -> Result<BTreeMap<Option<ZoneId>, u64>, DispatchError> {
			let mut prices = BTreeMap::new();
			match mechanism {
				Mechanism::Uniform => {
					ensure!(zone_prices.len() == 1 || (no_matches && zone_prices.is_empty()), Error::<T>::BadZonePrices);
					if let Some(zp) = zone_prices.first() {
						prices.insert(None, zp.price);
					}
				},
				Mechanism::PayAsBid => ensure!(zone_prices.is_empty(), Error::<T>::BadZonePrices),
				Mechanism::Zonal =>
					for zp in zone_prices {
						ensure!(prices.insert(Some(zp.zone), zp.price).is_none(), Error::<T>::BadZonePrices);
					},
			}
			Ok(prices)
		}

		/// No gains from trade may be left at the price: an unfilled bid above it and an
		/// unfilled offer below it, that could trade with each other, reject the clearing.
		/// Without a price (pay-as-bid, or nothing matched), no unfilled bid may reach an
		/// unfilled offer's limit at all.
		fn check_equilibrium(
			mechanism: Mechanism,
			prices: &BTreeMap<Option<ZoneId>, u64>,
			book: &BTreeMap<OrderId, (Order<T::AccountId>, u64)>,
		) -> DispatchResult {
			// Per pricing group (the whole book, or one zone): the cheapest unfilled offer
			// overall and the cheapest renewable one; the dearest unfilled bid that takes any
			// energy and the dearest renewable-only one.
			#[derive(Default, Clone, Copy)]
			struct Extremes {
				min_offer: Option<u64>,
				min_renewable_offer: Option<u64>,
				max_bid_any: Option<u64>,
				max_bid_renewable: Option<u64>,
			}
			let group_of = |zone: ZoneId| -> Option<Option<ZoneId>> {
				match mechanism {
					Mechanism::Zonal => prices.contains_key(&Some(zone)).then_some(Some(zone)),
					_ => Some(None),
				}
			};
			let mut groups: BTreeMap<Option<ZoneId>, Extremes> = BTreeMap::new();
			for (order, filled) in book.values() {
				if order.status != OrderStatus::Open || *filled >= order.spec.quantity_wh {
					continue;
				}
				let Some(group) = group_of(order.spec.zone) else { continue };
				let e = groups.entry(group).or_default();
				let p = order.spec.price_ticks;
				let lower = |slot: &mut Option<u64>| *slot = Some(slot.map_or(p, |v| v.min(p)));
				let raise = |slot: &mut Option<u64>| *slot = Some(slot.map_or(p, |v| v.max(p)));
				match order.spec.side {
					Side::Offer => {
						lower(&mut e.min_offer);
						if order.spec.source.is_renewable() {
							lower(&mut e.min_renewable_offer);
						}
					},
					Side::Bid if order.spec.renewable_only => raise(&mut e.max_bid_renewable),
					Side::Bid => raise(&mut e.max_bid_any),
				}
			}
			for (group, e) in groups {
				let price = prices.get(&group).copied().filter(|_| mechanism != Mechanism::PayAsBid);
				let crosses = |bid: Option<u64>, offer: Option<u64>| match (bid, offer, price) {
					(Some(b), Some(o), Some(p)) => b > p && o < p,
					(Some(b), Some(o), None) => b > o,
					_ => false,
				};
				ensure!(
					!crosses(e.max_bid_any, e.min_offer) && !crosses(e.max_bid_renewable, e.min_renewable_offer),
					Error::<T>::NotEquilibrium
				);
			}
			Ok(())
		}

		fn do_reading(reading: MeterReading, signature: RawSignature) -> DispatchResult {
			let mut meter = Meters::<T>::get(reading.meter).ok_or(Error::<T>::UnknownMeter)?;
			Self::verify_sr25519(&signature, &reading_message(&reading), &reading.meter)?;
			let params = Params::<T>::get();
			ensure!(Self::now_ms() >= params.interval_end(reading.interval), Error::<T>::IntervalNotEnded);
			let now = MeterRegisters {
				interval: reading.interval,
				counter: reading.counter,
				import_wh: reading.import_wh,
				export_wh: reading.export_wh,
			};
			let Some(last) = meter.last else {
				meter.last = Some(now);
				Meters::<T>::insert(reading.meter, meter);
				Self::deposit_event(Event::MeterBaselineSet {
					meter: reading.meter,
					interval: reading.interval,
					counter: reading.counter,
					import_wh: reading.import_wh,
					export_wh: reading.export_wh,
				});
				return Ok(());
			};
			ensure!(reading.counter > last.counter, Error::<T>::ReadingReplayed);
			ensure!(Some(reading.counter) == last.counter.checked_add(1), Error::<T>::CounterGap);
			ensure!(reading.interval > last.interval, Error::<T>::IntervalNotAfterLast);
			ensure!(
				reading.import_wh >= last.import_wh && reading.export_wh >= last.export_wh,
				Error::<T>::RegisterBackwards
			);
			let import_wh = reading.import_wh - last.import_wh;
			let export_wh = reading.export_wh - last.export_wh;
			if meter.rated_power_w > 0 {
				// Energy over the intervals since the last reading cannot exceed nameplate power.
				let hours_ms = (reading.interval - last.interval).saturating_mul(params.interval_ms);
				let max_wh = (meter.rated_power_w as u128) * (hours_ms as u128) / 3_600_000;
				ensure!(
					(import_wh as u128) <= max_wh && (export_wh as u128) <= max_wh,
					Error::<T>::ImplausibleReading
				);
			}
			let owner = meter.owner.clone();
			let existing = Metered::<T>::get(reading.interval, &owner);
			if existing.is_none() {
				MeteredCount::<T>::try_mutate(reading.interval, |n| -> DispatchResult {
					ensure!(*n < T::MaxMeteredPerInterval::get(), Error::<T>::TooManyMetered);
					*n += 1;
					Ok(())
				})?;
			}
			let mut energy = existing.unwrap_or_default();
			energy.import_wh = energy.import_wh.checked_add(import_wh).ok_or(Error::<T>::Overflow)?;
			energy.export_wh = energy.export_wh.checked_add(export_wh).ok_or(Error::<T>::Overflow)?;
			Metered::<T>::insert(reading.interval, &owner, energy);
			meter.last = Some(now);
			Meters::<T>::insert(reading.meter, meter);
			if export_wh > 0 {
				EnergyBalance::<T>::try_mutate(&owner, |b| -> DispatchResult {
					*b = b.checked_add(export_wh).ok_or(Error::<T>::Overflow)?;
					Ok(())
				})?;
				EnergyIssuance::<T>::try_mutate(|i| -> DispatchResult {
					*i = i.checked_add(export_wh).ok_or(Error::<T>::Overflow)?;
					Ok(())
				})?;
				Self::deposit_event(Event::EnergyMinted { who: owner.clone(), amount_wh: export_wh });
			}
			Self::deposit_event(Event::ReadingAccepted {
				meter: reading.meter,
				owner,
				interval: reading.interval,
				counter: reading.counter,
				import_wh,
				export_wh,
			});
			Ok(())
		}

		/// Returns (matches read, participants metered) for the weight.
		fn do_settle(interval: IntervalId) -> Result<(u32, u32), DispatchError> {
			ensure!(Clearings::<T>::contains_key(interval), Error::<T>::NotCleared);
			ensure!(!Settled::<T>::contains_key(interval), Error::<T>::AlreadySettled);
			let params = Params::<T>::get();
			ensure!(Self::now_ms() >= params.interval_end(interval), Error::<T>::IntervalNotEnded);

			let matches = ClearingMatches::<T>::get(interval);
			let mut contracted: BTreeMap<T::AccountId, i128> = BTreeMap::new();
			for m in matches.iter() {
				let buyer = Orders::<T>::get(m.bid).ok_or(Error::<T>::UnknownOrder)?.owner;
				let seller = Orders::<T>::get(m.offer).ok_or(Error::<T>::UnknownOrder)?.owner;
				*contracted.entry(buyer).or_default() += m.quantity_wh as i128;
				*contracted.entry(seller).or_default() -= m.quantity_wh as i128;
			}
			let mut metered: BTreeMap<T::AccountId, i128> = BTreeMap::new();
			for (who, e) in Metered::<T>::iter_prefix(interval) {
				metered.insert(who, e.import_wh as i128 - e.export_wh as i128);
			}
			let metered_count = metered.len() as u32;
			let everyone: BTreeSet<T::AccountId> = contracted.keys().chain(metered.keys()).cloned().collect();
			let mut shortfall_wh: u64 = 0;
			let mut surplus_wh: u64 = 0;
			let mut distributor: Option<T::AccountId> = None;
			for who in everyone.iter() {
				let c = contracted.get(who).copied().unwrap_or(0);
				let mtr = metered.get(who).copied().unwrap_or(0);
				let imbalance = mtr - c;
				let rate = if imbalance > 0 { params.utility_tariff_ticks } else { params.feed_in_ticks };
				let amount = imbalance.checked_mul(rate as i128).ok_or(Error::<T>::Overflow)?;
				if amount != 0 {
					if distributor.is_none() {
						distributor = Some(Distributor::<T>::get().ok_or(Error::<T>::NoDistributor)?);
					}
					let grid = distributor.as_ref().ok_or(Error::<T>::NoDistributor)?;
					let (from, to) = if amount > 0 { (who, grid) } else { (grid, who) };
					let value: BalanceOf<T> = amount.unsigned_abs().saturated_into();
					if from != to {
						T::Currency::transfer(from, to, value, Preservation::Expendable)
							.map_err(|_| Error::<T>::SettlementPaymentFailed)?;
					}
				}
				if imbalance > 0 {
					shortfall_wh = shortfall_wh.saturating_add(imbalance as u64);
				} else {
					surplus_wh = surplus_wh.saturating_add(imbalance.unsigned_abs() as u64);
				}
				let clamp = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
				let line = SettlementLine {
					contracted_wh: clamp(c),
					metered_wh: clamp(mtr),
					imbalance_wh: clamp(imbalance),
					amount,
				};
				Settlements::<T>::insert(interval, who, line);
				Self::deposit_event(Event::ParticipantSettled { interval, who: who.clone(), line });
			}
			Settled::<T>::insert(interval, frame_system::Pallet::<T>::block_number());
			Self::deposit_event(Event::IntervalSettled {
				interval,
				participants: everyone.len() as u32,
				shortfall_wh,
				surplus_wh,
			});
			Ok((matches.len() as u32, metered_count))
		}

		/// Invariants that hold after every call: each account's bid hold equals the maximum
		/// cost of its open bids, and energy tokens add up to their issuance.
		#[cfg(any(feature = "try-runtime", test))]
		pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
			let mut expected: BTreeMap<T::AccountId, u128> = BTreeMap::new();
			for (_, order) in Orders::<T>::iter() {
				if order.status == OrderStatus::Open && order.spec.side == Side::Bid {
					*expected.entry(order.owner.clone()).or_default() +=
						order.spec.price_ticks as u128 * order.spec.quantity_wh as u128;
				}
			}
			let reason: T::RuntimeHoldReason = HoldReason::BidReserve.into();
			for (who, want) in expected.iter() {
				let held: u128 = T::Currency::balance_on_hold(&reason, who).saturated_into();
				ensure!(held == *want, "bid hold differs from the open bids' maximum cost");
			}
			for (who, _) in Participants::<T>::iter() {
				if !expected.contains_key(&who) {
					let held: u128 = T::Currency::balance_on_hold(&reason, &who).saturated_into();
					ensure!(held == 0, "funds held for an account without open bids");
				}
			}
			let sum: u128 = EnergyBalance::<T>::iter_values().map(|v| v as u128).sum();
			ensure!(sum == EnergyIssuance::<T>::get() as u128, "energy tokens do not add up to issuance");
			Ok(())
		}
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

}
