//! Store benchmark (below).
fn main() {}
