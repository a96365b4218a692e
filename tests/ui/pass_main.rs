#[pymw::task]
fn square(x: u64) -> u64 {
    x * x
}

#[pymw::main]
fn main() {
    // `pymw::init()` ran first and returned: this process is the master.
    assert_eq!(square(3), 9);
}
