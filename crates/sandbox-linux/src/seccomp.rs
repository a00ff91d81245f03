//! seccomp-bpf filter for the cell (being written).
