//! Metering and energy tokens: accredited meters' signed cumulative readings become validated
//! import and export per owner and interval, and exported energy is minted as energy tokens
//! (Wh).
//!
//! **Tokens follow the energy.** A token stands for a Wh of metered export that nobody has
//! consumed or retired yet, so it is counted once:
//! - export is minted into its interval's pool (`EnergyPools`), not to the exporter, who could
//!   otherwise sell the energy in the market and its token besides;
//! - once all of a trader's meters have reported, what they measured of its trade is added to
//!   the pool: a seller's delivery (net export up to what it sold), a buyer's take (net import
//!   up to what it bought);
//! - settlement hands each such buyer its take in tokens, or its share of what sellers
//!   delivered when they delivered less (`EnergyPool::share`), and retires the rest at the end:
//!   export paid at feed-in, consumed on site, or traded on an estimate (a trader whose meters
//!   had not all reported by the deadline moves no tokens);
//! - a reading that arrives once its interval's settlement has begun mints nothing: its energy
//!   is settled at the utility's rates by the owner's next settlement (`TrueUp`).
//!
//! So `EnergyIssuance` is always the sum of the balances and of the pools, and the pool of an
//! interval never hands out more than it holds.

use crate::{
	reading_message, Config, EnergyBalance, EnergyIssuance, EnergyPool, EnergyPools, Error, Event,
	IntervalId, MeterEpochs, MeterReading, MeterRegisters, Metered, MeteredCount, MeteredEnergy,
	Meters, Outstanding, Pallet, Positions, RawSignature, TrueUp,
};
use frame_support::{
	ensure,
	pallet_prelude::{DispatchResult, Get},
};

impl<T: Config> Pallet<T> {
	/// Checks a meter's signed reading against its last one and the meter's rated power, records
	/// the energy since then for the meter's owner and mints exported energy as tokens. A meter's
	/// first reading only sets its baseline.
	pub(crate) fn do_reading(reading: MeterReading, signature: RawSignature) -> DispatchResult {
		let mut meter = Meters::<T>::get(reading.meter).ok_or(Error::<T>::UnknownMeter)?;
		let msg = reading_message(&Self::genesis_bytes(), &reading);
		Self::verify_sr25519(&signature, &msg, &reading.meter)?;
		ensure!(
			reading.epoch == MeterEpochs::<T>::get(reading.meter),
			Error::<T>::StaleAccreditation
		);
		Self::ensure_not_pruned(reading.interval)?;
		let params = Self::params_for(reading.interval);
		ensure!(
			Self::now_ms() >= params.interval_end(reading.interval),
			Error::<T>::IntervalNotEnded
		);
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
		meter.last = Some(now);
		Meters::<T>::insert(reading.meter, meter);
		Self::deposit_event(Event::ReadingAccepted {
			meter: reading.meter,
			owner: owner.clone(),
			interval: reading.interval,
			counter: reading.counter,
			import_wh,
			export_wh,
		});
		if Self::settlement_begun(reading.interval) {
			// Too late for its interval's lines: the owner's next settlement takes it in, at the
			// utility's rates, so no token is minted for it.
			let net_wh = (import_wh as i64).saturating_sub(export_wh as i64);
			// An entry that comes back to 0 is removed, not kept as a 0.
			TrueUp::<T>::mutate_exists(&owner, |t| {
				*t = Some(t.unwrap_or(0).saturating_add(net_wh)).filter(|v| *v != 0);
			});
			Self::deposit_event(Event::ReadingTruedUp {
				meter: reading.meter,
				owner,
				interval: reading.interval,
				net_wh,
			});
			return Ok(());
		}
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
		Self::mint(reading.interval, &owner, export_wh)?;
		Self::count_report(reading.interval, &owner, &energy)
	}

	/// One more of `owner`'s meters has reported for `interval` (`energy` is what they measured
	/// so far): a trader whose meters have now all reported no longer holds its settlement back,
	/// and what they measured of its trade joins the interval's pool.
	fn count_report(
		interval: IntervalId,
		owner: &T::AccountId,
		energy: &MeteredEnergy,
	) -> DispatchResult {
		let Some(mut p) = Positions::<T>::get(interval, owner) else { return Ok(()) };
		let was_complete = p.complete();
		p.reported = p.reported.saturating_add(1);
		let completed = !was_complete && p.complete();
		let traded = p.measured_trade_wh(energy);
		if completed {
			p.measured_wh = traded;
		}
		Positions::<T>::insert(interval, owner, p);
		if !completed {
			return Ok(());
		}
		Outstanding::<T>::mutate_exists(interval, |n| {
			*n = n.and_then(|n| n.checked_sub(1)).filter(|n| *n > 0);
		});
		if traded == 0 {
			return Ok(());
		}
		EnergyPools::<T>::try_mutate(interval, |pool| -> DispatchResult {
			let pool = pool.get_or_insert_with(EnergyPool::default);
			let total = match p.contracted_wh > 0 {
				true => &mut pool.taken_wh,
				false => &mut pool.delivered_wh,
			};
			*total = total.checked_add(traded).ok_or(Error::<T>::Overflow)?;
			Ok(())
		})
	}

	/// Mints `amount_wh` energy tokens into `interval`'s pool for `owner`'s validated export.
	fn mint(interval: IntervalId, owner: &T::AccountId, amount_wh: u64) -> DispatchResult {
		if amount_wh == 0 {
			return Ok(());
		}
		EnergyIssuance::<T>::try_mutate(|i| -> DispatchResult {
			*i = i.checked_add(amount_wh).ok_or(Error::<T>::Overflow)?;
			Ok(())
		})?;
		EnergyPools::<T>::mutate(interval, |pool| {
			// Never overflows: the pool holds part of the issuance, just checked.
			let pool = pool.get_or_insert_with(EnergyPool::default);
			pool.held_wh = pool.held_wh.saturating_add(amount_wh);
		});
		Self::deposit_event(Event::EnergyMinted { interval, who: owner.clone(), amount_wh });
		Ok(())
	}

	/// Hands `amount_wh` tokens of `interval`'s pool to the buyer `who`.
	pub(crate) fn deliver_tokens(
		interval: IntervalId,
		pool: &mut EnergyPool,
		who: &T::AccountId,
		amount_wh: u64,
	) {
		let amount_wh = amount_wh.min(pool.held_wh);
		if amount_wh == 0 {
			return;
		}
		pool.held_wh -= amount_wh;
		// Never overflows: a balance is part of the issuance.
		EnergyBalance::<T>::mutate(who, |b| *b = b.saturating_add(amount_wh));
		Self::deposit_event(Event::EnergyDelivered { interval, who: who.clone(), amount_wh });
	}

	/// Retires what is left in `interval`'s pool once its settlement is done.
	pub(crate) fn retire_pool(interval: IntervalId, pool: EnergyPool) {
		EnergyPools::<T>::remove(interval);
		if pool.held_wh == 0 {
			return;
		}
		EnergyIssuance::<T>::mutate(|i| *i = i.saturating_sub(pool.held_wh));
		Self::deposit_event(Event::EnergyRetired { interval, amount_wh: pool.held_wh });
	}

	/// Moves `amount_wh` energy tokens from `from` to `to`.
	pub(crate) fn do_transfer_energy(
		from: T::AccountId,
		to: T::AccountId,
		amount_wh: u64,
	) -> DispatchResult {
		ensure!(amount_wh > 0 && from != to, Error::<T>::EmptyTransfer);
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
}
