//! Host interpreter discovery (being written).
