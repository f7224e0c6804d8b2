//! SeaORM storage (in progress).
