//! Integration tests of tower-audit live in `tests/`; this library holds what they share.
//!
//! The README's example is compiled here as a doctest, so it cannot drift from the code.
#![forbid(unsafe_code)]

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
