//! The request head reader: never panics; what it accepts has a clean,
//! visible-ASCII origin path within the buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llmgate::downstream::head::parse_head;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(p)) = parse_head(data, 16 * 1024) {
        assert!(p.len <= data.len());
        let path = p.request.path();
        assert!(path.starts_with('/'));
        assert!(path.bytes().all(|c| (0x21..0x7f).contains(&c)));
        assert!(!path.split(['/', '\\']).any(|s| s == "." || s == ".."));
    }
});
