//! Section CLEANUP of ../shared/security-cases.md (being written).
