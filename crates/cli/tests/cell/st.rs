//! Section ST of ../shared/security-cases.md (being written).
