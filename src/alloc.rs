//! The process's global allocator: mimalloc, called the way Rust's own
//! `System` allocator calls malloc.
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it passes every layout to
//! `mi_malloc_aligned`, even alignment 1. In mimalloc 3 that call is a fast
//! path only for blocks up to 1 KiB that happen to be aligned; a larger block
//! whose size is not a power of two (a 1.5 KiB head, a 4.1 KiB buffer) goes to
//! the generic aligned path and is over-allocated, and its page then frees
//! through the aligned path too. Ordinary layouts need none of that: `mi_malloc`
//! already gives them the alignment they ask for (see [`plain`]).

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc's `MI_MAX_ALIGN_SIZE` on the 64-bit targets we build for
/// (`sizeof(max_align_t)`).
const MIN_ALIGN: usize = 16;

/// True when `mi_malloc(size)` is aligned to `align`, std's rule for malloc:
/// mimalloc is a malloc replacement and keeps malloc's guarantee. Its blocks
/// of 16 bytes or more are 16-byte aligned (block sizes are rounded to two
/// machine words, `MI_ALIGN2W`, and a page's first block starts 16-aligned,
/// `MI_PAGE_MIN_START_BLOCK_ALIGN`; asserted in its `_mi_page_malloc_zero`),
/// and smaller blocks are word (8) aligned — enough for any `align <= size`.
#[inline(always)]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

pub struct Mimalloc;

// SAFETY: every pointer returned comes from mimalloc, which returns either
// null (out of memory, as GlobalAlloc allows) or a block of at least the
// requested size; it is aligned as the layout asks because ordinary layouts
// (`plain`) use mimalloc's malloc-compatible entry points, whose alignment is
// argued at `plain`, and all others the aligned ones. `mi_free` takes blocks
// from any of these entry points, and `mi_realloc`/`mi_realloc_aligned` keep
// the contents up to the smaller size, as `realloc` must.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            mi_malloc(layout.size()).cast()
        } else {
            mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            mi_zalloc(layout.size()).cast()
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mimalloc;
    use std::alloc::{GlobalAlloc, Layout};

    // Every size up to 5 KiB and past mimalloc's small/medium limits, every
    // alignment up to 4 KiB: each block aligned as asked, writable over its
    // whole size, and kept across realloc.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_bytes() {
        let a = Mimalloc;
        let sizes =
            (1..=5120)
                .step_by(7)
                .chain([16, 24, 1024, 1025, 1536, 4096, 4097, 65536, 1 << 20]);
        for size in sizes {
            for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // SAFETY: non-zero size; each block is freed once with its layout.
                unsafe {
                    let p = if size % 2 == 0 {
                        a.alloc(layout)
                    } else {
                        a.alloc_zeroed(layout)
                    };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    if size % 2 == 1 {
                        assert!((0..size).all(|i| *p.add(i) == 0));
                    }
                    for i in 0..size {
                        *p.add(i) = (i % 251) as u8;
                    }
                    let grown = size * 2 + 3;
                    let q = a.realloc(p, layout, grown);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc size {grown} align {align}");
                    assert!((0..size).all(|i| *q.add(i) == (i % 251) as u8));
                    a.dealloc(q, Layout::from_size_align_unchecked(grown, align));
                }
            }
        }
    }
}
