// The error of a `Result` must say what went wrong: it must be `Display`
// (or `std::error::Error`, whose sources are then shown too).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Opaque;

#[pymw::task]
fn divide(x: u64) -> Result<u64, Opaque> {
    if x == 0 { Err(Opaque) } else { Ok(100 / x) }
}

fn main() {}
