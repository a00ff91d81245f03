//! Compiled modules as files: serialized at install, loaded at run.
//!
//! A serialized artifact is native code. wasmtime checks that it was made by this version of
//! wasmtime with a compatible configuration, but it cannot check that the code is the code it
//! made: loading a forged artifact runs the forger's machine code in the executor. So an
//! artifact is loaded only from bytes whose SHA-256 equals the digest recorded when the
//! artifact was made (the registry, which the executor cannot write), and from those very bytes
//! in memory (never by path, which could change between the check and the load).

#![allow(
    unsafe_code,
    reason = "Module::deserialize is unsafe; the digest check below is what makes it sound"
)]

use skillcell_types::Digest;
use wasmtime::Module;

use crate::{WasmEngine, WasmError};

/// Loads `bytes` as a compiled module of `engine` after checking that they hash to
/// `expected`, the digest recorded when the artifact was made.
pub fn load(engine: &WasmEngine, bytes: &[u8], expected: &Digest) -> Result<Module, WasmError> {
    let actual = Digest::of(bytes);
    if actual != *expected {
        return Err(WasmError::Artifact(format!(
            "its digest is {} but {} was recorded when it was made",
            actual.short(),
            expected.short()
        )));
    }
    // SAFETY: `Module::deserialize` requires bytes produced by `Module::serialize` (or
    // `Engine::precompile_module`) of a compatible engine and not modified since. The bytes
    // hash to the digest recorded right after `WasmEngine::precompile` serialized them, in the
    // registry the executor can only read, and they are this in-memory slice, not a file that
    // could change after the check. Engine compatibility (version and configuration) is
    // checked by wasmtime itself and fails as an error, not as undefined behaviour.
    let module = unsafe { Module::deserialize(engine.engine(), bytes) }
        .map_err(|e| WasmError::Artifact(format!("{e:#}")))?;
    engine.check_module(&module)?;
    Ok(module)
}
