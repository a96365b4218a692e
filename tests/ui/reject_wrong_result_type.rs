#[pymw::task]
fn square(x: u64) -> u64 {
    x * x
}

fn _submit(master: &pymw::blocking::Master) {
    let _s: String = master.submit(square::task(), 3).wait().unwrap();
}

fn main() {}
