#[pymw::task]
fn squares(n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(|x| x * x)
}

fn main() {}
