#[pymw::task(version = "")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
