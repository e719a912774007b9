//! The pallet's invariants, checked by `try_state` and after every unit and randomized test:
//! each account's bid hold equals the maximum cost of its open bids, each interval counts its
//! traders (at most `MaxTradersPerInterval`), energy tokens held and
//! pooled add up to their issuance, the meters counted per owner and source are the accredited
//! ones, and the parameter sets follow each other in time. Compiled for `try-runtime` and tests only.

use crate::{
	BookLen, BookPages, ClearingPages, ClearingSubmitters, Clearings, ClientOrders, Config, Debts,
	EarlierGridStarts, EarlierGrids, EarlierParams, EnergyBalance, EnergyIssuance, EnergyPools,
	EnergySource, GridFrom, HoldReason, IntervalTraders, MeterSources, Meters, OrderStatus, Pallet,
	Params, ParamsFrom, Participants, PendingClearings, Positions, PruneCursor, Settled,
	Settlements, Side, TraderSides, Voided, Voiding,
};
use alloc::collections::btree_map::BTreeMap;
use frame_support::{
	ensure,
	pallet_prelude::Get,
	traits::fungible::{Inspect, InspectHold},
};
use sp_runtime::SaturatedConversion;

impl<T: Config> Pallet<T> {
	/// Invariants that hold after every call: each account's bid hold equals the maximum
	/// cost of its open bids, and energy tokens add up to their issuance.
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		// A bid holds until its interval is cleared or voided (a book being voided has its
		// first `Voiding` orders released); orders carry no outcome of their own.
		let mut expected: BTreeMap<T::AccountId, u128> = BTreeMap::new();
		let size = T::BookPageSize::get();
		for (interval, len) in BookLen::<T>::iter() {
			// Each book is its `BookLen` orders in full pages and a last one, less the pages
			// pruning has passed the last order of (`PruneCursor`, its interval's orders done).
			let pruned = PruneCursor::<T>::get()
				.and_then(|(next, done)| (next == interval).then_some(done))
				.unwrap_or(0);
			for page in 0..len.div_ceil(size) {
				let share = (len - page * size).min(size);
				let want = (page * size + share > pruned).then_some(share as usize);
				ensure!(
					BookPages::<T>::decode_len(interval, page) == want,
					"a book page holds other than its share of the book's length"
				);
			}
			if Clearings::<T>::contains_key(interval) || Voided::<T>::contains_key(interval) {
				continue;
			}
			let released = Voiding::<T>::get(interval).unwrap_or(0);
			for (_, order) in Self::book_slice(interval, released, len) {
				if order.status == OrderStatus::Open && order.spec.side == Side::Bid {
					*expected.entry(order.owner.clone()).or_default() +=
						order.spec.price_ticks as u128 * order.spec.quantity_wh as u128;
				}
			}
		}
		// No page lies beyond its book, and every client id names its owner's order of that id.
		ensure!(
			BookPages::<T>::iter_keys()
				.all(|(interval, page)| page < BookLen::<T>::get(interval).div_ceil(size)),
			"a book page beyond its book's length"
		);
		for (owner, cid, id) in ClientOrders::<T>::iter() {
			let order = Self::order(id).ok_or("a client id names no order")?;
			ensure!(
				order.owner == owner && order.spec.client_order_id == cid,
				"a client id names another order"
			);
		}
		// Each interval counts its traders, and no more than it may (the one being pruned may be
		// part way through its traders' removal).
		let pruning = PruneCursor::<T>::get().map(|(next, _)| next);
		let mut traders: BTreeMap<u64, u32> = BTreeMap::new();
		for (interval, _, _) in TraderSides::<T>::iter() {
			*traders.entry(interval).or_default() += 1;
		}
		for (interval, n) in IntervalTraders::<T>::iter() {
			ensure!(n <= T::MaxTradersPerInterval::get(), "more traders than an interval may have");
			ensure!(
				Some(interval) == pruning || traders.get(&interval).copied().unwrap_or(0) == n,
				"an interval's trader count differs from its traders"
			);
		}
		ensure!(
			traders
				.keys()
				.all(|k| Some(*k) == pruning || IntervalTraders::<T>::contains_key(k)),
			"an interval with traders and no count"
		);
		// A submitter's deposit is held for each of its registered clearings, and only then.
		let mut deposits: BTreeMap<T::AccountId, u128> = BTreeMap::new();
		for (interval, pending) in PendingClearings::<T>::iter() {
			ensure!(
				!Clearings::<T>::contains_key(interval) && !Voided::<T>::contains_key(interval),
				"a registered clearing of a cleared or voided interval"
			);
			ensure!(
				pending.verified_pages < pending.pages
					&& ClearingPages::<T>::iter_key_prefix(interval)
						.all(|page| page < pending.verified_pages),
				"a registered clearing's pages are not its verified ones"
			);
			*deposits.entry(pending.submitter).or_default() +=
				pending.deposit.saturated_into::<u128>();
		}
		let deposit: T::RuntimeHoldReason = HoldReason::ClearingDeposit.into();
		for (who, _) in ClearingSubmitters::<T>::iter() {
			let held: u128 = T::Currency::balance_on_hold(&deposit, &who).saturated_into();
			let want = deposits.get(&who).copied().unwrap_or(0);
			ensure!(held == want, "a deposit held other than for the submitter's registrations");
		}
		let reason: T::RuntimeHoldReason = HoldReason::BidReserve.into();
		for (who, want) in expected.iter() {
			let held: u128 = T::Currency::balance_on_hold(&reason, who).saturated_into();
			ensure!(held == *want, "bid hold differs from the open bids' maximum cost");
		}
		for (who, _) in Participants::<T>::iter() {
			if !expected.contains_key(&who) {
				let held: u128 = T::Currency::balance_on_hold(&reason, &who).saturated_into();
				ensure!(held == 0, "funds held for an account without open bids");
			}
		}
		let mut sources: BTreeMap<(T::AccountId, EnergySource), u32> = BTreeMap::new();
		for (_, meter) in Meters::<T>::iter() {
			*sources.entry((meter.owner, meter.source)).or_default() += 1;
		}
		ensure!(
			MeterSources::<T>::iter()
				.all(|(who, source, n)| sources.get(&(who, source)) == Some(&n))
				&& MeterSources::<T>::iter().count() == sources.len(),
			"meters per owner and source differ from the accredited meters"
		);
		// The clearing house holds its existential deposit, the proceeds of sellers not settled
		// yet, and what it could not pay out.
		let house = Self::clearing_house();
		let pending: u128 = Positions::<T>::iter()
			.filter(|(k, who, _)| {
				!Settled::<T>::contains_key(k) && !Settlements::<T>::contains_key(k, who)
			})
			.map(|(_, _, p)| p.proceeds)
			.sum();
		let unpaid: u128 =
			Debts::<T>::iter_prefix(&house).map(|(_, d)| d.saturated_into::<u128>()).sum();
		let minimum: u128 = T::Currency::minimum_balance().saturated_into();
		let balance: u128 = T::Currency::balance(&house).saturated_into();
		ensure!(
			balance == minimum + pending + unpaid,
			"the clearing house holds other than its deposit, pending proceeds and debts"
		);
		// Parameter sets follow each other in time and share the clock (the interval length).
		let latest = Params::<T>::get();
		let mut starts: alloc::vec::Vec<_> = EarlierParams::<T>::get()
			.iter()
			.map(|(start, p)| (*start, p.interval_ms))
			.collect();
		starts.push((ParamsFrom::<T>::get(), latest.interval_ms));
		ensure!(
			starts.windows(2).all(|w| w[0].0 < w[1].0)
				&& starts.iter().all(|(_, ms)| *ms == latest.interval_ms),
			"parameter sets out of order or with another interval length"
		);
		// Earlier grids: one per start kept, the starts ascending and before the latest grid's.
		let grid_starts = EarlierGridStarts::<T>::get();
		ensure!(
			grid_starts.windows(2).all(|w| w[0] < w[1])
				&& grid_starts.iter().all(|s| *s < GridFrom::<T>::get())
				&& grid_starts.iter().all(EarlierGrids::<T>::contains_key)
				&& EarlierGrids::<T>::iter_keys().count() == grid_starts.len(),
			"earlier grids out of order or without their start"
		);
		let held: u128 = EnergyBalance::<T>::iter_values().map(|v| v as u128).sum();
		let pooled: u128 = EnergyPools::<T>::iter_values().map(|p| p.held_wh as u128).sum();
		ensure!(
			held + pooled == EnergyIssuance::<T>::get() as u128,
			"energy tokens held and pooled do not add up to issuance"
		);
		ensure!(
			EnergyPools::<T>::iter_keys().all(|k| !Settled::<T>::contains_key(k)),
			"a settled interval still has an energy pool"
		);
		Ok(())
	}
}
