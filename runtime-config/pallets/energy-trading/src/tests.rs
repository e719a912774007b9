//! Every call's success and every error it can return, then a randomized run of valid and
//! invalid clearings with the invariants checked after each step.

use crate::{mock::*, *};
use codec::Encode;
use frame_support::{
	assert_noop, assert_ok,
	dispatch::GetDispatchInfo,
	traits::fungible::{Inspect, InspectHold},
	BoundedVec,
};
use sp_core::{sr25519, Pair};
use sp_runtime::{AccountId32, DispatchError, DispatchResult};

/// The golden vectors of the signed messages, shared with the Python side.
mod vectors;

type E = Error<Test>;
type Ev = Event<Test>;

fn origin(who: &AccountId32) -> RuntimeOrigin {
	RuntimeOrigin::signed(who.clone())
}

fn spec(cid: u64, interval: u64, side: Side, qty: u64, price: u64, zone: u16) -> OrderSpec {
	OrderSpec {
		client_order_id: cid,
		interval,
		side,
		quantity_wh: qty,
		price_ticks: price,
		zone,
		source: if side == Side::Offer { EnergySource::Solar } else { EnergySource::GridMix },
		renewable_only: false,
	}
}

/// Places an order as its owner and returns its id.
fn place(who: &AccountId32, s: OrderSpec) -> OrderId {
	let id = order_id(s.interval, BookLen::<Test>::get(s.interval)).expect("an id");
	assert_ok!(Market::place_order(origin(who), s));
	id
}

fn genesis() -> Vec<u8> {
	frame_system::Pallet::<Test>::block_hash(0u64).encode()
}

fn signed_order(seed: &str, s: OrderSpec) -> SignedOrder<AccountId32> {
	let p = pair(seed);
	let msg = order_message(&genesis(), &p.public().0, &s);
	SignedOrder { owner: account(seed), spec: s, signature: p.sign(&msg).0 }
}

fn signed_cancel(seed: &str, cid: u64) -> SignedCancel<AccountId32> {
	let p = pair(seed);
	let msg = cancel_message(&genesis(), &p.public().0, cid);
	SignedCancel { owner: account(seed), client_order_id: cid, signature: p.sign(&msg).0 }
}

fn at(ms: u64) {
	Timestamp::set_timestamp(ms);
}
fn close_gate(interval: u64) {
	at(interval * INTERVAL_MS - GATE_MS);
}
fn end_interval(interval: u64) {
	at((interval + 1) * INTERVAL_MS);
}

fn m(bid: OrderId, offer: OrderId, q: u64, bp: u64, sp: u64) -> Match {
	Match { bid, offer, quantity_wh: q, buyer_price: bp, seller_price: sp }
}

fn clear(
	interval: u64,
	mech: Mechanism,
	prices: &[(u16, u64)],
	matches: &[Match],
) -> DispatchResult {
	let volume = matches.iter().map(|m| m.quantity_wh).sum();
	clear_with_volume(interval, mech, prices, matches, volume)
}

/// Each interval's mechanism is a market parameter (`set_market_params`). Most tests check one
/// mechanism's rules at a time, so they set it for every interval, as genesis would;
/// `each_interval_keeps_the_parameters_its_gate_closed_under` checks the rule itself. Returns
/// the mechanism it replaced.
fn use_mechanism(mech: Mechanism) -> Mechanism {
	Params::<Test>::mutate(|p| core::mem::replace(&mut p.mechanism, mech))
}

fn clear_with_volume(
	interval: u64,
	mech: Mechanism,
	prices: &[(u16, u64)],
	matches: &[Match],
	volume: u64,
) -> DispatchResult {
	let before = use_mechanism(mech);
	let zp: Vec<ZonePrice> =
		prices.iter().map(|(z, p)| ZonePrice { zone: *z, price: *p }).collect();
	// A refused clearing leaves no trace, so the parameters go back as they were too. A
	// rejected one (`ClearingRejected`: the call succeeds and burns the deposit) is reported
	// as its error and undone here, so that tests of the checks read as refusals;
	// `an_invalid_clearing_burns_its_submitters_deposit` checks the deposit.
	let result = submit_checked(interval, mech, volume, zp, matches.to_vec());
	if result.is_err() {
		use_mechanism(before);
	}
	result
}

/// `submit_raw`, with a rejected clearing undone and reported as its error.
fn submit_checked(
	interval: u64,
	mech: Mechanism,
	volume: u64,
	zone_prices: Vec<ZonePrice>,
	matches: Vec<Match>,
) -> DispatchResult {
	frame_support::storage::with_storage_layer(|| {
		submit_raw(interval, mech, volume, zone_prices, matches)?;
		rejection().map_or(Ok(()), Err)
	})
}

/// The shape of `interval`'s book, as a submitter declares it: its orders and the owners of
/// its open ones.
fn book_shape(interval: u64) -> BookShape {
	let book = Market::book(interval);
	let traders: std::collections::BTreeSet<_> = book
		.iter()
		.filter(|(_, o)| o.status == OrderStatus::Open)
		.map(|(_, o)| o.owner.clone())
		.collect();
	BookShape { orders: book.len() as u32, traders: traders.len() as u32 }
}

/// `submit_clearing` as the submitter sends it; a rejected clearing is `Ok` here.
fn submit_raw(
	interval: u64,
	mech: Mechanism,
	volume: u64,
	zone_prices: Vec<ZonePrice>,
	matches: Vec<Match>,
) -> DispatchResult {
	let events = System::event_count();
	Market::submit_clearing(
		origin(&operator()),
		interval,
		mech,
		volume,
		BoundedVec::truncate_from(zone_prices),
		BoundedVec::truncate_from(matches),
		book_shape(interval),
	)
	.map(|_| ())
	.map_err(|e| e.error)?;
	LAST_CALL_EVENTS.with(|n| n.set(events));
	Ok(())
}

thread_local! {
	/// How many events there were before the last `submit_raw` call.
	static LAST_CALL_EVENTS: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

/// The error of the `ClearingRejected` event of the last `submit_raw` call, if it had one.
fn rejection() -> Option<DispatchError> {
	let from = LAST_CALL_EVENTS.with(|n| n.get()) as usize;
	System::events().into_iter().skip(from).find_map(|r| match r.event {
		RuntimeEvent::Market(Ev::ClearingRejected { error, .. }) => Some(error),
		_ => None,
	})
}

fn settle(interval: u64) -> frame_support::dispatch::DispatchResultWithPostInfo {
	Market::settle_interval(origin(&operator()), interval, 100)
}

fn held(who: &AccountId32) -> u128 {
	Balances::balance_on_hold(&HoldReason::BidReserve.into(), who)
}
fn free(who: &AccountId32) -> u128 {
	Balances::balance(who)
}

fn reading(interval: u64, counter: u64, import_wh: u64, export_wh: u64) -> MeterReading {
	MeterReading {
		meter: meter_pair().public().0,
		epoch: 1,
		interval,
		counter,
		import_wh,
		export_wh,
	}
}
fn sign_reading(r: &MeterReading) -> RawSignature {
	meter_pair().sign(&reading_message(&genesis(), r)).0
}
fn submit(r: MeterReading) -> DispatchResult {
	Market::submit_reading(origin(&account("Relayer")), r, sign_reading(&r))
}

/// Registers `who` in zone 0 with an accredited meter of its own, `<who>Meter`, whose key
/// pair it returns.
fn metered_participant(who: &str, source: EnergySource) -> sr25519::Pair {
	let meter = pair(&format!("{who}Meter"));
	assert_ok!(Market::register_participant(origin(&operator()), account(who), 0));
	assert_ok!(Market::accredit_meter(
		origin(&distributor()),
		meter.public().0,
		account(who),
		0,
		source,
		RATED_W
	));
	meter
}

/// A reading of `meter` (first epoch), signed by it and submitted by the relayer.
fn submit_from(
	meter: &sr25519::Pair,
	interval: u64,
	counter: u64,
	import_wh: u64,
	export_wh: u64,
) -> DispatchResult {
	let r =
		MeterReading { meter: meter.public().0, epoch: 1, interval, counter, import_wh, export_wh };
	let signature = meter.sign(&reading_message(&genesis(), &r)).0;
	Market::submit_reading(origin(&account("Relayer")), r, signature)
}

// ---------------------------------------------------------------- operator calls

#[test]
fn operator_registers_participants_meters_fees_and_roles() {
	run(|| {
		let who = account("Zed");
		assert_ok!(Market::register_participant(origin(&operator()), who.clone(), 3));
		System::assert_last_event(Ev::ParticipantRegistered { who: who.clone(), zone: 3 }.into());
		assert_eq!(Participants::<Test>::get(&who), Some(Participant { zone: 3 }));

		let key = pair("Meter9").public().0;
		assert_ok!(Market::accredit_meter(
			origin(&distributor()),
			key,
			who.clone(),
			3,
			EnergySource::Wind,
			5_000
		));
		assert!(Meters::<Test>::contains_key(key));
		assert_noop!(
			Market::accredit_meter(
				origin(&distributor()),
				key,
				who.clone(),
				3,
				EnergySource::Wind,
				5_000
			),
			E::MeterAlreadyAccredited
		);
		assert_ok!(Market::revoke_meter(origin(&distributor()), key));
		System::assert_last_event(Ev::MeterRevoked { meter: key }.into());
		assert_noop!(Market::revoke_meter(origin(&distributor()), key), E::UnknownMeter);

		// Lines are kept one per zone pair, sorted, whichever way they are named.
		assert_ok!(Market::set_line(origin(&operator()), 3, 2, 500, 7));
		assert_ok!(Market::set_line(origin(&operator()), 2, 3, 600, 8));
		let line = Line { a: 2, b: 3, capacity_wh: 600, fee_ticks: 8 };
		// From the first interval whose gate is open (1, at the chain's start).
		System::assert_last_event(Ev::LineSet { line, from_interval: 1 }.into());
		let base = Line { a: 0, b: 1, capacity_wh: 1_000, fee_ticks: 5 };
		assert_eq!(Grid::<Test>::get().into_inner(), vec![base, line]);
		assert_noop!(Market::set_line(origin(&operator()), 2, 2, 7, 7), E::SameZone);
		assert_ok!(Market::remove_line(origin(&operator()), 3, 2));
		assert_eq!(Grid::<Test>::get().into_inner(), vec![base]);
		assert_noop!(Market::remove_line(origin(&operator()), 2, 3), E::UnknownLine);

		// The distributor accredits meters: naming it is governance's, not the operator's,
		// who could otherwise name itself and accredit meters of its own.
		assert_noop!(
			Market::set_distributor(origin(&operator()), operator()),
			DispatchError::BadOrigin
		);
		assert_ok!(Market::set_distributor(RuntimeOrigin::root(), who.clone()));
		assert_eq!(Distributor::<Test>::get(), Some(who.clone()));

		assert_ok!(Market::set_clearing_submitter(origin(&operator()), who.clone(), true));
		assert!(ClearingSubmitters::<Test>::contains_key(&who));
		assert_ok!(Market::set_clearing_submitter(origin(&operator()), who.clone(), false));
		assert!(!ClearingSubmitters::<Test>::contains_key(&who));

		// Root is an operator too (OperatorOrigin), and can hand the role over.
		assert_ok!(Market::set_market_operator(RuntimeOrigin::root(), who.clone()));
		assert_ok!(Market::register_participant(origin(&who), account("Yan"), 0));
		assert_noop!(
			Market::register_participant(origin(&operator()), account("Yan"), 0),
			DispatchError::BadOrigin
		);
	});
}

#[test]
fn meters_are_accredited_by_the_distributor_with_their_rated_power() {
	run(|| {
		// The operator cannot accredit a meter (its own, say) and mint: the distributor, who
		// owns the metering and pays feed-in for what it measures, accredits meters.
		let key = pair("OperatorsMeter").public().0;
		assert_noop!(
			Market::accredit_meter(
				origin(&operator()),
				key,
				operator(),
				0,
				EnergySource::Solar,
				RATED_W
			),
			DispatchError::BadOrigin
		);
		assert_noop!(
			Market::revoke_meter(origin(&operator()), meter_pair().public().0),
			DispatchError::BadOrigin
		);
		// Without a rated power nothing would bound what its readings claim.
		assert_noop!(
			Market::accredit_meter(
				origin(&distributor()),
				key,
				operator(),
				0,
				EnergySource::Solar,
				0
			),
			E::RatedPowerRequired
		);
		// The governance origin may act for the distributor.
		assert_ok!(Market::accredit_meter(
			RuntimeOrigin::root(),
			key,
			buyer(),
			0,
			EnergySource::Solar,
			5_000
		));
		System::assert_last_event(
			Ev::MeterAccredited {
				meter: key,
				owner: buyer(),
				zone: 0,
				source: EnergySource::Solar,
				rated_power_w: 5_000,
				epoch: 1,
			}
			.into(),
		);
		assert_ok!(Market::revoke_meter(RuntimeOrigin::root(), key));
	});
}

#[test]
fn operator_calls_refuse_everyone_else() {
	run(|| {
		let bob = seller();
		assert_noop!(
			Market::register_participant(origin(&bob), bob.clone(), 0),
			DispatchError::BadOrigin
		);
		assert_noop!(
			Market::accredit_meter(
				origin(&bob),
				[1; 32],
				bob.clone(),
				0,
				EnergySource::Solar,
				RATED_W
			),
			DispatchError::BadOrigin
		);
		assert_noop!(
			Market::revoke_meter(origin(&bob), meter_pair().public().0),
			DispatchError::BadOrigin
		);
		assert_noop!(Market::set_line(origin(&bob), 0, 1, 9, 0), DispatchError::BadOrigin);
		assert_noop!(Market::remove_line(origin(&bob), 0, 1), DispatchError::BadOrigin);
		assert_noop!(Market::set_distributor(origin(&bob), bob.clone()), DispatchError::BadOrigin);
		assert_noop!(
			Market::set_clearing_submitter(origin(&bob), bob.clone(), true),
			DispatchError::BadOrigin
		);
		assert_noop!(Market::set_market_params(origin(&bob), params()), DispatchError::BadOrigin);
		assert_noop!(
			Market::set_market_operator(origin(&bob), bob.clone()),
			DispatchError::BadOrigin
		);
	});
}

#[test]
fn market_params_are_checked_and_interval_length_is_frozen_once_trading_starts() {
	run(|| {
		let mut p = params();
		p.feed_in_ticks = 11;
		assert_ok!(Market::set_market_params(origin(&operator()), p));
		assert_eq!(Params::<Test>::get().feed_in_ticks, 11);
		assert_noop!(
			Market::set_market_params(origin(&operator()), MarketParams { interval_ms: 0, ..p }),
			E::BadParams
		);
		assert_noop!(
			Market::set_market_params(
				origin(&operator()),
				MarketParams { min_price_ticks: 9, max_price_ticks: 8, ..p }
			),
			E::BadParams
		);
		assert_noop!(
			Market::set_market_params(
				origin(&operator()),
				MarketParams { max_quantity_wh: 0, ..p }
			),
			E::BadParams
		);
		// A grid change, then a new interval length: the grid's earlier sets, counted in the
		// old intervals, go with the old clock; the latest grid governs from interval 0.
		at(5 * INTERVAL_MS);
		assert_ok!(Market::set_line(origin(&operator()), 0, 1, 700, 5));
		assert!(GridFrom::<Test>::get() > 0 && !EarlierGridStarts::<Test>::get().is_empty());
		assert_ok!(Market::set_market_params(
			origin(&operator()),
			MarketParams { interval_ms: 2_000, ..p }
		));
		assert_eq!(GridFrom::<Test>::get(), 0);
		assert!(EarlierGridStarts::<Test>::get().is_empty());
		assert_eq!(EarlierGrids::<Test>::iter().count(), 0);
		assert_eq!(Market::grid_for(1)[0].capacity_wh, 700);
		place(&buyer(), spec(1, 5, Side::Bid, 100, 50, 0));
		assert_noop!(
			Market::set_market_params(
				origin(&operator()),
				MarketParams { interval_ms: 3_000, ..p }
			),
			E::BadParams
		);
	});
}

// The audit's finding 8 (parameters changed retroactively) and the mechanism of finding 2:
// an interval's parameters, its mechanism among them, are fixed when its gate closes.
#[test]
fn each_interval_keeps_the_parameters_its_gate_closed_under() {
	run(|| {
		// A uniform interval has one price, which cannot keep renewable energy apart.
		assert_noop!(
			Market::place_order(
				origin(&buyer()),
				OrderSpec { renewable_only: true, ..spec(30, 2, Side::Bid, 100, 60, 0) }
			),
			E::RenewableOnlyUnderUniform
		);
		// Interval 2 is cleared (uniform); now its gate is closed, interval 3's is open.
		bob_sells_150_in_interval_2();
		let zonal = MarketParams {
			gate_closure_ms: 0,
			feed_in_ticks: 99,
			mechanism: Mechanism::Zonal,
			..params()
		};
		assert_ok!(Market::set_market_params(origin(&operator()), zonal));
		System::assert_last_event(Ev::MarketParamsSet { params: zonal, from_interval: 3 }.into());
		// The shorter gate does not reopen interval 2: no bid can slip into a cleared book.
		assert_noop!(
			Market::place_order(origin(&buyer()), spec(20, 2, Side::Bid, 100, 60, 0)),
			E::GateClosed
		);
		assert_eq!(Market::params_for(2), params());
		// Interval 3 is zonal: a renewable-only bid is welcome, and a uniform clearing is not.
		place(&buyer(), OrderSpec { renewable_only: true, ..spec(21, 3, Side::Bid, 100, 60, 0) });
		// Another change before interval 3's gate closes replaces the one waiting for it.
		let zonal2 = MarketParams { feed_in_ticks: 97, ..zonal };
		assert_ok!(Market::set_market_params(origin(&operator()), zonal2));
		System::assert_last_event(Ev::MarketParamsSet { params: zonal2, from_interval: 3 }.into());
		assert_eq!(EarlierParams::<Test>::get().into_inner(), vec![(0, params())]);
		at(3 * INTERVAL_MS);
		assert_noop!(submit_checked(3, Mechanism::Uniform, 0, vec![], vec![]), E::WrongMechanism);
		// Once interval 3's gate has closed, a change waits for interval 4.
		let uniform = MarketParams { feed_in_ticks: 98, ..params() };
		assert_ok!(Market::set_market_params(origin(&operator()), uniform));
		System::assert_last_event(Ev::MarketParamsSet { params: uniform, from_interval: 4 }.into());
		assert_eq!(Market::params_for(3), zonal2);
		assert_eq!((Market::params_for(4), Market::params_for(99)), (uniform, uniform));

		// Interval 2 settles at the rates of its own parameters, not at the latest ones.
		assert_ok!(submit(reading(2, 2, 0, 100)));
		assert_ok!(settle(2));
		let charlie = Settlements::<Test>::get(2, buyer()).expect("line");
		assert_eq!(charlie.amount, -150 * FEED_IN as i128);
	});
}

#[test]
fn parameter_changes_are_bounded_until_their_intervals_are_pruned() {
	run(|| {
		for k in 1..=MAX_PARAM_SETS as u64 + 1 {
			at(k * INTERVAL_MS);
			let p = MarketParams { feed_in_ticks: k, ..params() };
			if k <= MAX_PARAM_SETS as u64 {
				assert_ok!(Market::set_market_params(origin(&operator()), p));
			} else {
				assert_noop!(
					Market::set_market_params(origin(&operator()), p),
					E::TooManyParamChanges
				);
			}
		}
	});
}

// ---------------------------------------------------------------- orders

// The audit's finding 10: a participant could trade with itself.
#[test]
fn a_participant_buys_or_sells_in_an_interval_never_both() {
	run(|| {
		place(&seller(), spec(1, 2, Side::Offer, 100, 40, 0));
		// Bob's bid would cross his own offer: refused, directly or relayed.
		assert_noop!(
			Market::place_order(origin(&seller()), spec(2, 2, Side::Bid, 100, 60, 0)),
			E::SelfTrade
		);
		let bid = spec(2, 2, Side::Bid, 100, 60, 0);
		assert_ok!(Market::place_orders_relayed(
			origin(&account("Relayer")),
			BoundedVec::truncate_from(vec![signed_order("Bob", bid)])
		));
		System::assert_last_event(
			Ev::RelayedOrderRefused {
				owner: seller(),
				client_order_id: 2,
				error: E::SelfTrade.into(),
			}
			.into(),
		);
		// Another interval is another matter, and more offers in this one are welcome.
		place(&seller(), spec(3, 3, Side::Bid, 100, 60, 0));
		place(&seller(), spec(4, 2, Side::Offer, 50, 45, 0));
		assert_eq!(TraderSides::<Test>::get(2, seller()), Some((Side::Offer, 2)));
		// Once his offers are cancelled, Bob may buy in interval 2.
		assert_ok!(Market::cancel_order(origin(&seller()), 1));
		assert_ok!(Market::cancel_order(origin(&seller()), 4));
		assert_eq!(TraderSides::<Test>::get(2, seller()), None);
		place(&seller(), bid);
		assert_eq!(TraderSides::<Test>::get(2, seller()), Some((Side::Bid, 1)));
	});
}

#[test]
fn bid_holds_its_maximum_cost_and_resubmission_is_idempotent() {
	run(|| {
		let s = spec(7, 2, Side::Bid, 1_500, 80, 0);
		let before = free(&buyer());
		let id = place(&buyer(), s);
		System::assert_last_event(
			Ev::OrderPlaced {
				order_id: id,
				owner: buyer(),
				client_order_id: 7,
				interval: 2,
				side: Side::Bid,
				quantity_wh: 1_500,
				price_ticks: 80,
				zone: 0,
				source: EnergySource::GridMix,
				renewable_only: false,
			}
			.into(),
		);
		assert_eq!(held(&buyer()), 120_000);
		assert_eq!(free(&buyer()), before - 120_000);
		assert_eq!(Market::book(2).into_iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![id]);

		// Same id, same content: nothing changes.
		assert_ok!(Market::place_order(origin(&buyer()), s));
		assert_eq!(BookLen::<Test>::get(2), 1);
		assert_eq!(held(&buyer()), 120_000);
		// Same id, other content: refused.
		assert_noop!(
			Market::place_order(origin(&buyer()), OrderSpec { quantity_wh: 1_600, ..s }),
			E::ClientOrderIdReused
		);
	});
}

#[test]
fn offers_hold_nothing() {
	run(|| {
		let before = free(&seller());
		place(&seller(), spec(1, 2, Side::Offer, 1_000, 40, 0));
		assert_eq!(held(&seller()), 0);
		assert_eq!(free(&seller()), before);
	});
}

#[test]
fn orders_are_checked_against_the_market_rules() {
	run(|| {
		let b = buyer();
		let ok = spec(1, 2, Side::Bid, 100, 50, 0);
		assert_noop!(Market::place_order(origin(&account("Nobody")), ok), E::NotRegistered);
		assert_noop!(Market::place_order(origin(&b), OrderSpec { zone: 1, ..ok }), E::WrongZone);
		assert_noop!(
			Market::place_order(origin(&b), OrderSpec { quantity_wh: 0, ..ok }),
			E::ZeroQuantity
		);
		assert_noop!(
			Market::place_order(origin(&b), OrderSpec { quantity_wh: 1_000_001, ..ok }),
			E::QuantityTooLarge
		);
		assert_noop!(
			Market::place_order(origin(&b), OrderSpec { price_ticks: 0, ..ok }),
			E::PriceOutOfBounds
		);
		assert_noop!(
			Market::place_order(origin(&b), OrderSpec { price_ticks: 1_001, ..ok }),
			E::PriceOutOfBounds
		);
		assert_noop!(
			Market::place_order(
				origin(&seller()),
				OrderSpec { side: Side::Offer, renewable_only: true, ..ok }
			),
			E::InvalidEnergyConstraint
		);
		assert_noop!(
			Market::place_order(origin(&b), OrderSpec { interval: 20, ..ok }),
			E::IntervalTooFarAhead
		);
		// Interval 1's gate closed at 500 ms; it is 100 ms now, so it is open; at 500 it closes.
		assert_ok!(Market::place_order(origin(&b), OrderSpec { interval: 1, ..ok }));
		at(500);
		assert_noop!(
			Market::place_order(origin(&b), OrderSpec { client_order_id: 2, interval: 1, ..ok }),
			E::GateClosed
		);
	});
}

#[test]
fn a_bid_without_funds_and_a_full_book_are_refused() {
	run(|| {
		let poor = account("Poor");
		assert_ok!(Market::register_participant(origin(&operator()), poor.clone(), 0));
		assert_noop!(
			Market::place_order(origin(&poor), spec(1, 2, Side::Bid, 100, 50, 0)),
			E::InsufficientBalance
		);
		for i in 0..MaxOrdersPerInterval::get() as u64 {
			place(&seller(), spec(i, 3, Side::Offer, 10, 10, 0));
		}
		assert_noop!(
			Market::place_order(origin(&seller()), spec(999, 3, Side::Offer, 10, 10, 0)),
			E::IntervalFull
		);
	});
}

/// The call that applies a clearing pays each trader once, so an interval takes at most
/// `MaxTradersPerInterval` traders: a new one beyond them is refused, directly or relayed, while
/// those already in may add orders, and one whose orders are all cancelled frees its place.
#[test]
fn an_interval_takes_at_most_its_traders() {
	run(|| {
		let max = MaxTradersPerInterval::get();
		let offer = |cid, interval| OrderSpec {
			source: EnergySource::GridMix,
			..spec(cid, interval, Side::Offer, 10, 40, 0)
		};
		let traders: Vec<_> = (0..max).map(|i| account(&format!("Trader{i}"))).collect();
		for who in &traders {
			assert_ok!(Market::register_participant(origin(&operator()), who.clone(), 0));
			place(who, offer(1, 2));
		}
		assert_eq!(IntervalTraders::<Test>::get(2), max);
		assert_noop!(Market::place_order(origin(&seller()), offer(1, 2)), E::TooManyTraders);
		assert_ok!(Market::place_orders_relayed(
			origin(&account("Relayer")),
			BoundedVec::truncate_from(vec![signed_order("Bob", offer(1, 2))])
		));
		System::assert_last_event(
			Ev::RelayedOrderRefused {
				owner: seller(),
				client_order_id: 1,
				error: E::TooManyTraders.into(),
			}
			.into(),
		);
		place(&traders[0], offer(2, 2));
		place(&seller(), offer(3, 3));
		assert_ok!(Market::cancel_order(origin(&traders[1]), 1));
		assert_eq!(IntervalTraders::<Test>::get(2), max - 1);
		place(&seller(), offer(1, 2));
		assert_eq!(IntervalTraders::<Test>::get(2), max);
	});
}

#[test]
fn an_offer_claims_only_a_source_its_owner_meters() {
	run(|| {
		let with = |cid, source| OrderSpec { source, ..spec(cid, 2, Side::Offer, 100, 40, 0) };
		// Charlie has no meter: no green offer, though grid mix claims nothing and may go.
		assert_noop!(
			Market::place_order(origin(&buyer()), with(1, EnergySource::Wind)),
			E::SourceNotMetered
		);
		assert_ok!(Market::place_order(origin(&buyer()), with(2, EnergySource::GridMix)));
		// Bob's meter measures solar: solar yes, wind no.
		assert_ok!(Market::place_order(origin(&seller()), with(1, EnergySource::Solar)));
		assert_noop!(
			Market::place_order(origin(&seller()), with(2, EnergySource::Wind)),
			E::SourceNotMetered
		);
		// A wind meter for Charlie makes his wind offer good, until it is revoked.
		let key = pair("CharlieWind").public().0;
		assert_ok!(Market::accredit_meter(
			origin(&distributor()),
			key,
			buyer(),
			0,
			EnergySource::Wind,
			RATED_W
		));
		assert_eq!(MeterSources::<Test>::get(buyer(), EnergySource::Wind), 1);
		assert_ok!(Market::place_order(origin(&buyer()), with(3, EnergySource::Wind)));
		assert_ok!(Market::revoke_meter(origin(&distributor()), key));
		assert!(!MeterSources::<Test>::contains_key(buyer(), EnergySource::Wind));
		assert_noop!(
			Market::place_order(origin(&buyer()), with(4, EnergySource::Wind)),
			E::SourceNotMetered
		);
		// Relayed, the claim is checked the same way and refused alone.
		System::reset_events();
		let batch = vec![
			signed_order("Charlie", with(5, EnergySource::Wind)),
			signed_order("Charlie", with(6, EnergySource::GridMix)),
		];
		assert_ok!(Market::place_orders_relayed(
			origin(&account("Relayer")),
			BoundedVec::truncate_from(batch)
		));
		assert_eq!(refusals(), vec![(buyer(), 5, E::SourceNotMetered.into())]);
		assert!(ClientOrders::<Test>::get(buyer(), 6).is_some());
	});
}

#[test]
fn a_relayed_batch_is_weighed_by_its_traders_and_intervals() {
	run(|| {
		let weigh = |batch: &[SignedOrder<AccountId32>]| {
			Call::<Test>::place_orders_relayed { orders: BoundedVec::truncate_from(batch.to_vec()) }
				.get_dispatch_info()
				.call_weight
		};
		let order =
			|seed, cid, interval| signed_order(seed, spec(cid, interval, Side::Bid, 1, 50, 0));
		let w = <Test as Config>::WeightInfo::place_orders_relayed;
		let one_trader: Vec<_> = (0..4).map(|i| order("Charlie", i, 2)).collect();
		let four_traders: Vec<_> =
			["Charlie", "Bob", "Dave", "Eve"].iter().map(|s| order(s, 1, 2)).collect();
		assert_eq!(weigh(&one_trader), w(1, 3));
		assert_eq!(weigh(&four_traders), w(4, 0));
		assert!(weigh(&one_trader).ref_time() < weigh(&four_traders).ref_time());
		// A trader in two intervals is two (owner, interval) pairs, and the second interval's
		// book is one more key to append to.
		let two_intervals =
			vec![order("Charlie", 1, 2), order("Charlie", 2, 3), order("Charlie", 3, 3)];
		let extra_book = <Test as frame_system::Config>::DbWeight::get().reads_writes(1, 1);
		assert!(extra_book.ref_time() > 0);
		assert_eq!(weigh(&two_intervals), w(2, 1).saturating_add(extra_book));
	});
}

#[test]
fn relayed_orders_need_their_owners_signatures() {
	run(|| {
		let relayer = account("Relayer");
		let a = signed_order("Charlie", spec(1, 2, Side::Bid, 100, 50, 0));
		let b = signed_order("Bob", spec(1, 2, Side::Offer, 100, 40, 0));
		assert_ok!(Market::place_orders_relayed(
			origin(&relayer),
			BoundedVec::truncate_from(vec![a.clone(), b.clone()])
		));
		assert_eq!(BookLen::<Test>::get(2), 2);
		assert_eq!(held(&buyer()), 5_000);
		// A replay of the same batch is skipped, not doubled.
		assert_ok!(Market::place_orders_relayed(
			origin(&relayer),
			BoundedVec::truncate_from(vec![a.clone()])
		));
		assert_eq!(BookLen::<Test>::get(2), 2);

		// A relayer that alters an order (or signs for someone else) gets that order refused,
		// by name; the batch's honest orders are placed all the same.
		let mut forged = signed_order("Charlie", spec(2, 2, Side::Bid, 100, 50, 0));
		forged.spec.price_ticks = 60;
		let good = signed_order("Charlie", spec(3, 2, Side::Bid, 100, 50, 0));
		let mut stolen = signed_order("Eve", spec(4, 2, Side::Bid, 100, 50, 0));
		stolen.owner = buyer();
		assert_ok!(Market::place_orders_relayed(
			origin(&relayer),
			BoundedVec::truncate_from(vec![forged, good, stolen])
		));
		assert_eq!(
			refusals(),
			vec![(buyer(), 2, E::BadSignature.into()), (buyer(), 4, E::BadSignature.into())]
		);
		assert_eq!(BookLen::<Test>::get(2), 3);
		assert!(ClientOrders::<Test>::get(buyer(), 2).is_none());
		assert!(ClientOrders::<Test>::get(buyer(), 4).is_none());
		assert_eq!(held(&buyer()), 10_000);
	});
}

/// The relayed-order refusals of the last call, in batch order.
fn refusals() -> Vec<(AccountId32, u64, DispatchError)> {
	System::events()
		.into_iter()
		.filter_map(|r| match r.event {
			RuntimeEvent::Market(Ev::RelayedOrderRefused { owner, client_order_id, error })
			| RuntimeEvent::Market(Ev::RelayedCancelRefused { owner, client_order_id, error }) => {
				Some((owner, client_order_id, error))
			},
			_ => None,
		})
		.collect()
}

#[test]
fn one_conflicting_order_cannot_poison_a_relayed_batch() {
	run(|| {
		let relayer = account("Relayer");
		// Charlie places id 7 directly, then relays another order under the same id, between
		// two honest orders (his own and Bob's).
		place(&buyer(), spec(7, 2, Side::Bid, 100, 50, 0));
		let held_before = held(&buyer());
		System::reset_events();
		let batch = vec![
			signed_order("Bob", spec(1, 2, Side::Offer, 100, 40, 0)),
			signed_order("Charlie", spec(7, 2, Side::Bid, 900, 55, 0)),
			signed_order("Charlie", spec(8, 2, Side::Bid, 100, 50, 0)),
		];
		assert_ok!(Market::place_orders_relayed(
			origin(&relayer),
			BoundedVec::truncate_from(batch)
		));
		assert_eq!(refusals(), vec![(buyer(), 7, E::ClientOrderIdReused.into())]);
		assert!(ClientOrders::<Test>::get(seller(), 1).is_some());
		assert!(ClientOrders::<Test>::get(buyer(), 8).is_some());
		assert_eq!(BookLen::<Test>::get(2), 3);
		// Only the honest bid holds funds; the refused one left nothing behind.
		assert_eq!(held(&buyer()), held_before + 5_000);
		let first = ClientOrders::<Test>::get(buyer(), 7).expect("still the direct order");
		assert_eq!(Market::order(first).map(|o| o.spec.quantity_wh), Some(100));
	});
}

#[test]
fn a_relayed_batch_fills_a_book_to_its_bound_and_no_further() {
	run(|| {
		let relayer = account("Relayer");
		let max = MaxOrdersPerInterval::get() as u64;
		for i in 0..max - 2 {
			place(&seller(), spec(i, 2, Side::Offer, 10, 10, 0));
		}
		System::reset_events();
		// Two orders fit; the third and fourth find the book full (the refused bid holds
		// nothing), and an order for another interval is placed all the same.
		let batch = vec![
			signed_order("Bob", spec(max, 2, Side::Offer, 10, 10, 0)),
			signed_order("Charlie", spec(1, 2, Side::Bid, 100, 50, 0)),
			signed_order("Charlie", spec(2, 2, Side::Bid, 100, 50, 0)),
			signed_order("Bob", spec(max + 1, 2, Side::Offer, 10, 10, 0)),
			signed_order("Charlie", spec(3, 3, Side::Bid, 100, 50, 0)),
		];
		assert_ok!(Market::place_orders_relayed(
			origin(&relayer),
			BoundedVec::truncate_from(batch)
		));
		assert_eq!(
			refusals(),
			vec![(buyer(), 2, E::IntervalFull.into()), (seller(), max + 1, E::IntervalFull.into())]
		);
		assert_eq!(BookLen::<Test>::get(2) as u64, max);
		assert_eq!(BookLen::<Test>::get(3), 1);
		assert_eq!(held(&buyer()), 2 * 5_000);
		assert!(ClientOrders::<Test>::get(buyer(), 2).is_none());
		// The book the batch appended to decodes as every order it holds, in order.
		let book: Vec<_> = Market::book(2).into_iter().map(|(id, _)| id).collect();
		assert!(book.windows(2).all(|w| w[0] + 1 == w[1]));
		assert_eq!(book.last(), ClientOrders::<Test>::get(buyer(), 1).as_ref());
		assert_eq!(
			BookPages::<Test>::iter_prefix(2).count() as u32,
			max as u32 / BookPageSize::get()
		);
		assert_ok!(Market::do_try_state());
	});
}

#[test]
fn an_oversized_batch_cannot_even_be_decoded() {
	use codec::Decode;
	run(|| {
		let items: Vec<SignedOrder<AccountId32>> = (0..MaxRelayBatch::get() as u64 + 1)
			.map(|i| signed_order("Bob", spec(i, 2, Side::Offer, 1, 1, 0)))
			.collect();
		let encoded = items.encode();
		assert!(BoundedVec::<SignedOrder<AccountId32>, MaxRelayBatch>::decode(&mut &encoded[..])
			.is_err());
		let fits = items[..MaxRelayBatch::get() as usize].to_vec().encode();
		assert!(
			BoundedVec::<SignedOrder<AccountId32>, MaxRelayBatch>::decode(&mut &fits[..]).is_ok()
		);
	});
}

#[test]
fn an_order_id_is_its_interval_and_slot_and_its_page_holds_it() {
	run(|| {
		let size = BookPageSize::get();
		let ids: Vec<OrderId> = (0..size + 4)
			.map(|i| place(&seller(), spec(i as u64, 2, Side::Offer, 10, 10, 0)))
			.collect();
		place(&buyer(), spec(1, 3, Side::Bid, 100, 50, 0));
		for (slot, id) in ids.iter().enumerate() {
			assert_eq!(order_place(*id), (2, slot as u32));
		}
		// Two pages: a full one and one of 4; the next interval's book starts at slot 0.
		assert_eq!(BookPages::<Test>::decode_len(2, 0), Some(size as usize));
		assert_eq!(BookPages::<Test>::decode_len(2, 1), Some(4));
		assert_eq!(BookLen::<Test>::get(3), 1);
		assert_eq!(ClientOrders::<Test>::get(buyer(), 1), order_id(3, 0));
		// A cancel on the second page rewrites its entry and no other.
		let last = *ids.last().expect("placed");
		assert_ok!(Market::cancel_order(origin(&seller()), size as u64 + 3));
		let book = Market::book(2);
		assert_eq!(book.len(), ids.len());
		for (id, order) in book {
			let want = if id == last { OrderStatus::Cancelled } else { OrderStatus::Open };
			assert_eq!((order.owner, order.status), (seller(), want));
		}
		assert_eq!(Market::order(last + 1), None);
		assert_ok!(Market::do_try_state());
	});
}

#[test]
fn cancelling_releases_the_hold_until_gate_closure() {
	run(|| {
		let id = place(&buyer(), spec(5, 2, Side::Bid, 100, 50, 0));
		assert_ok!(Market::cancel_order(origin(&buyer()), 5));
		System::assert_last_event(
			Ev::OrderCancelled { order_id: id, owner: buyer(), client_order_id: 5 }.into(),
		);
		assert_eq!(held(&buyer()), 0);
		assert_eq!(Market::order(id).map(|o| o.status), Some(OrderStatus::Cancelled));
		// Cancelling twice is harmless.
		assert_ok!(Market::cancel_order(origin(&buyer()), 5));
		assert_noop!(Market::cancel_order(origin(&buyer()), 6), E::UnknownOrder);
		assert_noop!(Market::cancel_order(origin(&seller()), 5), E::UnknownOrder);

		place(&buyer(), spec(6, 2, Side::Bid, 100, 50, 0));
		close_gate(2);
		assert_noop!(Market::cancel_order(origin(&buyer()), 6), E::GateClosed);
		assert_ok!(clear(2, Mechanism::Uniform, &[], &[]));
		assert_noop!(Market::cancel_order(origin(&buyer()), 6), E::GateClosed);
	});
}

#[test]
fn relayed_cancellations_need_the_owners_signature() {
	run(|| {
		let relayer = account("Relayer");
		place(&buyer(), spec(5, 2, Side::Bid, 100, 50, 0));
		place(&buyer(), spec(6, 2, Side::Bid, 100, 50, 0));
		let mut forged = signed_cancel("Eve", 5);
		forged.owner = buyer();
		System::reset_events();
		assert_ok!(Market::cancel_orders_relayed(
			origin(&relayer),
			BoundedVec::truncate_from(vec![forged])
		));
		assert_eq!(refusals(), vec![(buyer(), 5, E::BadSignature.into())]);
		assert_eq!(held(&buyer()), 10_000);
		// A cancellation of an unknown order is refused alone; the good one still applies.
		System::reset_events();
		assert_ok!(Market::cancel_orders_relayed(
			origin(&relayer),
			BoundedVec::truncate_from(vec![
				signed_cancel("Charlie", 9),
				signed_cancel("Charlie", 5)
			])
		));
		assert_eq!(refusals(), vec![(buyer(), 9, E::UnknownOrder.into())]);
		assert_eq!(held(&buyer()), 5_000);
	});
}

// ---------------------------------------------------------------- clearing

/// Interval 2's book: bids 100 @ 60 and 100 @ 45 (Charlie), offers 150 @ 40 and 100 @ 55 (Bob).
fn simple_book() -> (OrderId, OrderId, OrderId, OrderId) {
	let b1 = place(&buyer(), spec(1, 2, Side::Bid, 100, 60, 0));
	let b2 = place(&buyer(), spec(2, 2, Side::Bid, 100, 45, 0));
	let o1 = place(&seller(), spec(1, 2, Side::Offer, 150, 40, 0));
	let o2 = place(&seller(), spec(2, 2, Side::Offer, 100, 55, 0));
	(b1, b2, o1, o2)
}

#[test]
fn a_uniform_clearing_takes_the_buyers_payment_and_releases_holds() {
	run(|| {
		let (b1, b2, o1, _o2) = simple_book();
		let buyer_before = free(&buyer()) + held(&buyer());
		let seller_before = free(&seller());
		let house_before = free(&Market::clearing_house());
		close_gate(2);
		// Both bids fill from the 40-tick offer; the marginal pair is (45, 40): price 42.
		assert_ok!(clear(
			2,
			Mechanism::Uniform,
			&[(0, 42)],
			&[m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)]
		));
		// The seller is paid once its delivery is metered: the clearing house keeps it till then.
		assert_eq!(free(&seller()), seller_before);
		assert_eq!(free(&Market::clearing_house()), house_before + 150 * 42);
		assert_eq!(Positions::<Test>::get(2, seller()).map(|p| p.proceeds), Some(150 * 42));
		assert_eq!(held(&buyer()), 0);
		assert_eq!(free(&buyer()), buyer_before - 150 * 42);
		// No order is written: the clearing is their record.
		assert_eq!(Market::order(b2).map(|o| o.status), Some(OrderStatus::Open));
		let summary = Clearings::<Test>::get(2).expect("stored");
		assert_eq!(
			(summary.volume_wh, summary.match_count, summary.mechanism),
			(150, 2, Mechanism::Uniform)
		);
		assert_eq!(ClearingPages::<Test>::get(2, 0).len(), 2);
		System::assert_last_event(
			Ev::ClearingAccepted {
				interval: 2,
				submitter: operator(),
				mechanism: Mechanism::Uniform,
				volume_wh: 150,
				matches: 2,
				pages: 1,
				zone_prices: BoundedVec::truncate_from(vec![ZonePrice { zone: 0, price: 42 }]),
				grid_fees_paid: 0,
			}
			.into(),
		);
		assert_noop!(clear(2, Mechanism::Uniform, &[(0, 42)], &[]), E::AlreadyCleared);
	});
}

#[test]
fn clearing_is_for_submitters_after_gate_closure() {
	run(|| {
		simple_book();
		assert_noop!(clear(2, Mechanism::Uniform, &[], &[]), E::GateNotClosed);
		close_gate(2);
		assert_noop!(
			Market::submit_clearing(
				origin(&seller()),
				2,
				Mechanism::Uniform,
				0,
				BoundedVec::new(),
				BoundedVec::new(),
				BookShape { orders: 10, traders: 10 }
			),
			E::NotClearingSubmitter
		);
		// An empty clearing of a book that crosses leaves gains from trade: refused.
		assert_noop!(clear(2, Mechanism::Uniform, &[], &[]), E::NotEquilibrium);
	});
}

#[test]
fn an_invalid_clearing_burns_its_submitters_deposit() {
	run(|| {
		let (b1, b2, o1, _) = simple_book();
		close_gate(2);
		let (alice, issuance) = (free(&operator()), Balances::total_issuance());
		// A clearing that leaves gains from trade: the call succeeds so that the penalty
		// sticks, nothing of the clearing applies, and the deposit is burned.
		assert_ok!(submit_raw(2, Mechanism::Uniform, 0, vec![], vec![]));
		System::assert_last_event(
			Ev::ClearingRejected {
				interval: 2,
				submitter: operator(),
				page: 0,
				error: E::NotEquilibrium.into(),
				slashed: CLEARING_DEPOSIT,
			}
			.into(),
		);
		assert_eq!(free(&operator()), alice - CLEARING_DEPOSIT);
		assert_eq!(Balances::total_issuance(), issuance - CLEARING_DEPOSIT);
		assert!(!Clearings::<Test>::contains_key(2));
		assert_eq!(held(&buyer()), (100 * 60 + 100 * 45) as u128);
		// The interval stays open to a valid clearing, which costs nothing.
		assert_ok!(submit_raw(
			2,
			Mechanism::Uniform,
			150,
			vec![ZonePrice { zone: 0, price: 42 }],
			vec![m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)]
		));
		assert!(Clearings::<Test>::contains_key(2));
		assert_eq!(free(&operator()), alice - CLEARING_DEPOSIT);
		// A call that is only too late (or early, or for a cleared interval) costs no deposit.
		assert_noop!(submit_raw(2, Mechanism::Uniform, 0, vec![], vec![]), E::AlreadyCleared);
	});
}

#[test]
fn a_submitter_that_cannot_cover_the_deposit_is_refused() {
	run(|| {
		simple_book();
		close_gate(2);
		let alice = operator();
		let all = free(&alice) - <Balances as Inspect<_>>::minimum_balance();
		assert_ok!(<Balances as frame_support::traits::fungible::Mutate<_>>::burn_from(
			&alice,
			all - CLEARING_DEPOSIT + 1,
			frame_support::traits::tokens::Preservation::Preserve,
			frame_support::traits::tokens::Precision::Exact,
			frame_support::traits::tokens::Fortitude::Polite,
		));
		assert_noop!(submit_raw(2, Mechanism::Uniform, 0, vec![], vec![]), E::DepositNotCovered);
	});
}

#[test]
fn every_bad_match_is_named() {
	run(|| {
		let (b1, b2, o1, o2) = simple_book();
		let other = place(&buyer(), spec(9, 3, Side::Bid, 100, 60, 0));
		let cancelled = place(&buyer(), spec(10, 2, Side::Bid, 100, 60, 0));
		assert_ok!(Market::cancel_order(origin(&buyer()), 10));
		close_gate(2);
		let u = |ms: &[Match]| clear(2, Mechanism::Uniform, &[(0, 42)], ms);
		assert_noop!(u(&[m(other, o1, 10, 42, 42)]), E::OrderNotInInterval);
		assert_noop!(u(&[m(999, o1, 10, 42, 42)]), E::OrderNotInInterval);
		assert_noop!(u(&[m(o1, b1, 10, 42, 42)]), E::WrongSide);
		assert_noop!(u(&[m(cancelled, o1, 10, 42, 42)]), E::OrderCancelled);
		assert_noop!(u(&[m(b1, o1, 0, 42, 42)]), E::ZeroQuantityMatch);
		assert_noop!(u(&[m(b1, o1, 101, 42, 42)]), E::Overfilled);
		assert_noop!(u(&[m(b1, o1, 100, 42, 42), m(b2, o1, 51, 42, 42)]), E::Overfilled);
		assert_noop!(
			clear(2, Mechanism::Uniform, &[(0, 50)], &[m(b2, o1, 10, 50, 50)]),
			E::BidLimitExceeded
		);
		assert_noop!(
			clear(2, Mechanism::Uniform, &[(0, 50)], &[m(b1, o2, 10, 50, 50)]),
			E::OfferLimitViolated
		);
		assert_noop!(u(&[m(b1, o1, 100, 43, 42)]), E::PriceNotPerMechanism);
		assert_noop!(
			clear_with_volume(2, Mechanism::Uniform, &[(0, 42)], &[m(b1, o1, 100, 42, 42)], 101),
			E::UnbalancedEnergy
		);
		assert_noop!(
			clear(2, Mechanism::Uniform, &[(0, 42), (1, 42)], &[m(b1, o1, 100, 42, 42)]),
			E::BadZonePrices
		);
		assert_noop!(
			clear(2, Mechanism::Uniform, &[], &[m(b1, o1, 100, 42, 42)]),
			E::BadZonePrices
		);
		assert_noop!(
			clear(2, Mechanism::PayAsBid, &[(0, 42)], &[m(b1, o1, 100, 60, 60)]),
			E::BadZonePrices
		);
		// Only 100 of 200 Wh demand filled while 50 Wh at 40 stay unsold below the price.
		assert_noop!(u(&[m(b1, o1, 100, 42, 42)]), E::NotEquilibrium);
	});
}

#[test]
fn pay_as_bid_settles_each_match_at_its_bid() {
	run(|| {
		let (b1, b2, o1, _) = simple_book();
		let seller_before = free(&seller());
		close_gate(2);
		assert_noop!(
			clear(2, Mechanism::PayAsBid, &[], &[m(b1, o1, 100, 42, 42), m(b2, o1, 50, 45, 45)]),
			E::PriceNotPerMechanism
		);
		assert_ok!(clear(
			2,
			Mechanism::PayAsBid,
			&[],
			&[m(b1, o1, 100, 60, 60), m(b2, o1, 50, 45, 45)]
		));
		assert_eq!(
			Positions::<Test>::get(2, seller()).map(|p| p.proceeds),
			Some(100 * 60 + 50 * 45)
		);
		assert_eq!(free(&seller()), seller_before);
		assert_eq!(held(&buyer()), 0);
	});
}

#[test]
fn zonal_clearing_pays_the_grid_fee_to_the_distributor() {
	run(|| {
		// Zone 1 buys from zone 0 across a line with a 5-tick fee.
		let o = place(&seller(), spec(1, 2, Side::Offer, 100, 40, 0));
		let b = place(&buyer1(), spec(1, 2, Side::Bid, 100, 60, 1));
		let grid_before = free(&distributor());
		close_gate(2);
		assert_noop!(
			clear(2, Mechanism::Uniform, &[(0, 45)], &[m(b, o, 100, 45, 45)]),
			E::GridFeeNotCovered
		);
		assert_noop!(
			clear(2, Mechanism::Zonal, &[(0, 41)], &[m(b, o, 100, 46, 41)]),
			E::BadZonePrices
		);
		assert_noop!(
			clear(2, Mechanism::Zonal, &[(0, 41), (0, 41)], &[m(b, o, 100, 46, 41)]),
			E::BadZonePrices
		);
		assert_noop!(
			clear(2, Mechanism::Zonal, &[(0, 41), (1, 46)], &[m(b, o, 100, 47, 41)]),
			E::PriceNotPerMechanism
		);
		assert_ok!(clear(2, Mechanism::Zonal, &[(0, 41), (1, 46)], &[m(b, o, 100, 46, 41)]));
		assert_eq!(free(&distributor()), grid_before + 100 * 5);
		assert_eq!(Positions::<Test>::get(2, seller()).map(|p| p.proceeds), Some(100 * 41));
	});
}

#[test]
fn a_grid_fee_needs_a_distributor() {
	run(|| {
		let o = place(&seller(), spec(1, 2, Side::Offer, 100, 40, 0));
		let b = place(&buyer1(), spec(1, 2, Side::Bid, 100, 60, 1));
		Distributor::<Test>::kill();
		close_gate(2);
		assert_noop!(
			clear(2, Mechanism::Zonal, &[(0, 41), (1, 46)], &[m(b, o, 100, 46, 41)]),
			E::NoDistributor
		);
	});
}

// The audit's finding 5 (zonal rent and free transport): the chain knows the grid's lines, their
// capacities and fees.

/// A participant in zone 2, which no line joins to zones 0 and 1 yet.
fn zone_2_seller() -> AccountId32 {
	let who = account("Zone2");
	assert_ok!(Market::register_participant(origin(&operator()), who.clone(), 2));
	who
}

#[test]
fn energy_crosses_zones_only_over_a_line() {
	run(|| {
		let far = zone_2_seller();
		let o = place(
			&far,
			OrderSpec { source: EnergySource::GridMix, ..spec(1, 2, Side::Offer, 100, 40, 2) },
		);
		let b = place(&buyer(), spec(1, 2, Side::Bid, 100, 60, 0));
		close_gate(2);
		// Before, zones without a fee traded for free, connected or not.
		assert_noop!(clear(2, Mechanism::Uniform, &[(0, 50)], &[m(b, o, 100, 50, 50)]), E::NoLine);
		// Without a line the two zones are two markets, each in equilibrium on its own.
		assert_ok!(clear(2, Mechanism::Zonal, &[(0, 60), (2, 40)], &[]));
	});
}

#[test]
fn an_interval_keeps_the_grid_its_gate_closed_under() {
	run(|| {
		// Bob (zone 0) sells to Eve (zone 1) over the line 0-1 (fee 5) in interval 2.
		let o = place(&seller(), spec(1, 2, Side::Offer, 100, 40, 0));
		let b = place(&buyer1(), spec(1, 2, Side::Bid, 100, 60, 1));
		close_gate(2);
		// After interval 2's gate, the operator raises the fee and then removes the line: both
		// apply from interval 3 on, so they cannot void or reprice a book that is closed.
		assert_ok!(Market::set_line(origin(&operator()), 0, 1, 1_000, 30));
		System::assert_last_event(
			Ev::LineSet {
				line: Line { a: 0, b: 1, capacity_wh: 1_000, fee_ticks: 30 },
				from_interval: 3,
			}
			.into(),
		);
		assert_ok!(Market::remove_line(origin(&operator()), 1, 0));
		System::assert_last_event(Ev::LineRemoved { a: 0, b: 1, from_interval: 3 }.into());
		let before = Line { a: 0, b: 1, capacity_wh: 1_000, fee_ticks: 5 };
		assert_eq!(Market::grid_for(2).into_inner(), vec![before]);
		assert!(Market::grid_for(3).is_empty());
		assert_ok!(clear(2, Mechanism::PayAsBid, &[], &[m(b, o, 100, 60, 55)]));

		// Interval 3 trades under the grid without the line.
		let o3 = place(&seller(), spec(3, 3, Side::Offer, 100, 40, 0));
		let b3 = place(&buyer1(), spec(3, 3, Side::Bid, 100, 60, 1));
		close_gate(3);
		assert_noop!(clear(3, Mechanism::PayAsBid, &[], &[m(b3, o3, 100, 60, 55)]), E::NoLine);
		// Once no interval that can still be cleared needs it, the old grid is dropped.
		end_interval(3);
		assert_ok!(Market::set_line(origin(&operator()), 0, 1, 1_000, 5));
		assert_eq!(EarlierGridStarts::<Test>::get().into_inner(), vec![3]);
		assert!(!EarlierGrids::<Test>::contains_key(0));
		assert!(Market::grid_for(4).is_empty() && Market::grid_for(6).len() == 1);
	});
}

#[test]
fn a_line_carries_no_more_than_its_capacity() {
	run(|| {
		assert_ok!(Market::set_line(origin(&operator()), 0, 1, 60, 5));
		let o = place(&seller(), spec(1, 2, Side::Offer, 100, 40, 0));
		let b = place(&buyer1(), spec(1, 2, Side::Bid, 100, 60, 1));
		close_gate(2);
		assert_noop!(
			clear(2, Mechanism::Zonal, &[(0, 41), (1, 46)], &[m(b, o, 100, 46, 41)]),
			E::LineOverloaded
		);
		// The line is full at 60 Wh: the prices may part by more than its fee (congestion rent,
		// 60 - 40 - 5 = 15 ticks per kWh, goes to the distributor with the fee).
		let grid_before = free(&distributor());
		assert_ok!(clear(2, Mechanism::Zonal, &[(0, 40), (1, 60)], &[m(b, o, 60, 60, 40)]));
		assert_eq!(free(&distributor()), grid_before + 60 * 20);
	});
}

#[test]
fn zonal_rent_arises_only_on_a_congested_line() {
	run(|| {
		let o = place(&seller(), spec(1, 2, Side::Offer, 100, 40, 0));
		let b = place(&buyer1(), spec(1, 2, Side::Bid, 100, 60, 1));
		close_gate(2);
		// 100 Wh of the line's 1,000 used, yet the prices part by 20 where the fee is 5.
		assert_noop!(
			clear(2, Mechanism::Zonal, &[(0, 40), (1, 60)], &[m(b, o, 100, 60, 40)]),
			E::SpreadWithoutCongestion
		);
		assert_ok!(clear(2, Mechanism::Zonal, &[(0, 50), (1, 55)], &[m(b, o, 100, 55, 50)]));
	});
}

#[test]
fn renewable_only_bids_take_renewable_energy_only() {
	run(|| {
		use_mechanism(Mechanism::Zonal);
		let b = place(
			&buyer(),
			OrderSpec { renewable_only: true, ..spec(1, 2, Side::Bid, 100, 60, 0) },
		);
		let grid = place(
			&seller(),
			OrderSpec { source: EnergySource::GridMix, ..spec(1, 2, Side::Offer, 100, 40, 0) },
		);
		close_gate(2);
		assert_noop!(
			clear(2, Mechanism::Zonal, &[(0, 50)], &[m(b, grid, 100, 50, 50)]),
			E::EnergyTypeMismatch
		);
		// Nothing can trade: the only offer is grid mix. An empty clearing is an equilibrium.
		assert_ok!(clear(2, Mechanism::Zonal, &[(0, 50)], &[]));
		assert_eq!(held(&buyer()), 0);
	});
}

// The audit's ways past the equilibrium check (issue "The chain verifies, it does not trust",
// finding 2), each reproduced and refused.

#[test]
fn a_price_at_the_top_bid_cannot_void_a_crossing_book() {
	run(|| {
		// Bids 60 and 45, offers 40 and 55: the 60 bid and the 40 offer cross.
		let (_, _, _, _) = simple_book();
		close_gate(2);
		// At a price of 60 no unfilled bid is above it, yet 60 and 40 could trade.
		assert_noop!(clear(2, Mechanism::Uniform, &[(0, 60)], &[]), E::NotEquilibrium);
		assert_noop!(clear(2, Mechanism::Uniform, &[(0, 40)], &[]), E::NotEquilibrium);
	});
}

#[test]
fn a_price_at_the_top_bid_cannot_fill_a_chosen_offer() {
	run(|| {
		let (b1, _, _, o2) = simple_book();
		close_gate(2);
		// The 55 offer is filled and the cheaper 40 one passed over, next to an unfilled 45 bid.
		assert_noop!(
			clear(2, Mechanism::Uniform, &[(0, 60)], &[m(b1, o2, 100, 60, 60)]),
			E::NotEquilibrium
		);
	});
}

#[test]
fn a_higher_bid_cannot_be_passed_over_for_a_lower_one() {
	run(|| {
		let (b1, b2, o1, _) = simple_book();
		close_gate(2);
		// Supply 150 Wh at 40: the 45 bid is filled in full, the 60 bid only in part.
		assert_noop!(
			clear(
				2,
				Mechanism::Uniform,
				&[(0, 45)],
				&[m(b2, o1, 100, 45, 45), m(b1, o1, 50, 45, 45)]
			),
			E::NotEquilibrium
		);
		// The reference clearing fills the 60 bid first.
		assert_ok!(clear(
			2,
			Mechanism::Uniform,
			&[(0, 42)],
			&[m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)]
		));
	});
}

#[test]
fn an_empty_zonal_clearing_cannot_void_a_book() {
	run(|| {
		simple_book();
		close_gate(2);
		// Zone 0 has orders but no price.
		assert_noop!(clear(2, Mechanism::Zonal, &[], &[]), E::ZoneWithoutPrice);
		// With a price, the crossing 60 bid and 40 offer still have to trade.
		assert_noop!(clear(2, Mechanism::Zonal, &[(0, 50)], &[]), E::NotEquilibrium);
	});
}

#[test]
fn a_generic_bid_cannot_take_the_renewable_offer_a_renewable_only_bid_needs() {
	run(|| {
		use_mechanism(Mechanism::Zonal);
		let green_bid = place(
			&buyer(),
			OrderSpec { renewable_only: true, ..spec(1, 2, Side::Bid, 100, 60, 0) },
		);
		let any_bid = place(&buyer(), spec(2, 2, Side::Bid, 100, 50, 0));
		let solar = place(&seller(), spec(1, 2, Side::Offer, 100, 40, 0));
		let grid = place(
			&seller(),
			OrderSpec { source: EnergySource::GridMix, ..spec(2, 2, Side::Offer, 100, 45, 0) },
		);
		close_gate(2);
		// The generic bid takes the solar energy; the renewable-only bid and the grid-mix offer,
		// which could serve the generic bid, stay unfilled.
		assert_noop!(
			clear(2, Mechanism::Zonal, &[(0, 45)], &[m(any_bid, solar, 100, 45, 45)]),
			E::NotEquilibrium
		);
		assert_ok!(clear(
			2,
			Mechanism::Zonal,
			&[(0, 45)],
			&[m(green_bid, solar, 100, 45, 45), m(any_bid, grid, 100, 45, 45)]
		));
	});
}

#[test]
fn declared_bounds_below_the_real_counts_are_refused() {
	run(|| {
		let (b1, b2, o1, _) = simple_book();
		close_gate(2);
		let understated = |orders, traders| {
			Market::submit_clearing(
				origin(&operator()),
				2,
				Mechanism::Uniform,
				0,
				BoundedVec::new(),
				BoundedVec::new(),
				BookShape { orders, traders },
			)
		};
		// Four orders of two traders.
		assert_noop!(understated(3, 2), E::WitnessTooSmall);
		assert_noop!(understated(4, 1), E::WitnessTooSmall);
		assert_ok!(clear(
			2,
			Mechanism::Uniform,
			&[(0, 42)],
			&[m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)]
		));
	});
}

#[test]
fn each_buyer_pays_and_gets_its_hold_back_once() {
	run(|| {
		let (b1, b2, o1, _o2) = simple_book();
		// A third buyer, in zone 1, whose bid no offer reaches.
		let dave = buyer1();
		place(&dave, spec(1, 2, Side::Bid, 10, 30, 1));
		close_gate(2);
		System::reset_events();
		assert_ok!(clear(
			2,
			Mechanism::Uniform,
			&[(0, 42)],
			&[m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)]
		));
		let hold_moves = |who: &AccountId32| {
			System::events()
				.into_iter()
				.filter(|r| match &r.event {
					RuntimeEvent::Balances(pallet_balances::Event::Released { who: w, .. })
					| RuntimeEvent::Balances(pallet_balances::Event::TransferOnHold {
						source: w,
						..
					}) => w == who,
					_ => false,
				})
				.count()
		};
		// Charlie's two bids pay in one transfer and release the rest in one release; Dave's
		// unmatched bid is released once; the seller's hold is not touched.
		assert_eq!((hold_moves(&buyer()), hold_moves(&dave), hold_moves(&seller())), (2, 1, 0));
		assert_eq!((held(&buyer()), held(&dave)), (0, 0));
		assert_eq!(book_shape(2), BookShape { orders: 5, traders: 3 });
	});
}

#[test]
fn a_clearing_is_weighed_by_its_traders_matches_and_book() {
	run(|| {
		let weigh = |orders, traders, matches: usize| {
			Call::<Test>::submit_clearing {
				interval: 2,
				mechanism: Mechanism::Uniform,
				volume_wh: 0,
				zone_prices: BoundedVec::new(),
				matches: BoundedVec::truncate_from(vec![m(0, 1, 1, 1, 1); matches]),
				book: BookShape { orders, traders },
			}
			.get_dispatch_info()
			.call_weight
		};
		let w = <Test as Config>::WeightInfo::submit_clearing;
		// Two traders: one pair with one match; the other 29 matches are further ones, and
		// their 60 orders leave none of the book unmatched.
		assert_eq!(weigh(60, 2, 30), w(0, 1, 29));
		// 20 traders: 10 pairs, 5 matches among them, the rest of the book unmatched.
		assert_eq!(weigh(60, 20, 5), w(40, 10, 0));
		// More traders than orders cannot be, nor more orders than a book holds (64 here).
		assert_eq!(weigh(10, 1_000, 1), w(0, 5, 0));
		assert_eq!(weigh(1_000, 2, 1), w(62, 1, 0));
		// A match costs less than a trader (who pays, is paid, holds and has meters).
		assert!(weigh(60, 2, 30).ref_time() < weigh(60, 60, 30).ref_time());
	});
}

// ---------------------------------------------------------------- meter readings

#[test]
fn readings_set_a_baseline_then_mint_exported_energy() {
	run(|| {
		end_interval(3);
		assert_ok!(submit(reading(3, 1, 5_000, 20_000)));
		System::assert_last_event(
			Ev::MeterBaselineSet {
				meter: meter_pair().public().0,
				interval: 3,
				counter: 1,
				import_wh: 5_000,
				export_wh: 20_000,
			}
			.into(),
		);
		assert_eq!(EnergyIssuance::<Test>::get(), 0);
		end_interval(4);
		assert_ok!(submit(reading(4, 2, 5_100, 21_500)));
		// The export is minted into the interval's pool, not to Bob: its tokens go to whoever
		// it is delivered to (see `tokens_follow_the_energy_to_the_buyer`).
		assert_eq!(EnergyBalance::<Test>::get(seller()), 0);
		assert_eq!(EnergyIssuance::<Test>::get(), 1_500);
		assert_eq!(EnergyPools::<Test>::get(4).map(|p| p.held_wh), Some(1_500));
		assert_eq!(
			Metered::<Test>::get(4, seller()),
			Some(MeteredEnergy { import_wh: 100, export_wh: 1_500 })
		);
		System::assert_has_event(
			Ev::ReadingAccepted {
				meter: meter_pair().public().0,
				owner: seller(),
				interval: 4,
				counter: 2,
				import_wh: 100,
				export_wh: 1_500,
			}
			.into(),
		);
	});
}

#[test]
fn bad_readings_are_rejected_each_with_its_reason() {
	run(|| {
		Meters::<Test>::mutate(meter_pair().public().0, |m| {
			if let Some(m) = m.as_mut() {
				m.rated_power_w = 10_000;
			}
		});
		end_interval(3);
		assert_ok!(submit(reading(3, 1, 5_000, 20_000)));
		end_interval(5);
		// Unaccredited meter, and a signature by the wrong key.
		let stranger = pair("Stranger");
		let r = MeterReading { meter: stranger.public().0, ..reading(4, 2, 5_000, 20_001) };
		assert_noop!(
			Market::submit_reading(
				origin(&seller()),
				r,
				stranger.sign(&reading_message(&genesis(), &r)).0
			),
			E::UnknownMeter
		);
		let r = reading(4, 2, 5_000, 20_001);
		assert_noop!(
			Market::submit_reading(
				origin(&seller()),
				r,
				stranger.sign(&reading_message(&genesis(), &r)).0
			),
			E::BadSignature
		);
		assert_noop!(submit(reading(4, 1, 5_000, 20_001)), E::ReadingReplayed);
		assert_noop!(submit(reading(4, 3, 5_000, 20_001)), E::CounterGap);
		assert_noop!(submit(reading(3, 2, 5_000, 20_001)), E::IntervalNotAfterLast);
		assert_noop!(submit(reading(4, 2, 4_999, 20_001)), E::RegisterBackwards);
		assert_noop!(submit(reading(4, 2, 5_000, 19_999)), E::RegisterBackwards);
		assert_noop!(submit(reading(6, 2, 5_000, 20_001)), E::IntervalNotEnded);
		// 10 kW for one second is about 2.8 Wh.
		assert_noop!(submit(reading(4, 2, 5_000, 20_003)), E::ImplausibleReading);
		assert_ok!(submit(reading(4, 2, 5_000, 20_002)));
	});
}

#[test]
fn metered_participants_per_interval_are_bounded() {
	run(|| {
		let limit = MaxMeteredPerInterval::get();
		end_interval(2);
		let meters: Vec<sr25519::Pair> = (0..=limit).map(|i| pair(&format!("M{i}"))).collect();
		for (i, p) in meters.iter().enumerate() {
			assert_ok!(Market::accredit_meter(
				origin(&distributor()),
				p.public().0,
				account(&format!("Owner{i}")),
				0,
				EnergySource::Solar,
				RATED_W
			));
			let r = MeterReading {
				meter: p.public().0,
				epoch: 1,
				interval: 1,
				counter: 0,
				import_wh: 0,
				export_wh: 0,
			};
			assert_ok!(Market::submit_reading(
				origin(&seller()),
				r,
				p.sign(&reading_message(&genesis(), &r)).0
			));
		}
		for (i, p) in meters.iter().enumerate() {
			let r = MeterReading {
				meter: p.public().0,
				epoch: 1,
				interval: 2,
				counter: 1,
				import_wh: 1,
				export_wh: 0,
			};
			let result = Market::submit_reading(
				origin(&seller()),
				r,
				p.sign(&reading_message(&genesis(), &r)).0,
			);
			if i < limit as usize {
				assert_ok!(result);
			} else {
				assert_noop!(result, E::TooManyMetered);
			}
		}
	});
}

/// Accredits a meter of Charlie's (the buyer), so that his purchases are measured, and sets
/// its baseline at interval 1.
fn charlie_meters() -> sr25519::Pair {
	let meter = pair("CharlieMeter");
	assert_ok!(Market::accredit_meter(
		origin(&distributor()),
		meter.public().0,
		buyer(),
		0,
		EnergySource::GridMix,
		RATED_W
	));
	meter
}

/// Settles interval 2 after Bob's meter measured `bob_export` and Charlie's `charlie_import`.
fn meter_and_settle_2(charlie: &sr25519::Pair, bob_export: u64, charlie_import: u64) {
	assert_ok!(submit_from(charlie, 1, 1, 0, 0));
	end_interval(2);
	assert_ok!(submit(reading(2, 2, 0, bob_export)));
	assert_ok!(submit_from(charlie, 2, 2, charlie_import, 0));
	assert_ok!(settle(2));
}

#[test]
fn tokens_follow_the_energy_to_the_buyer() {
	run(|| {
		// Bob sells 150 Wh to Charlie; Bob's meter exports 180, Charlie's imports 120.
		let charlie = charlie_meters();
		bob_sells_150_in_interval_2();
		meter_and_settle_2(&charlie, 180, 120);
		// Charlie bought 150 and took 120: his 120 tokens. Bob keeps none, so he cannot sell
		// the energy's claim a second time; the 60 Wh paid at feed-in are retired.
		assert_eq!(EnergyBalance::<Test>::get(buyer()), 120);
		assert_eq!(EnergyBalance::<Test>::get(seller()), 0);
		assert_eq!(EnergyIssuance::<Test>::get(), 120);
		assert!(!EnergyPools::<Test>::contains_key(2));
		System::assert_has_event(
			Ev::EnergyDelivered { interval: 2, who: buyer(), amount_wh: 120 }.into(),
		);
		System::assert_has_event(Ev::EnergyRetired { interval: 2, amount_wh: 60 }.into());
		assert_noop!(
			Market::transfer_energy(origin(&seller()), account("Dave"), 1),
			E::InsufficientEnergy
		);

		// The holder may pass its tokens on, not more than it holds, and never for free.
		assert_ok!(Market::transfer_energy(origin(&buyer()), account("Dave"), 100));
		assert_eq!(EnergyBalance::<Test>::get(account("Dave")), 100);
		assert_eq!(EnergyBalance::<Test>::get(buyer()), 20);
		assert_noop!(
			Market::transfer_energy(origin(&buyer()), account("Dave"), 21),
			E::InsufficientEnergy
		);
		assert_noop!(Market::transfer_energy(origin(&buyer()), seller(), 0), E::EmptyTransfer);
		assert_noop!(Market::transfer_energy(origin(&buyer()), buyer(), 10), E::EmptyTransfer);
	});
}

#[test]
fn a_buyer_gets_the_tokens_its_pool_counted_whatever_reports_later() {
	run(|| {
		// Charlie's second meter is accredited after the clearing, so the clearing waits for
		// one report of his. The new meter reports first (30 Wh), completing him; the old one
		// reports 100 Wh more, which his line settles, but his pool share was counted at 30.
		let charlie = charlie_meters();
		bob_sells_150_in_interval_2();
		let late = pair("CharlieMeter2");
		assert_ok!(Market::accredit_meter(
			origin(&distributor()),
			late.public().0,
			buyer(),
			0,
			EnergySource::GridMix,
			RATED_W
		));
		assert_ok!(submit_from(&charlie, 1, 1, 0, 0));
		assert_ok!(submit_from(&late, 1, 1, 0, 0));
		end_interval(2);
		assert_ok!(submit(reading(2, 2, 0, 150)));
		assert_ok!(submit_from(&late, 2, 2, 30, 0));
		assert_eq!(Positions::<Test>::get(2, buyer()).map(|p| p.measured_wh), Some(30));
		assert_ok!(submit_from(&charlie, 2, 2, 100, 0));
		assert_ok!(settle(2));
		assert_eq!(EnergyBalance::<Test>::get(buyer()), 30);
		assert_eq!(EnergyIssuance::<Test>::get(), 30);
		assert_eq!(Settlements::<Test>::get(2, buyer()).map(|l| l.metered_wh), Some(130));
	});
}

#[test]
fn buyers_share_what_sellers_delivered_when_it_is_short() {
	run(|| {
		// Bob sells 150 Wh (100 to Charlie, 50 to Grace) but exports only 90.
		let charlie = charlie_meters();
		let grace = metered_participant("Grace", EnergySource::GridMix);
		assert_ok!(<Balances as frame_support::traits::fungible::Mutate<_>>::mint_into(
			&account("Grace"),
			START_BALANCE
		));
		let (b1, _, o1, _) = simple_book();
		let b3 = place(&account("Grace"), spec(1, 2, Side::Bid, 50, 50, 0));
		close_gate(2);
		assert_ok!(clear(
			2,
			Mechanism::Uniform,
			&[(0, 42)],
			&[m(b1, o1, 100, 42, 42), m(b3, o1, 50, 42, 42)]
		));
		end_interval(1);
		assert_ok!(submit(reading(1, 1, 0, 0)));
		assert_ok!(submit_from(&grace, 1, 1, 0, 0));
		assert_ok!(submit_from(&charlie, 1, 1, 0, 0));
		end_interval(2);
		assert_ok!(submit(reading(2, 2, 0, 90)));
		assert_ok!(submit_from(&charlie, 2, 2, 100, 0));
		assert_ok!(submit_from(&grace, 2, 2, 50, 0));
		assert_ok!(settle(2));
		// 90 delivered for 150 taken: each buyer gets 60 % of what it took.
		assert_eq!(EnergyBalance::<Test>::get(buyer()), 60);
		assert_eq!(EnergyBalance::<Test>::get(account("Grace")), 30);
		assert_eq!(EnergyIssuance::<Test>::get(), 90);
	});
}

#[test]
fn a_trade_settled_on_an_estimate_moves_no_tokens() {
	run(|| {
		// Charlie's meter never reports for interval 2: his consumption is estimated, so no
		// token is his, and Bob's export is retired.
		let charlie = charlie_meters();
		bob_sells_150_in_interval_2();
		assert_ok!(submit_from(&charlie, 1, 1, 0, 0));
		end_interval(2);
		assert_ok!(submit(reading(2, 2, 0, 150)));
		at(params().reading_deadline(2));
		assert_ok!(settle(2));
		assert!(Settlements::<Test>::get(2, buyer()).expect("line").estimated);
		assert_eq!(EnergyBalance::<Test>::get(buyer()), 0);
		assert_eq!(EnergyIssuance::<Test>::get(), 0);
		System::assert_has_event(Ev::EnergyRetired { interval: 2, amount_wh: 150 }.into());
	});
}

#[test]
fn an_old_reading_never_counts_again_after_re_accreditation() {
	run(|| {
		let key = meter_pair().public().0;
		end_interval(3);
		assert_ok!(submit(reading(3, 1, 0, 0)));
		end_interval(4);
		let old = reading(4, 2, 0, 2_000);
		assert_ok!(submit(old));
		assert_eq!(EnergyIssuance::<Test>::get(), 2_000);

		// Revoking and accrediting again opens a new epoch; the meter starts a new baseline.
		assert_ok!(Market::revoke_meter(origin(&distributor()), key));
		assert_ok!(Market::accredit_meter(
			origin(&distributor()),
			key,
			seller(),
			0,
			EnergySource::Solar,
			RATED_W
		));
		System::assert_last_event(
			Ev::MeterAccredited {
				meter: key,
				owner: seller(),
				zone: 0,
				source: EnergySource::Solar,
				rated_power_w: RATED_W,
				epoch: 2,
			}
			.into(),
		);
		assert_eq!(MeterEpochs::<Test>::get(key), 2);
		// The old signed readings (public in block bodies) are refused, baseline or not.
		assert_noop!(submit(old), E::StaleAccreditation);
		assert_noop!(submit(reading(3, 1, 0, 0)), E::StaleAccreditation);
		assert_eq!(EnergyIssuance::<Test>::get(), 2_000);

		// A reading signed for another chain does not verify here.
		end_interval(5);
		let fresh = MeterReading { epoch: 2, ..reading(5, 1, 0, 2_000) };
		let elsewhere = meter_pair().sign(&reading_message(&[9u8; 32], &fresh)).0;
		assert_noop!(Market::submit_reading(origin(&seller()), fresh, elsewhere), E::BadSignature);
		assert_ok!(Market::submit_reading(origin(&seller()), fresh, sign_reading(&fresh)));
	});
}

// ---------------------------------------------------------------- voiding

fn void(interval: u64, max_orders: u32) -> DispatchResult {
	let book = BookLen::<Test>::get(interval);
	Market::void_interval(origin(&account("Relayer")), interval, max_orders, book)
		.map(|_| ())
		.map_err(|e| e.error)
}

#[test]
fn an_interval_nobody_cleared_is_voided_and_every_hold_released() {
	run(|| {
		let (b1, b2, o1, o2) = simple_book();
		let held_before = held(&buyer());
		assert!(held_before > 0);
		close_gate(2);
		assert_noop!(void(2, 10), E::DeadlineNotPassed);

		// Past its end, the interval can no longer be cleared; anyone may void it, in pages.
		end_interval(2);
		assert_noop!(clear(2, Mechanism::Uniform, &[(0, 42)], &[]), E::ClearingDeadlinePassed);
		assert_noop!(void(2, 0), E::NothingToVoid);
		assert_noop!(
			Market::void_interval(origin(&seller()), 2, 10, 3),
			frame_support::dispatch::DispatchErrorWithPostInfo {
				post_info: Default::default(),
				error: E::WitnessTooSmall.into()
			}
		);
		assert_ok!(void(2, 3));
		assert_eq!(Voiding::<Test>::get(2), Some(3));
		assert!(!Voided::<Test>::contains_key(2));
		Market::do_try_state().expect("a half-voided interval keeps the invariants");
		assert_ok!(void(2, 3));
		System::assert_last_event(Ev::IntervalVoided { interval: 2, orders: 4 }.into());
		assert_eq!(held(&buyer()), 0);
		assert!(Voided::<Test>::contains_key(2));
		assert!(!Voiding::<Test>::contains_key(2));
		// No order is written: the interval's record says what became of them.
		for id in [b1, b2, o1, o2] {
			assert_eq!(Market::order(id).map(|o| o.status), Some(OrderStatus::Open));
		}
		assert_noop!(void(2, 3), E::AlreadyVoided);
		assert_noop!(Market::cancel_order(origin(&buyer()), 1), E::GateClosed);
		assert_noop!(clear(2, Mechanism::Uniform, &[(0, 42)], &[]), E::AlreadyVoided);

		// It settles as if nothing had traded: the seller's export is paid at feed-in.
		end_interval(1);
		assert_ok!(submit(reading(1, 1, 0, 0)));
		end_interval(2);
		assert_ok!(submit(reading(2, 2, 0, 100)));
		let before = free(&seller());
		assert_ok!(settle(2));
		assert_eq!(free(&seller()), before + (100 * FEED_IN) as u128);
	});
}

#[test]
fn a_cleared_interval_and_an_empty_one_are_handled() {
	run(|| {
		let (b1, b2, o1, _) = simple_book();
		close_gate(2);
		assert_ok!(clear(
			2,
			Mechanism::Uniform,
			&[(0, 42)],
			&[m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)]
		));
		end_interval(2);
		assert_noop!(void(2, 10), E::AlreadyCleared);
		// An interval with no orders is voided in one call, so it can be settled.
		assert_ok!(void(1, 0));
		assert!(Voided::<Test>::contains_key(1));
	});
}

// ---------------------------------------------------------------- pruning

/// One traded, cleared and settled interval `k`: a bid of Charlie's and an offer of Bob's,
/// placed during interval `k - 1` (the clock ends at the end of `k`).
fn trade_and_settle(k: u64) {
	at((k - 1) * INTERVAL_MS);
	let bid = place(&buyer(), spec(2 * k, k, Side::Bid, 100, 50, 0));
	let offer = place(&seller(), spec(2 * k + 1, k, Side::Offer, 100, 40, 0));
	close_gate(k);
	assert_ok!(clear(k, Mechanism::Uniform, &[(0, 45)], &[m(bid, offer, 100, 45, 45)]));
	end_interval(k);
	// Bob's meter never reports: settlement estimates it at the reading deadline.
	assert_noop!(settle(k).map_err(|e| e.error), E::ReadingsOutstanding);
	at(params().reading_deadline(k));
	assert_ok!(settle(k));
}

/// Parameter sets kept at most when they change every other interval: those of the kept
/// intervals, and of the intervals between the prune cursor and now.
fn kept_sets() -> usize {
	(RetainIntervals::get() as usize + 2) / 2 + 2
}

fn idle() -> frame_support::weights::Weight {
	use frame_support::traits::Hooks;
	Market::on_idle(System::block_number(), frame_support::weights::Weight::MAX)
}

/// The first interval that must still be kept now: later ones are too recent to prune.
fn keep_from() -> u64 {
	params().interval_at(Timestamp::get()) + 1 - RetainIntervals::get()
}

#[test]
fn state_stays_flat_as_intervals_go_by() {
	run(|| {
		idle(); // the first run sets the cursor
		let retain = RetainIntervals::get();
		let mut most_orders = 0;
		let mut most_param_sets = 0;
		for k in (2..80u64).step_by(2) {
			trade_and_settle(k);
			// The operator retunes the feed-in rate every other interval: the earlier sets
			// are kept only while an interval they govern is.
			let p = MarketParams { feed_in_ticks: 20 + k % 7, ..params() };
			assert_ok!(Market::set_market_params(origin(&operator()), p));
			idle();
			most_orders = most_orders.max(BookPages::<Test>::iter_values().map(|p| p.len()).sum());
			most_param_sets = most_param_sets.max(EarlierParams::<Test>::get().len());
		}
		assert!(most_param_sets <= kept_sets(), "{most_param_sets} parameter sets kept");
		// Only the last `retain` done-with intervals (and the current one) keep their data.
		let kept = (retain + 1) as usize;
		assert!(most_orders <= 2 * kept, "{most_orders} orders kept");
		assert!(ClientOrders::<Test>::iter().count() <= 2 * kept);
		assert!(Clearings::<Test>::iter().count() <= kept);
		assert!(Settled::<Test>::iter().count() <= kept);
		assert!(Settlements::<Test>::iter().count() <= 3 * kept);
		let (next, _) = PruneCursor::<Test>::get().expect("set");
		assert_eq!(next, keep_from());
		// The latest intervals are still there; the pruned ones refuse calls about them.
		assert!(Clearings::<Test>::contains_key(78));
		assert!(!Clearings::<Test>::contains_key(next - 1));
		assert_noop!(settle(next - 1).map_err(|e| e.error), E::IntervalPruned);
		assert_noop!(void(next - 1, 10), E::IntervalPruned);
	});
}

#[test]
fn pruning_waits_for_an_interval_that_is_not_done_with() {
	run(|| {
		idle();
		// Interval 2 has a book nobody cleared: pruning stops there until it is voided.
		simple_book();
		for k in (4..12u64).step_by(2) {
			trade_and_settle(k);
			idle();
		}
		assert_eq!(PruneCursor::<Test>::get(), Some((2, 0)));
		assert_eq!(BookLen::<Test>::get(2), 4);
		assert_ok!(void(2, 10));
		idle();
		assert_eq!(PruneCursor::<Test>::get(), Some((keep_from(), 0)));
		assert_eq!(BookLen::<Test>::get(2), 0);
		assert!(BookPages::<Test>::iter_prefix(2).next().is_none());
		assert_eq!(ClientOrders::<Test>::get(buyer(), 1), None);
	});
}

#[test]
fn pruning_removes_a_page_once_past_its_last_order() {
	run(|| {
		let size = BookPageSize::get();
		for i in 0..size + 4 {
			place(&seller(), spec(i as u64, 2, Side::Offer, 10, 10, 0));
		}
		Market::prune_orders(2, 0, size + 1);
		PruneCursor::<Test>::put((2, size + 1));
		// The first page is gone with its client ids; the second keeps all its orders.
		assert_eq!(BookPages::<Test>::decode_len(2, 0), None);
		assert_eq!(BookPages::<Test>::decode_len(2, 1), Some(4));
		assert_eq!(ClientOrders::<Test>::get(seller(), size as u64), None);
		assert!(ClientOrders::<Test>::get(seller(), size as u64 + 1).is_some());
		assert_ok!(Market::do_try_state());
	});
}

#[test]
fn pruning_uses_only_the_weight_left_and_carries_on() {
	use frame_support::traits::Hooks;
	run(|| {
		idle();
		trade_and_settle(2);
		// Intervals 0 and 1 (the clock is at interval 2's reading deadline); 2 is too recent.
		idle();
		assert_eq!(PruneCursor::<Test>::get(), Some((2, 0)));
		end_interval(2 + RetainIntervals::get());
		// Room for interval 2's check and one of its two orders: the rest waits for the next
		// block.
		let tail = <() as WeightInfo>::prune_tail();
		let one = tail + <() as WeightInfo>::prune_orders(1);
		let used = Market::on_idle(System::block_number(), one);
		assert!(used.all_lte(one));
		assert_eq!(PruneCursor::<Test>::get(), Some((2, 1)));
		assert_ok!(Market::do_try_state());
		assert_eq!(Market::on_idle(1, frame_support::weights::Weight::zero()), Default::default());
		idle();
		assert!(PruneCursor::<Test>::get().expect("set").0 > 2);
		assert!(BookPages::<Test>::iter().next().is_none());
	});
}

// ---------------------------------------------------------------- settlement

/// Bob (metered) sells 150 Wh of interval 2 to Charlie (no meter); Bob's meter has its
/// baseline from interval 1.
fn bob_sells_150_in_interval_2() {
	let (b1, b2, o1, _) = simple_book();
	close_gate(2);
	assert_ok!(clear(
		2,
		Mechanism::Uniform,
		&[(0, 42)],
		&[m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)]
	));
	end_interval(1);
	assert_ok!(submit(reading(1, 1, 0, 0)));
}

fn settle_page(interval: u64, max: u32) -> DispatchResult {
	Market::settle_interval(origin(&account("Relayer")), interval, max)
		.map(|_| ())
		.map_err(|e| e.error)
}

#[test]
fn settlement_buys_shortfalls_and_pays_surplus_at_regulated_rates() {
	run(|| {
		// Bob's meter shows 100 Wh exported of the 150 he sold (50 short).
		bob_sells_150_in_interval_2();
		assert_eq!(
			Positions::<Test>::get(2, seller()),
			Some(Position {
				contracted_wh: -150,
				meters: 1,
				reported: 0,
				proceeds: 150 * 42,
				measured_wh: 0
			})
		);
		assert_eq!(Outstanding::<Test>::get(2), 1);
		assert_noop!(settle(2), E::IntervalNotEnded);
		end_interval(2);
		assert_noop!(settle(2), E::ReadingsOutstanding);
		assert_ok!(submit(reading(2, 2, 0, 100)));
		assert_eq!(Outstanding::<Test>::get(2), 0);
		assert_noop!(settle(3), E::NotCleared);

		let (bob, charlie, grid) = (free(&seller()), free(&buyer()), free(&distributor()));
		// Anyone may settle once the readings are in: the chain says when.
		assert_noop!(settle_page(2, 0), E::NothingToSettle);
		assert_ok!(settle_page(2, 10));
		// Bob: contracted -150, metered -100: 50 Wh short, bought at the tariff.
		let bob_line = Settlements::<Test>::get(2, seller()).expect("line");
		assert_eq!(
			(bob_line.contracted_wh, bob_line.metered_wh, bob_line.imbalance_wh),
			(-150, -100, 50)
		);
		assert_eq!(bob_line.amount, 50 * TARIFF as i128);
		assert!(!bob_line.estimated);
		// Charlie has no meter, so nothing to wait for: contracted +150, metered 0: 150 Wh
		// unused, paid at feed-in.
		let charlie_line = Settlements::<Test>::get(2, buyer()).expect("line");
		assert_eq!((charlie_line.imbalance_wh, charlie_line.estimated), (-150, false));
		// Bob's proceeds (150 Wh at 42) were kept until now; his shortfall is paid from them.
		assert_eq!(bob_line.proceeds, 150 * 42);
		assert_eq!(free(&seller()), bob + 150 * 42 - 50 * TARIFF as u128);
		assert_eq!(free(&buyer()), charlie + 150 * FEED_IN as u128);
		assert_eq!(free(&distributor()), grid + 50 * TARIFF as u128 - 150 * FEED_IN as u128);
		System::assert_has_event(
			Ev::IntervalSettled {
				interval: 2,
				participants: 2,
				estimated: 0,
				shortfall_wh: 50,
				surplus_wh: 150,
			}
			.into(),
		);
		assert_noop!(settle(2), E::AlreadySettled);
	});
}

#[test]
fn a_missing_reading_is_estimated_at_the_deadline_and_trued_up_by_the_next() {
	run(|| {
		bob_sells_150_in_interval_2();
		end_interval(2);
		// Bob's meter is silent for interval 2: settlement waits until the reading deadline...
		at(params().reading_deadline(2) - 1);
		assert_noop!(settle(2), E::ReadingsOutstanding);
		// ...and then counts his position as delivered, marked as an estimate.
		at(params().reading_deadline(2));
		let bob = free(&seller());
		assert_ok!(settle(2));
		let line = Settlements::<Test>::get(2, seller()).expect("line");
		assert_eq!((line.metered_wh, line.imbalance_wh, line.amount), (-150, 0, 0));
		assert!(line.estimated);
		assert_eq!(free(&seller()), bob + 150 * 42, "his proceeds, nothing taken");
		// The 150 Wh the estimate settled are owed to the meter's next reading.
		assert_eq!(TrueUp::<Test>::get(seller()), 150);
		System::assert_has_event(
			Ev::IntervalSettled {
				interval: 2,
				participants: 2,
				estimated: 1,
				shortfall_wh: 0,
				surplus_wh: 150,
			}
			.into(),
		);

		// Interval 3: no trade (voided). Bob's meter skipped 2, so its reading for 3 covers
		// both: 250 Wh exported, of which 150 were settled by the estimate.
		assert_ok!(void(3, 0));
		end_interval(3);
		assert_ok!(submit(reading(3, 2, 0, 250)));
		let bob = free(&seller());
		assert_ok!(settle(3));
		let line = Settlements::<Test>::get(3, seller()).expect("line");
		assert_eq!((line.metered_wh, line.trued_up_wh, line.estimated), (-100, 150, false));
		assert_eq!(free(&seller()), bob + 100 * FEED_IN as u128);
		assert_eq!(TrueUp::<Test>::get(seller()), 0);
		assert!(!TrueUp::<Test>::contains_key(seller()));
	});
}

#[test]
fn a_late_reading_is_accepted_but_goes_to_the_next_settlement() {
	run(|| {
		bob_sells_150_in_interval_2();
		at(params().reading_deadline(2));
		assert_ok!(settle(2));
		assert_eq!(TrueUp::<Test>::get(seller()), 150);
		// The reading for interval 2 arrives after its settlement: the counter and registers go
		// on, but the settled lines stay as they are, and nothing is minted: the energy is
		// settled at the utility's rates by Bob's next settlement.
		assert_ok!(submit(reading(2, 2, 0, 140)));
		assert_eq!(EnergyIssuance::<Test>::get(), 0);
		assert!(!EnergyPools::<Test>::contains_key(2));
		System::assert_last_event(
			Ev::ReadingTruedUp {
				meter: meter_pair().public().0,
				owner: seller(),
				interval: 2,
				net_wh: -140,
			}
			.into(),
		);
		assert_eq!(Metered::<Test>::get(2, seller()), None);
		assert!(Settlements::<Test>::get(2, seller()).expect("line").estimated);
		// Bob delivered 10 Wh less than the estimate settled: his next settlement buys them.
		assert_eq!(TrueUp::<Test>::get(seller()), 10);
		assert_ok!(void(3, 0));
		end_interval(3);
		assert_ok!(submit(reading(3, 3, 0, 140)));
		assert_ok!(settle(3));
		let line = Settlements::<Test>::get(3, seller()).expect("line");
		assert_eq!((line.metered_wh, line.imbalance_wh, line.trued_up_wh), (10, 10, 10));
		assert_eq!(line.amount, 10 * TARIFF as i128);
	});
}

#[test]
fn a_shortfall_is_paid_from_the_sellers_proceeds_first_and_the_rest_is_a_debt() {
	run(|| {
		bob_sells_150_in_interval_2();
		end_interval(2);
		// Bob delivers nothing of his 150 Wh and has emptied his account.
		assert_ok!(submit(reading(2, 2, 0, 0)));
		let left = crate::mock::EXISTENTIAL_DEPOSIT;
		assert_ok!(Balances::force_set_balance(RuntimeOrigin::root(), seller(), left));
		let (charlie, grid) = (free(&buyer()), free(&distributor()));
		assert_ok!(settle(2));
		// His proceeds (150 Wh at 42) were never his to spend: they pay for the shortfall first.
		let shortfall = 150 * TARIFF as u128;
		let proceeds = 150 * 42;
		assert_eq!(Debts::<Test>::get(seller(), distributor()), shortfall - proceeds);
		System::assert_has_event(
			Ev::SettlementDebt {
				interval: 2,
				debtor: seller(),
				creditor: distributor(),
				amount: shortfall - proceeds,
			}
			.into(),
		);
		assert_eq!(free(&seller()), left);
		// Charlie is paid all the same, and the interval is settled.
		assert_eq!(free(&buyer()), charlie + 150 * FEED_IN as u128);
		assert_eq!(free(&distributor()), grid + proceeds - 150 * FEED_IN as u128);
		assert!(Settled::<Test>::contains_key(2));
	});
}

#[test]
fn a_payment_below_the_existential_deposit_to_a_new_account_blocks_nothing() {
	run(|| {
		// Gil has never held funds, so his account does not exist. He sells 10 Wh.
		let gil = account("Gil");
		let gil_meter = metered_participant("Gil", EnergySource::Solar);
		let offer = place(&gil, spec(1, 2, Side::Offer, 10, 40, 0));
		let bid = place(&buyer(), spec(1, 2, Side::Bid, 10, 42, 0));
		close_gate(2);
		assert_ok!(clear(2, Mechanism::Uniform, &[(0, 41)], &[m(bid, offer, 10, 41, 41)]));
		end_interval(1);
		assert_ok!(submit_from(&gil_meter, 1, 1, 0, 0));
		end_interval(2);
		assert_ok!(submit_from(&gil_meter, 2, 2, 0, 10));
		assert_ok!(settle(2));
		// 410 units are below the existential deposit (1,000): the clearing house owes them to
		// Gil instead of failing the settlement.
		assert_eq!(Debts::<Test>::get(Market::clearing_house(), gil.clone()), 410);
		assert_eq!(free(&gil), 0);
		assert!(Settled::<Test>::contains_key(2));
	});
}

#[test]
fn a_settlement_with_no_distributor_fails_whole() {
	run(|| {
		bob_sells_150_in_interval_2();
		end_interval(2);
		assert_ok!(submit(reading(2, 2, 0, 100)));
		Distributor::<Test>::kill();
		assert_noop!(settle(2), E::NoDistributor);
	});
}

#[test]
fn settlement_goes_page_by_page_and_a_reading_between_pages_waits_for_the_next() {
	run(|| {
		bob_sells_150_in_interval_2();
		// Dave trades nothing; his meter has its baseline from interval 0.
		let dave_meter = metered_participant("Dave", EnergySource::GridMix);
		assert_ok!(submit_from(&dave_meter, 0, 1, 0, 0));
		end_interval(2);
		assert_ok!(submit(reading(2, 2, 0, 150)));

		assert_ok!(settle_page(2, 1));
		assert!(!Settled::<Test>::contains_key(2));
		assert_eq!(SettlementProgress::<Test>::get(2).map(|p| p.participants), Some(1));
		// Dave's reading of interval 2 arrives once its settlement has begun: it waits for his
		// next settlement instead of changing this one halfway.
		assert_ok!(submit_from(&dave_meter, 2, 2, 70, 0));
		assert_eq!(TrueUp::<Test>::get(account("Dave")), 70);
		assert_ok!(settle_page(2, 1));
		assert!(Settled::<Test>::contains_key(2));
		assert!(Settlements::<Test>::get(2, account("Dave")).is_none());
		System::assert_has_event(
			Ev::IntervalSettled {
				interval: 2,
				participants: 2,
				estimated: 0,
				shortfall_wh: 0,
				surplus_wh: 150,
			}
			.into(),
		);
	});
}

// ---------------------------------------------------------------- paged clearings

/// The page and error of the `ClearingRejected` event among the events from `from` on.
fn rejected_since(from: u32) -> Option<(u32, DispatchError)> {
	System::events().into_iter().skip(from as usize).find_map(|r| match r.event {
		RuntimeEvent::Market(Ev::ClearingRejected { page, error, .. }) => Some((page, error)),
		_ => None,
	})
}

/// A uniform clearing of `interval` sent by `who` in pages cut before the match indexes
/// `cuts`: a registration, then each page, the last with its witness. The invariants are
/// checked after every call. `Ok(Some((page, error)))` is a rejection (the calls succeeded);
/// `Err` a refused call.
fn send_in_pages(
	who: &AccountId32,
	interval: u64,
	prices: &[(u16, u64)],
	matches: &[Match],
	volume: u64,
	cuts: &[usize],
) -> Result<Option<(u32, DispatchError)>, DispatchError> {
	let mut bounds: Vec<usize> =
		cuts.iter().copied().filter(|c| *c > 0 && *c < matches.len()).collect();
	bounds.sort();
	bounds.dedup();
	let pages: Vec<&[Match]> = core::iter::once(0)
		.chain(bounds.iter().copied())
		.zip(bounds.iter().copied().chain(core::iter::once(matches.len())))
		.map(|(a, b)| &matches[a..b])
		.collect();
	let zp: Vec<ZonePrice> =
		prices.iter().map(|(z, p)| ZonePrice { zone: *z, price: *p }).collect();
	Market::register_clearing(
		origin(who),
		interval,
		Mechanism::Uniform,
		volume,
		BoundedVec::truncate_from(zp),
		matches.len() as u32,
		pages.len() as u32,
	)?;
	Market::do_try_state().expect("invariants hold after a registration");
	// Registering may have rejected an abandoned registration: this clearing's events follow.
	let from = System::event_count();
	let shape = book_shape(interval);
	let witness = ClearingWitness {
		orders: shape.orders,
		traders: shape.traders,
		matches: matches.len() as u32,
	};
	for (index, page) in pages.iter().enumerate() {
		let finish = (index + 1 == pages.len()).then_some(witness);
		Market::submit_clearing_page(
			origin(who),
			interval,
			index as u32,
			BoundedVec::truncate_from(page.to_vec()),
			finish,
		)
		.map_err(|e| e.error)?;
		Market::do_try_state().expect("invariants hold after every page");
		if let Some(rejection) = rejected_since(from) {
			return Ok(Some(rejection));
		}
	}
	Ok(None)
}

/// A second clearing submitter, funded.
fn second_submitter() -> AccountId32 {
	let who = account("Relayer");
	assert_ok!(Market::set_clearing_submitter(RuntimeOrigin::root(), who.clone(), true));
	who
}

#[test]
fn a_clearing_in_pages_is_verified_page_by_page_and_applied_after_the_last() {
	run(|| {
		let (b1, b2, o1, _) = simple_book();
		let buyer_before = free(&buyer()) + held(&buyer());
		close_gate(2);
		let alice = free(&operator());
		let matches = [m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)];
		let zp = BoundedVec::truncate_from(vec![ZonePrice { zone: 0, price: 42 }]);
		assert_ok!(Market::register_clearing(
			origin(&operator()),
			2,
			Mechanism::Uniform,
			150,
			zp,
			2,
			2
		));
		// The deposit is held from the registration on.
		assert_eq!(free(&operator()), alice - CLEARING_DEPOSIT);
		let page = |i: usize| BoundedVec::truncate_from(vec![matches[i]]);
		assert_ok!(Market::submit_clearing_page(origin(&operator()), 2, 0, page(0), None));
		System::assert_last_event(
			Ev::ClearingPageVerified { interval: 2, page: 0, matches: 1 }.into(),
		);
		// Verified, not applied: no money moved, and the first bid's fill is kept.
		assert!(!Clearings::<Test>::contains_key(2));
		assert_eq!(free(&buyer()), buyer_before - held(&buyer()));
		assert_eq!(held(&buyer()), 100 * 60 + 100 * 45);
		assert_eq!(Fills::<Test>::get(2, 0).map(|(attempt, f)| (attempt, f[0])), Some((1, 100)));
		// The last page needs its witness, which prices the whole clearing.
		assert_noop!(
			Market::submit_clearing_page(origin(&operator()), 2, 1, page(1), None),
			E::WitnessTooSmall
		);
		let witness = ClearingWitness { orders: 4, traders: 2, matches: 2 };
		assert_ok!(Market::submit_clearing_page(origin(&operator()), 2, 1, page(1), Some(witness)));
		let summary = Clearings::<Test>::get(2).expect("applied");
		assert_eq!((summary.match_count, summary.pages, summary.volume_wh), (2, 2, 150));
		assert_eq!(ClearingPages::<Test>::get(2, 1).to_vec(), vec![matches[1]]);
		assert_eq!(free(&buyer()), buyer_before - 150 * 42);
		assert_eq!(held(&buyer()), 0);
		// The deposit comes back whole.
		assert_eq!(free(&operator()), alice);
		assert!(!PendingClearings::<Test>::contains_key(2));
	});
}

#[test]
fn pages_go_in_order_from_their_registrant_only() {
	run(|| {
		let (b1, b2, o1, _) = simple_book();
		let matches = [m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)];
		let page = |i: usize| BoundedVec::truncate_from(vec![matches[i]]);
		let zp = || BoundedVec::truncate_from(vec![ZonePrice { zone: 0, price: 42 }]);
		let register = |who: &AccountId32, pages: u32| {
			Market::register_clearing(origin(who), 2, Mechanism::Uniform, 150, zp(), 2, pages)
		};
		assert_noop!(register(&operator(), 2), E::GateNotClosed);
		close_gate(2);
		assert_noop!(
			Market::submit_clearing_page(origin(&operator()), 2, 0, page(0), None),
			E::ClearingNotRegistered
		);
		assert_noop!(register(&seller(), 2), E::NotClearingSubmitter);
		assert_noop!(register(&operator(), 0), E::BadPageCount);
		assert_noop!(register(&operator(), MaxClearingPages::get() + 1), E::BadPageCount);
		assert_ok!(register(&operator(), 3));
		let other = second_submitter();
		// One live registration per interval.
		assert_noop!(register(&other, 2), E::ClearingInProgress);
		assert_noop!(
			Market::submit_clearing_page(origin(&other), 2, 0, page(0), None),
			E::NotRegistrant
		);
		assert_noop!(
			Market::submit_clearing_page(origin(&seller()), 2, 0, page(0), None),
			E::NotClearingSubmitter
		);
		// Missing, out of order, duplicated.
		assert_noop!(
			Market::submit_clearing_page(origin(&operator()), 2, 1, page(0), None),
			E::PageOutOfOrder
		);
		assert_ok!(Market::submit_clearing_page(origin(&operator()), 2, 0, page(0), None));
		assert_noop!(
			Market::submit_clearing_page(origin(&operator()), 2, 0, page(0), None),
			E::PageOutOfOrder
		);
		assert_noop!(
			Market::submit_clearing_page(origin(&operator()), 2, 2, page(1), None),
			E::PageOutOfOrder
		);
		assert_ok!(Market::submit_clearing_page(origin(&operator()), 2, 1, page(1), None));
		// The third page claimed: none of the two matches is left, so its last page is empty
		// and the clearing is complete.
		let witness = ClearingWitness { orders: 4, traders: 2, matches: 2 };
		assert_ok!(Market::submit_clearing_page(
			origin(&operator()),
			2,
			2,
			BoundedVec::new(),
			Some(witness)
		));
		assert!(Clearings::<Test>::contains_key(2));
		assert_noop!(register(&other, 1), E::AlreadyCleared);
	});
}

#[test]
fn a_bad_page_rejects_the_whole_clearing_and_names_itself() {
	run(|| {
		let (b1, b2, o1, o2) = simple_book();
		close_gate(2);
		let held_before = held(&buyer());
		let (alice, issuance) = (free(&operator()), Balances::total_issuance());
		// Page 1 names the 55-tick offer at 42: below its limit.
		let bad = [m(b1, o1, 100, 42, 42), m(b2, o2, 50, 42, 42)];
		let got = send_in_pages(&operator(), 2, &[(0, 42)], &bad, 150, &[1]);
		assert_eq!(got, Ok(Some((1, E::OfferLimitViolated.into()))));
		// Nothing of it applies: no clearing, no pages, no prices, holds as they were; the
		// deposit is burned.
		assert!(!Clearings::<Test>::contains_key(2) && !PendingClearings::<Test>::contains_key(2));
		assert_eq!(ClearingPages::<Test>::iter_prefix(2).count(), 0);
		assert!(!ClearingPrices::<Test>::contains_key(2));
		assert_eq!(held(&buyer()), held_before);
		assert_eq!(free(&operator()), alice - CLEARING_DEPOSIT);
		assert_eq!(Balances::total_issuance(), issuance - CLEARING_DEPOSIT);
		// Claiming more matches than the pages carry fails at the last page; claiming fewer,
		// at the page that passes the claim.
		let good = [m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)];
		let zp = || BoundedVec::truncate_from(vec![ZonePrice { zone: 0, price: 42 }]);
		assert_ok!(Market::register_clearing(
			origin(&operator()),
			2,
			Mechanism::Uniform,
			150,
			zp(),
			1,
			2
		));
		assert_ok!(Market::submit_clearing_page(
			origin(&operator()),
			2,
			0,
			BoundedVec::truncate_from(good.to_vec()),
			None
		));
		System::assert_last_event(
			Ev::ClearingRejected {
				interval: 2,
				submitter: operator(),
				page: 0,
				error: E::MatchCountMismatch.into(),
				slashed: CLEARING_DEPOSIT,
			}
			.into(),
		);
		// The fills of rejected attempts count for nothing: a valid clearing, in pages, passes.
		assert_eq!(send_in_pages(&operator(), 2, &[(0, 42)], &good, 150, &[1]), Ok(None));
		assert_eq!(Clearings::<Test>::get(2).map(|c| c.pages), Some(2));
	});
}

#[test]
fn an_abandoned_registration_expires_and_another_submitter_takes_the_interval() {
	run(|| {
		let (b1, b2, o1, _) = simple_book();
		close_gate(2);
		let alice = free(&operator());
		let zp = || BoundedVec::truncate_from(vec![ZonePrice { zone: 0, price: 42 }]);
		assert_ok!(Market::register_clearing(
			origin(&operator()),
			2,
			Mechanism::Uniform,
			150,
			zp(),
			2,
			2
		));
		let other = second_submitter();
		let patience: u64 = SubmissionPatience::get();
		System::set_block_number(1 + patience - 1);
		assert_noop!(
			Market::register_clearing(origin(&other), 2, Mechanism::Uniform, 150, zp(), 2, 1),
			E::ClearingInProgress
		);
		System::set_block_number(1 + patience);
		let good = [m(b1, o1, 100, 42, 42), m(b2, o1, 50, 42, 42)];
		assert_eq!(send_in_pages(&other, 2, &[(0, 42)], &good, 150, &[]), Ok(None));
		// The first registrant's deposit went for its abandoned registration.
		assert_eq!(free(&operator()), alice - CLEARING_DEPOSIT);
		assert_eq!(Clearings::<Test>::get(2).map(|c| c.submitter), Some(other));
		assert!(System::events().iter().any(|r| r.event
			== RuntimeEvent::Market(Ev::ClearingRejected {
				interval: 2,
				submitter: operator(),
				page: 0,
				error: E::SubmissionExpired.into(),
				slashed: CLEARING_DEPOSIT,
			})));
	});
}

#[test]
fn a_registration_unfinished_at_the_deadline_is_rejected_when_the_interval_is_voided() {
	run(|| {
		let (b1, _, o1, _) = simple_book();
		close_gate(2);
		let zp = BoundedVec::truncate_from(vec![ZonePrice { zone: 0, price: 42 }]);
		assert_ok!(Market::register_clearing(
			origin(&operator()),
			2,
			Mechanism::Uniform,
			150,
			zp,
			2,
			2
		));
		let page = BoundedVec::truncate_from(vec![m(b1, o1, 100, 42, 42)]);
		assert_ok!(Market::submit_clearing_page(origin(&operator()), 2, 0, page.clone(), None));
		end_interval(2);
		assert_noop!(
			Market::submit_clearing_page(origin(&operator()), 2, 1, page, None),
			E::ClearingDeadlinePassed
		);
		let alice = free(&operator());
		assert_ok!(Market::void_interval(origin(&seller()), 2, 10, 10));
		assert!(Voided::<Test>::contains_key(2));
		assert!(!PendingClearings::<Test>::contains_key(2));
		assert_eq!(ClearingPages::<Test>::iter_prefix(2).count(), 0);
		// Its deposit stays burned; every bid's hold is back.
		assert_eq!(free(&operator()), alice);
		assert_eq!(Balances::balance_on_hold(&HoldReason::ClearingDeposit.into(), &operator()), 0);
		assert_eq!(held(&buyer()), 0);
		assert!(System::events().iter().any(|r| matches!(
			&r.event,
			RuntimeEvent::Market(Ev::ClearingRejected { page: 1, error, .. })
				if *error == E::ClearingDeadlinePassed.into()
		)));
	});
}

// ---------------------------------------------------------------- randomized clearings

mod fuzz {
	use super::*;
	use rand::{rngs::SmallRng, Rng, SeedableRng};

	struct Book {
		bids: Vec<(OrderId, u64, u64)>,
		offers: Vec<(OrderId, u64, u64)>,
	}

	/// A corrupted clearing: its matches, zone prices, declared volume (None: the matches' sum)
	/// and the error it must be rejected with.
	type Corruption = (Vec<Match>, Vec<(u16, u64)>, Option<u64>, E);

	/// A plain uniform-price clearing: best bids against best offers, price at the midpoint of
	/// the last matched pair.
	fn reference_clearing(book: &Book) -> (Option<u64>, Vec<Match>) {
		let mut bids = book.bids.clone();
		let mut offers = book.offers.clone();
		bids.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
		offers.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.cmp(&b.0)));
		let (mut i, mut j) = (0, 0);
		let (mut bid_left, mut offer_left) =
			(bids.first().map_or(0, |b| b.1), offers.first().map_or(0, |o| o.1));
		let mut fills = Vec::new();
		let mut last = None;
		while i < bids.len() && j < offers.len() && bids[i].2 >= offers[j].2 {
			let q = bid_left.min(offer_left);
			fills.push((bids[i].0, offers[j].0, q));
			last = Some((bids[i].2, offers[j].2));
			bid_left -= q;
			offer_left -= q;
			if bid_left == 0 {
				i += 1;
				bid_left = bids.get(i).map_or(0, |b| b.1);
			}
			if offer_left == 0 {
				j += 1;
				offer_left = offers.get(j).map_or(0, |o| o.1);
			}
		}
		let price = last.map(|(b, o)| (b + o) / 2);
		let matches = fills
			.into_iter()
			.map(|(b, o, q)| m(b, o, q, price.unwrap_or(0), price.unwrap_or(0)))
			.collect();
		(price, matches)
	}

	fn total_issuance_and_holds() -> u128 {
		Balances::total_issuance()
	}

	/// Clearings of `interval` rejected so far.
	fn rejected_here(interval: u64) -> usize {
		System::events()
			.iter()
			.filter(|r| {
				matches!(r.event, RuntimeEvent::Market(Ev::ClearingRejected { interval: k, .. }) if k == interval)
			})
			.count()
	}

	/// Cuts that split `n` matches into 1 to `MaxClearingPages` pages at random.
	fn random_cuts(rng: &mut SmallRng, n: usize) -> Vec<usize> {
		let pages = rng.gen_range(1..=(MaxClearingPages::get() as usize).min(n.max(1)));
		(1..pages).map(|_| rng.gen_range(1..n.max(2))).collect()
	}

	/// Thousands of random books, each cleared in random pages: the reference clearing is
	/// always accepted, and each kind of corruption of it is always rejected, in the page that
	/// holds the defect, with its own error; nothing of it applies, and the invariants hold
	/// after every call.
	#[test]
	fn invalid_clearings_are_always_rejected_and_valid_ones_accepted() {
		let mut rng = SmallRng::seed_from_u64(0x5747_4154);
		let mut accepted = 0;
		let mut rejected = 0;
		for case in 0..2_000u64 {
			run(|| {
				let interval = 2;
				let n_bids = rng.gen_range(0..8);
				let n_offers = rng.gen_range(0..8);
				let mut book = Book { bids: vec![], offers: vec![] };
				for k in 0..n_bids {
					let (q, p) = (rng.gen_range(1..500), rng.gen_range(10..100));
					book.bids.push((place(&buyer(), spec(k, interval, Side::Bid, q, p, 0)), q, p));
				}
				for k in 0..n_offers {
					let (q, p) = (rng.gen_range(1..500), rng.gen_range(10..100));
					book.offers.push((
						place(&seller(), spec(k, interval, Side::Offer, q, p, 0)),
						q,
						p,
					));
				}
				// An order of another interval and a cancelled one, to be named by corruptions.
				let foreign = place(&buyer(), spec(100, interval + 1, Side::Bid, 100, 99, 0));
				let cancelled = place(&buyer(), spec(101, interval, Side::Bid, 100, 99, 0));
				assert_ok!(Market::cancel_order(origin(&buyer()), 101));
				// A cheap offer in zone 2, which no line joins to zone 0: it must stay unfilled.
				let far = place(
					&zone_2_seller(),
					OrderSpec {
						source: EnergySource::GridMix,
						..spec(1, interval, Side::Offer, 1_000_000, 1, 2)
					},
				);
				// The seller cannot bid against its own offers.
				if n_offers > 0 {
					assert_noop!(
						Market::place_order(
							origin(&seller()),
							spec(200, interval, Side::Bid, 10, 99, 0)
						),
						E::SelfTrade
					);
				}
				close_gate(interval);

				let (price, matches) = reference_clearing(&book);
				let prices: Vec<(u16, u64)> = price.map(|p| vec![(0, p)]).unwrap_or_default();
				let issuance = total_issuance_and_holds();

				// Corruptions, each applicable only to some books.
				let mut bad: Vec<Corruption> = vec![];
				if let Some(first) = matches.first().copied() {
					let bid_qty =
						book.bids.iter().find(|b| b.0 == first.bid).map(|b| b.1).unwrap_or(0);
					let mut over = matches.clone();
					over.push(m(
						first.bid,
						first.offer,
						bid_qty + 1,
						first.buyer_price,
						first.seller_price,
					));
					bad.push((over, prices.clone(), None, E::Overfilled));

					let mut wrong_interval = matches.clone();
					wrong_interval[0].bid = foreign;
					bad.push((wrong_interval, prices.clone(), None, E::OrderNotInInterval));

					let mut gone = matches.clone();
					gone[0].bid = cancelled;
					bad.push((gone, prices.clone(), None, E::OrderCancelled));

					let mut transported = matches.clone();
					transported[0].offer = far;
					bad.push((transported, prices.clone(), None, E::NoLine));

					bad.push((
						matches.clone(),
						prices.clone(),
						Some(matches.iter().map(|m| m.quantity_wh).sum::<u64>() + 1),
						E::UnbalancedEnergy,
					));

					let max_bid = matches
						.iter()
						.filter_map(|x| book.bids.iter().find(|b| b.0 == x.bid))
						.map(|b| b.2)
						.min()
						.unwrap_or(0);
					let above: Vec<Match> = matches
						.iter()
						.map(|x| Match {
							buyer_price: max_bid + 1,
							seller_price: max_bid + 1,
							..*x
						})
						.collect();
					bad.push((above, vec![(0, max_bid + 1)], None, E::BidLimitExceeded));
					let min_offer = matches
						.iter()
						.filter_map(|x| book.offers.iter().find(|o| o.0 == x.offer))
						.map(|o| o.2)
						.max()
						.unwrap_or(0);
					if min_offer > 0 {
						let below: Vec<Match> = matches
							.iter()
							.map(|x| Match {
								buyer_price: min_offer - 1,
								seller_price: min_offer - 1,
								..*x
							})
							.collect();
						bad.push((below, vec![(0, min_offer - 1)], None, E::OfferLimitViolated));
					}
					// Dropping the last match leaves a crossing pair unfilled (its bid reaches its
					// offer), whatever the price.
					bad.push((
						matches[..matches.len() - 1].to_vec(),
						prices.clone(),
						None,
						E::NotEquilibrium,
					));
					// The audit's void: no trade, priced at the top bid, so no unfilled bid is
					// above the price while a crossing bid and offer stay unfilled.
					let top = book.bids.iter().map(|b| b.2).max().unwrap_or(0);
					bad.push((vec![], vec![(0, top)], Some(0), E::NotEquilibrium));
				}
				// The submitter cannot choose the mechanism: the interval's is uniform.
				let zone_prices = prices.iter().map(|(z, p)| ZonePrice { zone: *z, price: *p });
				assert_noop!(
					submit_checked(
						interval,
						Mechanism::Zonal,
						matches.iter().map(|m| m.quantity_wh).sum(),
						zone_prices.collect(),
						matches.clone(),
					),
					E::WrongMechanism
				);
				for (ms, ps, volume, err) in bad {
					let volume = volume.unwrap_or_else(|| ms.iter().map(|m| m.quantity_wh).sum());
					let cuts = random_cuts(&mut rng, ms.len());
					// The match that shows the defect: the first one (or, for a price beyond a
					// limit, the first priced beyond its order's), or the overfilling last one.
					// The whole-solution checks run at the last page.
					let limit = |id: OrderId, of: &[(OrderId, u64, u64)]| {
						of.iter().find(|o| o.0 == id).map_or(0, |o| o.2)
					};
					let culprit = match err {
						E::BidLimitExceeded => {
							ms.iter().position(|x| x.buyer_price > limit(x.bid, &book.bids))
						},
						E::OfferLimitViolated => {
							ms.iter().position(|x| x.seller_price < limit(x.offer, &book.offers))
						},
						E::Overfilled | E::UnbalancedEnergy | E::NotEquilibrium => {
							Some(ms.len().saturating_sub(1))
						},
						_ => Some(0),
					}
					.expect("the corruption shows in a match");
					let page = cuts
						.iter()
						.filter(|c| **c > 0 && **c < ms.len())
						.collect::<std::collections::BTreeSet<_>>()
						.into_iter()
						.filter(|c| **c <= culprit)
						.count() as u32;
					let held_before = held(&buyer());
					let got = send_in_pages(&operator(), interval, &ps, &ms, volume, &cuts);
					assert_eq!(got, Ok(Some((page, err.into()))), "case {case}");
					assert!(!Clearings::<Test>::contains_key(interval));
					assert!(!PendingClearings::<Test>::contains_key(interval));
					assert_eq!(ClearingPages::<Test>::iter_prefix(interval).count(), 0);
					assert_eq!(held(&buyer()), held_before);
					rejected += 1;
				}
				// The deposits burned: money was destroyed only there.
				let issuance = issuance - CLEARING_DEPOSIT * rejected_here(interval) as u128;

				let volume = matches.iter().map(|m| m.quantity_wh).sum();
				let cuts = random_cuts(&mut rng, matches.len());
				assert_eq!(
					send_in_pages(&operator(), interval, &prices, &matches, volume, &cuts),
					Ok(None),
					"case {case}"
				);
				accepted += 1;
				// Money only moved; nothing is left held for this interval.
				assert_eq!(total_issuance_and_holds(), issuance);
				assert_eq!(held(&seller()), 0);
				assert_eq!(held(&buyer()), 100 * 99, "only the other interval's bid stays held");
				let paid: u128 =
					matches.iter().map(|x| x.quantity_wh as u128 * x.seller_price as u128).sum();
				assert_eq!(free(&seller()), START_BALANCE, "paid at settlement");
				let proceeds = Positions::<Test>::get(interval, seller()).map_or(0, |p| p.proceeds);
				assert_eq!(proceeds, paid);
			});
		}
		assert_eq!(accepted, 2_000);
		assert!(rejected > 9_000, "only {rejected} corruptions were tried");
	}
}
