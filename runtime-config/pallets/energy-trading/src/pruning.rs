//! Bounded storage: an interval's data is pruned `RetainIntervals` intervals after it is done
//! with (settled, or with nothing to settle), so that the state stays flat however long the
//! market runs; the indexer keeps the history. Pruning runs in `on_idle`, only with the weight
//! the block has left, from a cursor (`PruneCursor`): first the interval's orders and their
//! client ids, a page at a time (with the clearing's fills of each page), then the rest of the
//! interval (clearing, its pages of matches, prices, metered energy, positions, traders' sides,
//! settlement lines, markers), and the parameter sets of pruned intervals. An interval that is not done with (cleared but not settled, or
//! with orders and neither cleared nor voided) stops the cursor until it is.

use crate::{
	BookLen, BookPages, ClearingAttempts, ClearingPages, ClearingPrices, Clearings, ClientOrders,
	Config, EarlierParams, Error, Fills, IntervalId, IntervalTraders, Metered, MeteredCount,
	Outstanding, Pallet, Params, ParamsFrom, PendingClearings, Positions, PruneCursor, Settled,
	Settlements, TraderSides, Voided, Voiding, WeightInfo,
};
use frame_support::{ensure, pallet_prelude::Get, weights::WeightMeter};
use sp_runtime::DispatchResult;

/// Keys of `Metered`, `Settlements`, `Positions` and `TraderSides` removed per interval per
/// block; an interval with more takes more blocks.
pub const TAIL_KEYS: u32 = 256;
/// Intervals looked at per block at most, however much weight is left.
const MAX_INTERVALS_PER_BLOCK: u32 = 16;

impl<T: Config> Pallet<T> {
	/// Refuses calls about an interval whose data is pruned: they would write state that
	/// nothing removes any more.
	pub(crate) fn ensure_not_pruned(interval: IntervalId) -> DispatchResult {
		if let Some((next, _)) = PruneCursor::<T>::get() {
			ensure!(interval >= next, Error::<T>::IntervalPruned);
		}
		Ok(())
	}

	/// Whether `interval` is done with: settled, or nothing to settle (no trade, nothing
	/// metered) and nothing left open (no book, or a book that was cleared or voided).
	pub(crate) fn done_with(interval: IntervalId) -> bool {
		if Settled::<T>::contains_key(interval) {
			return true;
		}
		let traded = Clearings::<T>::get(interval).is_some_and(|c| c.match_count > 0);
		let closed = Clearings::<T>::contains_key(interval)
			|| Voided::<T>::contains_key(interval)
			|| BookLen::<T>::get(interval) == 0;
		!traded && closed && MeteredCount::<T>::get(interval) == 0
	}

	/// Prunes as much as `limit` allows; returns the weight used.
	pub(crate) fn prune(limit: frame_support::weights::Weight) -> frame_support::weights::Weight {
		let mut meter = WeightMeter::with_limit(limit);
		if meter.try_consume(T::WeightInfo::prune_tail()).is_err() {
			return meter.consumed();
		}
		let params = Params::<T>::get();
		let current = params.interval_at(Self::now_ms());
		let retain = T::RetainIntervals::get();
		let Some((mut interval, mut done)) = PruneCursor::<T>::get() else {
			// First run: intervals before this one (none on a new chain) are left as they are.
			PruneCursor::<T>::put((current.saturating_sub(retain), 0));
			return meter.consumed();
		};
		let first = interval;
		// The first interval's check and tail are paid for above, every later one's below.
		let mut paid_tail = true;
		for _ in 0..MAX_INTERVALS_PER_BLOCK {
			if !paid_tail && meter.try_consume(T::WeightInfo::prune_tail()).is_err() {
				break;
			}
			paid_tail = false;
			if interval.saturating_add(retain) > current || !Self::done_with(interval) {
				break;
			}
			// Only an empty book's clearing can still be registered here (a book's is applied or
			// rejected by then): it was abandoned.
			if let Some(pending) = PendingClearings::<T>::get(interval) {
				if meter.try_consume(T::WeightInfo::register_clearing()).is_err() {
					break;
				}
				let (page, error) = (pending.verified_pages, Error::<T>::ClearingDeadlinePassed);
				if Self::reject_pending(interval, pending, page, error.into()).is_err() {
					break;
				}
			}
			let total = BookLen::<T>::get(interval);
			if done < total {
				let base = T::WeightInfo::prune_orders(0);
				let per_order = T::WeightInfo::prune_orders(1).saturating_sub(base);
				let room = meter.remaining().saturating_sub(base);
				let fit = room.checked_div_per_component(&per_order).unwrap_or(u64::MAX);
				let n = (total - done).min(fit.min(u32::MAX as u64) as u32);
				if n == 0 {
					break;
				}
				meter.consume(T::WeightInfo::prune_orders(n));
				Self::prune_orders(interval, done, n);
				done += n;
				if done < total {
					break;
				}
			}
			if !Self::prune_tail(interval) {
				break;
			}
			interval = interval.saturating_add(1);
			done = 0;
		}
		PruneCursor::<T>::put((interval, done));
		if interval > first {
			let db = <T as frame_system::Config>::DbWeight::get();
			if meter.try_consume(db.reads_writes(2, 1)).is_ok() {
				Self::drop_pruned_params(interval);
			}
		}
		meter.consumed()
	}

	/// Drops the earlier parameter sets that govern only intervals before `interval` (pruned).
	fn drop_pruned_params(interval: IntervalId) {
		let sets = EarlierParams::<T>::get();
		let starts: alloc::vec::Vec<IntervalId> = sets
			.iter()
			.skip(1)
			.map(|(start, _)| *start)
			.chain(core::iter::once(ParamsFrom::<T>::get()))
			.collect();
		let gone = starts.iter().take_while(|next| **next <= interval).count().min(sets.len());
		if gone > 0 {
			let kept = sets.into_inner().split_off(gone);
			EarlierParams::<T>::put(frame_support::BoundedVec::truncate_from(kept));
		}
	}

	/// Removes orders `[done, done + n)` of `interval`'s book: their client ids, and each page
	/// whose last order is among them, with the clearing fills of that page.
	pub(crate) fn prune_orders(interval: IntervalId, done: u32, n: u32) {
		let end = done.saturating_add(n);
		for (_, order) in Self::book_slice(interval, done, end) {
			ClientOrders::<T>::remove(&order.owner, order.spec.client_order_id);
		}
		let (size, total) = (T::BookPageSize::get(), BookLen::<T>::get(interval));
		for page in done / size..end.div_ceil(size) {
			if page.saturating_add(1).saturating_mul(size).min(total) <= end {
				BookPages::<T>::remove(interval, page);
				Fills::<T>::remove(interval, page);
			}
		}
	}

	/// Removes the rest of `interval` (its orders are gone already); false if its metered
	/// energy or settlement lines need another block.
	pub(crate) fn prune_tail(interval: IntervalId) -> bool {
		// One clear per map per block: a second one in the same block would not see the keys
		// the first removed.
		let metered = Metered::<T>::clear_prefix(interval, TAIL_KEYS, None);
		let lines = Settlements::<T>::clear_prefix(interval, TAIL_KEYS, None);
		let positions = Positions::<T>::clear_prefix(interval, TAIL_KEYS, None);
		let sides = TraderSides::<T>::clear_prefix(interval, TAIL_KEYS, None);
		if metered.maybe_cursor.is_some()
			|| lines.maybe_cursor.is_some()
			|| positions.maybe_cursor.is_some()
			|| sides.maybe_cursor.is_some()
		{
			return false;
		}
		Outstanding::<T>::remove(interval);
		IntervalTraders::<T>::remove(interval);
		BookLen::<T>::remove(interval);
		Clearings::<T>::remove(interval);
		// At most `MaxClearingPages` pages, and a rejected clearing's are gone already.
		let _ = ClearingPages::<T>::clear_prefix(interval, T::MaxClearingPages::get(), None);
		ClearingAttempts::<T>::remove(interval);
		ClearingPrices::<T>::remove(interval);
		MeteredCount::<T>::remove(interval);
		Settled::<T>::remove(interval);
		Voided::<T>::remove(interval);
		Voiding::<T>::remove(interval);
		true
	}
}
