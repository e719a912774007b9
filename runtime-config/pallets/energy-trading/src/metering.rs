//! Metering and energy tokens: accredited meters' signed cumulative readings become validated
//! import and export per owner and interval, and exported energy is minted as energy tokens
//! (Wh) that their holders may transfer.

use crate::{
	reading_message, Config, EnergyBalance, EnergyIssuance, Error, Event, IntervalId, MeterEpochs,
	MeterReading, MeterRegisters, Metered, MeteredCount, Meters, Outstanding, Pallet, Positions,
	RawSignature, TrueUp,
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
		Self::mint(&owner, export_wh)?;
		Self::deposit_event(Event::ReadingAccepted {
			meter: reading.meter,
			owner: owner.clone(),
			interval: reading.interval,
			counter: reading.counter,
			import_wh,
			export_wh,
		});
		if Self::settlement_begun(reading.interval) {
			// Too late for its interval's lines: the owner's next settlement takes it in.
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
		Self::count_report(reading.interval, &owner);
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
		Ok(())
	}

	/// One more of `owner`'s meters has reported for `interval`: a trader whose meters have
	/// now all reported no longer holds its settlement back.
	fn count_report(interval: IntervalId, owner: &T::AccountId) {
		Positions::<T>::mutate_exists(interval, owner, |position| {
			let Some(p) = position else { return };
			let was_complete = p.complete();
			p.reported = p.reported.saturating_add(1);
			if !was_complete && p.complete() {
				Outstanding::<T>::mutate_exists(interval, |n| {
					*n = n.and_then(|n| n.checked_sub(1)).filter(|n| *n > 0);
				});
			}
		});
	}

	/// Mints `amount_wh` energy tokens to `owner` for validated export.
	fn mint(owner: &T::AccountId, amount_wh: u64) -> DispatchResult {
		if amount_wh == 0 {
			return Ok(());
		}
		EnergyBalance::<T>::try_mutate(owner, |b| -> DispatchResult {
			*b = b.checked_add(amount_wh).ok_or(Error::<T>::Overflow)?;
			Ok(())
		})?;
		EnergyIssuance::<T>::try_mutate(|i| -> DispatchResult {
			*i = i.checked_add(amount_wh).ok_or(Error::<T>::Overflow)?;
			Ok(())
		})?;
		Self::deposit_event(Event::EnergyMinted { who: owner.clone(), amount_wh });
		Ok(())
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
