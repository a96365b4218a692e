#[pymw::task]
fn echo<T>(x: T) -> T {
    x
}

fn main() {}
