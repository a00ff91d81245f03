//! Integration tests of the executor role, one binary.

mod role;
