//! The golden vectors shared with the Python side (`docs/vectors/signed-messages.json`): every
//! message the pallet builds must equal the vector's bytes, and every vector's signature must
//! verify over them with its key, and fail once one byte of the message is flipped.

use crate::{
	cancel_message, order_message, reading_message, EnergySource, MeterReading, OrderSpec, Side,
};
use serde::Deserialize;
use sp_core::{bytes::from_hex, sr25519};

const VECTORS: &str = include_str!("../../../../../docs/vectors/signed-messages.json");

#[derive(Deserialize)]
struct Vectors {
	genesis_hash: String,
	orders: Vec<OrderVector>,
	cancels: Vec<CancelVector>,
	readings: Vec<ReadingVector>,
}

#[derive(Deserialize)]
struct SpecVector {
	client_order_id: u64,
	interval: u64,
	side: String,
	quantity_wh: u64,
	price_ticks: u64,
	zone: u16,
	source: String,
	renewable_only: bool,
}

#[derive(Deserialize)]
struct OrderVector {
	owner: String,
	spec: SpecVector,
	message: String,
	signature: String,
}

#[derive(Deserialize)]
struct CancelVector {
	owner: String,
	client_order_id: u64,
	message: String,
	signature: String,
}

#[derive(Deserialize)]
struct ReadingVector {
	meter: String,
	epoch: u32,
	interval: u64,
	counter: u64,
	import_wh: u64,
	export_wh: u64,
	message: String,
	signature: String,
}

fn bytes(hex: &str) -> Vec<u8> {
	from_hex(hex).unwrap_or_else(|e| panic!("{hex} is not hex: {e:?}"))
}

fn array<const N: usize>(hex: &str) -> [u8; N] {
	bytes(hex)
		.try_into()
		.unwrap_or_else(|v: Vec<u8>| panic!("{hex}: {} bytes, want {N}", v.len()))
}

fn side(name: &str) -> Side {
	match name {
		"bid" => Side::Bid,
		"offer" => Side::Offer,
		other => panic!("unknown side {other}"),
	}
}

fn source(name: &str) -> EnergySource {
	match name {
		"solar" => EnergySource::Solar,
		"wind" => EnergySource::Wind,
		"hydro" => EnergySource::Hydro,
		"biomass" => EnergySource::Biomass,
		"grid_mix" => EnergySource::GridMix,
		other => panic!("unknown energy source {other}"),
	}
}

fn vectors() -> Vectors {
	serde_json::from_str(VECTORS).expect("docs/vectors/signed-messages.json parses")
}

/// The pallet's message equals the vector's bytes; the signature verifies over it with `public`
/// and fails with any one byte of the message flipped (the first, the last, one in the middle).
fn check(what: &str, built: &[u8], message: &str, signature: &str, public: [u8; 32]) {
	assert_eq!(built, &bytes(message)[..], "{what}: message bytes differ");
	let sig = sr25519::Signature::from_raw(array::<64>(signature));
	let key = sr25519::Public::from_raw(public);
	sp_io::TestExternalities::default().execute_with(|| {
		assert!(
			sp_io::crypto::sr25519_verify(&sig, built, &key),
			"{what}: signature does not verify"
		);
		for i in [0, built.len() / 2, built.len() - 1] {
			let mut flipped = built.to_vec();
			flipped[i] ^= 0x01;
			assert!(
				!sp_io::crypto::sr25519_verify(&sig, &flipped, &key),
				"{what}: verifies with byte {i} flipped"
			);
		}
	});
}

#[test]
fn the_vector_file_has_every_kind_of_message() {
	let v = vectors();
	assert_eq!(bytes(&v.genesis_hash).len(), 32, "genesis hash is 32 bytes");
	assert!(!v.orders.is_empty() && !v.cancels.is_empty() && !v.readings.is_empty());
}

#[test]
fn order_messages_match_the_vectors_and_their_signatures_verify() {
	let v = vectors();
	let genesis = array::<32>(&v.genesis_hash);
	for (i, o) in v.orders.iter().enumerate() {
		let owner = array::<32>(&o.owner);
		let spec = OrderSpec {
			client_order_id: o.spec.client_order_id,
			interval: o.spec.interval,
			side: side(&o.spec.side),
			quantity_wh: o.spec.quantity_wh,
			price_ticks: o.spec.price_ticks,
			zone: o.spec.zone,
			source: source(&o.spec.source),
			renewable_only: o.spec.renewable_only,
		};
		check(
			&format!("order {i}"),
			&order_message(&genesis, &owner, &spec),
			&o.message,
			&o.signature,
			owner,
		);
	}
}

#[test]
fn cancel_messages_match_the_vectors_and_their_signatures_verify() {
	let v = vectors();
	let genesis = array::<32>(&v.genesis_hash);
	for (i, c) in v.cancels.iter().enumerate() {
		let owner = array::<32>(&c.owner);
		let built = cancel_message(&genesis, &owner, c.client_order_id);
		check(&format!("cancel {i}"), &built, &c.message, &c.signature, owner);
	}
}

#[test]
fn reading_messages_match_the_vectors_and_their_signatures_verify() {
	let v = vectors();
	let genesis = array::<32>(&v.genesis_hash);
	for (i, r) in v.readings.iter().enumerate() {
		let meter = array::<32>(&r.meter);
		let reading = MeterReading {
			meter,
			epoch: r.epoch,
			interval: r.interval,
			counter: r.counter,
			import_wh: r.import_wh,
			export_wh: r.export_wh,
		};
		check(
			&format!("reading {i}"),
			&reading_message(&genesis, &reading),
			&r.message,
			&r.signature,
			meter,
		);
	}
}
