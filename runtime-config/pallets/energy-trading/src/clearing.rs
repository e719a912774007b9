//! Clearing: an authorized submitter posts an interval's matches and prices after gate closure,
//! and the pallet re-checks all of it against the book (limits, quantities, grid fees, the
//! mechanism's price rule, no gains from trade left) before paying out from the buyers' holds.

use crate::{
	BalanceOf, ClearingMatches, ClearingPrices, ClearingSummary, Clearings, Config, Distributor,
	Error, Event, GridFees, HoldReason, IntervalId, IntervalOrders, Match, Mechanism, Order,
	OrderId, OrderStatus, Orders, Pallet, Params, Side, Voided, ZoneId, ZonePrice,
};
use alloc::collections::btree_map::BTreeMap;
use frame_support::{
	ensure,
	pallet_prelude::{BoundedVec, DispatchResult},
	traits::{
		fungible::MutateHold,
		tokens::{Fortitude, Precision, Restriction},
	},
};
use sp_runtime::{
	traits::{Saturating, Zero},
	DispatchError,
};

impl<T: Config> Pallet<T> {
	/// Checks that `book_orders` covers the interval's book (it priced the call), then checks
	/// and applies the clearing. Returns the number of orders in the book (for the weight).
	pub(crate) fn do_submit_clearing(
		submitter: T::AccountId,
		interval: IntervalId,
		mechanism: Mechanism,
		volume_wh: u64,
		zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
		matches: &[Match],
		book_orders: u32,
	) -> Result<u32, DispatchError> {
		ensure!(
			IntervalOrders::<T>::decode_len(interval).unwrap_or(0) as u32 <= book_orders,
			Error::<T>::WitnessTooSmall
		);
		Self::do_clearing(submitter, interval, mechanism, volume_wh, zone_prices, matches)
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
		Self::ensure_not_pruned(interval)?;
		let params = Params::<T>::get();
		ensure!(!Clearings::<T>::contains_key(interval), Error::<T>::AlreadyCleared);
		ensure!(!Voided::<T>::contains_key(interval), Error::<T>::AlreadyVoided);
		let now = Self::now_ms();
		ensure!(now >= params.gate_closure(interval), Error::<T>::GateNotClosed);
		// After its end the interval belongs to `void_interval`, which may have begun.
		ensure!(now < params.interval_end(interval), Error::<T>::ClearingDeadlinePassed);

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
				let (offer, filled) =
					book.get_mut(&m.offer).ok_or(Error::<T>::OrderNotInInterval)?;
				ensure!(offer.spec.side == Side::Offer, Error::<T>::WrongSide);
				ensure!(offer.status == OrderStatus::Open, Error::<T>::OrderCancelledOrCleared);
				*filled = filled.checked_add(m.quantity_wh).ok_or(Error::<T>::Overflow)?;
				ensure!(*filled <= offer.spec.quantity_wh, Error::<T>::Overfilled);
				(offer.spec.zone, offer.spec.price_ticks, offer.spec.source)
			};
			ensure!(m.buyer_price <= bid_limit, Error::<T>::BidLimitExceeded);
			ensure!(m.seller_price >= offer_limit, Error::<T>::OfferLimitViolated);
			let fee =
				if offer_zone == bid_zone { 0 } else { GridFees::<T>::get(offer_zone, bid_zone) };
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
				Mechanism::PayAsBid => {
					m.buyer_price == bid_limit && m.seller_price == bid_limit - fee
				},
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
				submitter: submitter.clone(),
				block: frame_system::Pallet::<T>::block_number(),
			},
		);
		Self::deposit_event(Event::ClearingAccepted {
			interval,
			submitter,
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
				ensure!(
					zone_prices.len() == 1 || (no_matches && zone_prices.is_empty()),
					Error::<T>::BadZonePrices
				);
				if let Some(zp) = zone_prices.first() {
					prices.insert(None, zp.price);
				}
			},
			Mechanism::PayAsBid => ensure!(zone_prices.is_empty(), Error::<T>::BadZonePrices),
			Mechanism::Zonal => {
				for zp in zone_prices {
					ensure!(
						prices.insert(Some(zp.zone), zp.price).is_none(),
						Error::<T>::BadZonePrices
					);
				}
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
				!crosses(e.max_bid_any, e.min_offer)
					&& !crosses(e.max_bid_renewable, e.min_renewable_offer),
				Error::<T>::NotEquilibrium
			);
		}
		Ok(())
	}
}
