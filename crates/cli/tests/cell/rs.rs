//! Section RS of ../shared/security-cases.md (being written).
