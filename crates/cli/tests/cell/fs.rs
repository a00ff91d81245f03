//! Section FS of ../shared/security-cases.md (being written).
