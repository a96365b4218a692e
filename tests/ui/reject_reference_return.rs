#[pymw::task]
fn greeting(n: u64) -> &'static str {
    if n == 0 { "none" } else { "some" }
}

fn main() {}
