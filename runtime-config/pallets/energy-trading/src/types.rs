//! The market's data: what orders, clearings, meters and readings look like on chain.
//! The byte layout of the signed messages is the contract with the Python side
//! (`docs/chain-interface.md`): change both together.

use crate::MAX_LINES;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use frame_support::{traits::ConstU32, BoundedVec};
use scale_info::TypeInfo;
use serde::{Deserialize, Serialize};

/// A market interval: interval `k` covers unix milliseconds `[k * interval_ms, (k + 1) * interval_ms)`.
pub type IntervalId = u64;
/// An order's id says where it sits: its interval in the high bits and its slot in the
/// interval's book (placement order) in the low `SLOT_BITS`. So finding an order is reading its
/// book page, with no index of orders to keep (see `Pallet::order`).
pub type OrderId = u64;
/// Bits of an order id that hold its slot in its interval's book: room for 2^20 orders an
/// interval, and ids stay below 2^53 (exact in JSON's numbers) for intervals of a second or more.
pub const SLOT_BITS: u32 = 20;

/// The id of the order in `slot` of `interval`'s book; `None` for an interval too far out to
/// pack (beyond 2^44, half a million years at one-second intervals).
pub fn order_id(interval: IntervalId, slot: u32) -> Option<OrderId> {
	(interval >> (64 - SLOT_BITS) == 0 && slot < 1 << SLOT_BITS)
		.then_some(interval << SLOT_BITS | slot as u64)
}

/// An order id's interval and slot.
pub fn order_place(id: OrderId) -> (IntervalId, u32) {
	(id >> SLOT_BITS, (id & ((1 << SLOT_BITS) - 1)) as u32)
}
/// A grid zone (a feeder, a substation area).
pub type ZoneId = u16;
/// An accredited meter is known by its sr25519 public key.
pub type MeterKey = [u8; 32];
/// An sr25519 signature, raw.
pub type RawSignature = [u8; 64];

/// Domain tags that start every signed message, so a signature for one kind can never pass as another.
pub const ORDER_TAG: &[u8] = b"wattchain:order:v1";
pub const CANCEL_TAG: &[u8] = b"wattchain:cancel:v1";
pub const READING_TAG: &[u8] = b"wattchain:reading:v2";

#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub enum Side {
	Bid,
	Offer,
}

#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	PartialOrd,
	Ord,
	Debug,
	Serialize,
	Deserialize,
)]
pub enum EnergySource {
	Solar,
	Wind,
	Hydro,
	Biomass,
	GridMix,
}

impl EnergySource {
	pub fn is_renewable(self) -> bool {
		!matches!(self, EnergySource::GridMix)
	}
}

#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Serialize,
	Deserialize,
)]
pub enum Mechanism {
	/// Pay-as-clear: one price for every match.
	Uniform,
	/// Every match at the bid's limit; the seller gets it less the grid fee.
	PayAsBid,
	/// One price per zone; the difference across a line pays its grid fee.
	Zonal,
}

/// What an order's owner signs: the order as the market sees it.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct OrderSpec {
	/// Unique per owner; a resubmission with the same id and content is a no-op.
	pub client_order_id: u64,
	pub interval: IntervalId,
	pub side: Side,
	pub quantity_wh: u64,
	/// Limit price, ticks per kWh: the most a bid pays, the least an offer takes.
	pub price_ticks: u64,
	pub zone: ZoneId,
	/// An offer's generation source; bids state `GridMix`.
	pub source: EnergySource,
	/// A bid that takes renewable energy only; offers leave it false.
	pub renewable_only: bool,
}

/// An order signed off-chain by its owner and relayed by anyone.
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
pub struct SignedOrder<AccountId> {
	pub owner: AccountId,
	pub spec: OrderSpec,
	pub signature: RawSignature,
}

/// A cancellation signed off-chain by the order's owner.
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
pub struct SignedCancel<AccountId> {
	pub owner: AccountId,
	pub client_order_id: u64,
	pub signature: RawSignature,
}

#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub enum OrderStatus {
	/// In its interval's book. What the interval's clearing or voiding did to it is the
	/// interval's record, not the order's (`Clearings` and `ClearingMatches`, or `Voided`):
	/// writing an outcome into every order of a book would cost a write per order.
	Open,
	Cancelled,
}

#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct Order<AccountId> {
	pub owner: AccountId,
	pub spec: OrderSpec,
	pub status: OrderStatus,
}

/// What a clearing costs to check and apply besides its matches, as its submitter declares it
/// (an upper bound, checked): the orders in the interval's book, cancelled ones included, and
/// the accounts with open orders there, each of which pays, is paid or gets its hold back once.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Default,
)]
pub struct BookShape {
	pub orders: u32,
	pub traders: u32,
}

/// One trade of a clearing: `quantity_wh` from `offer` to `bid`.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct Match {
	pub bid: OrderId,
	pub offer: OrderId,
	pub quantity_wh: u64,
	/// Ticks per kWh the buyer pays.
	pub buyer_price: u64,
	/// Ticks per kWh the seller receives; the difference goes to the distributor.
	pub seller_price: u64,
}

#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct ZonePrice {
	pub zone: ZoneId,
	pub price: u64,
}

/// A line of the grid between two zones (`a < b`): energy crosses from one zone to the other
/// only over a line, up to `capacity_wh` net per interval in either direction, paying `fee_ticks`
/// per kWh to the distributor either way.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Serialize,
	Deserialize,
)]
pub struct Line {
	pub a: ZoneId,
	pub b: ZoneId,
	pub capacity_wh: u64,
	pub fee_ticks: u64,
}

/// What is kept of an accepted clearing (its matches are stored beside it, in `pages` pages).
#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct ClearingSummary<AccountId, BlockNumber> {
	pub mechanism: Mechanism,
	pub volume_wh: u64,
	pub match_count: u32,
	pub pages: u32,
	pub submitter: AccountId,
	pub block: BlockNumber,
}

/// What the last page of a clearing costs to finish, as its submitter declares it (an upper
/// bound, checked): the interval's book (`BookShape`) and the clearing's matches over all its
/// pages, which the whole-solution checks and the payments go through once more.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Default,
)]
pub struct ClearingWitness {
	pub orders: u32,
	pub traders: u32,
	pub matches: u32,
}

/// A clearing registered and being sent in pages: what its submitter claims, and what the
/// pages verified so far add up to (see `clearing.rs`).
#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct PendingClearing<AccountId, Balance, BlockNumber> {
	pub submitter: AccountId,
	/// Held from the submitter until the clearing is applied (released) or rejected (burned).
	pub deposit: Balance,
	pub mechanism: Mechanism,
	/// The claim: total volume, matches and pages of the whole clearing.
	pub volume_wh: u64,
	pub matches: u32,
	pub pages: u32,
	/// Numbers this registration among the interval's: its fills (`Fills`) carry it, so that
	/// those of a rejected one never count.
	pub attempt: u32,
	/// The pages verified so far (`0..verified_pages`), their matches and energy.
	pub verified_pages: u32,
	pub verified_matches: u32,
	pub verified_wh: u64,
	/// Net flow of the verified matches over each line, `(a, b, Wh from a to b)` with `a < b`.
	pub flows: BoundedVec<(ZoneId, ZoneId, i128), ConstU32<MAX_LINES>>,
	/// The block of the registration or of its latest page: `SubmissionPatience` blocks later
	/// without a page, another submitter may take the interval.
	pub touched: BlockNumber,
}

/// Market parameters the operator sets.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Serialize,
	Deserialize,
)]
pub struct MarketParams {
	pub interval_ms: u64,
	/// Orders for an interval close this long before it starts.
	pub gate_closure_ms: u64,
	pub min_price_ticks: u64,
	pub max_price_ticks: u64,
	pub max_quantity_wh: u64,
	/// The utility's tariff for energy bought to cover a shortfall, ticks per kWh.
	pub utility_tariff_ticks: u64,
	/// What the utility pays for surplus that found no buyer, ticks per kWh.
	pub feed_in_ticks: u64,
	/// How long after an interval's end settlement waits for the readings of its traders'
	/// meters; a reading still missing then is estimated (see `settlement.rs`).
	pub reading_window_ms: u64,
	/// How the interval is cleared. Fixed with the rest when its gate closes, so a submitter
	/// cannot pick the mechanism that suits it on each call.
	pub mechanism: Mechanism,
}

impl Default for MarketParams {
	fn default() -> Self {
		// Fifteen-minute intervals, gate closure one interval ahead; BRL cents per kWh.
		MarketParams {
			interval_ms: 15 * 60 * 1000,
			gate_closure_ms: 15 * 60 * 1000,
			min_price_ticks: 1,
			max_price_ticks: 10_000,
			max_quantity_wh: 1_000_000_000,
			utility_tariff_ticks: 95,
			feed_in_ticks: 30,
			reading_window_ms: 15 * 60 * 1000,
			mechanism: Mechanism::Uniform,
		}
	}
}

impl MarketParams {
	pub fn interval_start(&self, interval: IntervalId) -> u64 {
		interval.saturating_mul(self.interval_ms)
	}
	pub fn gate_closure(&self, interval: IntervalId) -> u64 {
		self.interval_start(interval).saturating_sub(self.gate_closure_ms)
	}
	pub fn interval_end(&self, interval: IntervalId) -> u64 {
		self.interval_start(interval.saturating_add(1))
	}
	/// When settlement stops waiting for readings of `interval` and estimates the missing ones.
	pub fn reading_deadline(&self, interval: IntervalId) -> u64 {
		self.interval_end(interval).saturating_add(self.reading_window_ms)
	}
	pub fn interval_at(&self, now_ms: u64) -> IntervalId {
		now_ms / self.interval_ms.max(1)
	}
}

#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Participant {
	pub zone: ZoneId,
}

/// The last accepted reading of a meter: where the next one must continue.
#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, Copy, PartialEq, Eq, Debug)]
pub struct MeterRegisters {
	pub interval: IntervalId,
	pub counter: u64,
	pub import_wh: u64,
	pub export_wh: u64,
}

#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct Meter<AccountId> {
	pub owner: AccountId,
	pub zone: ZoneId,
	pub source: EnergySource,
	/// Nameplate power; a reading that implies more is implausible. 0 = not checked.
	pub rated_power_w: u32,
	/// `None` until the first reading, which sets the baseline.
	pub last: Option<MeterRegisters>,
}

/// What a meter signs: its cumulative registers at the end of `interval`, under the
/// accreditation `epoch` it was provisioned with (see `MeterEpochs`).
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct MeterReading {
	pub meter: MeterKey,
	/// The meter's accreditation epoch: a reading signed before a re-accreditation never
	/// counts again.
	pub epoch: u32,
	pub interval: IntervalId,
	pub counter: u64,
	pub import_wh: u64,
	pub export_wh: u64,
}

/// Metered energy of one owner in one interval (sum over the owner's meters).
#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MeteredEnergy {
	pub import_wh: u64,
	pub export_wh: u64,
}

/// The energy tokens of one interval, from its readings to its settlement (see `metering.rs`).
#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EnergyPool {
	/// Tokens minted for the interval's metered export and not handed to a buyer yet, Wh.
	pub held_wh: u64,
	/// What sellers delivered on their sales, as measured, Wh: for each seller whose meters
	/// have all reported, the lesser of what it sold and its net export.
	pub delivered_wh: u64,
	/// What buyers took of their purchases, as measured, Wh: for each buyer whose meters have
	/// all reported, the lesser of what it bought and its net import.
	pub taken_wh: u64,
}

impl EnergyPool {
	/// A buyer's tokens for `taken_wh` of measured purchase: all of it when sellers delivered
	/// at least what buyers took, else its share of what they delivered (rounded down).
	/// Handing them out never takes more than the pool holds (`deliver_tokens`).
	pub fn share(&self, taken_wh: u64) -> u64 {
		if self.taken_wh == 0 {
			return 0;
		}
		let covered = self.delivered_wh.min(self.taken_wh) as u128;
		(taken_wh as u128 * covered / self.taken_wh as u128) as u64
	}
}

/// A participant's contracted position in a cleared interval, netted over its matches, and how
/// many of its meters settlement waits for.
#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Position {
	/// Bought minus sold, Wh.
	pub contracted_wh: i64,
	/// The owner's accredited meters when the interval was cleared.
	pub meters: u32,
	/// Readings of the owner's meters accepted for the interval so far.
	pub reported: u32,
	/// What buyers paid for the energy it sold, in balance units: kept by the clearing house
	/// until settlement, which pays it out net of any shortfall.
	pub proceeds: u128,
	/// What its meters measured of its trade once they had all reported
	/// (`measured_trade_wh`), as it went into the interval's energy pool: settlement gives a
	/// buyer its tokens by this same figure.
	pub measured_wh: u64,
}

impl Position {
	pub fn complete(&self) -> bool {
		self.reported >= self.meters
	}

	/// What `energy` measured of the trade, Wh: a buyer's net import up to what it bought, a
	/// seller's net export up to what it sold.
	pub fn measured_trade_wh(&self, energy: &MeteredEnergy) -> u64 {
		let net_import = energy.import_wh as i128 - energy.export_wh as i128;
		let (traded, flow) = match self.contracted_wh > 0 {
			true => (self.contracted_wh as i128, net_import),
			false => (-(self.contracted_wh as i128), -net_import),
		};
		traded.min(flow).max(0) as u64
	}
}

/// Which participants of an interval settlement has reached, and its running totals. Settlement
/// goes through the traders (`Positions`) and then those metered without a trade (`Metered`),
/// in storage-key order, a page per call.
#[derive(Encode, Decode, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug, Default)]
pub struct SettleProgress {
	/// False while in `Positions`, true once in `Metered`.
	pub metered_phase: bool,
	/// The raw storage key of the last participant settled in the current map (empty: none).
	pub last_key: frame_support::BoundedVec<u8, frame_support::traits::ConstU32<128>>,
	pub participants: u32,
	pub estimated: u32,
	pub shortfall_wh: u64,
	pub surplus_wh: u64,
}

/// One participant's settlement line for an interval. Positive energy is net import.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct SettlementLine {
	/// Bought minus sold in the clearing, Wh.
	pub contracted_wh: i64,
	/// Metered import minus export, Wh.
	pub metered_wh: i64,
	/// `metered - contracted`: > 0 bought from the utility, < 0 surplus paid at feed-in.
	pub imbalance_wh: i64,
	/// Money units the participant paid (> 0) or received (< 0) for the imbalance.
	pub amount: i128,
	/// Money units the clearing house paid out for the energy the participant sold (any
	/// shortfall's cost is taken from it first).
	pub proceeds: u128,
	/// Part of `metered_wh` is an estimate: a meter of the participant had not reported by the
	/// reading deadline, so its position counts as delivered or consumed as contracted.
	pub estimated: bool,
	/// Energy already settled (by an earlier estimate) or measured late (a reading for a settled
	/// interval), taken into this line's `metered_wh`: the true-up of earlier estimates, Wh.
	pub trued_up_wh: i64,
}

/// Message bytes an order's owner signs.
pub fn order_message(genesis: &[u8], owner: &[u8], spec: &OrderSpec) -> alloc::vec::Vec<u8> {
	let mut msg =
		alloc::vec::Vec::with_capacity(ORDER_TAG.len() + 64 + OrderSpec::max_encoded_len());
	msg.extend_from_slice(ORDER_TAG);
	msg.extend_from_slice(genesis);
	msg.extend_from_slice(owner);
	spec.encode_to(&mut msg);
	msg
}

/// Message bytes an owner signs to cancel an order.
pub fn cancel_message(genesis: &[u8], owner: &[u8], client_order_id: u64) -> alloc::vec::Vec<u8> {
	let mut msg = alloc::vec::Vec::with_capacity(CANCEL_TAG.len() + 72);
	msg.extend_from_slice(CANCEL_TAG);
	msg.extend_from_slice(genesis);
	msg.extend_from_slice(owner);
	client_order_id.encode_to(&mut msg);
	msg
}

/// Message bytes a meter signs: bound to the chain by its genesis hash, and to the meter's
/// accreditation by the reading's epoch.
pub fn reading_message(genesis: &[u8], reading: &MeterReading) -> alloc::vec::Vec<u8> {
	let mut msg =
		alloc::vec::Vec::with_capacity(READING_TAG.len() + 32 + MeterReading::max_encoded_len());
	msg.extend_from_slice(READING_TAG);
	msg.extend_from_slice(genesis);
	reading.encode_to(&mut msg);
	msg
}
