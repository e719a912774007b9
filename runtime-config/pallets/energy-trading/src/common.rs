//! Helpers more than one concern uses: the market clock and each interval's parameters, the
//! money value of energy at a price, and the checks of off-chain sr25519 signatures (orders,
//! cancellations, meter readings).

use crate::{
	BalanceOf, Config, EarlierParams, Error, IntervalId, MarketParams, Pallet, Params, ParamsFrom,
	RawSignature,
};
use alloc::vec::Vec;
use codec::Encode;
use frame_support::{
	ensure,
	pallet_prelude::{DispatchResult, Get},
	traits::Time,
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_core::sr25519;
use sp_runtime::{
	traits::{AccountIdConversion, Zero},
	DispatchError, SaturatedConversion,
};

impl<T: Config> Pallet<T> {
	/// The clearing house's account (`ClearingHouseId`): it holds what buyers paid for an
	/// interval until its sellers' delivery is metered.
	pub fn clearing_house() -> T::AccountId {
		T::ClearingHouseId::get().into_account_truncating()
	}

	/// The market clock: unix time in milliseconds.
	pub fn now_ms() -> u64 {
		T::Time::now()
	}

	/// The parameters that govern `interval`: fixed when its gate closes (`set_market_params`).
	pub fn params_for(interval: IntervalId) -> MarketParams {
		if interval >= ParamsFrom::<T>::get() {
			return Params::<T>::get();
		}
		let earlier = EarlierParams::<T>::get();
		earlier
			.iter()
			.rev()
			.find(|(start, _)| *start <= interval)
			.or(earlier.first())
			.map(|(_, p)| *p)
			.unwrap_or_else(Params::<T>::get)
	}

	/// Money for `quantity_wh` at `price_ticks` per kWh, in balance units (1/1000 tick).
	pub(crate) fn cost(price_ticks: u64, quantity_wh: u64) -> BalanceOf<T> {
		((price_ticks as u128) * (quantity_wh as u128)).saturated_into()
	}

	/// The genesis hash as it goes into signed order and cancel messages, so that a signature
	/// made for one chain never passes on another.
	pub(crate) fn genesis_bytes() -> Vec<u8> {
		frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero()).encode()
	}

	/// The 32 bytes of an account id, which is an sr25519 public key for a relayed item's owner.
	pub(crate) fn account_bytes(who: &T::AccountId) -> Result<[u8; 32], DispatchError> {
		who.encode().try_into().map_err(|_| Error::<T>::UnsupportedAccount.into())
	}

	pub(crate) fn verify_sr25519(
		signature: &RawSignature,
		msg: &[u8],
		public: &[u8; 32],
	) -> DispatchResult {
		let sig = sr25519::Signature::from_raw(*signature);
		let key = sr25519::Public::from_raw(*public);
		ensure!(sp_io::crypto::sr25519_verify(&sig, msg, &key), Error::<T>::BadSignature);
		Ok(())
	}
}
