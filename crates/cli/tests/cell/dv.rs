//! Section DV of ../shared/security-cases.md (being written).
