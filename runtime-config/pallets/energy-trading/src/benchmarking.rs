//! Benchmarks for every call, each at the worst case its bounds allow. `weights.rs` is
//! generated from these (see the README's "Weights" section).

use super::*;
use crate::Pallet as Market;
use alloc::{vec, vec::Vec};
use codec::{Decode, Encode};
use frame_benchmarking::v2::*;
use frame_support::{
	traits::{fungible::Mutate, Get},
	BoundedVec,
};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_core::{crypto::KeyTypeId, sr25519};
use sp_runtime::traits::Zero;

const KEY: KeyTypeId = KeyTypeId(*b"watt");
/// Benchmarks run at this time (ms) with one-second intervals; `INTERVAL` is open for orders.
const NOW: u64 = 1_000_000_000;
const INTERVAL: IntervalId = NOW / 1_000 + 2;

/// A fresh sr25519 key in the benchmark keystore, and the account it is.
fn keyed_account<T: Config>() -> (sr25519::Public, T::AccountId) {
	let public = sp_io::crypto::sr25519_generate(KEY, None);
	let who = T::AccountId::decode(&mut &public.0[..]).expect("32-byte account ids");
	(public, who)
}

fn sign(public: &sr25519::Public, msg: &[u8]) -> RawSignature {
	sp_io::crypto::sr25519_sign(KEY, public, msg).expect("key is in the keystore").0
}

fn funded_participant<T: Config>(who: &T::AccountId) {
	let _ = T::Currency::set_balance(
		who,
		BalanceOf::<T>::from(u32::MAX) * BalanceOf::<T>::from(u32::MAX),
	);
	Participants::<T>::insert(who, Participant { zone: 0 });
}

/// A funded participant with an accredited solar meter, so that it may offer solar energy.
fn selling_participant<T: Config>(who: &T::AccountId) {
	funded_participant::<T>(who);
	let meter: MeterKey = sp_io::hashing::blake2_256(&who.encode());
	if !Meters::<T>::contains_key(meter) {
		Market::<T>::do_accredit_meter(meter, who.clone(), 0, EnergySource::Solar, 10_000)
			.expect("a new meter key is accredited");
	}
}

/// One-second intervals, the clock at `NOW`, a distributor: `INTERVAL` is open for orders.
fn setup_market<T: Config>() {
	Params::<T>::put(MarketParams {
		interval_ms: 1_000,
		gate_closure_ms: 500,
		..MarketParams::default()
	});
	Distributor::<T>::put(frame_benchmarking::account::<T::AccountId>("distributor", 0, 0));
	T::BenchmarkHelper::set_now(NOW);
}

/// A grid of `n` lines that do not touch zone 0 (where the benchmarks trade): every clearing
/// reads the whole grid.
fn grid_of(n: u32) -> GridLines {
	let lines = (0..n).map(|i| Line {
		a: 1 + (i / 64) as ZoneId,
		b: 100 + (i % 64) as ZoneId,
		capacity_wh: 1_000_000,
		fee_ticks: 1,
	});
	BoundedVec::truncate_from(lines.collect::<Vec<_>>())
}

fn full_grid<T: Config>(n: u32) {
	Grid::<T>::put(grid_of(n));
}

/// `sets` earlier grids of `MAX_LINES` lines, starting at intervals `0..sets`, and the latest
/// from `latest_from`.
fn earlier_grids<T: Config>(sets: u32, latest_from: IntervalId) {
	for start in 0..sets as IntervalId {
		EarlierGrids::<T>::insert(start, grid_of(MAX_LINES));
	}
	EarlierGridStarts::<T>::put(BoundedVec::truncate_from(
		(0..sets as IntervalId).collect::<Vec<_>>(),
	));
	GridFrom::<T>::put(latest_from);
}

/// Moves the clock to the start of `INTERVAL`: its gate has closed, and it can still be cleared.
fn after_gate<T: Config>() {
	T::BenchmarkHelper::set_now(INTERVAL * 1_000);
}

/// Fills `INTERVAL`'s book up to `n` orders with placeholder offers: a call that appends to
/// a page, or rewrites one, pays to read and write all of it, so it is measured with the pages
/// as full as the call allows.
fn crowd_book<T: Config>(n: u32) {
	let size = T::BookPageSize::get();
	let owner: T::AccountId = account("crowd", 0, 0);
	for slot in BookLen::<T>::get(INTERVAL)..n {
		let order = Order {
			owner: owner.clone(),
			spec: spec(u64::MAX - slot as u64, Side::Offer, 1_000, 60),
			status: OrderStatus::Open,
		};
		let key = BookPages::<T>::hashed_key_for(INTERVAL, slot / size);
		sp_io::storage::append(&key, order.encode());
	}
	BookLen::<T>::mutate(INTERVAL, |len| *len = (*len).max(n));
}

/// The largest book the benchmarks build: a call reads and writes a book a page at a time, so
/// its cost per order or page is the same in a bigger one, which would only make the setup
/// slow. The weights are linear, and `integrity_test` checks them at `MaxOrdersPerInterval`.
fn bench_book<T: Config>() -> u32 {
	T::MaxOrdersPerInterval::get().min(10_000)
}

/// The id the next order placed in `INTERVAL` gets.
fn next_order_id<T: Config>() -> OrderId {
	order_id(INTERVAL, BookLen::<T>::get(INTERVAL)).expect("INTERVAL packs")
}

/// Moves the clock past the end of `INTERVAL`: its gate has closed and it has ended.
fn after_interval<T: Config>() {
	T::BenchmarkHelper::set_now((INTERVAL + 1) * 1_000);
}

fn spec(cid: u64, side: Side, qty: u64, price: u64) -> OrderSpec {
	OrderSpec {
		client_order_id: cid,
		interval: INTERVAL,
		side,
		quantity_wh: qty,
		price_ticks: price,
		zone: 0,
		source: if side == Side::Offer { EnergySource::Solar } else { EnergySource::GridMix },
		renewable_only: false,
	}
}

fn genesis<T: Config>() -> Vec<u8> {
	frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero()).encode()
}

#[benchmarks(where T::AccountId: Decode)]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn register_participant() {
		let who: T::AccountId = account("who", 0, 0);
		#[extrinsic_call]
		_(RawOrigin::Root, who.clone(), 7);
		assert!(Participants::<T>::contains_key(&who));
	}

	#[benchmark]
	fn accredit_meter() {
		let who: T::AccountId = account("who", 0, 0);
		// The distributor's signed origin: the path that reads storage.
		let distributor: T::AccountId = account("distributor", 0, 0);
		Distributor::<T>::put(&distributor);
		#[extrinsic_call]
		_(RawOrigin::Signed(distributor), [7u8; 32], who, 0, EnergySource::Solar, 5_000);
		assert!(Meters::<T>::contains_key([7u8; 32]));
	}

	#[benchmark]
	fn revoke_meter() {
		let who: T::AccountId = account("who", 0, 0);
		Meters::<T>::insert(
			[7u8; 32],
			Meter {
				owner: who,
				zone: 0,
				source: EnergySource::Solar,
				rated_power_w: 5_000,
				last: None,
			},
		);
		let distributor: T::AccountId = account("distributor", 0, 0);
		Distributor::<T>::put(&distributor);
		#[extrinsic_call]
		_(RawOrigin::Signed(distributor), [7u8; 32]);
		assert!(!Meters::<T>::contains_key([7u8; 32]));
	}

	/// A grid one line short of full, and the new line goes first (every other one moves).
	/// The grid so far is kept for the intervals whose gates have closed, and all the earlier
	/// grids one short of the most, long past, are dropped.
	#[benchmark]
	fn set_line() {
		setup_market::<T>();
		full_grid::<T>(MAX_LINES - 1);
		earlier_grids::<T>(MAX_GRID_SETS - 1, MAX_GRID_SETS as IntervalId);
		#[extrinsic_call]
		_(RawOrigin::Root, 0, 1, 9_000, 9);
		let grid = Grid::<T>::get();
		assert_eq!((grid.len() as u32, grid[0].fee_ticks), (MAX_LINES, 9));
		assert_eq!(EarlierGridStarts::<T>::get().len(), 1);
	}

	#[benchmark]
	fn set_distributor() {
		let who: T::AccountId = account("who", 0, 0);
		#[extrinsic_call]
		_(RawOrigin::Root, who.clone());
		assert_eq!(Distributor::<T>::get(), Some(who));
	}

	#[benchmark]
	fn set_clearing_submitter() {
		let who: T::AccountId = account("who", 0, 0);
		#[extrinsic_call]
		_(RawOrigin::Root, who.clone(), true);
		assert!(ClearingSubmitters::<T>::contains_key(&who));
	}

	#[benchmark]
	/// The most earlier parameter sets to read, one short of full, and the latest set pushed
	/// onto them: it governed intervals whose gates have closed.
	#[benchmark]
	fn set_market_params() {
		setup_market::<T>();
		let current = Params::<T>::get();
		let first = INTERVAL - 2 * MAX_PARAM_SETS as u64;
		let earlier: Vec<_> =
			(0..MAX_PARAM_SETS as u64 - 1).map(|i| (first + i, current)).collect();
		EarlierParams::<T>::put(BoundedVec::truncate_from(earlier));
		ParamsFrom::<T>::put(first + MAX_PARAM_SETS as u64);
		let params = MarketParams { feed_in_ticks: 1, ..current };
		#[extrinsic_call]
		_(RawOrigin::Root, params);
		assert_eq!(Params::<T>::get(), params);
		assert_eq!(EarlierParams::<T>::get().len() as u32, MAX_PARAM_SETS);
	}

	#[benchmark]
	fn set_market_operator() {
		let who: T::AccountId = account("who", 0, 0);
		#[extrinsic_call]
		_(RawOrigin::Root, who.clone());
		assert_eq!(MarketOperator::<T>::get(), Some(who));
	}

	#[benchmark]
	fn place_order() {
		setup_market::<T>();
		let who: T::AccountId = account("buyer", 0, 0);
		funded_participant::<T>(&who);
		let full = bench_book::<T>();
		crowd_book::<T>(full - 1);
		#[extrinsic_call]
		_(RawOrigin::Signed(who), spec(1, Side::Bid, 1_000, 50));
		assert_eq!(BookLen::<T>::get(INTERVAL), full);
	}

	/// `t` traders each place their first order in the interval, then `e` further orders
	/// follow, spread over them, into a book as full as the batch allows: what one (owner,
	/// interval) pair costs (its registration, side, hold and account are read and written
	/// once) and what each further order costs (its own keys only). Each range is half the
	/// batch bound, so that every measured batch is a valid call.
	#[benchmark]
	fn place_orders_relayed(
		t: Linear<1, { T::MaxRelayBatch::get() / 2 }>,
		e: Linear<0, { T::MaxRelayBatch::get() / 2 }>,
	) {
		setup_market::<T>();
		let before = bench_book::<T>() - (t + e);
		crowd_book::<T>(before);
		let genesis = genesis::<T>();
		let traders: Vec<_> = (0..t)
			.map(|_| {
				let (public, owner) = keyed_account::<T>();
				funded_participant::<T>(&owner);
				(public, owner)
			})
			.collect();
		let mut orders = Vec::new();
		for i in 0..t + e {
			let (public, owner) = &traders[(i % t) as usize];
			let s = spec(i as u64, Side::Bid, 1_000, 50);
			let signature = sign(public, &order_message(&genesis, &public.0, &s));
			orders.push(SignedOrder { owner: owner.clone(), spec: s, signature });
		}
		let relayer: T::AccountId = whitelisted_caller();
		let batch: BoundedVec<_, T::MaxRelayBatch> =
			orders.try_into().expect("t + e is within the bound");
		#[extrinsic_call]
		_(RawOrigin::Signed(relayer), batch);
		assert_eq!(BookLen::<T>::get(INTERVAL), before + t + e);
	}

	#[benchmark]
	fn cancel_order() -> Result<(), BenchmarkError> {
		setup_market::<T>();
		let who: T::AccountId = account("buyer", 0, 0);
		funded_participant::<T>(&who);
		Market::<T>::do_place_order(who.clone(), spec(1, Side::Bid, 1_000, 50))?;
		// Its page full: the cancel rewrites all of it.
		crowd_book::<T>(T::BookPageSize::get());
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), 1);
		let id = ClientOrders::<T>::get(&who, 1).expect("placed");
		assert_eq!(Market::<T>::order(id).map(|o| o.status), Some(OrderStatus::Cancelled));
		Ok(())
	}

	#[benchmark]
	fn cancel_orders_relayed(
		n: Linear<1, { T::MaxRelayBatch::get() }>,
	) -> Result<(), BenchmarkError> {
		setup_market::<T>();
		let genesis = genesis::<T>();
		let mut cancels = Vec::new();
		for i in 0..n {
			let (public, owner) = keyed_account::<T>();
			funded_participant::<T>(&owner);
			Market::<T>::do_place_order(owner.clone(), spec(i as u64, Side::Bid, 1_000, 50))?;
			let signature = sign(&public, &cancel_message(&genesis, &public.0, i as u64));
			cancels.push(SignedCancel { owner, client_order_id: i as u64, signature });
		}
		crowd_book::<T>(n.next_multiple_of(T::BookPageSize::get()));
		let relayer: T::AccountId = whitelisted_caller();
		let batch: BoundedVec<_, T::MaxRelayBatch> =
			cancels.try_into().expect("n is within the bound");
		#[extrinsic_call]
		_(RawOrigin::Signed(relayer), batch);
		assert!(Market::<T>::book_slice(INTERVAL, 0, n)
			.iter()
			.all(|(_, o)| o.status == OrderStatus::Cancelled));
		Ok(())
	}

	/// `p` pairs of traders, each a buyer and a seller with one match between them; `e` further
	/// matches between the first pair, each with its own bid and offer; `o` offers no match
	/// names, of one idle seller. Each trader has meters to count, and each buyer a hold to pay
	/// from and release.
	///
	/// The ranges keep the book within `bench_book` (o + 2p + 2e) and give the cheap
	/// further matches the widest range: each component is measured with the others at their
	/// highest, and a match's few microseconds must stand out from the rest of the call.
	#[benchmark]
	fn submit_clearing(
		o: Linear<0, { bench_book::<T>() / 4 }>,
		p: Linear<1, { T::MaxMatchesPerPage::get().min(bench_book::<T>() / 16) }>,
		e: Linear<0, { T::MaxMatchesPerPage::get().min(bench_book::<T>() / 4) }>,
	) -> Result<(), BenchmarkError> {
		setup_market::<T>();
		// The interval's grid is an earlier one (a change came after its gate closed), read
		// from the most kept: the longer path.
		earlier_grids::<T>(MAX_GRID_SETS, INTERVAL + 1);
		let mut matches = Vec::new();
		let mut trade =
			|b: &T::AccountId, s: &T::AccountId, cid: u64| -> Result<(), BenchmarkError> {
				let bid = next_order_id::<T>();
				Market::<T>::do_place_order(b.clone(), spec(cid, Side::Bid, 1_000, 60))?;
				let offer = next_order_id::<T>();
				Market::<T>::do_place_order(s.clone(), spec(cid, Side::Offer, 1_000, 40))?;
				matches.push(Match {
					bid,
					offer,
					quantity_wh: 1_000,
					buyer_price: 50,
					seller_price: 50,
				});
				Ok(())
			};
		for i in 0..p {
			let b: T::AccountId = account("buyer", i, 0);
			let s: T::AccountId = account("seller", i, 0);
			funded_participant::<T>(&b);
			selling_participant::<T>(&s);
			trade(&b, &s, 0)?;
		}
		let (b, s): (T::AccountId, T::AccountId) =
			(account("buyer", 0, 0), account("seller", 0, 0));
		for i in 0..e {
			trade(&b, &s, 1 + i as u64)?;
		}
		let idle: T::AccountId = account("idle", 0, 0);
		selling_participant::<T>(&idle);
		for i in 0..o {
			Market::<T>::do_place_order(idle.clone(), spec(i as u64, Side::Offer, 1_000, 9_000))?;
		}
		let submitter: T::AccountId = whitelisted_caller();
		ClearingSubmitters::<T>::insert(&submitter, ());
		// It can cover the deposit an invalid clearing would cost.
		funded_participant::<T>(&submitter);
		after_gate::<T>();
		let prices: BoundedVec<_, T::MaxZones> =
			vec![ZonePrice { zone: 0, price: 50 }].try_into().expect("one");
		let volume = 1_000 * matches.len() as u64;
		let matches: BoundedVec<_, T::MaxMatchesPerPage> =
			matches.try_into().expect("p + e is within the bound");
		let book = BookShape { orders: 2 * (p + e) + o, traders: 2 * p + (o > 0) as u32 };
		#[extrinsic_call]
		_(
			RawOrigin::Signed(submitter),
			INTERVAL,
			Mechanism::Uniform,
			volume,
			prices,
			matches,
			book,
		);
		assert!(Clearings::<T>::contains_key(INTERVAL));
		Ok(())
	}

	/// A registration that takes over an abandoned one, whose deposit it burns and whose pages
	/// (all but the last) it removes.
	#[benchmark]
	fn register_clearing() -> Result<(), BenchmarkError> {
		setup_market::<T>();
		full_grid::<T>(MAX_LINES);
		let pages = T::MaxClearingPages::get();
		let absent: T::AccountId = account("absent", 0, 0);
		let submitter: T::AccountId = whitelisted_caller();
		for who in [&absent, &submitter] {
			ClearingSubmitters::<T>::insert(who, ());
			funded_participant::<T>(who);
		}
		let prices: BoundedVec<_, T::MaxZones> =
			vec![ZonePrice { zone: 0, price: 50 }].try_into().expect("one");
		after_gate::<T>();
		let m = Match { bid: 0, offer: 1, quantity_wh: 1, buyer_price: 50, seller_price: 50 };
		Market::<T>::do_register_clearing(
			absent,
			INTERVAL,
			Mechanism::Uniform,
			1,
			prices.clone(),
			pages,
			pages,
		)?;
		for page in 0..pages - 1 {
			ClearingPages::<T>::insert(INTERVAL, page, BoundedVec::truncate_from(vec![m]));
		}
		PendingClearings::<T>::mutate(INTERVAL, |p| {
			if let Some(p) = p {
				p.verified_pages = pages - 1;
			}
		});
		let now = frame_system::Pallet::<T>::block_number();
		frame_system::Pallet::<T>::set_block_number(now + T::SubmissionPatience::get());
		#[extrinsic_call]
		_(RawOrigin::Signed(submitter.clone()), INTERVAL, Mechanism::Uniform, 1, prices, 1, 1);
		assert!(PendingClearings::<T>::get(INTERVAL).is_some_and(|p| p.submitter == submitter));
		Ok(())
	}

	/// A page before the last of `m` matches naming orders on `b` book pages, each with the
	/// fills of earlier pages: a bid and an offer head every page, and match `i` pairs page
	/// `i`'s bid with page `i + 1`'s offer (mod `b`).
	#[benchmark]
	fn submit_clearing_page(
		m: Linear<{ bench_book::<T>() / T::BookPageSize::get() }, { T::MaxMatchesPerPage::get() }>,
		b: Linear<1, { bench_book::<T>() / T::BookPageSize::get() }>,
	) -> Result<(), BenchmarkError> {
		setup_market::<T>();
		full_grid::<T>(MAX_LINES);
		let size = T::BookPageSize::get();
		let (buyer, seller): (T::AccountId, T::AccountId) =
			(account("buyer", 0, 0), account("seller", 0, 0));
		let head = |owner: &T::AccountId, side: Side, page: u32, price: u64| Order {
			owner: owner.clone(),
			spec: spec(page as u64, side, u32::MAX as u64, price),
			status: OrderStatus::Open,
		};
		for page in 0..b {
			let mut orders =
				vec![head(&buyer, Side::Bid, page, 60), head(&seller, Side::Offer, page, 40)];
			orders.resize(size.max(2) as usize, head(&seller, Side::Offer, page, 9_000));
			orders.truncate(size as usize);
			BookPages::<T>::insert(INTERVAL, page, BoundedVec::truncate_from(orders));
		}
		BookLen::<T>::insert(INTERVAL, b * size);
		let slot = |page: u32, entry: u32| order_id(INTERVAL, page * size + entry).expect("packs");
		let matches: Vec<Match> = (0..m)
			.map(|i| Match {
				bid: slot(i % b, 0),
				offer: slot((i + 1) % b, 1.min(size - 1)),
				quantity_wh: 1,
				buyer_price: 50,
				seller_price: 50,
			})
			.collect();
		let submitter: T::AccountId = whitelisted_caller();
		ClearingSubmitters::<T>::insert(&submitter, ());
		funded_participant::<T>(&submitter);
		let prices: BoundedVec<_, T::MaxZones> =
			vec![ZonePrice { zone: 0, price: 50 }].try_into().expect("one");
		after_gate::<T>();
		Market::<T>::do_register_clearing(
			submitter.clone(),
			INTERVAL,
			Mechanism::Uniform,
			2 * m as u64,
			prices,
			2 * m,
			3,
		)?;
		// Page 0 went before, with the same matches: its fills are there to read.
		Market::<T>::do_clearing_page(submitter.clone(), INTERVAL, 0, &matches, None)?;
		let matches: BoundedVec<_, T::MaxMatchesPerPage> =
			matches.try_into().expect("m is within the bound");
		#[extrinsic_call]
		_(RawOrigin::Signed(submitter), INTERVAL, 1, matches, None);
		assert!(PendingClearings::<T>::get(INTERVAL).is_some_and(|p| p.verified_pages == 2));
		Ok(())
	}

	/// `n` open bids (each its own buyer, so each releases a hold) voided, in a book of `n + o`.
	/// The buyers and the idle seller are at most the traders an interval may have.
	#[benchmark]
	fn void_interval(
		o: Linear<0, { bench_book::<T>() / 2 }>,
		n: Linear<1, { (bench_book::<T>() / 2).min(T::MaxTradersPerInterval::get() - 1) }>,
	) -> Result<(), BenchmarkError> {
		setup_market::<T>();
		for i in 0..n {
			let b: T::AccountId = account("buyer", i, 0);
			funded_participant::<T>(&b);
			Market::<T>::do_place_order(b, spec(i as u64, Side::Bid, 1_000, 60))?;
		}
		let idle: T::AccountId = account("idle", 0, 0);
		selling_participant::<T>(&idle);
		for i in 0..o {
			Market::<T>::do_place_order(idle.clone(), spec(i as u64, Side::Offer, 1_000, 9_000))?;
		}
		after_interval::<T>();
		let caller: T::AccountId = whitelisted_caller();
		#[extrinsic_call]
		_(RawOrigin::Signed(caller), INTERVAL, n, n + o);
		assert_eq!(Voided::<T>::contains_key(INTERVAL), o == 0);
		Ok(())
	}

	/// `n` orders of a full book pruned (reading the book is part of the cost).
	#[benchmark]
	fn prune_orders(n: Linear<0, { bench_book::<T>() / 2 }>) -> Result<(), BenchmarkError> {
		setup_market::<T>();
		let who: T::AccountId = account("seller", 0, 0);
		selling_participant::<T>(&who);
		for i in 0..n {
			Market::<T>::do_place_order(who.clone(), spec(i as u64, Side::Offer, 1_000, 60))?;
		}
		crowd_book::<T>(bench_book::<T>());
		// A clearing's fills of every page go with it.
		let size = T::BookPageSize::get();
		for page in 0..bench_book::<T>().div_ceil(size) {
			let fills = BoundedVec::truncate_from(vec![1u64; size as usize]);
			Fills::<T>::insert(INTERVAL, page, (1, fills));
		}
		#[block]
		{
			Market::<T>::prune_orders(INTERVAL, 0, n);
		}
		assert!(!ClientOrders::<T>::contains_key(&who, 0) || n == 0);
		Ok(())
	}

	/// The check and the rest of a settled interval: the most metered energy and settlement
	/// lines one block removes, a full clearing's matches and prices.
	#[benchmark]
	fn prune_tail() {
		setup_market::<T>();
		let submitter: T::AccountId = whitelisted_caller();
		Clearings::<T>::insert(
			INTERVAL,
			ClearingSummary {
				mechanism: Mechanism::Zonal,
				volume_wh: 1,
				match_count: 1,
				pages: T::MaxClearingPages::get(),
				submitter,
				block: frame_system::Pallet::<T>::block_number(),
			},
		);
		let m = Match { bid: 0, offer: 1, quantity_wh: 1, buyer_price: 1, seller_price: 1 };
		for page in 0..T::MaxClearingPages::get() {
			ClearingPages::<T>::insert(INTERVAL, page, BoundedVec::truncate_from(vec![m]));
		}
		let prices = vec![ZonePrice { zone: 0, price: 1 }; T::MaxZones::get() as usize];
		ClearingPrices::<T>::insert(INTERVAL, BoundedVec::truncate_from(prices));
		for i in 0..crate::pruning::TAIL_KEYS {
			let who: T::AccountId = account("metered", i, 0);
			Metered::<T>::insert(INTERVAL, &who, MeteredEnergy { import_wh: 1, export_wh: 0 });
			let line = SettlementLine {
				contracted_wh: 0,
				metered_wh: 1,
				imbalance_wh: 1,
				amount: 1,
				proceeds: 0,
				estimated: false,
				trued_up_wh: 0,
			};
			Settlements::<T>::insert(INTERVAL, &who, line);
			Positions::<T>::insert(INTERVAL, &who, Position::default());
			TraderSides::<T>::insert(INTERVAL, &who, (Side::Bid, 1));
		}
		MeteredCount::<T>::insert(INTERVAL, crate::pruning::TAIL_KEYS);
		Settled::<T>::insert(INTERVAL, frame_system::Pallet::<T>::block_number());
		let done;
		#[block]
		{
			done = Market::<T>::done_with(INTERVAL) && Market::<T>::prune_tail(INTERVAL);
		}
		assert!(done && !Settled::<T>::contains_key(INTERVAL));
	}

	#[benchmark]
	fn submit_reading() {
		setup_market::<T>();
		let (public, owner) = keyed_account::<T>();
		let last =
			MeterRegisters { interval: INTERVAL - 1, counter: 1, import_wh: 0, export_wh: 0 };
		Meters::<T>::insert(
			public.0,
			Meter {
				owner: owner.clone(),
				zone: 0,
				source: EnergySource::Solar,
				rated_power_w: 10_000,
				last: Some(last),
			},
		);
		MeterEpochs::<T>::insert(public.0, 1);
		// Its owner traded, so the reading is the report settlement waits for, and what it
		// measured of the trade joins the interval's energy pool.
		Positions::<T>::insert(
			INTERVAL,
			&owner,
			Position { contracted_wh: -1, meters: 1, reported: 0, proceeds: 0, measured_wh: 0 },
		);
		Outstanding::<T>::insert(INTERVAL, 1);
		let reading = MeterReading {
			meter: public.0,
			epoch: 1,
			interval: INTERVAL,
			counter: 2,
			import_wh: 1,
			export_wh: 2,
		};
		let signature = sign(&public, &reading_message(&genesis::<T>(), &reading));
		after_interval::<T>();
		let relayer: T::AccountId = whitelisted_caller();
		#[extrinsic_call]
		_(RawOrigin::Signed(relayer), reading, signature);
		let pool = EnergyPools::<T>::get(INTERVAL).expect("minted");
		assert_eq!((pool.held_wh, pool.delivered_wh), (2, 1));
		assert!(!Outstanding::<T>::contains_key(INTERVAL));
	}

	#[benchmark]
	fn transfer_energy() {
		let from: T::AccountId = whitelisted_caller();
		let to: T::AccountId = account("to", 0, 0);
		EnergyBalance::<T>::insert(&from, 10_000);
		EnergyIssuance::<T>::put(10_000);
		#[extrinsic_call]
		_(RawOrigin::Signed(from), to.clone(), 4_000);
		assert_eq!(EnergyBalance::<T>::get(&to), 4_000);
	}

	/// A page of `p` traders, each with a position, metered energy, an earlier estimate to true
	/// up, a shortfall paid from its proceeds and the rest of them paid out, after which the
	/// page looks for one more (the worst case: the interval has more participants than the
	/// page). A seller costs more than a buyer: two payments against a buyer's one and its
	/// tokens; the interval's energy pool is read and written once per page.
	#[benchmark]
	fn settle_interval(p: Linear<1, { crate::MAX_SETTLE_PAGE }>) -> Result<(), BenchmarkError> {
		setup_market::<T>();
		let distributor = Distributor::<T>::get().expect("set up");
		funded_participant::<T>(&distributor);
		funded_participant::<T>(&Market::<T>::clearing_house());
		for i in 0..=p {
			let who: T::AccountId = account("trader", i, 0);
			funded_participant::<T>(&who);
			let position = Position {
				contracted_wh: -1_000,
				meters: 1,
				reported: 1,
				proceeds: 50_000,
				measured_wh: 700,
			};
			Positions::<T>::insert(INTERVAL, &who, position);
			Metered::<T>::insert(INTERVAL, &who, MeteredEnergy { import_wh: 0, export_wh: 700 });
			TrueUp::<T>::insert(&who, 100);
		}
		let pool =
			EnergyPool { held_wh: 700 * p as u64, delivered_wh: 700 * p as u64, taken_wh: 0 };
		EnergyPools::<T>::insert(INTERVAL, pool);
		EnergyIssuance::<T>::put(pool.held_wh);
		Clearings::<T>::insert(
			INTERVAL,
			ClearingSummary {
				mechanism: Mechanism::Uniform,
				volume_wh: 1_000 * p as u64,
				match_count: p,
				pages: 1,
				submitter: distributor,
				block: frame_system::Pallet::<T>::block_number(),
			},
		);
		after_interval::<T>();
		let caller: T::AccountId = whitelisted_caller();
		#[extrinsic_call]
		_(RawOrigin::Signed(caller), INTERVAL, p);
		assert!(SettlementProgress::<T>::get(INTERVAL).is_some_and(|s| s.participants == p));
		Ok(())
	}

	impl_benchmark_test_suite!(Market, crate::mock::new_bench_ext(), crate::mock::Test);
}
