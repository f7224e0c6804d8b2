//! The store conformance suite on `MemoryStore`, the reference implementation: a fresh store
//! for each case.
#![cfg(feature = "test-suite")]

audit_core::store_suite!(audit_core::MemoryStore::new());
audit_core::intent_suite!(audit_core::MemoryStore::new());
