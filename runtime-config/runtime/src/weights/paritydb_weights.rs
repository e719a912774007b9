//! THIS FILE WAS AUTO-GENERATED USING THE SUBSTRATE BENCHMARK CLI VERSION 64.0.0
//! DATE: 2026-12-07 (Y/M/D)
//! HOSTNAME: `vm`, CPU: `Intel(R) Xeon(R) Processor`
//!
//! DATABASE: `ParityDb`, RUNTIME: `WattChain Development`
//! BLOCK-NUM: `Number(56)`
//! SKIP-WRITE: `false`, SKIP-READ: `false`, WARMUPS: `2`
//! STATE-VERSION: `V1`, STATE-CACHE-SIZE: ``
//! WEIGHT-PATH: `runtime-config/runtime/src/weights/`
//! METRIC: `P95Percentile`, WEIGHT-MUL: `2.0`, WEIGHT-ADD: `0`

// Executed Command:
//   /root/.cache/wattchain/target-bench/release/wattchain-node
//   benchmark
//   storage
//   --dev
//   --state-version
//   1
//   --database
//   paritydb
//   --batch-size
//   100
//   --warmups
//   2
//   --metric
//   p95
//   --mul
//   2
//   --base-path
//   /root/.cache/wattchain/target-bench/storage-market/chain
//   --weight-path
//   runtime-config/runtime/src/weights/

/// Storage DB weights for the `WattChain Development` runtime and `ParityDb`.
pub mod constants {
	use frame_support::weights::constants;
	use frame_support::weights::RuntimeDbWeight;
	use sp_core::parameter_types;

	parameter_types! {
		/// `ParityDB` can be enabled with a feature flag, but is still experimental. These weights
		/// are available for brave runtime engineers who may want to try this out as default.
		pub const ParityDbWeight: RuntimeDbWeight = RuntimeDbWeight {
			/// Time to read one storage item.
			/// Calculated by multiplying the *P95Percentile* of all values with `2.0` and adding `0`.
			///
			/// Stats nanoseconds:
			///   Min, Max: 634, 6_484_452
			///   Average:  3_497
			///   Median:   2_596
			///   Std-Dev:  62836.48
			///
			/// Percentiles nanoseconds:
			///   99th: 7_435
			///   95th: 4_242
			///   75th: 2_948
			read: 8_484 * constants::WEIGHT_REF_TIME_PER_NANOS,

			/// Time to write one storage item.
			/// Calculated by multiplying the *P95Percentile* of all values with `2.0` and adding `0`.
			///
			/// Stats nanoseconds:
			///   Min, Max: 9_594, 109_633
			///   Average:  11_826
			///   Median:   10_698
			///   Std-Dev:  9644.41
			///
			/// Percentiles nanoseconds:
			///   99th: 23_464
			///   95th: 11_897
			///   75th: 11_043
			write: 23_794 * constants::WEIGHT_REF_TIME_PER_NANOS,
		};
	}

	#[cfg(test)]
	mod test_db_weights {
		use super::constants::ParityDbWeight as W;
		use frame_support::weights::constants;

		/// Checks that all weights exist and have sane values.
		// NOTE: If this test fails but you are sure that the generated values are fine,
		// you can delete it.
		#[test]
		fn bound() {
			// At least 1 µs.
			assert!(
				W::get().reads(1).ref_time() >= constants::WEIGHT_REF_TIME_PER_MICROS,
				"Read weight should be at least 1 µs."
			);
			assert!(
				W::get().writes(1).ref_time() >= constants::WEIGHT_REF_TIME_PER_MICROS,
				"Write weight should be at least 1 µs."
			);
			// At most 1 ms.
			assert!(
				W::get().reads(1).ref_time() <= constants::WEIGHT_REF_TIME_PER_MILLIS,
				"Read weight should be at most 1 ms."
			);
			assert!(
				W::get().writes(1).ref_time() <= constants::WEIGHT_REF_TIME_PER_MILLIS,
				"Write weight should be at most 1 ms."
			);
		}
	}
}
