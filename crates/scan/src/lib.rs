//! Static scan of a skill folder (work in progress: see issue 5).
