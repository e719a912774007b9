//! Liveness: an interval that no valid clearing reached by its deadline (the end of the
//! interval) is voided, so that no bid's funds stay held because a book was too big, a submitter
//! went away or someone attacked the clearing. Voiding is permissionless and paged: each call
//! voids the next `max_orders` orders of the book and releases the bids' holds, and the call
//! that reaches the end marks the interval voided. A voided interval settles as if nothing had
//! traded. A clearing still registered then is rejected first (`ClearingDeadlinePassed`): its
//! submitter did not finish it in time, and its deposit is burned.

use crate::{
	BalanceOf, BookLen, Clearings, Config, Error, Event, HoldReason, IntervalId, OrderStatus,
	Pallet, PendingClearings, Side, Voided, Voiding,
};
use alloc::collections::btree_map::BTreeMap;
use frame_support::{
	ensure,
	traits::{fungible::MutateHold, tokens::Precision},
};
use sp_runtime::{
	traits::{Saturating, Zero},
	DispatchError,
};

impl<T: Config> Pallet<T> {
	/// Voids up to `max_orders` more orders of `interval`'s book after its deadline. Returns
	/// (orders in the book, orders voided by this call, whether it rejected a registration)
	/// for the weight.
	pub(crate) fn do_void_interval(
		interval: IntervalId,
		max_orders: u32,
		book_orders: u32,
	) -> Result<(u32, u32, bool), DispatchError> {
		Self::ensure_not_pruned(interval)?;
		let total = BookLen::<T>::get(interval);
		ensure!(total <= book_orders, Error::<T>::WitnessTooSmall);
		ensure!(!Clearings::<T>::contains_key(interval), Error::<T>::AlreadyCleared);
		ensure!(!Voided::<T>::contains_key(interval), Error::<T>::AlreadyVoided);
		let params = Self::params_for(interval);
		ensure!(Self::now_ms() >= params.interval_end(interval), Error::<T>::DeadlineNotPassed);
		let start = Voiding::<T>::get(interval).unwrap_or(0).min(total);
		ensure!(max_orders > 0 || start == total, Error::<T>::NothingToVoid);
		let end = start.saturating_add(max_orders).min(total);
		let pending = PendingClearings::<T>::get(interval);
		let rejected = pending.is_some();
		if let Some(pending) = pending {
			let page = pending.verified_pages;
			Self::reject_pending(
				interval,
				pending,
				page,
				Error::<T>::ClearingDeadlinePassed.into(),
			)?;
		}

		// What this page's open bids hold, per buyer: each gets it back in one release, and no
		// order is written (the interval's `Voided` record says what became of them).
		let mut held_by_buyer: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		for (_, order) in Self::book_slice(interval, start, end) {
			if order.status == OrderStatus::Open && order.spec.side == Side::Bid {
				let held = held_by_buyer.entry(order.owner).or_insert_with(Zero::zero);
				*held =
					held.saturating_add(Self::cost(order.spec.price_ticks, order.spec.quantity_wh));
			}
		}
		let reason: T::RuntimeHoldReason = HoldReason::BidReserve.into();
		let mut released: BalanceOf<T> = Zero::zero();
		for (buyer, held) in held_by_buyer {
			// Best effort: the hold equals the open bids' cost (`try_state`), and a shortfall
			// there must not keep everyone else's funds held.
			let given = T::Currency::release(&reason, &buyer, held, Precision::BestEffort)?;
			released = released.saturating_add(given);
		}
		Self::deposit_event(Event::IntervalVoiding { interval, done: end, total, released });
		if end == total {
			Voiding::<T>::remove(interval);
			Voided::<T>::insert(interval, frame_system::Pallet::<T>::block_number());
			Self::deposit_event(Event::IntervalVoided { interval, orders: total });
		} else {
			Voiding::<T>::insert(interval, end);
		}
		Ok((total, end - start, rejected))
	}
}
