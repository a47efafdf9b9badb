//! The one-pass JSON scan agrees with serde_json (plus UTF-8) on validity.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmgate::proxy::json::{scan, DEPTH_LIMIT};

fuzz_target!(|data: &[u8]| {
    let ours = scan(data, DEPTH_LIMIT);
    let reference = serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
        && std::str::from_utf8(data).is_ok();
    // serde refuses a duplicate model/stream only through the derive, and
    // nests deeper than our limit: compare where both rules are the same.
    if let Err(llmgate::proxy::json::ScanError::Syntax { .. }) = ours {
        assert!(!reference, "scan refused what serde_json accepts");
    }
    if ours.is_ok() {
        assert!(reference, "scan accepted what serde_json refuses");
    }
});
