//! Output envelopes from hostile bytes (they can come from volunteers'
//! machines): an error or a value that round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pymw_core::wire;

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = pymw_fuzz::envelope(wire::OUTPUT_MAGIC, data) else {
        return;
    };
    let _ = wire::decode_output_with_limit(&bytes, 64);
    if let Ok(body) = wire::decode_output(&bytes) {
        let mut again = Vec::new();
        wire::encode_output(&body, &mut again);
        assert_eq!(
            wire::decode_output(&again).expect("re-encoded output decodes"),
            body
        );
        assert!(
            wire::decode_input(&bytes).is_err(),
            "an output decoded as an input"
        );
        // What the master shows for a failure.
        if let wire::Outcome::Failed(failure) = &body.outcome {
            let _ = failure.to_string();
        }
    }
});
