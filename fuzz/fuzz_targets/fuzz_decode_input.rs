//! Input envelopes from hostile bytes: an error or a value that round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pymw_core::wire;

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = pymw_fuzz::envelope(wire::INPUT_MAGIC, data) else {
        return;
    };
    // A small limit too, so that the size check is exercised from both sides.
    let _ = wire::decode_input_with_limit(&bytes, 64);
    if let Ok(body) = wire::decode_input(&bytes) {
        let mut again = Vec::new();
        wire::encode_input(&body, &mut again);
        assert_eq!(
            wire::decode_input(&again).expect("re-encoded input decodes"),
            body
        );
        assert!(
            wire::decode_output(&bytes).is_err(),
            "an input decoded as an output"
        );
    }
});
