//! The string step of the JSON scan (`json.rs`): how far a string runs
//! before a quote, backslash or control byte, and whether it holds bytes
//! above 0x7F (then UTF-8 is checked), sixteen or eight bytes at a time.

/// Length of the leading run of `s` free of `"`, `\\` and control characters,
/// and whether the run has a byte above 0x7f (then it must be checked as
/// UTF-8): sixteen bytes a step with SSE2 (part of every x86_64), then eight
/// at a time (SWAR). Most strings of a chat body are short (keys, roles),
/// where calling out to `memchr` cost more than the search.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn plain_run(s: &[u8]) -> (usize, bool) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_setzero_si128,
    };
    let mut i = 0;
    // SAFETY: SSE2 is in the x86_64 baseline, so these instructions exist on
    // every CPU this code runs on; each unaligned load (`loadu` has no
    // alignment requirement) reads s[i..i + 16], inside `s` by the loop
    // condition.
    let wide = unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let ctl_max = _mm_set1_epi8(0x1f);
        // High bits of every byte passed over.
        let mut wide = _mm_setzero_si128();
        while i + 16 <= s.len() {
            let x = _mm_loadu_si128(s.as_ptr().add(i).cast::<__m128i>());
            // Unsigned min(x, 0x1f) == x exactly for x <= 0x1f.
            let ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, ctl_max), x);
            let special = _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash));
            let mask = _mm_movemask_epi8(_mm_or_si128(special, ctl)) as u32;
            if mask != 0 {
                let n = mask.trailing_zeros();
                let before = _mm_movemask_epi8(x) as u32 & ((1u32 << n) - 1);
                return (i + n as usize, before != 0 || _mm_movemask_epi8(wide) != 0);
            }
            wide = _mm_or_si128(wide, x);
            i += 16;
        }
        _mm_movemask_epi8(wide) != 0
    };
    let (n, tail_wide) = swar_run(&s[i..]);
    (i + n, wide || tail_wide)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn plain_run(s: &[u8]) -> (usize, bool) {
    swar_run(s)
}

/// [`plain_run`] eight bytes at a time in a `u64`.
fn swar_run(s: &[u8]) -> (usize, bool) {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // High bit of each byte that is zero (exact for the lowest flagged byte,
    // which is the one used).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut wide = 0u64;
    let mut i = 0;
    while let Some(w) = s.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        // Little-endian, so the lowest set bit is the first byte in memory.
        let x = u64::from_le_bytes(word);
        let hit = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if hit != 0 {
            let n = (hit.trailing_zeros() / 8) as usize;
            let before = x & !(u64::MAX << (8 * n));
            return (i + n, (wide | before) & HIGH != 0);
        }
        wide |= x;
        i += 8;
    }
    let tail = &s[i..];
    let n = tail
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(tail.len());
    (i + n, wide & HIGH != 0 || !tail[..n].is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_run_stops_at_the_first_special_byte() {
        for len in 0..70 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                for at in 0..=len {
                    let mut s = vec![b'a'; len];
                    // Bytes just above the thresholds must not stop the run.
                    if len > 0 {
                        s[len - 1] = 0x20;
                    }
                    s.push(b'z');
                    if at < len {
                        s[at] = special;
                        assert_eq!(plain_run(&s), (at, false), "{s:?}");
                        assert_eq!(swar_run(&s), (at, false), "{s:?}");
                    }
                }
                let s = vec![0xe9u8; len];
                assert_eq!(plain_run(&s), (len, len > 0));
                assert_eq!(swar_run(&s), (len, len > 0));
            }
        }
    }

    #[test]
    fn plain_run_reports_wide_bytes_before_the_stop_only() {
        for len in 1..70 {
            for wide_at in 0..len {
                for stop_at in 0..=len {
                    let mut s = vec![b'a'; len];
                    s[wide_at] = 0xc3;
                    if stop_at < len {
                        s[stop_at] = b'"';
                    }
                    let want = (stop_at.min(len), wide_at < stop_at);
                    assert_eq!(plain_run(&s), want, "{len} {wide_at} {stop_at}");
                    assert_eq!(swar_run(&s), want, "{len} {wide_at} {stop_at}");
                }
            }
        }
    }
}
