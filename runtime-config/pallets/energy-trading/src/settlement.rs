//! Settlement: after an interval is cleared and has ended, each participant's metered energy is
//! set against its contracted position, and the difference is bought from the distributor at
//! the utility tariff (shortfall) or sold to it at the feed-in rate (surplus).

use crate::{
	BalanceOf, ClearingMatches, Clearings, Config, Distributor, Error, Event, IntervalId, Metered,
	MeteredCount, Orders, Pallet, Params, Settled, SettlementLine, Settlements, Voided,
};
use alloc::collections::{btree_map::BTreeMap, btree_set::BTreeSet};
use frame_support::{
	ensure,
	traits::{fungible::Mutate, tokens::Preservation},
};
use sp_runtime::{DispatchError, SaturatedConversion};

impl<T: Config> Pallet<T> {
	/// Checks that the declared `matches_bound` and `metered_bound` cover the interval's
	/// matches and metered participants (they priced the call), then settles each participant's
	/// imbalance against the distributor. Returns (matches read, participants metered) for the
	/// weight.
	pub(crate) fn do_settle(
		interval: IntervalId,
		matches_bound: u32,
		metered_bound: u32,
	) -> Result<(u32, u32), DispatchError> {
		ensure!(
			ClearingMatches::<T>::decode_len(interval).unwrap_or(0) as u32 <= matches_bound
				&& MeteredCount::<T>::get(interval) <= metered_bound,
			Error::<T>::WitnessTooSmall
		);
		Self::ensure_not_pruned(interval)?;
		// A voided interval settles as if nothing had traded: every line is its metered energy.
		ensure!(
			Clearings::<T>::contains_key(interval) || Voided::<T>::contains_key(interval),
			Error::<T>::NotCleared
		);
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
		let everyone: BTreeSet<T::AccountId> =
			contracted.keys().chain(metered.keys()).cloned().collect();
		let mut shortfall_wh: u64 = 0;
		let mut surplus_wh: u64 = 0;
		let mut distributor: Option<T::AccountId> = None;
		for who in everyone.iter() {
			let c = contracted.get(who).copied().unwrap_or(0);
			let mtr = metered.get(who).copied().unwrap_or(0);
			let imbalance = mtr - c;
			let rate =
				if imbalance > 0 { params.utility_tariff_ticks } else { params.feed_in_ticks };
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
}
