//! Who may do what, and the privileged settings: the operator's (participants, the grid, the
//! distributor, clearing submitters, market parameters and the operator role itself) and the
//! distributor's (meters).

use crate::{
	ClearingSubmitters, Config, Distributor, EarlierGridStarts, EarlierGrids, EarlierParams,
	EnergySource, Error, Event, Grid, GridFrom, GridLines, IntervalId, Line, MarketOperator,
	MarketParams, Meter, MeterEpochs, MeterKey, MeterSources, Meters, OrdersPlaced, Pallet, Params,
	ParamsFrom, Participant, Participants, ZoneId,
};
use alloc::vec::Vec;
use frame_support::{
	ensure,
	pallet_prelude::{BoundedVec, DispatchResult},
	traits::EnsureOrigin,
};
use frame_system::{ensure_signed, pallet_prelude::OriginFor};
use sp_runtime::DispatchError;

impl<T: Config> Pallet<T> {
	/// `OperatorOrigin`, or a signed origin of the market-operator account in storage.
	pub(crate) fn ensure_operator(origin: OriginFor<T>) -> DispatchResult {
		Self::ensure_governance_or(origin, MarketOperator::<T>::get)
	}

	/// `OperatorOrigin`, or a signed origin of the distributor's account: who may accredit and
	/// revoke meters.
	pub(crate) fn ensure_meter_authority(origin: OriginFor<T>) -> DispatchResult {
		Self::ensure_governance_or(origin, Distributor::<T>::get)
	}

	/// `OperatorOrigin`, or a signed origin of the role's account in storage (read only when
	/// the origin is not governance's).
	fn ensure_governance_or(
		origin: OriginFor<T>,
		role: impl FnOnce() -> Option<T::AccountId>,
	) -> DispatchResult {
		if T::OperatorOrigin::try_origin(origin.clone()).is_ok() {
			return Ok(());
		}
		let who = ensure_signed(origin)?;
		ensure!(role().as_ref() == Some(&who), DispatchError::BadOrigin);
		Ok(())
	}

	/// A signed origin of an account allowed to submit clearings and settlements; returns it.
	pub(crate) fn ensure_clearing_submitter(
		origin: OriginFor<T>,
	) -> Result<T::AccountId, DispatchError> {
		let who = ensure_signed(origin)?;
		ensure!(ClearingSubmitters::<T>::contains_key(&who), Error::<T>::NotClearingSubmitter);
		Ok(who)
	}

	pub(crate) fn do_register_participant(who: T::AccountId, zone: ZoneId) -> DispatchResult {
		Participants::<T>::insert(&who, Participant { zone });
		Self::deposit_event(Event::ParticipantRegistered { who, zone });
		Ok(())
	}

	pub(crate) fn do_accredit_meter(
		meter: MeterKey,
		owner: T::AccountId,
		zone: ZoneId,
		source: EnergySource,
		rated_power_w: u32,
	) -> DispatchResult {
		ensure!(rated_power_w > 0, Error::<T>::RatedPowerRequired);
		ensure!(!Meters::<T>::contains_key(meter), Error::<T>::MeterAlreadyAccredited);
		// A new epoch, never an old one: readings signed before it can never count again.
		let epoch = MeterEpochs::<T>::get(meter).checked_add(1).ok_or(Error::<T>::Overflow)?;
		MeterEpochs::<T>::insert(meter, epoch);
		MeterSources::<T>::try_mutate(&owner, source, |n| -> DispatchResult {
			*n = n.checked_add(1).ok_or(Error::<T>::Overflow)?;
			Ok(())
		})?;
		Meters::<T>::insert(
			meter,
			Meter { owner: owner.clone(), zone, source, rated_power_w, last: None },
		);
		Self::deposit_event(Event::MeterAccredited {
			meter,
			owner,
			zone,
			source,
			rated_power_w,
			epoch,
		});
		Ok(())
	}

	pub(crate) fn do_revoke_meter(meter: MeterKey) -> DispatchResult {
		let gone = Meters::<T>::take(meter).ok_or(Error::<T>::UnknownMeter)?;
		MeterSources::<T>::mutate_exists(&gone.owner, gone.source, |n| {
			*n = n.and_then(|n| n.checked_sub(1)).filter(|n| *n > 0);
		});
		Self::deposit_event(Event::MeterRevoked { meter });
		Ok(())
	}

	/// Adds or replaces the line between two zones in the grid of the intervals whose gates
	/// are still open.
	pub(crate) fn do_set_line(
		a: ZoneId,
		b: ZoneId,
		capacity_wh: u64,
		fee_ticks: u64,
	) -> DispatchResult {
		ensure!(a != b, Error::<T>::SameZone);
		let line = Line { a: a.min(b), b: a.max(b), capacity_wh, fee_ticks };
		let from_interval = Self::change_grid(|grid| Self::put_line(grid, line))?;
		Self::deposit_event(Event::LineSet { line, from_interval });
		Ok(())
	}

	/// Removes the line between two zones from the grid of the intervals whose gates are still
	/// open.
	pub(crate) fn do_remove_line(a: ZoneId, b: ZoneId) -> DispatchResult {
		let (a, b) = (a.min(b), a.max(b));
		let from_interval = Self::change_grid(|grid| {
			let i = grid
				.binary_search_by_key(&(a, b), |l| (l.a, l.b))
				.map_err(|_| Error::<T>::UnknownLine)?;
			grid.remove(i);
			Ok(())
		})?;
		Self::deposit_event(Event::LineRemoved { a, b, from_interval });
		Ok(())
	}

	/// Puts `line` in `grid`, kept sorted by its zones, replacing the line of the same pair.
	pub(crate) fn put_line(grid: &mut GridLines, line: Line) -> DispatchResult {
		match grid.binary_search_by_key(&(line.a, line.b), |l| (l.a, l.b)) {
			Ok(i) => grid[i] = line,
			Err(i) => grid.try_insert(i, line).map_err(|_| Error::<T>::TooManyLines)?,
		}
		Ok(())
	}

	/// Applies `change` to the grid from the first interval whose gate is still open, as
	/// `set_market_params` does to the parameters: an interval whose gate has closed keeps
	/// the grid it closed under (`EarlierGrids`) for its clearing. Returns that first interval.
	fn change_grid(
		change: impl FnOnce(&mut GridLines) -> DispatchResult,
	) -> Result<IntervalId, DispatchError> {
		let latest_from = GridFrom::<T>::get();
		let from = Self::first_open_interval().max(latest_from);
		let mut grid = Grid::<T>::get();
		let before = grid.clone();
		change(&mut grid)?;
		if latest_from < from {
			// The grid so far governs the closed intervals from `latest_from` to `from`.
			let mut starts = EarlierGridStarts::<T>::get();
			starts.try_push(latest_from).map_err(|_| Error::<T>::TooManyGridChanges)?;
			EarlierGrids::<T>::insert(latest_from, before);
			// A grid whose successor starts by the current interval governs only intervals
			// past their clearing deadline (their end): no clearing will read it.
			let current = Params::<T>::get().interval_at(Self::now_ms());
			let next: Vec<IntervalId> = starts.iter().skip(1).copied().chain([from]).collect();
			let gone = next.iter().take_while(|n| **n <= current).count();
			for start in starts.iter().take(gone) {
				EarlierGrids::<T>::remove(start);
			}
			starts = BoundedVec::truncate_from(starts.into_inner().split_off(gone));
			EarlierGridStarts::<T>::put(starts);
		}
		Grid::<T>::put(grid);
		GridFrom::<T>::put(from);
		Ok(from)
	}

	/// The grid that governs `interval`: the one its gate closed under.
	pub fn grid_for(interval: IntervalId) -> GridLines {
		if interval >= GridFrom::<T>::get() {
			return Grid::<T>::get();
		}
		// Before the oldest grid kept the interval is past clearing; the oldest will do.
		let starts = EarlierGridStarts::<T>::get();
		starts
			.iter()
			.rev()
			.find(|start| **start <= interval)
			.or(starts.first())
			.and_then(EarlierGrids::<T>::get)
			.unwrap_or_else(Grid::<T>::get)
	}

	pub(crate) fn do_set_distributor(who: T::AccountId) -> DispatchResult {
		Distributor::<T>::put(&who);
		Self::deposit_event(Event::DistributorSet { who });
		Ok(())
	}

	pub(crate) fn do_set_clearing_submitter(who: T::AccountId, allowed: bool) -> DispatchResult {
		if allowed {
			ClearingSubmitters::<T>::insert(&who, ());
		} else {
			ClearingSubmitters::<T>::remove(&who);
		}
		Self::deposit_event(Event::ClearingSubmitterSet { who, allowed });
		Ok(())
	}

	/// The new parameters govern intervals from the first whose gate is still open; those whose
	/// gate has closed keep theirs (`EarlierParams`). The interval length is frozen once an
	/// order exists: interval ids are derived from it.
	pub(crate) fn do_set_market_params(params: MarketParams) -> DispatchResult {
		ensure!(
			params.interval_ms > 0
				&& params.min_price_ticks <= params.max_price_ticks
				&& params.max_quantity_wh > 0,
			Error::<T>::BadParams
		);
		let latest = Params::<T>::get();
		if params.interval_ms != latest.interval_ms {
			// Nothing traded yet: the clock starts over, with no earlier sets of parameters or
			// grids (their interval ids counted in the old length).
			ensure!(OrdersPlaced::<T>::get() == 0, Error::<T>::BadParams);
			EarlierParams::<T>::kill();
			ParamsFrom::<T>::put(0);
			for start in EarlierGridStarts::<T>::take() {
				EarlierGrids::<T>::remove(start);
			}
			GridFrom::<T>::put(0);
			Params::<T>::put(params);
			Self::deposit_event(Event::MarketParamsSet { params, from_interval: 0 });
			return Ok(());
		}
		let from = Self::first_open_interval();
		let latest_from = ParamsFrom::<T>::get();
		let mut earlier = EarlierParams::<T>::get();
		// Sets that would have started at `from` or later never governed a closed gate.
		earlier.retain(|(start, _)| *start < from);
		if latest_from < from {
			earlier
				.try_push((latest_from, latest))
				.map_err(|_| Error::<T>::TooManyParamChanges)?;
		}
		EarlierParams::<T>::put(earlier);
		ParamsFrom::<T>::put(from);
		Params::<T>::put(params);
		Self::deposit_event(Event::MarketParamsSet { params, from_interval: from });
		Ok(())
	}

	/// The first interval whose gate is still open under the parameters that govern it.
	fn first_open_interval() -> IntervalId {
		let now = Self::now_ms();
		let latest = Params::<T>::get();
		let current = latest.interval_at(now);
		let mut sets = EarlierParams::<T>::get().into_inner();
		sets.push((ParamsFrom::<T>::get(), latest));
		for (i, (start, p)) in sets.iter().enumerate() {
			let end = sets.get(i + 1).map(|(next, _)| *next);
			if end.is_some_and(|end| end <= current) {
				continue;
			}
			// The first interval that starts more than `gate_closure_ms` from now.
			let open = p.interval_at(now.saturating_add(p.gate_closure_ms)).saturating_add(1);
			let first = open.max(*start).max(current);
			if end.is_none_or(|end| first < end) {
				return first;
			}
		}
		current
	}

	pub(crate) fn do_set_market_operator(who: T::AccountId) -> DispatchResult {
		MarketOperator::<T>::put(&who);
		Self::deposit_event(Event::MarketOperatorSet { who });
		Ok(())
	}
}
