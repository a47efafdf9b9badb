//! The chunked decoder: never panics, never yields more data than it was
//! given, and gives the same result however the input is cut (the first
//! byte of the input picks the cut size).
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use llmgate::framing::{Decoder, Step};

fn decode(wire: &[u8], cut: usize) -> Result<(Vec<u8>, bool), ()> {
    let mut d = Decoder::new(1024);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in wire.chunks(cut) {
        buf.extend_from_slice(piece);
        loop {
            match d.step(&mut buf).map_err(|_| ())? {
                Step::Data(b) => out.extend_from_slice(&b),
                Step::More => break,
                Step::Done => return Ok((out, true)),
            }
        }
    }
    Ok((out, false))
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    let whole = decode(wire, wire.len().max(1));
    let cut = decode(wire, usize::from(cut % 16) + 1);
    if let Ok((out, _)) = &whole {
        assert!(out.len() <= wire.len());
    }
    // A complete verdict (error, or done) does not depend on the cuts.
    match (&whole, &cut) {
        (Ok((a, true)), Ok((b, true))) => assert_eq!(a, b),
        (Err(()), r) => assert!(r.is_err() || matches!(r, Ok((_, false)))),
        _ => {}
    }
});
