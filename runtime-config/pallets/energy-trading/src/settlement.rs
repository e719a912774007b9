//! Settlement after metering: each participant's metered energy is set against its contracted
//! position, and the difference is bought from the distributor at the utility tariff
//! (shortfall) or sold to it at the feed-in rate (surplus).
//!
//! - **It waits for the meters.** A cleared interval settles once every accredited meter of
//!   every trader has reported for it (`Outstanding` is 0), or at its reading deadline
//!   (`MarketParams::reading_deadline`), whichever comes first. A voided interval has no
//!   traders to wait for.
//! - **A missing reading is estimated, then trued up.** A trader whose meters have not all
//!   reported by the deadline is settled as if it delivered or consumed exactly what it traded
//!   (imbalance 0), and its line and event say `estimated`. What that estimate settled beyond
//!   what was measured is kept in `TrueUp`, with the energy of any reading that arrives once
//!   the interval's settlement has begun (a late reading is accepted, so the meter's counter
//!   and registers go on, but it no longer changes a settled line). The participant's next
//!   complete settlement takes `TrueUp` into its metered energy, so over time every Wh
//!   measured is settled exactly once. A meter that skips an interval and reports for a later
//!   one needs nothing special: its cumulative registers carry the skipped energy forward.
//! - **It is paged.** Each call settles up to `max_participants` more participants: the
//!   traders (`Positions`) first, then those metered without trading (`Metered`), in storage
//!   order from where the last call stopped (`SettleProgress`). The call that settles the last
//!   one marks the interval settled. Anyone may call it: when it may run is the chain's rule.
//! - **Sellers are paid once their delivery is metered.** At clearing, buyers pay into the
//!   clearing house (`clearing_house()`); a seller's proceeds (`Position::proceeds`) stay there
//!   until its settlement, which takes any shortfall's cost from them first and pays out the
//!   rest. So a seller that under-delivers cannot have spent the money that covers it; only a
//!   shortfall that costs more than its proceeds is asked of its own account.
//! - **Buyers get the tokens of what they were delivered.** A buyer whose meters all reported
//!   receives from the interval's pool the tokens of what it bought and took, or its share when
//!   sellers delivered less; what is left when the last participant is settled is retired (see
//!   `metering.rs`).
//! - **One failed payment blocks nobody.** A payment that cannot be made (the payer lacks
//!   funds, or the payee does not exist and the amount is below the existential deposit) is
//!   recorded as a debt of the payer to the payee (`Debts`, event `SettlementDebt`), and
//!   settlement goes on.

use crate::{
	BalanceOf, Clearings, Config, Debts, Distributor, EnergyPool, EnergyPools, Error, Event,
	IntervalId, Metered, MeteredEnergy, Pallet, Position, Positions, SettleProgress, Settled,
	SettlementLine, SettlementProgress, Settlements, TrueUp, Voided,
};
use frame_support::{
	ensure,
	traits::{fungible::Mutate, tokens::Preservation},
};
use sp_runtime::{
	traits::{Saturating, Zero},
	DispatchError, SaturatedConversion,
};

/// What settlement knows of one participant in one interval.
struct Participant<AccountId> {
	who: AccountId,
	position: Option<Position>,
	metered: MeteredEnergy,
}

impl<T: Config> Pallet<T> {
	/// Settles up to `max_participants` more participants of `interval`. Returns how many it
	/// settled (for the weight).
	pub(crate) fn do_settle(
		interval: IntervalId,
		max_participants: u32,
	) -> Result<u32, DispatchError> {
		Self::ensure_not_pruned(interval)?;
		// A voided interval settles as if nothing had traded: every line is its metered energy.
		ensure!(
			Clearings::<T>::contains_key(interval) || Voided::<T>::contains_key(interval),
			Error::<T>::NotCleared
		);
		ensure!(!Settled::<T>::contains_key(interval), Error::<T>::AlreadySettled);
		let params = Self::params_for(interval);
		let now = Self::now_ms();
		ensure!(now >= params.interval_end(interval), Error::<T>::IntervalNotEnded);
		let mut progress = SettlementProgress::<T>::get(interval);
		if progress.is_none() {
			ensure!(
				crate::Outstanding::<T>::get(interval) == 0
					|| now >= params.reading_deadline(interval),
				Error::<T>::ReadingsOutstanding
			);
		}
		ensure!(max_participants > 0, Error::<T>::NothingToSettle);
		let mut progress: SettleProgress = progress.take().unwrap_or_default();
		let pool_before = EnergyPools::<T>::get(interval);
		let mut pool = pool_before.unwrap_or_default();

		let mut settled = 0u32;
		while settled < max_participants {
			let Some(next) = Self::next_participant(interval, &mut progress) else {
				break;
			};
			Self::settle_participant(interval, &params, next, &mut progress, &mut pool)?;
			settled += 1;
		}
		// The page may have ended on the last participant; look once more before saying so.
		let finished = settled < max_participants || {
			let mut peek = progress.clone();
			Self::next_participant(interval, &mut peek).is_none()
		};
		if finished {
			SettlementProgress::<T>::remove(interval);
			Settled::<T>::insert(interval, frame_system::Pallet::<T>::block_number());
			Self::deposit_event(Event::IntervalSettled {
				interval,
				participants: progress.participants,
				estimated: progress.estimated,
				shortfall_wh: progress.shortfall_wh,
				surplus_wh: progress.surplus_wh,
			});
			Self::retire_pool(interval, pool);
		} else {
			SettlementProgress::<T>::insert(interval, progress);
			if pool_before.is_some() {
				EnergyPools::<T>::insert(interval, pool);
			}
		}
		Ok(settled)
	}

	/// The next participant after `progress`'s cursor, which it moves past: a trader, or once
	/// the traders are done, someone metered who did not trade.
	fn next_participant(
		interval: IntervalId,
		progress: &mut SettleProgress,
	) -> Option<Participant<T::AccountId>> {
		if !progress.metered_phase {
			let mut iter = match progress.last_key.is_empty() {
				true => Positions::<T>::iter_prefix(interval),
				false => Positions::<T>::iter_prefix_from(interval, progress.last_key.to_vec()),
			};
			if let Some((who, position)) = iter.next() {
				progress.last_key = iter.last_raw_key().to_vec().try_into().unwrap_or_default();
				let metered = Metered::<T>::get(interval, &who).unwrap_or_default();
				return Some(Participant { who, position: Some(position), metered });
			}
			progress.metered_phase = true;
			progress.last_key = Default::default();
		}
		let mut iter = match progress.last_key.is_empty() {
			true => Metered::<T>::iter_prefix(interval),
			false => Metered::<T>::iter_prefix_from(interval, progress.last_key.to_vec()),
		};
		for (who, metered) in iter.by_ref() {
			if !Positions::<T>::contains_key(interval, &who) {
				progress.last_key = iter.last_raw_key().to_vec().try_into().unwrap_or_default();
				return Some(Participant { who, position: None, metered });
			}
		}
		progress.last_key = iter.last_raw_key().to_vec().try_into().unwrap_or_default();
		None
	}

	/// Settles one participant: its line, its true-up, its payment or debt, and a buyer's
	/// tokens from `pool`.
	fn settle_participant(
		interval: IntervalId,
		params: &crate::MarketParams,
		p: Participant<T::AccountId>,
		progress: &mut SettleProgress,
		pool: &mut EnergyPool,
	) -> Result<(), DispatchError> {
		let contracted = p.position.map_or(0, |pos| pos.contracted_wh) as i128;
		let measured = p.metered.import_wh as i128 - p.metered.export_wh as i128;
		let pending = TrueUp::<T>::get(&p.who) as i128;
		let estimated = p.position.is_some_and(|pos| !pos.complete());
		// Estimated: the position stands for the energy, and what it settled beyond what was
		// measured waits in `TrueUp`. Measured: the true-up is taken in now.
		let (metered, trued_up, left) = if estimated {
			(contracted, 0, pending + measured - contracted)
		} else {
			(measured + pending, pending, 0)
		};
		let clamp = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
		// Most participants have nothing pending and nothing estimated: no write for them.
		if left != pending {
			if left == 0 {
				TrueUp::<T>::remove(&p.who);
			} else {
				TrueUp::<T>::insert(&p.who, clamp(left));
			}
		}
		let imbalance = metered - contracted;
		let rate = if imbalance > 0 { params.utility_tariff_ticks } else { params.feed_in_ticks };
		let amount = imbalance.checked_mul(rate as i128).ok_or(Error::<T>::Overflow)?;
		// The seller's proceeds wait in the clearing house until now: a shortfall is bought
		// from them first, and only what they do not cover is asked of the seller's account.
		let proceeds = p.position.map_or(0, |pos| pos.proceeds);
		let house = Self::clearing_house();
		let units = |v: u128| -> BalanceOf<T> { v.saturated_into() };
		let owed = if amount > 0 { amount.unsigned_abs() } else { 0 };
		let from_proceeds = owed.min(proceeds);
		if amount != 0 {
			let grid = Distributor::<T>::get().ok_or(Error::<T>::NoDistributor)?;
			Self::pay_or_owe(interval, &house, &grid, units(from_proceeds));
			if amount > 0 {
				Self::pay_or_owe(interval, &p.who, &grid, units(owed - from_proceeds));
			} else {
				Self::pay_or_owe(interval, &grid, &p.who, units(amount.unsigned_abs()));
			}
		}
		Self::pay_or_owe(interval, &house, &p.who, units(proceeds - from_proceeds));
		if imbalance > 0 {
			progress.shortfall_wh = progress.shortfall_wh.saturating_add(imbalance as u64);
		} else {
			progress.surplus_wh =
				progress.surplus_wh.saturating_add(imbalance.unsigned_abs() as u64);
		}
		progress.participants = progress.participants.saturating_add(1);
		progress.estimated = progress.estimated.saturating_add(estimated as u32);
		let line = SettlementLine {
			contracted_wh: clamp(contracted),
			metered_wh: clamp(metered),
			imbalance_wh: clamp(imbalance),
			amount,
			proceeds,
			estimated,
			trued_up_wh: clamp(trued_up),
		};
		if let Some(pos) = p.position.filter(|pos| pos.contracted_wh > 0 && !estimated) {
			let tokens = pool.share(pos.measured_wh);
			Self::deliver_tokens(interval, pool, &p.who, tokens);
		}
		Settlements::<T>::insert(interval, &p.who, line);
		Self::deposit_event(Event::ParticipantSettled { interval, who: p.who, line });
		Ok(())
	}

	/// Pays `value` from `from` to `to`, or, when that cannot be done (the payer lacks the
	/// funds, or the payee does not exist and `value` is below the existential deposit),
	/// records it as `from`'s debt to `to`. The clearing house never pays below its
	/// existential deposit.
	pub(crate) fn pay_or_owe(
		interval: IntervalId,
		from: &T::AccountId,
		to: &T::AccountId,
		value: BalanceOf<T>,
	) {
		if value.is_zero() || from == to {
			return;
		}
		let keep = if *from == Self::clearing_house() {
			Preservation::Preserve
		} else {
			Preservation::Expendable
		};
		if T::Currency::transfer(from, to, value, keep).is_err() {
			Debts::<T>::mutate(from, to, |d| *d = d.saturating_add(value));
			Self::deposit_event(Event::SettlementDebt {
				interval,
				debtor: from.clone(),
				creditor: to.clone(),
				amount: value,
			});
		}
	}

	/// Whether a reading for `interval` comes after its settlement began: its energy then goes
	/// to the owner's true-up instead of the interval.
	pub(crate) fn settlement_begun(interval: IntervalId) -> bool {
		Settled::<T>::contains_key(interval) || SettlementProgress::<T>::contains_key(interval)
	}
}
