#[pymw::task]
fn square(x: u64) -> u64 {
    x * x
}

fn _submit(master: &pymw::blocking::Master) {
    let _ = master.submit(square::task(), "x");
}

fn main() {}
