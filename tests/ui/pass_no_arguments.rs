#[pymw::task]
fn answer() -> u64 {
    42
}

#[pymw::task]
fn nothing() {}

fn main() {
    let _: pymw::Task<(), u64> = answer::task();
    let _: pymw::Task<(), ()> = nothing::task();
    assert_eq!(answer(), 42);
    nothing();
}
