// `version = "..."` identifies the task's code instead of a hash of its
// tokens: the fingerprint stays across edits that do not change results.
#[pymw::task(version = "2")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    assert_eq!(square::CODE, "version:2");
    assert!(square::task().entry().layout_error().is_none());
}
