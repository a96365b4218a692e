#[pymw::task]
fn square(x: u64) -> u64
where
    u64: Copy,
{
    x * x
}

fn main() {}
