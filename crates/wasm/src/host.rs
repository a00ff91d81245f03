//! skillcell's host functions (import module `skillcell`), linked per capability.
//!
//! The guest side of each is documented in docs/wasm-abi.md. The effects (audit records, the
//! egress proxy) belong to the caller, through [`HostCalls`]; this module only moves bytes
//! between the guest's memory and those calls, checking every pointer.

use std::future::Future;
use std::pin::Pin;

use wasmtime::{Caller, Extern, Linker, Memory};

use crate::run::RunState;
use crate::{MAX_FETCH_BODY, MAX_FETCH_RESPONSE, MAX_LOG_BYTES, MAX_LOG_RECORDS};

/// Error codes host functions return (docs/wasm-abi.md).
pub mod error_code {
    pub const REFUSED: i32 = -1;
    pub const UPSTREAM: i32 = -2;
    pub const BAD_REQUEST: i32 = -3;
    pub const NO_ALLOC: i32 = -4;
    pub const TOO_LARGE: i32 = -5;
    pub const CAP_REACHED: i32 = -6;
    pub const NOT_AVAILABLE: i32 = -38;
}

/// What the contract grants a module beyond WASI. `log` needs no grant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Grants {
    /// `skillcell::http_fetch`: the contract has a `skillcell.network` rule.
    pub network: bool,
    /// `skillcell::call_skill`: the contract has a `skillcell.calls` entry.
    pub calls: bool,
}

impl Grants {
    /// What `contract` grants: `http_fetch` with any network rule, `call_skill` with any
    /// callee.
    pub fn of(contract: &skillcell_types::Contract) -> Self {
        Self {
            network: !contract.network.is_empty(),
            calls: !contract.calls.is_empty(),
        }
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.network) | (usize::from(self.calls) << 1)
    }

    pub(crate) fn all() -> [Self; 4] {
        [0, 1, 2, 3].map(|i| Self {
            network: i & 1 != 0,
            calls: i & 2 != 0,
        })
    }
}

/// A response `http_fetch` hands to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a fetch failed; each maps to an error code the guest sees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("refused by policy: {0}")]
    Refused(String),
    #[error("the upstream failed: {0}")]
    Upstream(String),
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("the response is larger than {MAX_FETCH_RESPONSE} bytes")]
    TooLarge,
}

impl FetchError {
    fn code(&self) -> i32 {
        match self {
            Self::Refused(_) => error_code::REFUSED,
            Self::Upstream(_) => error_code::UPSTREAM,
            Self::BadRequest(_) => error_code::BAD_REQUEST,
            Self::TooLarge => error_code::TOO_LARGE,
        }
    }
}

/// A boxed future, as host calls return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The effects of host functions, implemented by the caller of a run.
pub trait HostCalls: Send + Sync + 'static {
    /// A `skillcell::log` record (already capped in count and size, valid UTF-8).
    fn log(&self, level: i32, message: &str);
    /// `skillcell::http_fetch`: `method` and `url` as the guest gave them. Runs inside the
    /// run's wall-clock deadline (dropped when it passes).
    fn http_fetch(
        &self,
        method: String,
        url: String,
        body: Vec<u8>,
    ) -> BoxFuture<Result<FetchResponse, FetchError>>;
    /// Whether the caller wants the run stopped, and why (`SIGINT`). Asked at every epoch tick
    /// (10 ms) while the guest computes and as often while it waits in a host call; once it
    /// says so, the run ends as interrupted.
    fn interrupted(&self) -> Option<String> {
        None
    }
}

/// Host calls for runs with no caller effects: logs are dropped, fetches refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHost;

impl HostCalls for NoHost {
    fn log(&self, _level: i32, _message: &str) {}

    fn http_fetch(
        &self,
        _method: String,
        _url: String,
        _body: Vec<u8>,
    ) -> BoxFuture<Result<FetchResponse, FetchError>> {
        Box::pin(async { Err(FetchError::Refused("no egress in this run".into())) })
    }
}

/// skillcell's host functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostFn {
    Log,
    HttpFetch,
    CallSkill,
}

impl HostFn {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "log" => Some(Self::Log),
            "http_fetch" => Some(Self::HttpFetch),
            "call_skill" => Some(Self::CallSkill),
            _ => None,
        }
    }

    pub(crate) fn granted(self, grants: Grants) -> bool {
        match self {
            Self::Log => true,
            Self::HttpFetch => grants.network,
            Self::CallSkill => grants.calls,
        }
    }

    /// The grant it needs, as the fix to write into SKILL.md.
    pub(crate) fn grant(self) -> &'static str {
        match self {
            Self::Log => "nothing",
            Self::HttpFetch => "a network grant: add `skillcell.network: HOST:PORT` to SKILL.md",
            Self::CallSkill => "a calls grant: add `skillcell.calls: SKILL` to SKILL.md",
        }
    }
}

/// Defines the host functions `grants` allow in `linker`, and no other.
pub(crate) fn define(linker: &mut Linker<RunState>, grants: Grants) -> wasmtime::Result<()> {
    linker.func_wrap(
        "skillcell",
        "log",
        |mut caller: Caller<'_, RunState>, level: i32, ptr: i32, len: i32| -> i32 {
            let Some(memory) = memory_of(&mut caller) else {
                return error_code::BAD_REQUEST;
            };
            if caller.data().log_records >= MAX_LOG_RECORDS {
                return error_code::CAP_REACHED;
            }
            let Ok(len_usize) = usize::try_from(len) else {
                return error_code::BAD_REQUEST;
            };
            if len_usize > MAX_LOG_BYTES {
                return error_code::TOO_LARGE;
            }
            let Some(bytes) = read(&memory, &caller, ptr, len) else {
                return error_code::BAD_REQUEST;
            };
            let Ok(text) = std::str::from_utf8(&bytes) else {
                return error_code::BAD_REQUEST;
            };
            caller.data_mut().log_records += 1;
            caller.data().host.log(level, text);
            0
        },
    )?;
    if grants.network {
        linker.func_wrap_async(
            "skillcell",
            "http_fetch",
            |mut caller: Caller<'_, RunState>,
             (req_ptr, req_len, body_ptr, body_len, ret_ptr): (i32, i32, i32, i32, i32)| {
                Box::new(async move {
                    http_fetch(&mut caller, req_ptr, req_len, body_ptr, body_len, ret_ptr).await
                })
            },
        )?;
    }
    if grants.calls {
        linker.func_wrap(
            "skillcell",
            "call_skill",
            |_: Caller<'_, RunState>, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 {
                error_code::NOT_AVAILABLE
            },
        )?;
    }
    Ok(())
}

/// The host side of `skillcell::http_fetch`: a negative [`error_code`] or the HTTP status. A
/// trap in the guest's allocator (its fuel or deadline ran out there) ends the run as a trap.
async fn http_fetch(
    caller: &mut Caller<'_, RunState>,
    req_ptr: i32,
    req_len: i32,
    body_ptr: i32,
    body_len: i32,
    ret_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some(memory) = memory_of(caller) else {
        return Ok(error_code::BAD_REQUEST);
    };
    if usize::try_from(req_len).map_or(true, |l| l > 8192) {
        return Ok(error_code::BAD_REQUEST);
    }
    if usize::try_from(body_len).is_ok_and(|l| l > MAX_FETCH_BODY) {
        return Ok(error_code::TOO_LARGE);
    }
    let (Some(req), Some(body)) = (
        read(&memory, &*caller, req_ptr, req_len),
        read(&memory, &*caller, body_ptr, body_len),
    ) else {
        return Ok(error_code::BAD_REQUEST);
    };
    // The return slot must be writable before anything leaves the host.
    if read(&memory, &*caller, ret_ptr, 8).is_none() {
        return Ok(error_code::BAD_REQUEST);
    }
    let Some((method, url)) = std::str::from_utf8(&req)
        .ok()
        .and_then(|r| r.split_once(' '))
        .map(|(m, u)| (m.to_owned(), u.to_owned()))
    else {
        return Ok(error_code::BAD_REQUEST);
    };
    let host = std::sync::Arc::clone(&caller.data().host);
    let response = match host.http_fetch(method, url, body).await {
        Ok(r) => r,
        Err(e) => return Ok(e.code()),
    };
    if response.body.len() > MAX_FETCH_RESPONSE {
        return Ok(error_code::TOO_LARGE);
    }
    let Ok(len) = i32::try_from(response.body.len()) else {
        return Ok(error_code::TOO_LARGE);
    };
    let Some(alloc) = caller
        .get_export("skillcell_alloc")
        .and_then(Extern::into_func)
        .and_then(|f| f.typed::<i32, i32>(&*caller).ok())
    else {
        return Ok(error_code::NO_ALLOC);
    };
    let ptr = alloc.call_async(&mut *caller, len).await?;
    // The allocator may have grown the memory: `write` looks the range up again.
    if (ptr == 0 && len != 0) || !write(&memory, &mut *caller, ptr, &response.body) {
        return Ok(error_code::NO_ALLOC);
    }
    let mut ret = [0u8; 8];
    ret[..4].copy_from_slice(&ptr.to_le_bytes());
    ret[4..].copy_from_slice(&len.to_le_bytes());
    if !write(&memory, &mut *caller, ret_ptr, &ret) {
        return Ok(error_code::BAD_REQUEST);
    }
    Ok(i32::from(response.status))
}

fn memory_of(caller: &mut Caller<'_, RunState>) -> Option<Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// The guest's bytes at `ptr..ptr+len`, or `None` when the range is not inside its memory.
pub(crate) fn read(
    memory: &Memory,
    store: impl wasmtime::AsContext,
    ptr: i32,
    len: i32,
) -> Option<Vec<u8>> {
    let (start, end) = range(ptr, len)?;
    memory.data(&store).get(start..end).map(<[u8]>::to_vec)
}

/// Copies `bytes` to the guest's memory at `ptr`; false when they do not fit.
pub(crate) fn write(
    memory: &Memory,
    mut store: impl wasmtime::AsContextMut,
    ptr: i32,
    bytes: &[u8],
) -> bool {
    let Ok(len) = i32::try_from(bytes.len()) else {
        return false;
    };
    let Some((start, end)) = range(ptr, len) else {
        return false;
    };
    match memory.data_mut(&mut store).get_mut(start..end) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// `ptr` and `len` as unsigned wasm32 offsets.
fn range(ptr: i32, len: i32) -> Option<(usize, usize)> {
    let start = ptr as u32 as usize;
    let len = usize::try_from(len).ok()?;
    Some((start, start.checked_add(len)?))
}
