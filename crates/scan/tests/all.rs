//! Integration tests of skillcell-scan, one binary.
