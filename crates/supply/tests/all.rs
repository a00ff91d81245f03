//! Integration tests of skillcell-supply, one binary.
