//! Supply-chain audit of a skill's dependencies (work in progress: see issue 5).
