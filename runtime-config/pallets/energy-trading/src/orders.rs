//! The order book: placing and cancelling orders, by their owners directly or relayed with the
//! owners' off-chain signatures, and reading a book by its pages. A bid holds its maximum cost
//! from placement until its interval is cleared or it is cancelled.

use crate::weights::WeightInfo;
use crate::{
	cancel_message, order_id, order_message, order_place, BookLen, BookPages, ClientOrders, Config,
	Error, Event, HoldReason, IntervalId, IntervalTraders, Mechanism, MeterSources, Order, OrderId,
	OrderSpec, OrderStatus, OrdersPlaced, Pallet, Participants, Side, SignedCancel, SignedOrder,
	TraderSides,
};
use alloc::{
	collections::{BTreeMap, BTreeSet},
	vec::Vec,
};
use codec::Encode;
use frame_support::{
	ensure,
	pallet_prelude::{DispatchError, DispatchResult, Get, Weight},
	storage::with_storage_layer,
	traits::{fungible::MutateHold, tokens::Precision},
};

impl<T: Config> Pallet<T> {
	/// A relayed batch's weight, from its shape: each (owner, interval) pair's first order
	/// reads and writes the owner's registration, side, hold and account, and its further
	/// orders there find those in the block's overlay and pay for their own keys only; each
	/// interval past the first appends to one more book. So a trader's many orders in a batch
	/// cost what they take, not one full order each.
	pub fn place_orders_relayed_weight(orders: &[SignedOrder<T::AccountId>]) -> Weight {
		let pairs: BTreeSet<_> = orders.iter().map(|o| (&o.owner, o.spec.interval)).collect();
		let intervals: BTreeSet<_> = orders.iter().map(|o| o.spec.interval).collect();
		let further = orders.len().saturating_sub(pairs.len());
		T::WeightInfo::place_orders_relayed(pairs.len() as u32, further as u32).saturating_add(
			T::DbWeight::get()
				.reads_writes(1, 1)
				.saturating_mul(intervals.len().saturating_sub(1) as u64),
		)
	}

	/// Checks each order's signature by its owner, then places it. Each order stands alone: one
	/// that is refused (bad signature, a client order id taken by another order, no funds...)
	/// leaves no trace and gets a `RelayedOrderRefused` event naming the error, and the batch's
	/// other orders are placed all the same. So one bad or hostile order cannot poison a batch.
	///
	/// Each order is checked and placed in a storage layer of its own, and appended to its book
	/// after it. The books' lengths are read once per batch, counted here and written at its
	/// end, so a full book still refuses an order inside its layer.
	pub(crate) fn do_place_orders_relayed(orders: Vec<SignedOrder<T::AccountId>>) {
		let genesis = Self::genesis_bytes();
		let mut books: BTreeMap<IntervalId, (u32, u32)> = BTreeMap::new();
		for signed in orders {
			let (owner, client_order_id) = (signed.owner.clone(), signed.spec.client_order_id);
			let interval = signed.spec.interval;
			let (booked, _) =
				*books.entry(interval).or_insert_with(|| (BookLen::<T>::get(interval), 0));
			let placed =
				with_storage_layer(|| -> Result<Option<Order<T::AccountId>>, DispatchError> {
					let owner_raw = Self::account_bytes(&signed.owner)?;
					let msg = order_message(&genesis, &owner_raw, &signed.spec);
					Self::verify_sr25519(&signed.signature, &msg, &owner_raw)?;
					Self::place_unbooked(signed.owner, signed.spec, booked)
				});
			match placed {
				Ok(Some(order)) => {
					Self::append_to_book(interval, booked, order);
					books.entry(interval).and_modify(|(len, added)| {
						*len = len.saturating_add(1);
						*added = added.saturating_add(1);
					});
				},
				Ok(None) => {},
				Err(error) => Self::deposit_event(Event::RelayedOrderRefused {
					owner,
					client_order_id,
					error,
				}),
			}
		}
		let mut placed = 0u64;
		for (interval, (len, added)) in books {
			if added > 0 {
				BookLen::<T>::insert(interval, len);
				placed = placed.saturating_add(added as u64);
			}
		}
		if placed > 0 {
			OrdersPlaced::<T>::mutate(|n| *n = n.saturating_add(placed));
		}
	}

	/// Checks each cancellation's signature by the order's owner, then cancels; like orders,
	/// each cancellation stands alone and a refused one gets a `RelayedCancelRefused` event.
	pub(crate) fn do_cancel_orders_relayed(cancels: Vec<SignedCancel<T::AccountId>>) {
		let genesis = Self::genesis_bytes();
		for c in cancels {
			let (owner, client_order_id) = (c.owner.clone(), c.client_order_id);
			let cancelled = with_storage_layer(|| -> DispatchResult {
				let owner_raw = Self::account_bytes(&c.owner)?;
				let msg = cancel_message(&genesis, &owner_raw, c.client_order_id);
				Self::verify_sr25519(&c.signature, &msg, &owner_raw)?;
				Self::do_cancel(c.owner, c.client_order_id)
			});
			if let Err(error) = cancelled {
				Self::deposit_event(Event::RelayedCancelRefused { owner, client_order_id, error });
			}
		}
	}

	/// Places an order for `owner` after checking it against the market rules; a bid holds its
	/// maximum cost. An order already on chain under the same client order id is a no-op if it
	/// is the same order, and refused otherwise.
	pub(crate) fn do_place_order(owner: T::AccountId, spec: OrderSpec) -> DispatchResult {
		let interval = spec.interval;
		let booked = BookLen::<T>::get(interval);
		if let Some(order) = Self::place_unbooked(owner, spec, booked)? {
			Self::append_to_book(interval, booked, order);
			BookLen::<T>::insert(interval, booked.saturating_add(1));
			OrdersPlaced::<T>::mutate(|n| *n = n.saturating_add(1));
		}
		Ok(())
	}

	/// Appends an order to slot `slot` of its book, in place, for a caller that checked the
	/// book's room (`place_unbooked`) and counts it in `BookLen`. Not `try_append`: its own
	/// check reads the page, and every read of an appended value copies all of it.
	fn append_to_book(interval: IntervalId, slot: u32, order: Order<T::AccountId>) {
		let (page, _) = Self::page_of(slot);
		sp_io::storage::append(&BookPages::<T>::hashed_key_for(interval, page), order.encode());
	}

	/// The page a slot of a book is on, and its entry there.
	pub(crate) fn page_of(slot: u32) -> (u32, usize) {
		let size = T::BookPageSize::get();
		(slot / size, (slot % size) as usize)
	}

	/// The order `id`, read from its book page.
	pub fn order(id: OrderId) -> Option<Order<T::AccountId>> {
		let (interval, slot) = order_place(id);
		let (page, entry) = Self::page_of(slot);
		BookPages::<T>::get(interval, page).get(entry).cloned()
	}

	/// The orders of slots `start..end` of `interval`'s book with their ids, in placement
	/// order: one read per page they span.
	pub fn book_slice(
		interval: IntervalId,
		start: u32,
		end: u32,
	) -> Vec<(OrderId, Order<T::AccountId>)> {
		let size = T::BookPageSize::get();
		let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
		let mut slot = start;
		while slot < end {
			let page = BookPages::<T>::get(interval, slot / size);
			let first = slot % size;
			for (order, s) in page.into_iter().skip(first as usize).zip(slot..end) {
				// Slots fit `SLOT_BITS` (`integrity_test`), so every slot has an id.
				if let Some(id) = order_id(interval, s) {
					out.push((id, order));
				}
			}
			slot = slot.saturating_add(size - first);
		}
		out
	}

	/// Every order of `interval`'s book with its id, in placement order.
	pub fn book(interval: IntervalId) -> Vec<(OrderId, Order<T::AccountId>)> {
		Self::book_slice(interval, 0, BookLen::<T>::get(interval))
	}

	/// `do_place_order` but for the book: checks the order, its book's room (`booked` orders in
	/// it) included, and places it everywhere else. Returns the new order, for its caller to
	/// append to slot `booked` of the book, or `None` for an order already placed.
	fn place_unbooked(
		owner: T::AccountId,
		spec: OrderSpec,
		booked: u32,
	) -> Result<Option<Order<T::AccountId>>, DispatchError> {
		if let Some(existing) = ClientOrders::<T>::get(&owner, spec.client_order_id) {
			let order = Self::order(existing).ok_or(Error::<T>::UnknownOrder)?;
			ensure!(order.spec == spec, Error::<T>::ClientOrderIdReused);
			return Ok(None);
		}
		let participant = Participants::<T>::get(&owner).ok_or(Error::<T>::NotRegistered)?;
		ensure!(participant.zone == spec.zone, Error::<T>::WrongZone);
		let params = Self::params_for(spec.interval);
		ensure!(spec.quantity_wh > 0, Error::<T>::ZeroQuantity);
		ensure!(spec.quantity_wh <= params.max_quantity_wh, Error::<T>::QuantityTooLarge);
		ensure!(
			spec.price_ticks >= params.min_price_ticks
				&& spec.price_ticks <= params.max_price_ticks,
			Error::<T>::PriceOutOfBounds
		);
		ensure!(
			!(spec.side == Side::Offer && spec.renewable_only),
			Error::<T>::InvalidEnergyConstraint
		);
		ensure!(
			!(spec.renewable_only && params.mechanism == Mechanism::Uniform),
			Error::<T>::RenewableOnlyUnderUniform
		);
		// A green claim is only as good as a meter that measures it (GridMix claims nothing).
		ensure!(
			!(spec.side == Side::Offer && spec.source.is_renewable())
				|| MeterSources::<T>::get(&owner, spec.source) > 0,
			Error::<T>::SourceNotMetered
		);
		let now = Self::now_ms();
		ensure!(now < params.gate_closure(spec.interval), Error::<T>::GateClosed);
		let current = params.interval_at(now);
		ensure!(
			spec.interval <= current.saturating_add(T::MaxIntervalsAhead::get()),
			Error::<T>::IntervalTooFarAhead
		);
		TraderSides::<T>::try_mutate(spec.interval, &owner, |entry| -> DispatchResult {
			if entry.is_none() {
				IntervalTraders::<T>::try_mutate(spec.interval, |traders| -> DispatchResult {
					ensure!(*traders < T::MaxTradersPerInterval::get(), Error::<T>::TooManyTraders);
					*traders = traders.saturating_add(1);
					Ok(())
				})?;
			}
			let (side, count) = entry.get_or_insert((spec.side, 0));
			ensure!(*side == spec.side, Error::<T>::SelfTrade);
			*count = count.checked_add(1).ok_or(Error::<T>::Overflow)?;
			Ok(())
		})?;
		ensure!(booked < T::MaxOrdersPerInterval::get(), Error::<T>::IntervalFull);
		let order_id = order_id(spec.interval, booked).ok_or(Error::<T>::IntervalTooFarAhead)?;
		if spec.side == Side::Bid {
			T::Currency::hold(
				&HoldReason::BidReserve.into(),
				&owner,
				Self::cost(spec.price_ticks, spec.quantity_wh),
			)
			.map_err(|_| Error::<T>::InsufficientBalance)?;
		}
		ClientOrders::<T>::insert(&owner, spec.client_order_id, order_id);
		Self::deposit_event(Event::OrderPlaced {
			order_id,
			owner: owner.clone(),
			client_order_id: spec.client_order_id,
			interval: spec.interval,
			side: spec.side,
			quantity_wh: spec.quantity_wh,
			price_ticks: spec.price_ticks,
			zone: spec.zone,
			source: spec.source,
			renewable_only: spec.renewable_only,
		});
		Ok(Some(Order { owner, spec, status: OrderStatus::Open }))
	}

	/// Cancels `owner`'s order before its gate closes and releases a bid's hold. Cancelling a
	/// cancelled order is a no-op; after gate closure (so once its interval is cleared or voided)
	/// it cannot be cancelled.
	pub(crate) fn do_cancel(owner: T::AccountId, client_order_id: u64) -> DispatchResult {
		let order_id =
			ClientOrders::<T>::get(&owner, client_order_id).ok_or(Error::<T>::UnknownOrder)?;
		let (interval, slot) = order_place(order_id);
		let (page_no, entry) = Self::page_of(slot);
		let mut page = BookPages::<T>::get(interval, page_no);
		let order = page.get_mut(entry).ok_or(Error::<T>::UnknownOrder)?;
		if order.status == OrderStatus::Cancelled {
			return Ok(());
		}
		let params = Self::params_for(order.spec.interval);
		ensure!(Self::now_ms() < params.gate_closure(order.spec.interval), Error::<T>::GateClosed);
		if order.spec.side == Side::Bid {
			T::Currency::release(
				&HoldReason::BidReserve.into(),
				&owner,
				Self::cost(order.spec.price_ticks, order.spec.quantity_wh),
				Precision::Exact,
			)?;
		}
		TraderSides::<T>::mutate_exists(order.spec.interval, &owner, |entry| {
			*entry = entry.filter(|(_, count)| *count > 1).map(|(side, count)| (side, count - 1));
			if entry.is_none() {
				// Its last order gone: the owner no longer counts among the interval's traders.
				IntervalTraders::<T>::mutate(order.spec.interval, |n| *n = n.saturating_sub(1));
			}
		});
		order.status = OrderStatus::Cancelled;
		BookPages::<T>::insert(interval, page_no, page);
		Self::deposit_event(Event::OrderCancelled { order_id, owner, client_order_id });
		Ok(())
	}
}
