//! wasm-wordcount: an example skillcell WASM skill using the tool ABI (docs/wasm-abi.md).
//!
//! Input: any bytes (normally UTF-8 text). Output: `{"bytes":N,"lines":N,"words":N}`, where
//! `lines` counts `\n` bytes (as `wc -l` does) and `words` counts maximal runs of bytes that are
//! not ASCII whitespace (space, `\t`, `\n`, `\r`, form feed: `u8::is_ascii_whitespace`).
//!
//! Kept compatible with Rust 1.63 (Debian bookworm's rustc), so it builds with either toolchain.

/// Returns a pointer to `len` writable bytes owned by the guest (a leaked `Vec<u8>`), or 0 when
/// `len` is negative. The host writes the input there before calling `skillcell_run`.
#[no_mangle]
pub extern "C" fn skillcell_alloc(len: i32) -> i32 {
    if len < 0 {
        return 0;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(len as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as i32
}

/// Counts the input at `ptr..ptr+len` and returns `(out_ptr << 32) | out_len` for the JSON
/// output (a leaked buffer), or -1 when `len` is negative.
#[no_mangle]
pub extern "C" fn skillcell_run(ptr: i32, len: i32) -> i64 {
    if len < 0 {
        return -1;
    }
    let input: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: the host wrote `len` bytes at `ptr`, a buffer from `skillcell_alloc`.
        unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
    };
    let (lines, words) = count(input);
    let out = format!(
        "{{\"bytes\":{},\"lines\":{},\"words\":{}}}",
        input.len(),
        lines,
        words
    )
    .into_bytes()
    .into_boxed_slice();
    let out_len = out.len() as u32;
    let out_ptr = Box::into_raw(out) as *mut u8 as usize as u32;
    (((out_ptr as u64) << 32) | out_len as u64) as i64
}

/// Returns (lines, words).
fn count(input: &[u8]) -> (u64, u64) {
    let mut lines = 0u64;
    let mut words = 0u64;
    let mut in_word = false;
    for &b in input {
        if b == b'\n' {
            lines += 1;
        }
        if b.is_ascii_whitespace() {
            in_word = false;
        } else if !in_word {
            in_word = true;
            words += 1;
        }
    }
    (lines, words)
}

#[cfg(test)]
mod tests {
    use super::{count, skillcell_alloc, skillcell_run};

    #[test]
    fn counts() {
        assert_eq!(count(b""), (0, 0));
        assert_eq!(count(b"hello"), (0, 1));
        assert_eq!(count(b"  hello  world\n"), (1, 2));
        assert_eq!(count(b"a\tb\r\nc\n\n"), (3, 3));
        assert_eq!(count("héllo wörld".as_bytes()), (0, 2));
    }

    #[test]
    fn alloc_refuses_negative() {
        assert_eq!(skillcell_alloc(-1), 0);
        assert_eq!(skillcell_run(0, -1), -1);
    }
}
