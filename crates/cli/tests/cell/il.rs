//! Section IL of ../shared/security-cases.md (being written).
