//! Storage benchmark (being written).
fn main() {}
