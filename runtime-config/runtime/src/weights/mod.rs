//! Weights measured for this runtime by `make weights` (the benchmark CLI, run in the wasm
//! runtime on the project's 2-core machines). Regenerate after changing a call.

pub mod pallet_energy_trading;
/// Database weights: `benchmark storage` on the node's own database (ParityDB).
#[allow(unused_doc_comments)] // the generator documents struct fields inside a macro
pub mod paritydb_weights;
