//! Weights measured for this runtime by `make weights` (the benchmark CLI, run in the wasm
//! runtime on the project's 2-core machines). Regenerate after changing a call.

pub mod pallet_energy_trading;
