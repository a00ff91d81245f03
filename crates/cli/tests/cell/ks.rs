//! Section KS of ../shared/security-cases.md (being written).
