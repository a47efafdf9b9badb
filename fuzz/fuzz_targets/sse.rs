//! The SSE first-event scanner: never panics, and finds the event in the
//! same place byte by byte as in one piece.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmgate::proxy::sse::FirstEvent;

fuzz_target!(|data: &[u8]| {
    let whole = FirstEvent::default().feed(data);
    let mut one = FirstEvent::default();
    let by_byte = data.iter().any(|b| one.feed(std::slice::from_ref(b)));
    assert_eq!(whole, by_byte);
});
