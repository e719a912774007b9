//! Clearing: an authorized submitter posts an interval's matches and prices after gate closure,
//! and the pallet re-checks all of it against the book and the grid (limits, quantities, lines
//! and their capacities and fees, the mechanism's price rule, no gains from trade left) before
//! paying out from the buyers' holds.
//!
//! **A clearing is sent in pages**, so that a city's interval fits however many blocks it
//! needs (the model is the signed phase of the multi-block election):
//! 1. `register_clearing` claims the clearing's mechanism, zone prices, volume, match count
//!    and page count, and holds the submitter's deposit (`ClearingDeposit`). One registration
//!    per interval is live; one that sends no page for `SubmissionPatience` blocks may be taken
//!    over by another submitter, and its deposit is burned.
//! 2. `submit_clearing_page` sends pages in order from 0, by the registrant only. Each page is
//!    verified on arrival against the book, which is frozen since gate closure: every check of
//!    a match, reading only the book pages its matches name. What the pages fill of each order
//!    is kept in `Fills` (by book page, tagged with the registration's attempt), the lines'
//!    flows and the energy in the registration, the page itself in `ClearingPages`.
//! 3. The last page runs the whole-solution checks (the claimed volume and match count, line
//!    capacities and congestion rents, equilibrium and price priority over the whole book with
//!    its fills) and then applies the clearing: money moves per account, netted over the
//!    interval. Nothing moves money before that.
//!
//! `submit_clearing` is the same in one call: a registration and its only page.
//!
//! A call that is merely early, late, out of order, for a cleared or voided interval, from the
//! wrong account or underpriced fails as usual and costs its fee. A page that gets that far
//! and then fails a check is a wrong answer: the call succeeds, so that the penalty sticks, but
//! nothing of the clearing applies; `ClearingRejected` names the page and the check, the
//! deposit is burned, and the interval is open to a new registration until its end. A
//! registration still incomplete at the interval's end is rejected the same way when the
//! interval is voided.

use crate::{
	BalanceOf, BookLen, BookPages, BookShape, ClearingAttempts, ClearingPages, ClearingPrices,
	ClearingSummary, ClearingWitness, Clearings, Config, Distributor, Error, Event, Fills,
	HoldReason, IntervalId, Line, Match, Mechanism, MeterSources, Order, OrderId, OrderStatus,
	Outstanding, Pallet, PendingClearing, PendingClearings, Position, Positions, Side, Voided,
	WeightInfo, ZoneId, ZonePrice,
};
use alloc::{
	collections::{btree_map::BTreeMap, btree_set::BTreeSet},
	vec::Vec,
};
use frame_support::{
	ensure,
	pallet_prelude::{BoundedVec, DispatchResult, Get, Weight},
	traits::{
		fungible::{Inspect, MutateHold},
		tokens::{Fortitude, Precision, Preservation, Restriction},
	},
};
use sp_runtime::{
	traits::{Saturating, Zero},
	DispatchError, SaturatedConversion,
};

/// The registration of a clearing, with this runtime's types.
type Pending<T> = PendingClearing<
	<T as frame_system::Config>::AccountId,
	BalanceOf<T>,
	frame_system::pallet_prelude::BlockNumberFor<T>,
>;

/// A book page as a clearing page reads it: its orders and what the verified pages fill of
/// each (Wh).
struct FilledPage<AccountId> {
	orders: Vec<Order<AccountId>>,
	fills: Vec<u64>,
}

impl<T: Config> Pallet<T> {
	/// A clearing's weight, from its book's shape and its matches. The benchmark prices three
	/// things apart: a pair of traders with one match between them (each account pays, is paid
	/// or gets its hold back once, and gets its position), a further match between traders
	/// already counted (its checks), and an order no match names (its share of a book page,
	/// read once). Each is an upper bound of what the shape can take: the pairs cover every trader,
	/// pairs and further matches every match, and all three every order.
	pub fn submit_clearing_weight(book: BookShape, matches: u32) -> Weight {
		let orders = book.orders.min(T::MaxOrdersPerInterval::get());
		let pairs = book.traders.min(orders).div_ceil(2);
		let further = matches.saturating_sub(pairs);
		let unmatched = orders.saturating_sub(pairs.saturating_add(further).saturating_mul(2));
		T::WeightInfo::submit_clearing(unmatched, pairs, further)
	}

	/// A clearing page's weight. A page before the last is priced by its matches and the book
	/// pages they name (each read once, with its fills), and by what rejecting the clearing
	/// would take (burning the deposit, removing its pages: what taking over an abandoned
	/// registration takes). The last page, which also checks and applies the whole clearing, is
	/// priced as the whole clearing in one call, which covers its own verification as well.
	pub fn clearing_page_weight(matches: &[Match], finish: Option<&ClearingWitness>) -> Weight {
		match finish {
			Some(w) => Self::submit_clearing_weight(
				BookShape { orders: w.orders, traders: w.traders },
				w.matches,
			),
			None => {
				let size = T::BookPageSize::get().max(1);
				let named: BTreeSet<(u64, u32)> = matches
					.iter()
					.flat_map(|m| [m.bid, m.offer])
					.map(|id| {
						let (interval, slot) = crate::order_place(id);
						(interval, slot / size)
					})
					.collect();
				T::WeightInfo::submit_clearing_page(matches.len() as u32, named.len() as u32)
					.saturating_add(T::WeightInfo::register_clearing())
			},
		}
	}

	/// The whole clearing in one call: a registration and its only page. Returns the book's
	/// shape (for the weight); the witness when the registration was refused.
	pub(crate) fn do_submit_clearing(
		submitter: T::AccountId,
		interval: IntervalId,
		mechanism: Mechanism,
		volume_wh: u64,
		zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
		matches: &[Match],
		witness: BookShape,
	) -> Result<BookShape, DispatchError> {
		ensure!(BookLen::<T>::get(interval) <= witness.orders, Error::<T>::WitnessTooSmall);
		let count = matches.len() as u32;
		Self::do_register_clearing(
			submitter.clone(),
			interval,
			mechanism,
			volume_wh,
			zone_prices,
			count,
			1,
		)?;
		let finish =
			ClearingWitness { orders: witness.orders, traders: witness.traders, matches: count };
		let shape = Self::do_clearing_page(submitter, interval, 0, matches, Some(finish))?;
		Ok(shape.unwrap_or(witness))
	}

	/// Registers a clearing of `interval` in `pages` pages, holding its submitter's deposit.
	/// A registration that went `SubmissionPatience` blocks without a page is rejected first.
	pub(crate) fn do_register_clearing(
		submitter: T::AccountId,
		interval: IntervalId,
		mechanism: Mechanism,
		volume_wh: u64,
		zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
		matches: u32,
		pages: u32,
	) -> DispatchResult {
		Self::ensure_not_pruned(interval)?;
		ensure!(pages > 0 && pages <= T::MaxClearingPages::get(), Error::<T>::BadPageCount);
		ensure!(
			matches <= pages.saturating_mul(T::MaxMatchesPerPage::get()),
			Error::<T>::BadPageCount
		);
		let params = Self::params_for(interval);
		ensure!(!Clearings::<T>::contains_key(interval), Error::<T>::AlreadyCleared);
		ensure!(!Voided::<T>::contains_key(interval), Error::<T>::AlreadyVoided);
		let now = Self::now_ms();
		ensure!(now >= params.gate_closure(interval), Error::<T>::GateNotClosed);
		// After its end the interval belongs to `void_interval`, which may have begun.
		ensure!(now < params.interval_end(interval), Error::<T>::ClearingDeadlinePassed);
		ensure!(mechanism == params.mechanism, Error::<T>::WrongMechanism);
		Self::check_zone_prices(mechanism, &zone_prices, matches == 0)?;
		let block = frame_system::Pallet::<T>::block_number();
		if let Some(live) = PendingClearings::<T>::get(interval) {
			let expires = live.touched.saturating_add(T::SubmissionPatience::get());
			ensure!(block >= expires, Error::<T>::ClearingInProgress);
			let page = live.verified_pages;
			Self::reject_pending(interval, live, page, Error::<T>::SubmissionExpired.into())?;
		}
		let deposit = T::ClearingDeposit::get();
		ensure!(
			T::Currency::reducible_balance(&submitter, Preservation::Preserve, Fortitude::Polite)
				>= deposit,
			Error::<T>::DepositNotCovered
		);
		T::Currency::hold(&HoldReason::ClearingDeposit.into(), &submitter, deposit)
			.map_err(|_| Error::<T>::DepositNotCovered)?;
		let attempt = ClearingAttempts::<T>::mutate(interval, |n| {
			*n = n.saturating_add(1);
			*n
		});
		ClearingPrices::<T>::insert(interval, zone_prices);
		PendingClearings::<T>::insert(
			interval,
			PendingClearing {
				submitter: submitter.clone(),
				deposit,
				mechanism,
				volume_wh,
				matches,
				pages,
				attempt,
				verified_pages: 0,
				verified_matches: 0,
				verified_wh: 0,
				flows: Default::default(),
				touched: block,
			},
		);
		Self::deposit_event(Event::ClearingRegistered {
			interval,
			submitter,
			mechanism,
			volume_wh,
			matches,
			pages,
		});
		Ok(())
	}

	/// Verifies page `index` of the clearing registered for `interval` and, after the last
	/// page, the whole clearing, which it then applies; a failed check rejects the clearing
	/// instead. Returns the book's shape when the call read the whole book (the last page).
	pub(crate) fn do_clearing_page(
		submitter: T::AccountId,
		interval: IntervalId,
		index: u32,
		matches: &[Match],
		finish: Option<ClearingWitness>,
	) -> Result<Option<BookShape>, DispatchError> {
		let mut pending =
			PendingClearings::<T>::get(interval).ok_or(Error::<T>::ClearingNotRegistered)?;
		ensure!(pending.submitter == submitter, Error::<T>::NotRegistrant);
		ensure!(index == pending.verified_pages, Error::<T>::PageOutOfOrder);
		let params = Self::params_for(interval);
		ensure!(Self::now_ms() < params.interval_end(interval), Error::<T>::ClearingDeadlinePassed);
		let orders = BookLen::<T>::get(interval);
		let last = index.saturating_add(1) >= pending.pages;
		let witness = match (last, finish) {
			(false, _) => None,
			(true, None) => return Err(Error::<T>::WitnessTooSmall.into()),
			(true, Some(w)) => {
				ensure!(
					orders <= w.orders && pending.matches <= w.matches,
					Error::<T>::WitnessTooSmall
				);
				Some(w)
			},
		};

		// The page's checks write nothing: a failed one leaves only the burned deposit behind.
		let pages = match Self::verify_page(interval, orders, &mut pending, matches) {
			Ok(pages) => pages,
			Err(error) => {
				Self::reject_pending(interval, pending, index, error)?;
				return Ok(None);
			},
		};
		for (page, filled) in pages {
			let fills = BoundedVec::truncate_from(filled.fills);
			Fills::<T>::insert(interval, page, (pending.attempt, fills));
		}
		let bounded: BoundedVec<Match, T::MaxMatchesPerPage> =
			matches.to_vec().try_into().map_err(|_| Error::<T>::Overflow)?;
		ClearingPages::<T>::insert(interval, index, bounded);
		pending.verified_pages = index.saturating_add(1);
		pending.touched = frame_system::Pallet::<T>::block_number();
		Self::deposit_event(Event::ClearingPageVerified {
			interval,
			page: index,
			matches: matches.len() as u32,
		});
		let Some(witness) = witness else {
			PendingClearings::<T>::insert(interval, pending);
			return Ok(None);
		};

		// The whole solution, against the whole book with its fills.
		let book = Self::filled_book(interval, pending.attempt, orders);
		let shape = BookShape {
			orders,
			traders: book
				.values()
				.filter(|(o, _)| o.status == OrderStatus::Open)
				.map(|(o, _)| &o.owner)
				.collect::<BTreeSet<_>>()
				.len() as u32,
		};
		ensure!(shape.traders <= witness.traders, Error::<T>::WitnessTooSmall);
		let all: Vec<Match> = (0..pending.pages)
			.flat_map(|page| ClearingPages::<T>::get(interval, page).into_inner())
			.collect();
		let prices = ClearingPrices::<T>::get(interval);
		if let Err(error) = Self::verify_whole(interval, &pending, &prices, &all, &book) {
			Self::reject_pending(interval, pending, index, error)?;
			return Ok(Some(shape));
		}
		Self::apply_clearing(interval, pending, prices, &all, book)?;
		Ok(Some(shape))
	}

	/// Rejects the registered clearing of `interval` at `page` for `error`: its deposit is
	/// burned, its pages and prices removed (its fills count no more, being of its attempt).
	pub(crate) fn reject_pending(
		interval: IntervalId,
		pending: Pending<T>,
		page: u32,
		error: DispatchError,
	) -> DispatchResult {
		let slashed = T::Currency::burn_held(
			&HoldReason::ClearingDeposit.into(),
			&pending.submitter,
			pending.deposit,
			Precision::BestEffort,
			Fortitude::Force,
		)?;
		let _ = ClearingPages::<T>::clear_prefix(interval, T::MaxClearingPages::get(), None);
		ClearingPrices::<T>::remove(interval);
		PendingClearings::<T>::remove(interval);
		Self::deposit_event(Event::ClearingRejected {
			interval,
			submitter: pending.submitter,
			page,
			error,
			slashed,
		});
		Ok(())
	}

	/// `interval`'s book, each order with what the registration `attempt` filled of it.
	fn filled_book(
		interval: IntervalId,
		attempt: u32,
		orders: u32,
	) -> BTreeMap<OrderId, (Order<T::AccountId>, u64)> {
		let size = T::BookPageSize::get();
		let mut book = BTreeMap::new();
		for page in 0..orders.div_ceil(size) {
			let filled = Self::filled_page(interval, attempt, page);
			for (entry, (order, fill)) in filled.orders.into_iter().zip(filled.fills).enumerate() {
				let slot = page.saturating_mul(size).saturating_add(entry as u32);
				if let Some(id) = crate::order_id(interval, slot) {
					book.insert(id, (order, fill));
				}
			}
		}
		book
	}

	/// Book page `page` of `interval` with the fills of registration `attempt`.
	fn filled_page(interval: IntervalId, attempt: u32, page: u32) -> FilledPage<T::AccountId> {
		let orders = BookPages::<T>::get(interval, page).into_inner();
		let mut fills = Fills::<T>::get(interval, page)
			.filter(|(of, _)| *of == attempt)
			.map(|(_, fills)| fills.into_inner())
			.unwrap_or_default();
		fills.resize(orders.len(), 0);
		FilledPage { orders, fills }
	}

	/// Every check of one page's matches against the book (reading the pages they name, whose
	/// fills it adds to) and the grid; the registration gains the page's energy, matches and
	/// flows. Returns the book pages read, with their new fills.
	fn verify_page(
		interval: IntervalId,
		orders: u32,
		pending: &mut Pending<T>,
		matches: &[Match],
	) -> Result<BTreeMap<u32, FilledPage<T::AccountId>>, DispatchError> {
		let mechanism = pending.mechanism;
		let prices = Self::check_zone_prices(
			mechanism,
			&ClearingPrices::<T>::get(interval),
			pending.matches == 0,
		)?;
		let mut grid = GridFlows::load::<T>(interval);
		grid.flow = pending.flows.iter().map(|(a, b, q)| ((*a, *b), *q)).collect();
		let mut pages: BTreeMap<u32, FilledPage<T::AccountId>> = BTreeMap::new();
		let mut entry = |id: OrderId| -> Result<(u32, usize), DispatchError> {
			let (of, slot) = crate::order_place(id);
			ensure!(of == interval && slot < orders, Error::<T>::OrderNotInInterval);
			let (page, entry) = Self::page_of(slot);
			pages
				.entry(page)
				.or_insert_with(|| Self::filled_page(interval, pending.attempt, page));
			Ok((page, entry))
		};
		let mut places = Vec::with_capacity(matches.len());
		for m in matches {
			places.push((entry(m.bid)?, entry(m.offer)?));
		}
		let mut total: u64 = 0;
		for (m, ((bid_page, bid_entry), (offer_page, offer_entry))) in matches.iter().zip(places) {
			ensure!(m.quantity_wh > 0, Error::<T>::ZeroQuantityMatch);
			let (bid_zone, bid_limit, renewable_only) = {
				let p = pages.get_mut(&bid_page).ok_or(Error::<T>::OrderNotInInterval)?;
				let bid = p.orders.get(bid_entry).ok_or(Error::<T>::OrderNotInInterval)?;
				let filled = p.fills.get_mut(bid_entry).ok_or(Error::<T>::OrderNotInInterval)?;
				ensure!(bid.spec.side == Side::Bid, Error::<T>::WrongSide);
				ensure!(bid.status == OrderStatus::Open, Error::<T>::OrderCancelled);
				*filled = filled.checked_add(m.quantity_wh).ok_or(Error::<T>::Overflow)?;
				ensure!(*filled <= bid.spec.quantity_wh, Error::<T>::Overfilled);
				(bid.spec.zone, bid.spec.price_ticks, bid.spec.renewable_only)
			};
			let (offer_zone, offer_limit, source) = {
				let p = pages.get_mut(&offer_page).ok_or(Error::<T>::OrderNotInInterval)?;
				let offer = p.orders.get(offer_entry).ok_or(Error::<T>::OrderNotInInterval)?;
				let filled = p.fills.get_mut(offer_entry).ok_or(Error::<T>::OrderNotInInterval)?;
				ensure!(offer.spec.side == Side::Offer, Error::<T>::WrongSide);
				ensure!(offer.status == OrderStatus::Open, Error::<T>::OrderCancelled);
				*filled = filled.checked_add(m.quantity_wh).ok_or(Error::<T>::Overflow)?;
				ensure!(*filled <= offer.spec.quantity_wh, Error::<T>::Overfilled);
				(offer.spec.zone, offer.spec.price_ticks, offer.spec.source)
			};
			ensure!(m.buyer_price <= bid_limit, Error::<T>::BidLimitExceeded);
			ensure!(m.seller_price >= offer_limit, Error::<T>::OfferLimitViolated);
			let fee = grid.fee(offer_zone, bid_zone).ok_or(Error::<T>::NoLine)?;
			grid.carry(offer_zone, bid_zone, m.quantity_wh);
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
		pending.verified_wh = pending.verified_wh.checked_add(total).ok_or(Error::<T>::Overflow)?;
		ensure!(pending.verified_wh <= pending.volume_wh, Error::<T>::UnbalancedEnergy);
		pending.verified_matches = pending.verified_matches.saturating_add(matches.len() as u32);
		ensure!(pending.verified_matches <= pending.matches, Error::<T>::MatchCountMismatch);
		let flows: Vec<(ZoneId, ZoneId, i128)> =
			grid.flow.iter().map(|((a, b), q)| (*a, *b, *q)).collect();
		// One flow per line at most, and lines are bounded by `MAX_LINES`.
		pending.flows = BoundedVec::try_from(flows).map_err(|_| Error::<T>::NoLine)?;
		Ok(pages)
	}

	/// The checks of the whole clearing, once its pages are verified: the claim is met, the
	/// lines hold, and the book is in equilibrium.
	fn verify_whole(
		interval: IntervalId,
		pending: &Pending<T>,
		zone_prices: &[ZonePrice],
		matches: &[Match],
		book: &BTreeMap<OrderId, (Order<T::AccountId>, u64)>,
	) -> DispatchResult {
		let mechanism = pending.mechanism;
		ensure!(pending.verified_matches == pending.matches, Error::<T>::MatchCountMismatch);
		ensure!(pending.verified_wh == pending.volume_wh, Error::<T>::UnbalancedEnergy);
		let prices = Self::check_zone_prices(mechanism, zone_prices, matches.is_empty())?;
		let mut grid = GridFlows::load::<T>(interval);
		grid.flow = pending.flows.iter().map(|(a, b, q)| ((*a, *b), *q)).collect();
		Self::check_lines(mechanism, &prices, &grid)?;
		Self::check_equilibrium(mechanism, &prices, book, matches, &grid)
	}

	/// Applies a verified clearing: payments, holds released, positions, the deposit released.
	/// Money moves per account, netted over the interval, and no order is written: the
	/// clearing's record (`Clearings`, `ClearingPages`, `ClearingPrices`) is what became of
	/// its book.
	fn apply_clearing(
		interval: IntervalId,
		pending: Pending<T>,
		zone_prices: BoundedVec<ZonePrice, T::MaxZones>,
		matches: &[Match],
		book: BTreeMap<OrderId, (Order<T::AccountId>, u64)>,
	) -> DispatchResult {
		let (submitter, mechanism, volume_wh) =
			(pending.submitter.clone(), pending.mechanism, pending.volume_wh);
		// Every check passed. Each buyer pays from its hold into the clearing house, once; the
		// distributor gets its fees now, and each seller's proceeds wait in the clearing house
		// for its delivery to be metered (`settlement.rs`). Then the rest of each buyer's hold
		// for the interval is released, also once.
		let reason: T::RuntimeHoldReason = HoldReason::BidReserve.into();
		let house = Self::clearing_house();
		let mut fees_paid: BalanceOf<T> = Zero::zero();
		let mut positions: BTreeMap<T::AccountId, Position> = BTreeMap::new();
		let mut cost_by_buyer: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		for m in matches {
			let (bid, _) = book.get(&m.bid).ok_or(Error::<T>::OrderNotInInterval)?;
			let (offer, _) = book.get(&m.offer).ok_or(Error::<T>::OrderNotInInterval)?;
			let to_seller = Self::cost(m.seller_price, m.quantity_wh);
			let to_grid = Self::cost(m.buyer_price - m.seller_price, m.quantity_wh);
			fees_paid = fees_paid.saturating_add(to_grid);
			let owed = cost_by_buyer.entry(bid.owner.clone()).or_insert_with(Zero::zero);
			*owed = owed.saturating_add(to_seller.saturating_add(to_grid));
			// Quantities are bounded by `max_quantity_wh` and the book, far below i64::MAX.
			let q = m.quantity_wh as i64;
			let buyer = positions.entry(bid.owner.clone()).or_default();
			buyer.contracted_wh = buyer.contracted_wh.saturating_add(q);
			let seller = positions.entry(offer.owner.clone()).or_default();
			seller.contracted_wh = seller.contracted_wh.saturating_sub(q);
			seller.proceeds = seller.proceeds.saturating_add(to_seller.saturated_into());
		}
		let mut held_by_buyer: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		for (order, _) in book.values() {
			if order.status == OrderStatus::Open && order.spec.side == Side::Bid {
				let held = held_by_buyer.entry(order.owner.clone()).or_insert_with(Zero::zero);
				*held =
					held.saturating_add(Self::cost(order.spec.price_ticks, order.spec.quantity_wh));
			}
		}
		for (buyer, held) in held_by_buyer {
			// A buyer pays at most its bids' limits for at most their quantities (verified), so
			// its cost is within what its bids hold.
			let cost = cost_by_buyer.get(&buyer).copied().unwrap_or_else(Zero::zero);
			if !cost.is_zero() {
				T::Currency::transfer_on_hold(
					&reason,
					&buyer,
					&house,
					cost,
					Precision::Exact,
					Restriction::Free,
					Fortitude::Polite,
				)?;
			}
			let rest = held.saturating_sub(cost);
			if !rest.is_zero() {
				T::Currency::release(&reason, &buyer, rest, Precision::Exact)?;
			}
		}
		if !fees_paid.is_zero() {
			let grid = Distributor::<T>::get().ok_or(Error::<T>::NoDistributor)?;
			Self::pay_or_owe(interval, &house, &grid, fees_paid);
		}

		// Each trader's position, and the meters settlement will wait for.
		let mut outstanding = 0u32;
		for (who, mut position) in positions {
			position.meters = MeterSources::<T>::iter_prefix_values(&who).sum();
			outstanding += (position.meters > 0) as u32;
			Positions::<T>::insert(interval, who, position);
		}
		if outstanding > 0 {
			Outstanding::<T>::insert(interval, outstanding);
		}

		// The submitter staked its deposit on a right answer, and it was one.
		T::Currency::release(
			&HoldReason::ClearingDeposit.into(),
			&submitter,
			pending.deposit,
			Precision::BestEffort,
		)?;
		PendingClearings::<T>::remove(interval);
		let match_count = matches.len() as u32;
		Clearings::<T>::insert(
			interval,
			ClearingSummary {
				mechanism,
				volume_wh,
				match_count,
				pages: pending.pages,
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
			pages: pending.pages,
			zone_prices,
			grid_fees_paid: fees_paid,
		});
		Ok(())
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

	/// Every line carries no more than its capacity, net, and under the zonal mechanism two
	/// zones' prices differ by more than their line's fee only if the line is full in the
	/// direction of the higher price: congestion rent arises only on a congested line.
	fn check_lines(
		mechanism: Mechanism,
		prices: &BTreeMap<Option<ZoneId>, u64>,
		grid: &GridFlows,
	) -> DispatchResult {
		for line in grid.lines.values() {
			ensure!(grid.spare(line.a, line.b) >= 0, Error::<T>::LineOverloaded);
			ensure!(grid.spare(line.b, line.a) >= 0, Error::<T>::LineOverloaded);
			if mechanism != Mechanism::Zonal {
				continue;
			}
			let (Some(pa), Some(pb)) = (prices.get(&Some(line.a)), prices.get(&Some(line.b)))
			else {
				continue;
			};
			let spread = *pb as i128 - *pa as i128;
			let fee = line.fee_ticks as i128;
			ensure!(
				(spread <= fee || grid.spare(line.a, line.b) == 0)
					&& (-spread <= fee || grid.spare(line.b, line.a) == 0),
				Error::<T>::SpreadWithoutCongestion
			);
		}
		Ok(())
	}

	/// No gains from trade may be left, and price priority holds, in each zone and energy
	/// class (orders of one zone and class can trade with the same counterparts):
	/// - no unfilled bid and unfilled offer that could trade with each other remain: the bid's
	///   limit reaches the offer's plus the fee between their zones (and a renewable-only bid
	///   only reaches renewable offers). Each zone is checked with itself; under the uniform
	///   mechanism, one pool, also with the zones a fee-free line with room joins it to. The
	///   zonal and pay-as-bid clearings route energy over direct lines only (no transit), and
	///   some books then have no zonal equilibrium across lines: requiring one would leave
	///   them no valid clearing at all;
	/// - a bid with unfilled quantity has no lower filled bid it could have displaced (any bid,
	///   for a bid that takes any energy; renewable-only ones, for a renewable-only bid), and
	///   an offer with unfilled quantity no higher filled offer it could have displaced;
	/// - no generic bid holds a renewable offer while a cheaper grid-mix offer of the same zone
	///   is left unfilled, or while an unfilled renewable-only bid wanted that renewable offer
	///   and an unfilled grid-mix offer of its zone could have served the generic bid instead;
	/// - zonal: every zone of the book has a price.
	///
	/// Ties (equal limits) are the matcher's to break.
	fn check_equilibrium(
		mechanism: Mechanism,
		prices: &BTreeMap<Option<ZoneId>, u64>,
		book: &BTreeMap<OrderId, (Order<T::AccountId>, u64)>,
		matches: &[Match],
		grid: &GridFlows,
	) -> DispatchResult {
		let mut zones: BTreeMap<ZoneId, ZoneBook> = BTreeMap::new();
		for (order, filled) in book.values() {
			if order.status != OrderStatus::Open {
				continue;
			}
			let z = zones.entry(order.spec.zone).or_default();
			let (p, filled, unfilled) =
				(order.spec.price_ticks, *filled > 0, *filled < order.spec.quantity_wh);
			match order.spec.side {
				Side::Bid => {
					let ro = order.spec.renewable_only;
					if unfilled {
						raise(if ro { &mut z.unfilled_ro_bid } else { &mut z.unfilled_bid }, p);
					}
					if filled {
						lower(&mut z.filled_bid, p);
						if ro {
							lower(&mut z.filled_ro_bid, p);
						}
					}
				},
				Side::Offer => {
					let renewable = order.spec.source.is_renewable();
					if unfilled {
						lower(
							if renewable {
								&mut z.unfilled_ren_offer
							} else {
								&mut z.unfilled_gm_offer
							},
							p,
						);
					}
					if filled {
						raise(&mut z.filled_offer, p);
						if !renewable {
							raise(&mut z.filled_gm_offer, p);
						}
					}
				},
			}
		}
		let above = |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if a > b);
		for (zone, z) in zones.iter() {
			if mechanism == Mechanism::Zonal {
				ensure!(prices.contains_key(&Some(*zone)), Error::<T>::ZoneWithoutPrice);
			}
			let priority_kept = !above(z.unfilled_bid, z.filled_bid)
				&& !above(z.unfilled_ro_bid, z.filled_ro_bid)
				&& !above(z.filled_offer, z.unfilled_ren_offer)
				&& !above(z.filled_gm_offer, z.unfilled_gm_offer);
			ensure!(priority_kept, Error::<T>::NotEquilibrium);
		}
		// Unfilled bids against unfilled offers, across the zone pairs that could still trade.
		for (bid_zone, b) in zones.iter() {
			for (offer_zone, o) in zones.iter() {
				let joined = bid_zone == offer_zone
					|| (mechanism == Mechanism::Uniform
						&& grid.line(*offer_zone, *bid_zone).is_some_and(|l| l.fee_ticks == 0)
						&& grid.spare(*offer_zone, *bid_zone) > 0);
				if !joined {
					continue;
				}
				// Joined zones trade without a fee.
				let cheapest = min_of(o.unfilled_ren_offer, o.unfilled_gm_offer);
				let could = |bid: Option<u64>, offer: Option<u64>| match (bid, offer) {
					(Some(bid), Some(offer)) => bid >= offer,
					_ => false,
				};
				ensure!(
					!could(b.unfilled_bid, cheapest)
						&& !could(b.unfilled_ro_bid, o.unfilled_ren_offer),
					Error::<T>::NotEquilibrium
				);
			}
		}
		// A renewable offer given to a generic bid that a grid-mix offer could have served.
		for m in matches {
			let (Some((bid, _)), Some((offer, _))) = (book.get(&m.bid), book.get(&m.offer)) else {
				continue;
			};
			if bid.spec.renewable_only || !offer.spec.source.is_renewable() {
				continue;
			}
			let Some(spare) = zones.get(&offer.spec.zone).and_then(|z| z.unfilled_gm_offer) else {
				continue;
			};
			// A cheaper grid-mix offer of the same zone was left for this renewable one.
			ensure!(spare >= offer.spec.price_ticks, Error::<T>::NotEquilibrium);
			// A renewable-only bid wanted it, and the grid-mix offer could serve this bid.
			// The pair traded, so a line joins their zones (or they are one zone).
			let fee = grid.fee(offer.spec.zone, bid.spec.zone).unwrap_or(0);
			let wanted = zones.get(&bid.spec.zone).and_then(|z| z.unfilled_ro_bid);
			let wanted_it = wanted.is_some_and(|w| w >= offer.spec.price_ticks.saturating_add(fee));
			ensure!(
				!wanted_it || spare.saturating_add(fee) > bid.spec.price_ticks,
				Error::<T>::NotEquilibrium
			);
		}
		Ok(())
	}
}

/// The grid as a clearing checks it: its lines by zone pair, and the net flow the clearing's
/// matches put on each (positive from the lower zone id to the higher).
struct GridFlows {
	lines: BTreeMap<(ZoneId, ZoneId), Line>,
	flow: BTreeMap<(ZoneId, ZoneId), i128>,
}

impl GridFlows {
	/// The grid that governs `interval` (the one its gate closed under), nothing carried yet.
	fn load<T: Config>(interval: IntervalId) -> Self {
		let lines = Pallet::<T>::grid_for(interval).into_iter().map(|l| ((l.a, l.b), l)).collect();
		GridFlows { lines, flow: BTreeMap::new() }
	}

	fn line(&self, from: ZoneId, to: ZoneId) -> Option<&Line> {
		self.lines.get(&(from.min(to), from.max(to)))
	}

	/// The fee for energy from `from` to `to`: none within a zone, the line's between zones
	/// that one joins, and `None` between zones that none joins.
	fn fee(&self, from: ZoneId, to: ZoneId) -> Option<u64> {
		if from == to {
			Some(0)
		} else {
			self.line(from, to).map(|l| l.fee_ticks)
		}
	}

	fn carry(&mut self, from: ZoneId, to: ZoneId, quantity_wh: u64) {
		if from != to {
			let q = if from < to { quantity_wh as i128 } else { -(quantity_wh as i128) };
			*self.flow.entry((from.min(to), from.max(to))).or_default() += q;
		}
	}

	/// What the line between `from` and `to` can still carry from `from` to `to` (negative: it
	/// carries more than its capacity); 0 without a line.
	fn spare(&self, from: ZoneId, to: ZoneId) -> i128 {
		let Some(line) = self.line(from, to) else { return 0 };
		let net = self.flow.get(&(line.a, line.b)).copied().unwrap_or(0);
		let toward = if from < to { net } else { -net };
		line.capacity_wh as i128 - toward
	}
}

/// One zone's open orders, as the equilibrium check needs them: the extreme limits of those
/// with quantity left unfilled and of those that got a fill, by side and energy class.
#[derive(Default)]
struct ZoneBook {
	unfilled_bid: Option<u64>,
	unfilled_ro_bid: Option<u64>,
	filled_bid: Option<u64>,
	filled_ro_bid: Option<u64>,
	unfilled_ren_offer: Option<u64>,
	unfilled_gm_offer: Option<u64>,
	filled_offer: Option<u64>,
	filled_gm_offer: Option<u64>,
}

fn raise(slot: &mut Option<u64>, p: u64) {
	*slot = Some(slot.map_or(p, |v| v.max(p)));
}

fn lower(slot: &mut Option<u64>, p: u64) {
	*slot = Some(slot.map_or(p, |v| v.min(p)));
}

fn min_of(a: Option<u64>, b: Option<u64>) -> Option<u64> {
	match (a, b) {
		(Some(a), Some(b)) => Some(a.min(b)),
		(a, b) => a.or(b),
	}
}
