//! Section PR of ../shared/security-cases.md (being written).
