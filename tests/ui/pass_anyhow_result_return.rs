#[pymw::task]
fn checked_sqrt(x: f64) -> anyhow::Result<f64> {
    anyhow::ensure!(x >= 0.0, "negative input {x}");
    Ok(x.sqrt())
}

fn main() {
    let _: pymw::Task<f64, f64> = checked_sqrt::task();
    assert!(checked_sqrt(-1.0).is_err());
}
